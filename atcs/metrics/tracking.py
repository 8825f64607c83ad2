"""A small bounded multi-object tracker: greedy IoU matching per class.

Each live track keeps its last box, class and a short history of boxes with their times;
the velocity of the box corners over about the last second predicts where (and how big)
the box is in the next frame, and the anchor's (bottom centre's) speed feeds the queue.
Matching for a frame:

1. tracks unseen for more than ``max_age_s`` are dropped;
2. every track's box is moved by its estimated velocity to the frame's time;
3. track/detection pairs of the same class and similar area (within a factor 2.5, unless
   the box touches the image border) with IoU >= ``match_iou`` (and > 0) are matched
   greedily, highest IoU first;
4. small classes (motorcycles, bicycles), which at low frame rates move more than their
   own size between frames, fall back to the nearest centre within ``fallback_factor``
   box diagonals, for tracks seen in the previous frame and boxes of similar area;
5. unmatched detections start new tracks; past ``max_count`` live tracks the least
   recently seen track is dropped.

Memory is bounded: at most ``max_count`` tracks, each with at most ``history_len`` boxes.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from atcs.config import AnalysisConfig
from atcs.types import Detections, FloatArray, IntArray, TrackId, VehicleClass

F64Array = npt.NDArray[np.float64]

DEFAULT_FALLBACK_CLASSES = frozenset({VehicleClass.MOTORCYCLE, VehicleClass.BICYCLE})
_MAX_AREA_RATIO = 2.5  # a match may not change the box area by more than this factor
_BORDER_MARGIN_PX = 2.0  # a box this close to the image border may be cut by it


@dataclass(slots=True)
class _Track:
    track_id: int
    class_id: int
    box: F64Array  # (4,) xyxy in px at last_seen_s
    last_seen_s: float
    history: deque[tuple[float, F64Array]]  # (t_s, box xyxy px)
    velocity: F64Array | None = None  # (4,) px/s of x1, y1, x2, y2; updated on each hit

    def box_velocity_px_s(self, window_s: float) -> F64Array | None:
        """Velocity (px/s) of the box corners over about the last ``window_s`` seconds.

        The baseline is the oldest point within ``window_s`` of the newest one, or the
        point just before when there is none; None with a single point.
        """
        hist = self.history
        if len(hist) < 2:
            return None
        t_last, box_last = hist[-1]
        ref = hist[-2]
        for k in range(len(hist) - 1):
            if hist[k][0] >= t_last - window_s:
                ref = hist[k]
                break
        dt = t_last - ref[0]
        if dt <= 0:
            return None
        return (box_last - ref[1]) / dt


def _anchor_speed(box_velocity: F64Array) -> float:
    """Speed (px/s) of the bottom-centre anchor from the box corners' velocity."""
    return float(np.hypot((box_velocity[0] + box_velocity[2]) / 2.0, box_velocity[3]))


@dataclass(frozen=True, slots=True)
class TrackedFrame:
    """The tracker's answer for one frame.

    ``detections`` carry ``tracker_id``; ``speeds_px_s`` (N,) is each detection's track
    speed in pixels per second (NaN while the track has a single point); ``removed`` lists
    the tracks dropped during this update (expired or evicted by the bound).
    """

    detections: Detections
    speeds_px_s: FloatArray
    removed: tuple[TrackId, ...]


def iou_matrix(a: npt.ArrayLike, b: npt.ArrayLike) -> F64Array:
    """Intersection over union of every box in ``a`` (M, 4) with every box in ``b`` (N, 4)."""
    aa = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    bb = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix1 = np.maximum(aa[:, None, 0], bb[None, :, 0])
    iy1 = np.maximum(aa[:, None, 1], bb[None, :, 1])
    ix2 = np.minimum(aa[:, None, 2], bb[None, :, 2])
    iy2 = np.minimum(aa[:, None, 3], bb[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = np.clip(aa[:, 2] - aa[:, 0], 0, None) * np.clip(aa[:, 3] - aa[:, 1], 0, None)
    area_b = np.clip(bb[:, 2] - bb[:, 0], 0, None) * np.clip(bb[:, 3] - bb[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union > 0, inter / union, 0.0)
    return out


def _greedy(
    score: F64Array, valid: npt.NDArray[np.bool_], descending: bool
) -> list[tuple[int, int]]:
    """Greedy one-to-one assignment over valid (row, col) pairs ordered by ``score``."""
    rows, cols = np.nonzero(valid)
    if len(rows) == 0:
        return []
    values = score[rows, cols]
    order = np.argsort(-values if descending else values, kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for k in order.tolist():
        r, c = int(rows[k]), int(cols[k])
        if r in used_r or c in used_c:
            continue
        used_r.add(r)
        used_c.add(c)
        pairs.append((r, c))
    return pairs


class Tracker:
    """Bounded greedy IoU tracker (see the module docstring); one per camera, not thread-safe."""

    def __init__(
        self,
        *,
        max_age_s: float = 1.5,
        max_count: int = 2000,
        match_iou: float = 0.1,
        history_len: int = 32,
        speed_window_s: float = 1.0,
        fallback_classes: Iterable[VehicleClass] = DEFAULT_FALLBACK_CLASSES,
        fallback_factor: float = 1.0,
        image_size_px: tuple[int, int] | None = None,
    ) -> None:
        self._max_age_s = max_age_s
        self._max_count = max_count
        self._match_iou = match_iou
        self._history_len = history_len
        self._speed_window_s = speed_window_s
        self._fallback = np.array(sorted(int(c) for c in fallback_classes), dtype=np.int64)
        self._fallback_factor = fallback_factor
        self._image_size = image_size_px
        self._tracks: OrderedDict[int, _Track] = OrderedDict()  # least recently seen first
        self._ids = itertools.count(1)
        self._last_t_s: float | None = None  # time of the previous update

    @classmethod
    def from_config(
        cls, analysis: AnalysisConfig, image_size_px: tuple[int, int] | None = None
    ) -> Tracker:
        """Build a tracker with the age, bound and IoU threshold of ``analysis``.

        ``image_size_px`` (width, height) lets boxes cut by the image border keep their
        track although their area changes fast.
        """
        return cls(
            max_age_s=analysis.track_max_age_s,
            max_count=analysis.track_max_count,
            match_iou=analysis.track_match_iou,
            image_size_px=image_size_px,
        )

    def __len__(self) -> int:
        """Return the number of live tracks."""
        return len(self._tracks)

    def update(self, t_s: float, detections: Detections) -> TrackedFrame:
        """Match ``detections`` seen at time ``t_s`` (seconds, any fixed origin) to tracks."""
        removed: list[TrackId] = []
        while self._tracks:
            oldest = next(iter(self._tracks.values()))
            if t_s - oldest.last_seen_s <= self._max_age_s:
                break
            del self._tracks[oldest.track_id]
            removed.append(TrackId(oldest.track_id))
        n = len(detections)
        boxes = detections.xyxy.astype(np.float64)
        classes = detections.class_id
        assigned = np.full(n, -1, dtype=np.int64)
        tracks = list(self._tracks.values())
        if tracks and n:
            for ti, di in self._match(t_s, tracks, boxes, classes):
                assigned[di] = tracks[ti].track_id
        speeds = np.full(n, np.nan, dtype=np.float32)
        for di in range(n):
            box = boxes[di]
            tid = int(assigned[di])
            if tid < 0:
                tid = next(self._ids)
                assigned[di] = tid
                track = _Track(tid, int(classes[di]), box, t_s, deque(maxlen=self._history_len))
                self._tracks[tid] = track
            else:
                track = self._tracks[tid]
                track.box = box
                track.last_seen_s = t_s
                self._tracks.move_to_end(tid)
            track.history.append((t_s, box))
            vel = track.velocity = track.box_velocity_px_s(self._speed_window_s)
            if vel is not None:
                speeds[di] = _anchor_speed(vel)
        while len(self._tracks) > self._max_count:
            tid, _ = self._tracks.popitem(last=False)
            removed.append(TrackId(tid))
        self._last_t_s = t_s
        return TrackedFrame(detections.with_tracker_ids(assigned), speeds, tuple(removed))

    def _predicted_boxes(self, t_s: float, tracks: list[_Track]) -> F64Array:
        pred = np.empty((len(tracks), 4), dtype=np.float64)
        for i, tr in enumerate(tracks):
            if tr.velocity is None:
                pred[i] = tr.box
            else:
                dt = min(max(t_s - tr.last_seen_s, 0.0), self._max_age_s)
                pred[i] = tr.box + tr.velocity * dt
        return pred

    def _at_border(self, boxes: F64Array) -> npt.NDArray[np.bool_] | None:
        """Which boxes touch the image border (None when the image size is unknown)."""
        if self._image_size is None:
            return None
        width, height = self._image_size
        margin = _BORDER_MARGIN_PX
        out: npt.NDArray[np.bool_] = (
            (boxes[:, 0] <= margin)
            | (boxes[:, 1] <= margin)
            | (boxes[:, 2] >= width - margin)
            | (boxes[:, 3] >= height - margin)
        )
        return out

    def _match(
        self, t_s: float, tracks: list[_Track], boxes: F64Array, classes: IntArray
    ) -> list[tuple[int, int]]:
        pred = self._predicted_boxes(t_s, tracks)
        track_cls = np.array([tr.class_id for tr in tracks], dtype=np.int64)
        last = np.stack([tr.box for tr in tracks])
        pw = np.clip(last[:, 2] - last[:, 0], 1e-3, None)
        ph = np.clip(last[:, 3] - last[:, 1], 1e-3, None)
        dw = np.clip(boxes[:, 2] - boxes[:, 0], 1e-3, None)
        dh = np.clip(boxes[:, 3] - boxes[:, 1], 1e-3, None)
        area_ratio = (pw * ph)[:, None] / (dw * dh)[None, :]
        similar = (area_ratio <= _MAX_AREA_RATIO) & (area_ratio >= 1.0 / _MAX_AREA_RATIO)
        cut = self._at_border(boxes)
        if cut is not None:
            similar |= cut[None, :]
        # Same class and a similar size (unless cut by the image border): a box does not
        # continue a track of a much bigger or smaller one.
        same = (track_cls[:, None] == classes[None, :]) & similar
        iou = iou_matrix(pred, boxes)
        pairs = _greedy(iou, same & (iou > 0) & (iou >= self._match_iou), descending=True)
        if len(self._fallback) == 0:
            return pairs
        free_t = np.ones(len(tracks), dtype=np.bool_)
        free_d = np.ones(len(boxes), dtype=np.bool_)
        for ti, di in pairs:
            free_t[ti] = False
            free_d[di] = False
        # Only tracks seen in the previous frame: a distance match never revives a track.
        recent = np.array([tr.last_seen_s == self._last_t_s for tr in tracks], dtype=np.bool_)
        small = np.isin(track_cls, self._fallback) & recent
        cand = same & (free_t & small)[:, None] & free_d[None, :]
        if not cand.any():
            return pairs
        pc = (pred[:, :2] + pred[:, 2:]) / 2.0
        dc = (boxes[:, :2] + boxes[:, 2:]) / 2.0
        dist = np.hypot(pc[:, None, 0] - dc[None, :, 0], pc[:, None, 1] - dc[None, :, 1])
        reach = self._fallback_factor * np.maximum(
            np.hypot(pw, ph)[:, None], np.hypot(dw, dh)[None, :]
        )
        cand &= dist <= reach
        return pairs + _greedy(dist, cand, descending=False)
