"""Per-segment window sums turned into :class:`SegmentMetrics`.

Windows are aligned to ``origin + k * window_s`` (k any integer). The first window is the
one holding the first frame (or the ``until`` of a first :meth:`WindowAggregator.close`),
so an origin far in the past (the Unix epoch, say) reports nothing before the analysis
started. Frames are added in time order; a frame past the open window closes it (and any
empty windows in between, which come out ``stale``) into a bounded buffer that
:meth:`WindowAggregator.close` drains. A frame earlier than the open window is late: it is
not counted (see :attr:`WindowAggregator.late_frames`).

A line crossing is counted in the window of its ``crossed_at`` time while that window is
still open, otherwise in the window of the frame (or call) that reports it: a crossing is
often confirmed a few frames after it happened, or when its track ends.

Observed time: the time between two consecutive frames at most ``max_frame_gap_s`` apart
counts as observed, in the windows it falls in; a longer gap (the camera was lost, the
engine was not running) does not, and neither does the time before the first frame. A
final partial window (:meth:`WindowAggregator.close` with ``partial``) also counts the time
from its last frame to its end when that is within the gap. Flows are crossings per hour
of observed time (``observed_s``); a window observed for less than
``partial_below_share`` of its length is ``partial``.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from atcs.config import AnalysisConfig
from atcs.errors import DataError
from atcs.metrics.measures import density_pcu_km_lane, is_congested, level_of_service
from atcs.metrics.movements import MovementKey, MovementSpec, MovementWindow, movement_counts
from atcs.metrics.speed import SpeedSums, TrackSpeeds
from atcs.types import (
    CameraId,
    Direction,
    FlowCount,
    LineId,
    MovementCounts,
    SegmentId,
    SegmentMetrics,
    SiteId,
    VehicleClass,
)

log = logging.getLogger(__name__)

_CLASSES = tuple(VehicleClass)
_EPS_WINDOWS = 1e-9


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    """What a window needs to know about a segment: ids, size, stop line, counting lines."""

    segment_id: SegmentId
    length_m: float
    lanes: int
    has_stop_line: bool
    line_ids: tuple[LineId, ...]
    approach: tuple[str, ...] = ()  # per line: forward, backward or both (default forward)

    def is_approach(self, index: int, direction: Direction) -> bool:
        """Whether ``direction`` on the ``index``-th line is toward the stop line."""
        wanted = self.approach[index] if index < len(self.approach) else "forward"
        return wanted in {"both", direction.value}


class WindowCrossing(NamedTuple):
    """A crossing for the windows.

    Segment index (spec order), line, class, direction and the time it happened (None:
    the time of the frame that reports it).
    """

    segment_index: int
    line_id: LineId
    vehicle_class: VehicleClass
    direction: Direction
    crossed_at: datetime | None = None


class WindowMovement(NamedTuple):
    """A counted turning movement for the windows, and when it happened (as crossings)."""

    key: MovementKey
    crossed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FrameValues:
    """One segment in one frame: vehicles per class (counts), PCU, occupancy, queue (m).

    ``speeds``: the ground speeds of the segment's vehicles (None: not calibrated).
    """

    by_class: npt.NDArray[np.int64]  # (len(VehicleClass),)
    pcu: float
    occupancy: float
    queue_m: float | None
    speeds: TrackSpeeds | None = None


@dataclass(slots=True)
class _Sums:
    frames: int = 0
    by_class: npt.NDArray[np.float64] = field(
        default_factory=lambda: np.zeros(len(_CLASSES), dtype=np.float64)
    )
    pcu: float = 0.0
    occupancy: float = 0.0
    queue_m: float = 0.0
    queue_max_m: float = 0.0
    observed_s: float = 0.0
    crossings: Counter[tuple[LineId, VehicleClass, Direction]] = field(default_factory=Counter)
    speeds: SpeedSums = field(default_factory=SpeedSums)


@dataclass(slots=True)
class _CameraSums:
    """What a window sums for the camera as a whole: frames, observed time, movements."""

    frames: int = 0
    observed_s: float = 0.0
    movements: Counter[MovementKey] = field(default_factory=Counter)


class WindowAggregator:
    """Sums of the open window for every segment of one camera; emits SegmentMetrics.

    With ``movements`` (one spec per intersection of the camera's zones) each window also
    gives a :class:`MovementCounts` per intersection, taken with :meth:`take_movements`.
    """

    def __init__(
        self,
        *,
        site_id: SiteId,
        camera_id: CameraId,
        segments: Sequence[SegmentSpec],
        analysis: AnalysisConfig,
        origin: datetime,
        max_buffered_windows: int = 1000,
        movements: Sequence[MovementSpec] = (),
    ) -> None:
        if origin.tzinfo is None:
            raise DataError("the window origin must be a timezone-aware datetime")
        self._site = site_id
        self._camera = camera_id
        self._specs = tuple(segments)
        self._analysis = analysis
        self._origin = origin
        self._window = timedelta(seconds=analysis.window_s)
        self._max_windows = max(1, max_buffered_windows)
        self._done: deque[SegmentMetrics] = deque()
        self._started = False
        self._k = 0
        self._start = origin
        self._sums = [_Sums() for _ in self._specs]
        self._movement_specs = tuple(movements)
        self._camera_sums = _CameraSums()
        self._done_movements: deque[MovementCounts] = deque()
        self._max_gap = timedelta(seconds=analysis.max_frame_gap_s)
        self._last_at: datetime | None = None  # time of the newest frame
        self._interval: tuple[datetime, datetime] | None = None  # observed, being credited
        self.late_frames = 0

    def _window_start(self, k: int) -> datetime:
        return self._origin + self._window * k

    def index_of(self, at: datetime) -> int:
        """Index k of the aligned window holding ``at``."""
        ratio = (at - self._origin) / self._window
        return math.floor(ratio + _EPS_WINDOWS)

    def add_frame(
        self,
        at: datetime,
        values: Sequence[FrameValues],
        crossings: Sequence[WindowCrossing],
        movements: Sequence[WindowMovement] = (),
    ) -> bool:
        """Add one frame; return False when it is late and not counted.

        ``values`` holds one entry per segment (in spec order); ``crossings`` and
        ``movements`` are those confirmed in this frame: each goes to the window of its
        ``crossed_at`` if that is the open window, otherwise to the frame's window. A late
        frame's are dropped.
        """
        k = self.index_of(at)
        if not self._started:
            self._open(k)
        if at < self._start or k < self._k:
            self.late_frames += 1
            return False
        rest, moves = list(crossings), list(movements)
        last, self._last_at = self._last_at, at
        if last is not None and last < at <= last + self._max_gap:
            self._interval = (last, at)
        if k > self._k:
            rest = [c for c in crossings if not self._in_open_window(c.crossed_at)]
            moves = [m for m in movements if not self._in_open_window(m.crossed_at)]
            self._count([c for c in crossings if self._in_open_window(c.crossed_at)])
            self._count_movements([m for m in movements if self._in_open_window(m.crossed_at)])
            self._advance_to(k)
        self._credit(self._start, self._start + self._window)
        self._interval = None
        self._camera_sums.frames += 1
        for sums, val in zip(self._sums, values, strict=True):
            sums.frames += 1
            sums.by_class += val.by_class
            sums.pcu += val.pcu
            sums.occupancy += val.occupancy
            if val.queue_m is not None:
                sums.queue_m += val.queue_m
                sums.queue_max_m = max(sums.queue_max_m, val.queue_m)
            if val.speeds is not None:
                sums.speeds.add(val.speeds)
        self._count(rest)
        self._count_movements(moves)
        return True

    def add_crossings(
        self, crossings: Sequence[WindowCrossing], movements: Sequence[WindowMovement] = ()
    ) -> None:
        """Count crossings and movements confirmed outside a frame (a flush) in the open window.

        The open window is the latest one; it holds ``crossed_at`` or comes after it.
        """
        if not crossings and not movements:
            return
        if not self._started:
            times = [c.crossed_at for c in crossings if c.crossed_at is not None]
            times += [m.crossed_at for m in movements if m.crossed_at is not None]
            if not times:
                return
            self._open(self.index_of(max(times)))
        self._count(crossings)
        self._count_movements(movements)

    def take_movements(self) -> list[MovementCounts]:
        """Return the movement matrices of the windows finished so far, oldest first."""
        out = list(self._done_movements)
        self._done_movements.clear()
        return out

    def _count_movements(self, movements: Sequence[WindowMovement]) -> None:
        for m in movements:
            self._camera_sums.movements[m.key] += 1

    def _in_open_window(self, when: datetime | None) -> bool:
        return (
            when is not None
            and self._started
            and self._start <= when
            and self.index_of(when) == self._k
        )

    def _count(self, crossings: Sequence[WindowCrossing]) -> None:
        for c in crossings:
            key = (c.line_id, c.vehicle_class, c.direction)
            self._sums[c.segment_index].crossings[key] += 1

    def close(self, until: datetime, *, partial: bool = False) -> list[SegmentMetrics]:
        """Finish every window ending at or before ``until`` and return all finished metrics.

        With ``partial`` the open window is also finished, ending at ``until`` (when it
        started before); frames before ``until`` are late afterwards.
        """
        k_end = self.index_of(until)  # windows < k_end end at or before until
        if not self._started:
            self._open(k_end)
        last = self._last_at
        if partial and last is not None and last < until <= last + self._max_gap:
            self._interval = (last, until)  # a final window: seen up to its end
            self._last_at = until
        if k_end > self._k:
            self._advance_to(k_end)
        if partial and self._start < until:
            self._finish(self._start, until)
            self._start = until
        self._interval = None
        out = list(self._done)
        self._done.clear()
        return out

    def _open(self, k: int) -> None:
        """Start the analysis at window ``k``: earlier windows are never reported."""
        self._started = True
        self._k = k
        self._start = self._window_start(k)

    def _advance_to(self, k: int) -> None:
        """Finish the open window and the empty ones before window ``k``; open ``k``."""
        self._finish(self._start, self._window_start(self._k + 1))
        first_empty = self._k + 1
        skipped = max(0, k - first_empty - self._max_windows)
        if skipped:
            log.warning(
                "camera %s: %d empty windows skipped (gap longer than the buffer)",
                self._camera,
                skipped,
            )
        for j in range(first_empty + skipped, k):
            self._finish(self._window_start(j), self._window_start(j + 1))
        self._k = k
        self._start = self._window_start(k)

    def _overlap_s(self, start: datetime, end: datetime) -> float:
        """Seconds of the interval being credited that fall in ``[start, end)``."""
        if self._interval is None:
            return 0.0
        lo = max(start, self._interval[0])
        hi = min(end, self._interval[1])
        return max(0.0, (hi - lo).total_seconds())

    def _credit(self, start: datetime, end: datetime) -> None:
        """Credit the window ``[start, end)`` with its share of the observed interval."""
        seen = self._overlap_s(start, end)
        if seen > 0:
            self._camera_sums.observed_s += seen
            for sums in self._sums:
                sums.observed_s += seen

    def _finish(self, start: datetime, end: datetime) -> None:
        self._credit(start, end)
        for i, spec in enumerate(self._specs):
            self._done.append(self._metrics(spec, self._sums[i], start, end))
            self._sums[i] = _Sums()
        cam, self._camera_sums = self._camera_sums, _CameraSums()
        if self._movement_specs:
            window_s = (end - start).total_seconds()
            observed_s = min(cam.observed_s, window_s)
            window = MovementWindow(
                self._site, self._camera, start, end, cam.frames, observed_s,
                observed_s < self._analysis.partial_below_share * window_s,
            )  # fmt: skip
            for mspec in self._movement_specs:
                self._done_movements.append(movement_counts(mspec, window, cam.movements))
        self._trim(self._done, len(self._specs), "window metrics")
        self._trim(self._done_movements, len(self._movement_specs), "movement matrices")

    def _trim(
        self, done: deque[SegmentMetrics] | deque[MovementCounts], per: int, what: str
    ) -> None:
        excess = len(done) - self._max_windows * max(1, per)
        if excess > 0:
            log.warning("camera %s: %d finished %s dropped (not taken)", self._camera, excess, what)
            for _ in range(excess):
                done.popleft()

    def _metrics(
        self, spec: SegmentSpec, sums: _Sums, start: datetime, end: datetime
    ) -> SegmentMetrics:
        n = sums.frames

        def mean(total: float) -> float:
            return total / n if n else 0.0

        pcu = mean(sums.pcu)
        density = density_pcu_km_lane(pcu, spec.length_m, spec.lanes)
        los = level_of_service(density, self._analysis.los_density_pcu_km_lane)
        window_s = (end - start).total_seconds()
        observed_s = min(sums.observed_s, window_s)
        hours = observed_s / 3600.0
        speed = sums.speeds.summary()
        flows: list[FlowCount] = []
        total = 0
        for index, line_id in enumerate(spec.line_ids):
            for vclass in _CLASSES:
                for direction in Direction:
                    count = sums.crossings.get((line_id, vclass, direction), 0)
                    approach = spec.is_approach(index, direction)
                    total += count if approach else 0
                    rate = count / hours if hours > 0 else 0.0
                    flows.append(FlowCount(line_id, vclass, direction, count, rate, approach))
        return SegmentMetrics(
            site_id=self._site,
            camera_id=self._camera,
            segment_id=spec.segment_id,
            window_start=start,
            window_end=end,
            frames=n,
            vehicles=mean(float(sums.by_class.sum())),
            vehicles_by_class={c: mean(float(sums.by_class[c])) for c in _CLASSES},
            pcu=pcu,
            density_pcu_km_lane=density,
            occupancy=mean(sums.occupancy),
            flow_veh_h=total / hours if hours > 0 else 0.0,
            flows=tuple(flows),
            queue_m=mean(sums.queue_m) if spec.has_stop_line else None,
            queue_max_m=sums.queue_max_m if spec.has_stop_line else None,
            los=los,
            congested=is_congested(los, self._analysis.congested_from_los),
            stale=n == 0,
            observed_s=observed_s,
            partial=observed_s < self._analysis.partial_below_share * window_s,
            speed_kmh=speed.mean_kmh,
            speed_p85_kmh=speed.p85_kmh,
            speed_vehicles=speed.vehicles,
            speed_capped=speed.capped,
        )
