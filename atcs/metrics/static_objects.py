"""Static false positives: "vehicles" that are part of the scene, kept out of density.

At high resolution or with tiles the model finds things on the roadside that look like
small vehicles: kerb stones painted black and white, a paper on an asphalt patch, a
barrier. They never move. Stopped vehicles in a queue never move either while they wait,
so "does not move" alone would wrongly drop a real queue. The two are told apart by the
scene: a stopped vehicle *arrived* (its place looked different before it came), scenery was
always there.

The rule, per camera (:class:`StaticFilter`):

1. **Never moves.** A detection that overlaps (IoU >= :data:`SAME_PLACE_IOU`, same class)
   the first box of a remembered place keeps that place alive; a place not matched for
   ``after_s / 2`` is forgotten. A place matched for at least ``after_s`` seconds holds
   something that has not moved for that long.
2. **Nothing changed there.** A slow background (grey, at most :data:`BACKGROUND_SIDE_PX`
   px a side, exponential average with a time constant of ``after_s / 4``, so moving traffic
   fades out of it) is kept, and a snapshot of it every ``history_s / SNAPSHOTS`` seconds
   (the last :data:`SNAPSHOTS` kept, rounded to whole grey levels: a quarter of the memory,
   at most half a level off against a ``change`` of 12; 60 cameras hold about 28 MB of
   them instead of 110 MB). For a place that has not moved for ``after_s``, the
   newest snapshot taken *before the place was first seen* (the oldest one when the place
   was seen from the start) is compared with the current frame inside the box: a mean
   absolute grey difference above ``change`` means that something arrived there (a real,
   stopped vehicle: kept); otherwise the place looked the same before the "vehicle" was
   first seen, and it is flagged static.

The verdict of a place is taken once, when it matures, and kept while it lives. Flagged
detections stay in the frame's detections (and tracks) but not in any segment's measures
(vehicles, PCU, density, occupancy, queue). Without frames (no image) nothing is flagged.
A vehicle that stood still since before the engine started and never moved while watched
is indistinguishable from scenery and is flagged until it moves.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from atcs.metrics.geometry import BoolArray
from atcs.metrics.tracking import iou_matrix
from atcs.types import Detections, Image

SAME_PLACE_IOU = 0.5
"""A detection this close to a place's first box (IoU, same class) is the same, unmoved object."""
BACKGROUND_SIDE_PX = 320
"""Longer side of the background image, px (boxes are compared at this resolution)."""
SNAPSHOTS = 8
"""Background snapshots remembered over ``history_s``."""
MAX_PLACES = 512
"""Places remembered per camera; the longest unseen are forgotten first."""

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


@dataclass(slots=True, eq=False)  # a place is itself (its box is an array): compared by identity
class _Place:
    box: npt.NDArray[np.float64]
    class_id: int
    first_s: float
    last_s: float
    static: bool | None = None  # None: not yet mature


class StaticFilter:
    """Flags detections of one camera that never moved where nothing changed (module doc).

    ``after_s``: how long an unmoved object is watched before it is judged, s;
    ``history_s``: how far back the background is remembered, s; ``change``: mean absolute
    grey difference (0-255) inside the box above which something arrived there.
    """

    def __init__(self, after_s: float, history_s: float, change: float) -> None:
        self.after_s = after_s
        self.history_s = history_s
        self.change = change
        self._places: list[_Place] = []
        self._background: F32 | None = None
        self._scale = 1.0
        self._last_s: float | None = None
        self._snapshots: deque[tuple[float, U8]] = deque(maxlen=SNAPSHOTS)

    def update(self, t_s: float, image: Image | None, dets: Detections) -> BoolArray:
        """Return, per detection of the frame at ``t_s`` (s), whether it is a static FP."""
        flags = np.zeros(len(dets), dtype=np.bool_)
        if image is None or image.ndim != 3:
            return flags
        grey = self._learn(t_s, image)
        self._places = [p for p in self._places if t_s - p.last_s <= self.after_s / 2]
        boxes = dets.xyxy.astype(np.float64)
        known = list(self._places)
        ious = np.zeros((len(dets), len(known)))
        if known and len(dets):
            ious = iou_matrix(boxes, np.stack([p.box for p in known]))
            same = dets.class_id[:, None] == np.asarray([p.class_id for p in known])[None, :]
            ious = np.where(same, ious, 0.0)
        for k in range(len(dets)):
            best = int(np.argmax(ious[k])) if known else -1
            if best >= 0 and ious[k, best] >= SAME_PLACE_IOU:
                place = known[best]
                place.last_s = t_s
            else:
                place = self._new_place(boxes[k], int(dets.class_id[k]), t_s)
            if place.static is None and t_s - place.first_s >= self.after_s:
                place.static = not self._changed(place, grey)
            flags[k] = bool(place.static)
        return flags

    def _learn(self, t_s: float, image: Image) -> F32:
        """Fold the frame into the background; take a snapshot when one is due."""
        h, w = image.shape[:2]
        self._scale = min(1.0, BACKGROUND_SIDE_PX / max(h, w))
        size = (max(1, round(w * self._scale)), max(1, round(h * self._scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
        if self._background is None or self._background.shape != grey.shape:
            self._background = grey.copy()
            self._snapshots.clear()
        else:
            dt = max(0.0, t_s - (self._last_s if self._last_s is not None else t_s))
            alpha = 1.0 - math.exp(-dt / max(self.after_s / 4, 1e-6))
            self._background += np.float32(alpha) * (grey - self._background)
        self._last_s = t_s
        step = self.history_s / SNAPSHOTS
        if not self._snapshots or t_s - self._snapshots[-1][0] >= step:
            whole_levels = np.clip(np.rint(self._background), 0, 255).astype(np.uint8)
            self._snapshots.append((t_s, whole_levels))
        return grey

    def _new_place(self, box: npt.NDArray[np.float64], class_id: int, t_s: float) -> _Place:
        if len(self._places) >= MAX_PLACES:
            longest_unseen = min(range(len(self._places)), key=lambda i: self._places[i].last_s)
            del self._places[longest_unseen]
        place = _Place(box.copy(), class_id, t_s, t_s)
        self._places.append(place)
        return place

    def _changed(self, place: _Place, grey: F32) -> bool:
        """Tell whether the place looked different before it was first seen."""
        before = [snap for at, snap in self._snapshots if at < place.first_s]
        reference = before[-1] if before else self._snapshots[0][1]
        x0, y0, x1, y1 = (place.box * self._scale).tolist()
        h, w = grey.shape
        c0, r0 = min(max(0, math.floor(x0)), w - 1), min(max(0, math.floor(y0)), h - 1)
        c1, r1 = max(c0 + 1, min(w, math.ceil(x1))), max(r0 + 1, min(h, math.ceil(y1)))
        diff = np.abs(grey[r0:r1, c0:c1] - reference[r0:r1, c0:c1].astype(np.float32))
        return float(diff.mean()) > self.change
