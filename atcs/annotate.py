"""Draw segments, counting lines, boxes and counts on a frame, to check calibration by eye."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from atcs.config import LineConfig, SegmentConfig
from atcs.types import Detections, Image, VehicleClass

# BGR colours per class, chosen to stay distinct for colour-blind viewers with the labels.
CLASS_COLOURS: Mapping[VehicleClass, tuple[int, int, int]] = {
    VehicleClass.CAR: (255, 170, 0),
    VehicleClass.MOTORCYCLE: (0, 215, 255),
    VehicleClass.BUS: (60, 60, 255),
    VehicleClass.TRUCK: (200, 0, 200),
    VehicleClass.BICYCLE: (120, 255, 120),
}
SEGMENT_COLOUR = (0, 255, 0)
LINE_COLOUR = (255, 0, 255)
STOP_LINE_COLOUR = (0, 0, 255)


def _px(points: Sequence[tuple[float, float]], width_px: int, height_px: int) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64) * np.array([width_px, height_px])
    out: np.ndarray = np.round(arr).astype(np.int32)
    return out


def _label(img: Image, text: str, org: tuple[int, int], colour: tuple[int, int, int]) -> None:
    scale = max(0.4, img.shape[1] / 2200)
    thick = 1 if scale < 0.6 else 2
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x, y = org
    y = max(h + 2, y)
    cv2.rectangle(img, (x, y - h - 2), (x + w + 2, y + base), (0, 0, 0), -1)
    cv2.putText(img, text, (x + 1, y - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick)


def annotate(
    image: Image,
    segments: Sequence[SegmentConfig],
    lines: Sequence[LineConfig],
    detections: Detections,
    *,
    segment_text: Mapping[str, str] | None = None,
    line_text: Mapping[str, str] | None = None,
    title: str = "",
) -> Image:
    """Return a copy of ``image`` with segments, lines, boxes and the given texts drawn.

    ``segment_text`` and ``line_text`` map ids to a short text (counts) drawn beside them.
    """
    out = image.copy()
    h, w = out.shape[:2]
    overlay = out.copy()
    for seg in segments:
        poly = _px(seg.polygon, w, h)
        cv2.fillPoly(overlay, [poly], SEGMENT_COLOUR)
    cv2.addWeighted(overlay, 0.15, out, 0.85, 0, dst=out)
    for seg in segments:
        poly = _px(seg.polygon, w, h)
        cv2.polylines(out, [poly], True, SEGMENT_COLOUR, 2)
        if seg.stop_line is not None:
            a, b = _px(seg.stop_line, w, h)
            cv2.line(out, tuple(a), tuple(b), STOP_LINE_COLOUR, 3)
        x0, y0 = poly.min(axis=0)
        extra = segment_text.get(seg.id) if segment_text else None
        text = seg.id + (f": {extra}" if extra else "")
        _label(out, text, (int(x0) + 4, int(y0) + 18), SEGMENT_COLOUR)
    for line in lines:
        a, b = _px(line.points, w, h)
        cv2.arrowedLine(out, tuple(a), tuple(b), LINE_COLOUR, 2, tipLength=0.03)
        extra = line_text.get(line.id) if line_text else None
        text = line.id + (f": {extra}" if extra else "")
        _label(out, text, (int(a[0]) + 4, int(a[1]) - 6), LINE_COLOUR)
    for i in range(len(detections)):
        x1, y1, x2, y2 = (round(float(v)) for v in detections.xyxy[i])
        cls = VehicleClass(int(detections.class_id[i]))
        colour = CLASS_COLOURS[cls]
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        tag = cls.label
        if detections.tracker_id is not None:
            tag += f" #{int(detections.tracker_id[i])}"
        _label(out, tag, (x1, y1 - 2), colour)
        cv2.circle(out, ((x1 + x2) // 2, y2), 3, colour, -1)
    if title:
        _label(out, title, (6, 22), (255, 255, 255))
    return out
