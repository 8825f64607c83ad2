"""Turn a YOLO head's raw output into :class:`Detections`, the way ultralytics does, in numpy.

The raw output of one image is a ``(4 + classes, candidates)`` float32 array: box centre,
width and height in model-input pixels, then one score per class. ultralytics'
``non_max_suppression`` (``agnostic=False``, ``multi_label=False``) keeps a candidate when
its best class score is above the confidence threshold and that best class is wanted, then
runs class-aware NMS (boxes shifted by ``class * 7680`` so classes never overlap) with
torchvision's greedy rule, and keeps at most ``max_det`` boxes, best first. The functions
below follow the same steps with the same float32 arithmetic, so they return the same boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from atcs.errors import DetectorError
from atcs.types import Detections, FloatArray, IntArray

from .classes import ClassMap
from .letterbox import Placement

CLASS_OFFSET_PX = 7680.0
"""Shift per class index that separates classes in class-aware NMS (ultralytics ``max_wh``)."""

MAX_NMS_BOXES = 30000
"""Most candidates NMS considers, best first (ultralytics ``max_nms``)."""


@dataclass(frozen=True, slots=True)
class DecodeSettings:
    """Thresholds of decoding: confidence and NMS IoU in [0, 1], most boxes per image."""

    confidence: float
    nms_iou: float
    max_detections: int
    class_map: ClassMap


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float) -> IntArray:
    """Greedy NMS, torchvision's rule: indices of kept boxes, highest score first.

    A box is dropped when its IoU with an already kept, higher-scoring box is above
    ``iou_threshold``; ``boxes`` are (N, 4) x1, y1, x2, y2.
    """
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    keep: list[int] = []
    with np.errstate(divide="ignore", invalid="ignore"):
        while order.size:
            i = int(order[0])
            keep.append(i)
            rest = order[1:]
            if not rest.size:
                break
            w = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])
            h = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])
            inter = np.maximum(w, 0) * np.maximum(h, 0)
            if not inter.any():
                order = rest
                continue
            iou = inter / (areas[i] + areas[rest] - inter)
            order = rest[~(iou > iou_threshold)]
    return np.asarray(keep, dtype=np.int64)


def decode(
    raw: npt.NDArray[np.float32], settings: DecodeSettings, placement: Placement
) -> Detections:
    """Decode one image's raw ``(4 + classes, candidates)`` model output into Detections."""
    lookup = settings.class_map.lookup
    classes = lookup.shape[0]
    if raw.ndim != 2 or raw.shape[0] < 4 + classes:
        raise DetectorError(
            f"unexpected model output shape {raw.shape}; expected ({4 + classes}, N) "
            f"for a model with {classes} classes"
        )
    scores = raw[4 : 4 + classes]
    best = scores.max(axis=0)
    candidates = np.flatnonzero(best > settings.confidence)
    if not candidates.size:
        return Detections.empty()
    model_class = scores[:, candidates].argmax(axis=0)
    wanted = lookup[model_class] >= 0
    candidates, model_class = candidates[wanted], model_class[wanted]
    if not candidates.size:
        return Detections.empty()
    confidence = best[candidates]
    if candidates.size > MAX_NMS_BOXES:
        top = np.argsort(-confidence, kind="stable")[:MAX_NMS_BOXES]
        candidates, model_class, confidence = candidates[top], model_class[top], confidence[top]
    xywh = raw[:4, candidates].T
    half_wh = xywh[:, 2:4] / np.float32(2)
    xyxy = np.empty((candidates.size, 4), dtype=np.float32)
    xyxy[:, :2] = xywh[:, :2] - half_wh
    xyxy[:, 2:] = xywh[:, :2] + half_wh
    shifted = xyxy + (model_class.astype(np.float32) * np.float32(CLASS_OFFSET_PX))[:, None]
    keep = nms(shifted, confidence, settings.nms_iou)[: settings.max_detections]
    kept = xyxy[keep]
    placement.boxes_to_image(kept)
    return Detections(
        xyxy=kept,
        confidence=confidence[keep],
        class_id=settings.class_map.to_vehicle(model_class[keep]),
    )


def decode_end_to_end(
    raw: npt.NDArray[np.float32], settings: DecodeSettings, placement: Placement
) -> Detections:
    """Decode one image's NMS-free ``(boxes, 6)`` model output into Detections.

    Rows are x1, y1, x2, y2 (model-input pixels), score, class index, best first
    (YOLO26 and exports with NMS built in); ultralytics only filters them.
    """
    if raw.ndim != 2 or raw.shape[1] < 6:
        raise DetectorError(f"unexpected model output shape {raw.shape}; expected (N, 6)")
    confidence = raw[:, 4]
    model_class = raw[:, 5].astype(np.int64)
    lookup = settings.class_map.lookup
    keep = (confidence > settings.confidence) & (model_class >= 0)
    keep &= model_class < lookup.shape[0]
    keep[keep] = lookup[model_class[keep]] >= 0
    rows = np.flatnonzero(keep)[: settings.max_detections]
    xyxy = raw[rows, :4].astype(np.float32, copy=True)
    placement.boxes_to_image(xyxy)
    return Detections(
        xyxy=xyxy,
        confidence=confidence[rows],
        class_id=settings.class_map.to_vehicle(model_class[rows]),
    )
