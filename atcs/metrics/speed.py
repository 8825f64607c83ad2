"""Ground speed of tracked vehicles on a calibrated camera, and its per-window statistics.

:class:`GroundSpeeds` maps each track's anchor (bottom centre of its box: where the vehicle
meets the road) onto the ground plane with the camera's homography and keeps the last
``smoothing_s`` seconds of positions; the track's speed is the slope of a least-squares line
through them (position against time, each axis), so one badly placed box moves the speed
by a fraction of what a frame-to-frame difference would. A track needs two positions at
least half ``smoothing_s`` apart before it has a speed. Speeds above ``max_speed_m_s`` are
capped to it and flagged.

:class:`SpeedSums` gathers, per segment and window, every track's speed samples; a window
reports the mean and the 85th percentile (linear interpolation between ranks, numpy's
default) of the per-vehicle mean speeds, in km/h: one value per vehicle, so a slow vehicle
seen in many frames weighs as much as a fast one seen in a few (the spot-speed statistics
of a speed survey).

Memory is bounded: at most ``max_tracks`` tracks of at most :data:`MAX_SAMPLES` positions,
and at most ``max_vehicles`` vehicles per segment and window.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from atcs.homography import GroundHomography
from atcs.types import FloatArray, IntArray

MAX_SAMPLES = 64
"""Most ground positions kept per track."""
KMH_PER_M_S = 3.6
_MIN_SPAN_SHARE = 0.5  # positions must span this share of smoothing_s


@dataclass(frozen=True, slots=True, eq=False)
class TrackSpeeds:
    """Ground speeds of tracked vehicles in one frame (arrays of one length N).

    ``speeds_m_s`` m/s, NaN where unknown (a new track, a box above the horizon or cut by
    the image border); ``capped`` marks speeds capped to the maximum.
    """

    track_ids: IntArray
    speeds_m_s: FloatArray
    capped: npt.NDArray[np.bool_]

    def __getitem__(self, mask: npt.NDArray[np.bool_]) -> TrackSpeeds:
        """Select vehicles by boolean mask."""
        return TrackSpeeds(self.track_ids[mask], self.speeds_m_s[mask], self.capped[mask])


class GroundSpeeds:
    """Smoothed ground speed per track (see the module docstring); not thread-safe."""

    def __init__(
        self,
        homography: GroundHomography,
        *,
        smoothing_s: float,
        max_speed_m_s: float,
        max_tracks: int,
    ) -> None:
        self._h = homography
        self._smoothing_s = smoothing_s
        self._max_speed = max_speed_m_s
        self._max_tracks = max(1, max_tracks)
        self._tracks: OrderedDict[int, deque[tuple[float, float, float]]] = OrderedDict()

    def __len__(self) -> int:
        """Return the number of tracks with positions."""
        return len(self._tracks)

    def forget(self, track_ids: Iterable[int]) -> None:
        """Drop the positions of ended tracks."""
        for tid in track_ids:
            self._tracks.pop(int(tid), None)

    def update(
        self, t_s: float, track_ids: IntArray, anchors_px: FloatArray, usable: npt.ArrayLike
    ) -> TrackSpeeds:
        """Add one frame's anchors (N, 2) px seen at ``t_s`` (s); return their speeds.

        ``usable`` (N,) marks anchors that may be used (False: the box is cut by the image
        border, so its bottom is not the vehicle's); unusable ones add no position.
        """
        n = len(track_ids)
        speeds = np.full(n, np.nan, dtype=np.float32)
        capped = np.zeros(n, dtype=np.bool_)
        if n == 0:
            return TrackSpeeds(track_ids, speeds, capped)
        ok = np.asarray(usable, dtype=np.bool_) & self._h.on_ground_side(anchors_px)
        ground = np.full((n, 2), np.nan)
        if ok.any():
            ground[ok] = self._h.to_ground(anchors_px[ok])
        for i, tid in enumerate(track_ids.tolist()):
            if not ok[i]:
                continue
            history = self._tracks.get(tid)
            if history is None:
                history = deque(maxlen=MAX_SAMPLES)
                self._tracks[tid] = history
                while len(self._tracks) > self._max_tracks:
                    self._tracks.popitem(last=False)
            else:
                self._tracks.move_to_end(tid)
            history.append((t_s, float(ground[i, 0]), float(ground[i, 1])))
            while history and history[0][0] < t_s - self._smoothing_s - 1e-9:
                history.popleft()
            speed = _slope_speed(history, self._smoothing_s * _MIN_SPAN_SHARE)
            if speed is None:
                continue
            if speed > self._max_speed:
                speed = self._max_speed
                capped[i] = True
            speeds[i] = speed
        return TrackSpeeds(track_ids, speeds, capped)


def _slope_speed(history: deque[tuple[float, float, float]], min_span_s: float) -> float | None:
    """Speed (m/s) of the least-squares line through ``(t, x, y)`` positions, or None."""
    if len(history) < 2:
        return None
    arr = np.asarray(history, dtype=np.float64)
    t = arr[:, 0] - arr[:, 0].mean()
    span = float(arr[-1, 0] - arr[0, 0])
    if span < min_span_s - 1e-9:
        return None
    var = float(t @ t)
    if var <= 0.0:
        return None
    vx = float(t @ (arr[:, 1] - arr[:, 1].mean())) / var
    vy = float(t @ (arr[:, 2] - arr[:, 2].mean())) / var
    return math.hypot(vx, vy)


@dataclass(frozen=True, slots=True)
class SpeedSummary:
    """Speed statistics of one segment window (km/h; None without any vehicle)."""

    mean_kmh: float | None
    p85_kmh: float | None
    vehicles: int
    capped: int


class SpeedSums:
    """Speed samples of one segment over one window, per vehicle (bounded)."""

    __slots__ = ("_max", "_tracks")

    def __init__(self, max_vehicles: int = 10_000) -> None:
        self._max = max_vehicles
        self._tracks: dict[int, list[float]] = {}  # track: [sum km/h, samples, capped]

    def add(self, frame: TrackSpeeds) -> None:
        """Add the known speeds (NaN skipped) of one frame's vehicles in the segment."""
        rows = zip(
            frame.track_ids.tolist(), frame.speeds_m_s.tolist(), frame.capped.tolist(), strict=True
        )
        for tid, speed, cap in rows:
            if math.isnan(speed):
                continue
            entry = self._tracks.get(tid)
            if entry is None:
                if len(self._tracks) >= self._max:
                    continue
                entry = [0.0, 0.0, 0.0]
                self._tracks[tid] = entry
            entry[0] += speed * KMH_PER_M_S
            entry[1] += 1.0
            entry[2] = max(entry[2], float(cap))

    def summary(self) -> SpeedSummary:
        """Mean and 85th percentile of the per-vehicle mean speeds, km/h."""
        if not self._tracks:
            return SpeedSummary(None, None, 0, 0)
        per_vehicle = np.array([s / n for s, n, _ in self._tracks.values()])
        capped = sum(1 for *_, c in self._tracks.values() if c)
        return SpeedSummary(
            mean_kmh=float(per_vehicle.mean()),
            p85_kmh=float(np.percentile(per_vehicle, 85.0)),
            vehicles=len(per_vehicle),
            capped=capped,
        )
