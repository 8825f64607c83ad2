"""Draw segments, counting lines, boxes and counts on a frame, to check calibration by eye.

The picture is for an engineer checking geometry: small sources (analogue CCTV at
320x240) are enlarged by a whole factor to at least :data:`MIN_WIDTH_PX` wide so labels
stay readable; labels are placed so that they do not overlap; each segment is tinted by
its level of service (green A to red F, grey when unknown); ticks every few metres run
from each segment's stop line (or, without one, from its polygon edge nearest the bottom
of the image) along the road, where the engine measures queues and lengths.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from atcs.config import LineConfig, SegmentConfig
from atcs.errors import DataError
from atcs.incidents import Incident
from atcs.metrics.geometry import RoadAxis, to_pixels
from atcs.types import Detections, Image, LevelOfService, VehicleClass

MIN_WIDTH_PX = 960
"""Pictures narrower than this are enlarged by a whole factor."""

# BGR colours per class, chosen to stay distinct for colour-blind viewers with the labels.
CLASS_COLOURS: Mapping[VehicleClass, tuple[int, int, int]] = {
    VehicleClass.CAR: (255, 170, 0),
    VehicleClass.MOTORCYCLE: (0, 215, 255),
    VehicleClass.BUS: (60, 60, 255),
    VehicleClass.TRUCK: (200, 0, 200),
    VehicleClass.BICYCLE: (120, 255, 120),
}
LOS_COLOURS: Mapping[LevelOfService, tuple[int, int, int]] = {
    LevelOfService.A: (0, 170, 0),
    LevelOfService.B: (0, 210, 120),
    LevelOfService.C: (0, 220, 220),
    LevelOfService.D: (0, 150, 255),
    LevelOfService.E: (0, 80, 255),
    LevelOfService.F: (0, 0, 220),
}
UNKNOWN_LOS_COLOUR = (160, 160, 160)
LINE_COLOUR = (255, 0, 255)
STOP_LINE_COLOUR = (0, 0, 255)
TICK_COLOUR = (255, 255, 255)


class _Labels:
    """Places text boxes on an image so that no two overlap."""

    def __init__(self, image: Image) -> None:
        self._img = image
        self.scale = max(0.45, image.shape[1] / 2000)
        self.thick = 1 if self.scale < 0.6 else 2
        self._placed: list[tuple[int, int, int, int]] = []

    def _free(self, rect: tuple[int, int, int, int]) -> bool:
        x0, y0, x1, y1 = rect
        return all(x1 <= a or x0 >= c or y1 <= b or y0 >= d for a, b, c, d in self._placed)

    def put(self, text: str, org: tuple[int, int], colour: tuple[int, int, int]) -> None:
        """Draw ``text`` at ``org`` (bottom-left), moved down or up until it overlaps none."""
        font = cv2.FONT_HERSHEY_SIMPLEX
        (w, h), base = cv2.getTextSize(text, font, self.scale, self.thick)
        height, width = self._img.shape[:2]
        x = min(max(org[0], 0), max(width - w - 2, 0))
        y0 = min(max(org[1], h + 2), height - base - 1)
        step = h + base + 3
        rect = (x, y0 - h - 2, x + w + 2, y0 + base)
        for k in range(40):
            dy = (k + 1) // 2 * step * (1 if k % 2 else -1)
            y = y0 + dy
            if y - h - 2 < 0 or y + base > height:
                continue
            candidate = (x, y - h - 2, x + w + 2, y + base)
            if self._free(candidate):
                rect = candidate
                break
        self._placed.append(rect)
        cv2.rectangle(self._img, rect[:2], rect[2:], (0, 0, 0), -1)
        org_text = (rect[0] + 1, rect[3] - base - 1)
        cv2.putText(self._img, text, org_text, font, self.scale, colour, self.thick)


def _base_edge(polygon: np.ndarray) -> np.ndarray:
    """Return the polygon edge nearest the bottom of the image (largest mean y), 2 points."""
    edges = [(polygon[i], polygon[(i + 1) % len(polygon)]) for i in range(len(polygon))]
    a, b = max(edges, key=lambda e: (e[0][1] + e[1][1]) / 2 + 1e-6 * abs(e[1][0] - e[0][0]))
    return np.array([a, b], dtype=np.float64)


def _los_colour(los: Mapping[str, LevelOfService], segment_id: str) -> tuple[int, int, int]:
    return LOS_COLOURS[los[segment_id]] if segment_id in los else UNKNOWN_LOS_COLOUR


def _tick_step_m(length_m: float) -> float:
    for step in (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0):
        if length_m / step <= 12:
            return step
    return 1000.0


def _draw_ticks(out: Image, seg: SegmentConfig, labels: _Labels, scale: int) -> None:
    """Metre ticks from the segment's stop line (or base edge) along its road axis."""
    h, w = out.shape[0] // scale, out.shape[1] // scale
    polygon = to_pixels(seg.polygon, w, h)
    base = to_pixels(seg.stop_line, w, h) if seg.stop_line is not None else _base_edge(polygon)
    try:
        axis = RoadAxis(base, polygon, seg.length_m)
    except DataError:
        return
    step = _tick_step_m(seg.length_m)
    nx, ny = axis.normal
    half = 6.0 / scale
    for k in range(1, math.floor(seg.length_m / step + 1e-9) + 1):
        d = k * step
        x, y = axis.point_px(d)
        p0 = (round((x - ny * half) * scale), round((y + nx * half) * scale))
        p1 = (round((x + ny * half) * scale), round((y - nx * half) * scale))
        cv2.line(out, p0, p1, TICK_COLOUR, 2)
        if k % 2 == 0 or k == 1:
            labels.put(f"{d:g} m", (p1[0] + 4, p1[1] + 4), TICK_COLOUR)


def _enlarged(image: Image) -> tuple[Image, int]:
    """Return ``image`` enlarged by a whole factor to at least MIN_WIDTH_PX wide, and the factor."""
    h, w = image.shape[:2]
    scale = max(1, math.ceil(MIN_WIDTH_PX / max(w, 1)))
    if scale == 1:
        return image.copy(), 1
    big = cv2.resize(image, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
    return np.asarray(big, np.uint8), scale


def annotate(
    image: Image,
    segments: Sequence[SegmentConfig],
    lines: Sequence[LineConfig],
    detections: Detections,
    *,
    segment_text: Mapping[str, str] | None = None,
    line_text: Mapping[str, str] | None = None,
    segment_los: Mapping[str, LevelOfService] | None = None,
    title: str = "",
) -> Image:
    """Return an annotated copy of ``image`` (see the module docstring).

    ``segment_text`` and ``line_text`` map ids to a short text (counts) drawn beside them;
    ``segment_los`` gives each segment's level of service for its tint. The picture is
    enlarged by a whole factor when ``image`` is narrower than :data:`MIN_WIDTH_PX`.
    """
    h, w = image.shape[:2]
    out, scale = _enlarged(image)
    labels = _Labels(out)
    if title:
        labels.put(title, (6, 22), (255, 255, 255))

    def px(points: Sequence[tuple[float, float]]) -> np.ndarray:
        pts: np.ndarray = np.round(to_pixels(points, w, h) * scale).astype(np.int32)
        return pts

    los = segment_los or {}
    overlay = out.copy()
    for seg in segments:
        cv2.fillPoly(overlay, [px(seg.polygon)], _los_colour(los, seg.id))
    cv2.addWeighted(overlay, 0.25, out, 0.75, 0, dst=out)
    for seg in segments:
        colour = _los_colour(los, seg.id)
        poly = px(seg.polygon)
        cv2.polylines(out, [poly], True, colour, 2)
        if seg.stop_line is not None:
            a, b = px(seg.stop_line)
            cv2.line(out, tuple(a), tuple(b), STOP_LINE_COLOUR, 3)
        _draw_ticks(out, seg, labels, scale)
    for i in range(len(detections)):
        x1, y1, x2, y2 = (round(float(v) * scale) for v in detections.xyxy[i])
        cls = VehicleClass(int(detections.class_id[i]))
        colour = CLASS_COLOURS[cls]
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        cv2.circle(out, ((x1 + x2) // 2, y2), 3, colour, -1)
    for line in lines:
        a, b = px(line.points)
        cv2.arrowedLine(out, tuple(a), tuple(b), LINE_COLOUR, 2, tipLength=0.03)
    # Labels last, most important first: segments and lines, then the boxes.
    for seg in segments:
        poly = px(seg.polygon)
        x0, y0 = poly.min(axis=0)
        extra = segment_text.get(seg.id) if segment_text else None
        level = f" LOS {los[seg.id].value}" if seg.id in los else ""
        text = seg.id + level + (f": {extra}" if extra else "")
        labels.put(text, (int(x0) + 4, int(y0) + 18), _los_colour(los, seg.id))
    for line in lines:
        a, _ = px(line.points)
        extra = line_text.get(line.id) if line_text else None
        text = line.id + (f": {extra}" if extra else "")
        labels.put(text, (int(a[0]) + 4, int(a[1]) - 6), LINE_COLOUR)
    for i in range(len(detections)):
        x1, y1 = (round(float(v) * scale) for v in detections.xyxy[i][:2])
        cls = VehicleClass(int(detections.class_id[i]))
        tag = cls.label
        if detections.tracker_id is not None:
            tag += f" #{int(detections.tracker_id[i])}"
        labels.put(tag, (x1, y1 - 2), CLASS_COLOURS[cls])
    return out


INCIDENT_COLOUR = (0, 0, 255)


def annotate_incident(
    image: Image,
    incident: Incident,
    detections: Detections,
    segment: SegmentConfig | None,
) -> Image:
    """Return a copy of ``image`` marking ``incident``: its segment, its vehicle, its text.

    The vehicle (the detection carrying the incident's track id) gets a red box; without
    one, the incident's location gets a red ring. The image is enlarged like
    :func:`annotate` when narrow.
    """
    h, w = image.shape[:2]
    out, scale = _enlarged(image)
    labels = _Labels(out)
    if segment is not None:
        poly = np.round(to_pixels(segment.polygon, w, h) * scale).astype(np.int32)
        cv2.polylines(out, [poly], True, INCIDENT_COLOUR, 2)
    boxed = False
    if incident.track_id is not None and detections.tracker_id is not None:
        for i in np.flatnonzero(detections.tracker_id == int(incident.track_id)).tolist():
            x1, y1, x2, y2 = (round(float(v) * scale) for v in detections.xyxy[i])
            cv2.rectangle(out, (x1 - 3, y1 - 3), (x2 + 3, y2 + 3), INCIDENT_COLOUR, 3)
            boxed = True
    if not boxed and incident.location is not None:
        x, y = incident.location
        cv2.circle(out, (round(x * w * scale), round(y * h * scale)), 18, INCIDENT_COLOUR, 3)
    title = f"{incident.kind.value.replace('_', ' ')} in {incident.segment_id}"
    labels.put(title, (6, 22), INCIDENT_COLOUR)
    labels.put(incident.detail, (6, 48), (255, 255, 255))
    return out
