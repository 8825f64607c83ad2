"""Colour appearance of detected vehicles: a small HSV histogram per box.

At a few frames per second a motorcycle moves more than its own length between samples,
and in a stream of motorcycles the nearest box to where a track should be is often the
next rider's. Colour tells them apart cheaply: per box, a normalised 3-D histogram of the
inner half of the box (8 hue x 4 saturation bins, 32 numbers; brightness is left out, so
that shade and sun on one vehicle do not make it two), compared with
the Hellinger distance (0 for equal colour, 1 for no colour in common).
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from atcs.types import FloatArray, Image

F32Array = npt.NDArray[np.float32]

HISTOGRAM_BINS = 8 * 4
_INNER = 0.25  # a quarter of the box is trimmed from each side: the road around is left out


def box_histograms(image: Image, xyxy: FloatArray) -> F32Array:
    """One normalised colour histogram (N, 32) per box ``xyxy`` (N, 4) in ``image`` (BGR).

    A box wholly outside the image, or too small to hold a pixel, gets a uniform histogram.
    """
    n = len(xyxy)
    out = np.full((n, HISTOGRAM_BINS), 1.0 / HISTOGRAM_BINS, dtype=np.float32)
    if n == 0:
        return out
    height, width = image.shape[:2]
    boxes = np.asarray(xyxy, dtype=np.float64)
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        dx, dy = (x2 - x1) * _INNER, (y2 - y1) * _INNER
        c0, c1 = max(int(x1 + dx), 0), min(int(np.ceil(x2 - dx)), width)
        r0, r1 = max(int(y1 + dy), 0), min(int(np.ceil(y2 - dy)), height)
        if c1 <= c0 or r1 <= r0:
            continue
        hsv = cv2.cvtColor(np.ascontiguousarray(image[r0:r1, c0:c1]), cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [8, 4], [0, 180, 0, 256])
        total = float(hist.sum())
        if total > 0:
            out[i] = hist.reshape(-1) / total
    return out


def hellinger(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Hellinger distance (M, N) between histograms ``a`` (M, K) and ``b`` (N, K), in [0, 1]."""
    sa = np.sqrt(np.asarray(a, dtype=np.float64))
    sb = np.sqrt(np.asarray(b, dtype=np.float64))
    out: npt.NDArray[np.float64] = np.sqrt(np.clip(1.0 - sa @ sb.T, 0.0, 1.0))
    return out
