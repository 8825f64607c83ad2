"""Duplicate detections of one vehicle: a box lying inside another box of the same class.

Detectors (the int8 YOLO exports in particular) often give one vehicle two boxes of the
same class that NMS keeps because their IoU is below its threshold: the motorcycle with
and without its rider, a car with and without its shadow. The smaller box then lies
almost wholly inside the larger one. Two real vehicles of one class rarely do: the far one
would be hidden behind the near one.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from atcs.types import FloatArray, IntArray

BoolArray = npt.NDArray[np.bool_]

DEFAULT_NESTED_FRACTION = 0.9


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
    b = np.asarray(xyxy, dtype=np.float64)
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    iw = np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0])
    ih = np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    idx = np.arange(n)
    larger = (area[None, :] > area[:, None]) | (
        (area[None, :] == area[:, None]) & (idx[None, :] < idx[:, None])
    )
    same = class_id[:, None] == class_id[None, :]
    inside = inter >= min_fraction * area[:, None]
    np.fill_diagonal(same, False)
    out = np.asarray((inside & same & larger & (area[:, None] > 0)).any(axis=1), dtype=np.bool_)
    return out
