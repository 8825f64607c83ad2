"""Duplicate detections of one vehicle, dropped before tracking so it is one track.

Two kinds, both from detectors (the int8 YOLO exports in particular):

- **Nested, same class**: a motorcycle with and without its rider, a car with and without
  its shadow. NMS keeps both because their IoU is below its threshold; the smaller box
  lies almost wholly inside the larger one. Two real vehicles of one class rarely do: the
  far one would be hidden behind the near one.
- **Across classes**: NMS runs per class, so one vehicle called both car and truck (or
  bus and truck) keeps a box of each. Boxes of different classes overlapping by at least
  ``cross_class_iou`` are one vehicle; so is a car, bus or truck box lying at least
  ``min_fraction`` inside a larger box of another of those classes (a lorry's cab called
  a car inside the lorry). Motorcycles and bicycles are not nested into other classes: they
  pass in front of buses and lorries and lie inside their boxes.

Of each duplicate group the box with the highest confidence stays; the tracker decides the
vehicle's class by a vote over its track (:mod:`atcs.metrics.tracking`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from atcs.types import Detections, FloatArray, IntArray, VehicleClass

BoolArray = npt.NDArray[np.bool_]

DEFAULT_NESTED_FRACTION = 0.9
DEFAULT_CROSS_CLASS_IOU = 0.6
_FOUR_WHEELED = np.array(
    [int(VehicleClass.CAR), int(VehicleClass.BUS), int(VehicleClass.TRUCK)], dtype=np.int64
)


def _overlaps(b: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], ...]:
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    iw = np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0])
    ih = np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    return area, inter


def nested_boxes(
    xyxy: FloatArray, class_id: IntArray, min_fraction: float = DEFAULT_NESTED_FRACTION
) -> BoolArray:
    """Mark (N,) the boxes lying inside a larger box of the same class.

    A box is nested when at least ``min_fraction`` of its area lies inside a box of the
    same class with a larger area (of two equal boxes, the later one is nested).
    """
    n = len(xyxy)
    out: BoolArray = np.zeros(n, dtype=np.bool_)
    if n < 2:
        return out
    area, inter = _overlaps(np.asarray(xyxy, dtype=np.float64))
    idx = np.arange(n)
    larger = (area[None, :] > area[:, None]) | (
        (area[None, :] == area[:, None]) & (idx[None, :] < idx[:, None])
    )
    same = class_id[:, None] == class_id[None, :]
    inside = inter >= min_fraction * area[:, None]
    np.fill_diagonal(same, False)
    out = np.asarray((inside & same & larger & (area[:, None] > 0)).any(axis=1), dtype=np.bool_)
    return out


def cross_class_duplicates(
    xyxy: FloatArray,
    class_id: IntArray,
    confidence: FloatArray,
    *,
    min_iou: float = DEFAULT_CROSS_CLASS_IOU,
    min_fraction: float = DEFAULT_NESTED_FRACTION,
) -> BoolArray:
    """Mark (N,) the boxes that duplicate a more confident box of another class.

    A pair of different classes is one vehicle when their IoU is at least ``min_iou``, or
    when both are car, bus or truck and the smaller lies at least ``min_fraction`` inside
    the larger. Boxes are kept in order of confidence (ties: the earlier one), and a box is
    dropped when it pairs with a kept one.
    """
    n = len(xyxy)
    out: BoolArray = np.zeros(n, dtype=np.bool_)
    if n < 2:
        return out
    area, inter = _overlaps(np.asarray(xyxy, dtype=np.float64))
    union = area[:, None] + area[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
        small = np.minimum(area[:, None], area[None, :])
        nested = np.where(small > 0, inter / small, 0.0) >= min_fraction
    wheeled = np.isin(class_id, _FOUR_WHEELED)
    other = class_id[:, None] != class_id[None, :]
    same_vehicle = other & ((iou >= min_iou) | (nested & wheeled[:, None] & wheeled[None, :]))
    order = np.argsort(-np.asarray(confidence, dtype=np.float64), kind="stable")
    for i in order.tolist():
        if out[i]:
            continue
        out |= same_vehicle[i]
        out[i] = False
    return out


def drop_duplicates(detections: Detections, min_fraction: float) -> Detections:
    """Return ``detections`` without nested same-class boxes and cross-class duplicates."""
    if len(detections) > 1:
        nested = nested_boxes(detections.xyxy, detections.class_id, min_fraction)
        if nested.any():
            detections = detections[~nested]
    if len(detections) > 1:
        dup = cross_class_duplicates(
            detections.xyxy,
            detections.class_id,
            detections.confidence,
            min_fraction=min_fraction,
        )
        if dup.any():
            detections = detections[~dup]
    return detections
