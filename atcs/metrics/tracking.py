"""A bounded multi-object tracker for sampled CCTV: Kalman motion, gated association.

Built for the 2 to 10 frames per second a counting camera is analysed at, where a
motorcycle moves more than its own length between two samples and box overlap alone
(IoU, as in ByteTrack and BoT-SORT) loses it. Per frame:

1. tracks unseen for more than ``max_age_s`` end;
2. every track's Kalman filter (:mod:`atcs.metrics.kalman`, constant velocity, noise in
   box sizes) predicts its box at the frame's time; a track seen once starts with the
   velocity that earlier tracks had in that part of the image (the *flow prior*: a
   coarse grid of recent velocities, so a vehicle on a one-way carriageway is looked for
   ahead of where it was, not behind), or none where traffic there goes both ways;
3. association is class-agnostic (one object is one vehicle, whatever class the detector
   gives it this frame). A pair is possible when the detection's centre lies within the
   prediction's gate (squared Mahalanobis distance of the centre at most
   ``gate_chi2``, so the gate grows with the time since the track was seen and with the
   box size) and the box areas differ by less than a factor 2.5 (unless the box is cut by
   the image border). Cost: that distance plus ``1 - IoU`` of the predicted box; pairs are
   taken cheapest first. Established tracks (seen at least twice) seen on the previous
   frame go first, then established tracks missed for a while (ID-switch repair: a
   vehicle hidden, missed or badly boxed for a few samples gets its own track back
   instead of a new one), then tracks seen once;
4. unmatched detections start tracks; past ``max_count`` live tracks the least recently
   seen ends.

A track's class is the vote of its detections, weighted by confidence: a vehicle the
detector calls car in one frame and truck in the next stays one track of one class.

Memory is bounded: at most ``max_count`` tracks of fixed size, and a flow grid of at most
``flow_grid`` x ``flow_grid`` cells.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from atcs.config import AnalysisConfig
from atcs.metrics.appearance import HISTOGRAM_BINS, box_histograms, hellinger
from atcs.metrics.kalman import BoxFilter, F64Array, MotionNoise, box_size_px, to_xyxy
from atcs.types import Detections, FloatArray, Image, TrackId, VehicleClass

_MAX_AREA_RATIO = 2.5  # a match may not change the box area more than this in 0.2 s
_BORDER_MARGIN_PX = 2.0  # a box this close to the image border may be cut by it
_N_CLASSES = len(VehicleClass)
_DUPLICATE_IOU = 0.5  # a missed track predicted this much onto a taken box is its duplicate
_BACK_SIZES = 1.0  # a moving track never continues on a box this many sizes behind it
_COLOUR_RATE = 0.3  # weight of a new colour histogram in a track's running mean
_FLOW_MIN_HITS = 3  # a track feeds the flow prior from its third observation on
_FLOW_RATE = 0.2  # weight of a new velocity in a flow cell's running mean
_FLOW_COHERENCE = 0.6  # |mean velocity| / mean |velocity| below this: mixed directions


@dataclass(slots=True)
class _Track:
    track_id: int
    filter: BoxFilter
    box: F64Array  # (4,) last detected box xyxy, px
    last_seen_s: float
    votes: F64Array = field(default_factory=lambda: np.zeros(_N_CLASSES))
    hits: int = 1
    colour: F64Array | None = None  # running mean colour histogram, None without images

    @property
    def class_id(self) -> int:
        return int(np.argmax(self.votes))


@dataclass(frozen=True, slots=True)
class TrackedFrame:
    """The tracker's answer for one frame.

    ``detections`` carry ``tracker_id`` and the track's voted class; ``speeds_px_s`` (N,)
    is each detection's anchor (bottom-centre) speed in pixels per second (NaN while its
    track has a single observation); ``removed`` lists the tracks that ended during this
    update (expired or evicted by the bound); ``merged`` the tracks dropped as duplicates
    of another track (their vehicle is followed by that track: anything they had pending
    must not count).
    """

    detections: Detections
    speeds_px_s: FloatArray
    removed: tuple[TrackId, ...]
    merged: tuple[TrackId, ...] = ()


class FrameTracker(Protocol):
    """What the analyzer needs of a tracker: one call per frame, in time order."""

    def __len__(self) -> int:
        """Return the number of live tracks."""
        ...

    def update(
        self, t_s: float, detections: Detections, image: Image | None = None
    ) -> TrackedFrame:
        """Match ``detections`` seen at ``t_s`` (s, any fixed origin) in ``image`` to tracks."""
        ...


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
        out: F64Array = np.where(union > 0, inter / union, 0.0)
    return out


def greedy_pairs(cost: F64Array, valid: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Greedy one-to-one assignment of valid (row, col) pairs, lowest ``cost`` first."""
    rows, cols = np.nonzero(valid)
    if len(rows) == 0:
        return []
    order = np.argsort(cost[rows, cols], kind="stable")
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


class FlowPrior:
    """Running mean velocity of tracks per cell of a coarse image grid (px/s).

    Each cell averages the velocities seen in it (a plain mean for its first samples, then
    a running mean that follows changes). A cell answers with its own mean, or with the
    pooled mean of its neighbours when it has seen nothing yet, and only when that traffic
    is coherent (one main direction); elsewhere a new track starts without a velocity.
    """

    def __init__(self, width_px: int, height_px: int, cells: int) -> None:
        self._cell_w = width_px / cells
        self._cell_h = height_px / cells
        self._cells = cells
        self._mean = np.zeros((cells, cells, 2))
        self._speed = np.zeros((cells, cells))
        self._count = np.zeros((cells, cells))

    def _cell(self, x: float, y: float) -> tuple[int, int]:
        col = min(max(int(x / self._cell_w), 0), self._cells - 1)
        row = min(max(int(y / self._cell_h), 0), self._cells - 1)
        return row, col

    def add(self, x: float, y: float, velocity_px_s: F64Array) -> None:
        """Add a track's centre velocity (2,) seen at ``(x, y)`` px."""
        r, c = self._cell(x, y)
        self._count[r, c] = min(self._count[r, c] + 1.0, 1.0 / _FLOW_RATE)
        rate = 1.0 / self._count[r, c]
        self._mean[r, c] += rate * (velocity_px_s - self._mean[r, c])
        speed = float(np.hypot(velocity_px_s[0], velocity_px_s[1]))
        self._speed[r, c] += rate * (speed - self._speed[r, c])

    def velocity_at(self, x: float, y: float) -> F64Array | None:
        """Return the coherent mean anchor velocity (2,) px/s at ``(x, y)``, or None."""
        r, c = self._cell(x, y)
        if self._count[r, c] > 0:
            mean, speed = self._mean[r, c], float(self._speed[r, c])
        else:
            rows = slice(max(r - 1, 0), r + 2)
            cols = slice(max(c - 1, 0), c + 2)
            weight = self._count[rows, cols]
            total = float(weight.sum())
            if total <= 0:
                return None
            mean = (self._mean[rows, cols] * weight[..., None]).sum(axis=(0, 1)) / total
            speed = float((self._speed[rows, cols] * weight).sum() / total)
        if speed <= 0.0 or float(np.hypot(mean[0], mean[1])) < _FLOW_COHERENCE * speed:
            return None
        out: F64Array = np.array(mean, dtype=np.float64)
        return out


class Tracker:
    """Bounded Kalman tracker (see the module docstring); one per camera, not thread-safe."""

    def __init__(
        self,
        *,
        max_age_s: float = 1.5,
        max_count: int = 2000,
        gate_chi2: float = 9.21,
        noise: MotionNoise | None = None,
        image_size_px: tuple[int, int] | None = None,
        flow_grid: int = 12,
        colour_weight: float = 2.0,
        colour_gate: float = 0.7,
    ) -> None:
        self._colour_weight = colour_weight
        self._colour_gate = colour_gate
        self._max_age_s = max_age_s
        self._max_count = max_count
        self._gate_chi2 = gate_chi2
        self._noise = noise or MotionNoise()
        self._image_size = image_size_px
        self._flow = None if image_size_px is None else FlowPrior(*image_size_px, flow_grid)
        self._tracks: OrderedDict[int, _Track] = OrderedDict()  # least recently seen first
        self._ids = itertools.count(1)
        self._last_t_s: float | None = None

    @classmethod
    def from_config(
        cls, analysis: AnalysisConfig, image_size_px: tuple[int, int] | None = None
    ) -> Tracker:
        """Build a tracker with the age, bound and gate of ``analysis``.

        ``image_size_px`` (width, height) lets boxes cut by the image border keep their
        track although their area changes fast, and sizes the flow prior's grid.
        """
        return cls(
            max_age_s=analysis.track_max_age_s,
            max_count=analysis.track_max_count,
            gate_chi2=analysis.track_gate_chi2,
            image_size_px=image_size_px,
        )

    def __len__(self) -> int:
        """Return the number of live tracks."""
        return len(self._tracks)

    def update(
        self, t_s: float, detections: Detections, image: Image | None = None
    ) -> TrackedFrame:
        """Match ``detections`` seen at time ``t_s`` (seconds, any fixed origin) to tracks.

        With the frame's ``image`` (BGR) colour joins motion in the association.
        """
        removed: list[TrackId] = []
        while self._tracks:
            oldest = next(iter(self._tracks.values()))
            if t_s - oldest.last_seen_s <= self._max_age_s:
                break
            del self._tracks[oldest.track_id]
            removed.append(TrackId(oldest.track_id))
        n = len(detections)
        boxes = detections.xyxy.astype(np.float64)
        assigned = np.full(n, -1, dtype=np.int64)
        tracks = list(self._tracks.values())
        colours = (
            None if image is None else box_histograms(image, detections.xyxy).astype(np.float64)
        )
        if tracks and n:
            for ti, di in self._associate(t_s, tracks, boxes, colours):
                assigned[di] = tracks[ti].track_id
        classes = np.empty(n, dtype=np.int64)
        speeds = np.full(n, np.nan, dtype=np.float32)
        for di in range(n):
            box = boxes[di]
            vote = float(detections.confidence[di])
            cls = int(detections.class_id[di])
            tid = int(assigned[di])
            if tid < 0:
                tid = next(self._ids)
                assigned[di] = tid
                track = _Track(tid, self._new_filter(box), box, t_s)
                self._tracks[tid] = track
            else:
                track = self._tracks[tid]
                track.filter.update(t_s - track.last_seen_s, box)
                track.box = box
                track.last_seen_s = t_s
                track.hits += 1
                self._tracks.move_to_end(tid)
                velocity = track.filter.velocity_px_s
                speeds[di] = float(np.hypot(velocity[0], velocity[1]))
                if self._flow is not None and track.hits >= _FLOW_MIN_HITS:
                    centre = track.filter.state
                    self._flow.add(float(centre[0]), float(centre[1]), velocity[:2])
            track.votes[cls] += max(vote, 1e-3)
            if colours is not None:
                new = colours[di].astype(np.float64)
                track.colour = (
                    new
                    if track.colour is None
                    else ((1.0 - _COLOUR_RATE) * track.colour + _COLOUR_RATE * new)
                )
            classes[di] = track.class_id
        merged = self._drop_duplicates(t_s, boxes)
        while len(self._tracks) > self._max_count:
            tid, _ = self._tracks.popitem(last=False)
            removed.append(TrackId(tid))
        self._last_t_s = t_s
        out = Detections(detections.xyxy, detections.confidence, classes, assigned)
        return TrackedFrame(out, speeds, tuple(removed), merged)

    def _drop_duplicates(self, t_s: float, boxes: F64Array) -> tuple[TrackId, ...]:
        """End, as duplicates, missed tracks predicted onto a box another track took now.

        A second track born on one vehicle (a box split for a few frames) would otherwise
        be found again later on the same vehicle and count its crossing a second time.
        """
        missed = [tr for tr in self._tracks.values() if tr.last_seen_s != t_s]
        if not missed or len(boxes) == 0:
            return ()
        predicted = np.stack(
            [to_xyxy(tr.filter.predicted(t_s - tr.last_seen_s)[0]) for tr in missed]
        )
        overlap = iou_matrix(predicted, boxes).max(axis=1)
        merged = tuple(
            TrackId(tr.track_id)
            for tr, iou in zip(missed, overlap.tolist(), strict=True)
            if iou >= _DUPLICATE_IOU
        )
        for tid in merged:
            del self._tracks[tid]
        return merged

    def _new_filter(self, box: F64Array) -> BoxFilter:
        prior = None
        if self._flow is not None:
            flow = self._flow.velocity_at(float((box[0] + box[2]) / 2.0), float(box[3]))
            if flow is not None:
                prior = np.array([flow[0], flow[1], 0.0, 0.0])
        return BoxFilter(box, self._noise, prior)

    def _inside(self, centre: F64Array) -> bool:
        """Whether a point (2,) px lies in the image (always, when its size is unknown)."""
        if self._image_size is None:
            return True
        width, height = self._image_size
        return 0.0 <= float(centre[0]) <= width and 0.0 <= float(centre[1]) <= height

    def _at_border(self, boxes: F64Array) -> npt.NDArray[np.bool_]:
        """Which boxes touch the image border (none when the image size is unknown)."""
        if self._image_size is None:
            return np.zeros(len(boxes), dtype=np.bool_)
        width, height = self._image_size
        margin = _BORDER_MARGIN_PX
        out: npt.NDArray[np.bool_] = (
            (boxes[:, 0] <= margin)
            | (boxes[:, 1] <= margin)
            | (boxes[:, 2] >= width - margin)
            | (boxes[:, 3] >= height - margin)
        )
        return out

    def _associate(
        self, t_s: float, tracks: list[_Track], boxes: F64Array, colours: F64Array | None
    ) -> list[tuple[int, int]]:
        """Pairs (track index, detection index): recent tracks first, then missed ones."""
        cost, valid = self._costs(t_s, tracks, boxes)
        if colours is not None:
            known = np.array([tr.colour is not None for tr in tracks], dtype=np.bool_)
            if known.any():
                blank = np.zeros(HISTOGRAM_BINS)
                ref = np.stack([blank if tr.colour is None else tr.colour for tr in tracks])
                distance = hellinger(ref, colours)
                distance[~known] = 0.0
                cost = cost + self._colour_weight * distance
                # Colour decides where motion cannot: for tracks without a settled velocity
                # (seen fewer than three times) or missed for a while, a pair whose colours
                # differ is ruled out when the track or the box has another candidate.
                unsure = np.array(
                    [tr.hits < 3 or tr.last_seen_s != self._last_t_s for tr in tracks],
                    dtype=np.bool_,
                )
                crowded = (valid.sum(axis=1)[:, None] > 1) | (valid.sum(axis=0)[None, :] > 1)
                differ = distance > self._colour_gate
                valid &= ~(unsure[:, None] & crowded & differ)
        recent = np.array([tr.last_seen_s == self._last_t_s for tr in tracks], dtype=np.bool_)
        young = np.array([tr.hits < 2 for tr in tracks], dtype=np.bool_)
        pairs: list[tuple[int, int]] = []
        free_t = np.ones(len(tracks), dtype=np.bool_)
        free_d = np.ones(len(boxes), dtype=np.bool_)
        # Established tracks seen last frame, then established tracks missed for a while
        # (they get their vehicle back), then tracks seen only once.
        for stage in (recent & ~young, ~recent & ~young, young):
            allowed = valid & (stage & free_t)[:, None] & free_d[None, :]
            for ti, di in greedy_pairs(cost, allowed):
                free_t[ti] = False
                free_d[di] = False
                pairs.append((ti, di))
        return pairs

    def _costs(
        self, t_s: float, tracks: list[_Track], boxes: F64Array
    ) -> tuple[F64Array, npt.NDArray[np.bool_]]:
        """Cost (M, N) and validity of every track/detection pair (see the module docstring)."""
        m, n = len(tracks), len(boxes)
        centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2.0, boxes[:, 3]], axis=1)  # anchors
        dist2 = np.empty((m, n))
        reach = np.ones((m, n), dtype=np.bool_)
        pred_boxes = np.empty((m, 4))
        noise = self._noise
        for i, tr in enumerate(tracks):
            dt_s = t_s - tr.last_seen_s
            state, cov = tr.filter.predicted(dt_s)
            pred_boxes[i] = to_xyxy(state)
            s = cov[:2, :2] + np.diag(tr.filter.measurement_var()[:2])
            diff = centres - state[:2]
            dist2[i] = np.einsum("nj,jk,nk->n", diff, np.linalg.inv(s), diff)
            # Whatever the filter's uncertainty after a long miss says, a track reaches at
            # most half a box, plus its speed uncertainty and half its own speed (the image
            # speed of a vehicle changes with its distance) times the time since it was
            # seen. A track seen once is only continued on the next frame; a missed track
            # predicted out of the image has left it; a moving track does not go back.
            size = box_size_px(tr.box)
            recent = tr.last_seen_s == self._last_t_s
            if tr.hits < 2:
                limit = size * (0.5 + noise.unknown_speed_sizes_s * dt_s) if recent else -1.0
            else:
                velocity = tr.filter.state[4:6]
                speed = float(np.hypot(velocity[0], velocity[1]))
                limit = size * (0.5 + noise.miss_speed_sizes_s * dt_s) + 0.5 * speed * dt_s
                if not recent and not self._inside(state[:2]):
                    limit = -1.0
                if speed > size:  # moving more than a box length per second
                    last = np.array([(tr.box[0] + tr.box[2]) / 2.0, tr.box[3]])
                    ahead = (centres - last) @ (velocity / speed)
                    diff[ahead < -_BACK_SIZES * size] = np.inf
            reach[i] = np.hypot(diff[:, 0], diff[:, 1]) <= limit
        areas_t = np.array([box_size_px(tr.box) ** 2 for tr in tracks])
        areas_d = np.array([box_size_px(b) ** 2 for b in boxes])
        ratio = areas_t[:, None] / areas_d[None, :]
        # A box may change its area by a factor 2.5 in a fifth of a second, more in longer
        # gaps (a vehicle driving away from the camera shrinks fast).
        gaps = np.array([max(t_s - tr.last_seen_s, 0.2) for tr in tracks]) / 0.2
        max_ratio = (_MAX_AREA_RATIO**gaps)[:, None]
        similar = (ratio <= max_ratio) & (ratio >= 1.0 / max_ratio)
        similar |= self._at_border(boxes)[None, :]
        valid = similar & reach & (dist2 <= self._gate_chi2)
        cost = dist2 / self._gate_chi2 + (1.0 - iou_matrix(pred_boxes, boxes))
        return cost, valid
