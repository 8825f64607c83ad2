"""The phase controllers fed as the live service feeds them: from measurement windows (pure).

In the simulator the phase-by-phase controllers see, each second, every vehicle a camera
detects in its zone with its distance to the stop line and its speed
(:class:`~atcs.sim.live.LiveZones`). The running service has less: per segment the newest
measurement window (10 s by default: mean vehicles and PCU, the queue from the stop line,
the mean ground speed where the camera is calibrated), which
:func:`atcs.control.zones.zone_from_window` spreads over the zone as queued and moving
vehicles (docs/phase-control.md). The phase view ``windows`` runs the controllers on that
view, to measure how much of the simulated gain survives it:

- :class:`WindowZones` takes each step's detected vehicles (after the cameras' misses and
  double counts) and measures them as the live analyser does: the vehicles and PCU
  present, the queue from the stop line (the contiguous run of vehicles slower than
  ``queue_speed_m_s`` whose first front is within ``queue_max_gap_m`` of the line and each
  next within that gap of the one before, :func:`~atcs.metrics.measures.queue_members`;
  approaches only, as a live exit has no stop line) and their mean speed (a calibrated
  camera);
- every ``window_s`` it closes the window; each segment's zone is then its newest window
  that saw the segment, spread by :func:`~atcs.control.zones.zone_from_measures`;
- a segment whose camera is down now has no zone (its phases are blind and go on recall),
  nor has one whose last window never saw it; before the first window closes no zone is
  known (every phase on recall).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from atcs.control.zones import zone_from_measures
from atcs.errors import SimulationError
from atcs.metrics.measures import queue_members
from atcs.sim.specs import SegmentLanes
from atcs.types import SegmentId
from controllers.phase.observe import ZoneSnapshot, ZoneView

VEHICLES = "vehicles"
"""Phase view: every detected vehicle each second (the simulator's default)."""

WINDOWS = "windows"
"""Phase view: the newest measurement window per segment, as the live service has it."""

BUS = "bus"
"""Phase view: each second's vehicles as a control node gets them over the bus, late and
some lost, the windows where the newest is stale (:mod:`atcs.sim.bus_view`)."""

PHASE_VIEWS = (VEHICLES, WINDOWS, BUS)

CAR_LENGTH_M = 5.0
"""Box length (m) along the road of a vehicle of 1 PCU or more (less: in proportion)."""


def check_phase_view(name: str) -> str:
    """Return ``name`` if it is a known phase view; :class:`SimulationError` otherwise."""
    if name not in PHASE_VIEWS:
        raise SimulationError(f"unknown phase view {name!r}; known: {', '.join(PHASE_VIEWS)}")
    return name


@dataclass(slots=True)
class _Sums:
    steps: int = 0
    vehicles: float = 0.0
    pcu: float = 0.0
    queue_m: float = 0.0
    speed_m_s: float = 0.0
    speeds: int = 0


@dataclass(frozen=True, slots=True)
class _Measures:
    vehicles: float
    pcu: float
    queue_m: float | None
    speed_kmh: float | None


class WindowZones:
    """Windows of ``window_s`` seconds over ``segments``, served as zone snapshots."""

    def __init__(
        self,
        segments: Sequence[SegmentLanes],
        window_s: float,
        *,
        queue_speed_m_s: float = 1.5,
        queue_max_gap_m: float = 12.0,
    ) -> None:
        if not window_s > 0:
            raise SimulationError(f"phase window must be positive, got {window_s!r} s")
        self._segments = {s.segment_id: s for s in segments}
        self._window_s = window_s
        self._queue_speed = queue_speed_m_s
        self._queue_gap = queue_max_gap_m
        self._start_s: float | None = None
        self._sums: dict[SegmentId, _Sums] = {}
        self._latest: dict[SegmentId, _Measures] = {}

    def _queue_m(self, zone: ZoneSnapshot) -> float:
        near = [v.distance_m for v in zone.vehicles]
        far = [v.distance_m + CAR_LENGTH_M * min(1.0, v.pcu) for v in zone.vehicles]
        slow = [v.speed_m_s < self._queue_speed for v in zone.vehicles]
        return queue_members(near, far, slow, self._queue_gap)[0]

    def add(self, at_s: float, zones: Mapping[SegmentId, ZoneSnapshot]) -> None:
        """Add the step that ends at ``at_s`` (s): each segment's detected vehicles."""
        if self._start_s is None:
            self._start_s = at_s
        for seg_id, zone in zones.items():
            seg = self._segments.get(seg_id)
            if seg is None:
                continue
            sums = self._sums.setdefault(seg_id, _Sums())
            sums.steps += 1
            sums.vehicles += len(zone.vehicles)
            sums.pcu += zone.pcu
            sums.speed_m_s += sum(v.speed_m_s for v in zone.vehicles)
            sums.speeds += len(zone.vehicles)
            if not seg.exit:
                sums.queue_m += self._queue_m(zone)
        if at_s - self._start_s >= self._window_s - 1e-9:
            self._close()
            self._start_s = at_s

    def _close(self) -> None:
        latest: dict[SegmentId, _Measures] = {}
        for seg_id, sums in self._sums.items():
            if sums.steps == 0:
                continue
            latest[seg_id] = _Measures(
                vehicles=sums.vehicles / sums.steps,
                pcu=sums.pcu / sums.steps,
                queue_m=None if self._segments[seg_id].exit else sums.queue_m / sums.steps,
                speed_kmh=sums.speed_m_s / sums.speeds * 3.6 if sums.speeds else None,
            )
        self._latest = latest
        self._sums = {}

    def view(self, at_s: float, down: Collection[SegmentId] = ()) -> ZoneView:
        """Zones at ``at_s`` (controller seconds) from the newest windows; none in ``down``."""
        zones = {}
        for seg_id, m in self._latest.items():
            if seg_id in down:
                continue
            seg = self._segments[seg_id]
            zones[seg_id] = zone_from_measures(
                seg_id,
                vehicles=m.vehicles,
                pcu=m.pcu,
                queue_m=m.queue_m,
                speed_kmh=m.speed_kmh,
                length_m=seg.length_m,
                lanes=len(seg.lanes),
                exit_zone=seg.exit,
            )
        return ZoneView(at_s, zones)
