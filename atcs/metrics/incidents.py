"""Incident detection for one camera: hand-fed state machines, pure code, bounded.

The analyzer feeds :class:`CameraIncidents` what it measured and takes the events
(:class:`~atcs.incidents.IncidentEvent`) it raised. Rules (thresholds in
:class:`~atcs.config.IncidentsConfig`, docs/measures.md):

- **stopped vehicle**: a vehicle of a segment is *waiting* while it is stopped, not part of
  the segment's queue from its stop line, and the segment is not jammed (a jam: at least
  three stopped vehicles making at least half of the segment's vehicles with a known
  speed). A vehicle waiting without a break for ``stopped_after_s`` raises an incident
  that started when it stopped; it ends when the vehicle moves (at twice the stopped
  speed or more: a creeping vehicle stays stopped) or its track ends. A frame without a
  speed for the vehicle changes nothing.
- **wrong way**: a track crossing a counting line of a one-way segment against the line's
  approach direction (the analyzer passes the crossing); one incident per track and
  segment, ending with the track.
- **spillback**: the segment's queue reaches its spillback point (``queue_m`` at least the
  point's distance from the stop line) for ``spillback_after_s``; the incident started when
  it first reached it and ends once the queue stayed short of it for ``clear_after_s``.
- **density jump**: a whole window (not stale, not partial) whose density is at least
  ``density_jump_pcu_km_lane`` above the mean of the ``density_baseline_windows`` whole
  windows before it and at least ``density_jump_ratio`` times that mean; it ends at the
  first whole window back under that trigger level. The baseline learns only while no jump
  is open, and nothing is raised before it holds its full number of windows.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from atcs.config import IncidentsConfig
from atcs.incidents import Incident, IncidentEvent, IncidentKind, IncidentPhase
from atcs.types import CameraId, SegmentId, SegmentMetrics, SiteId, TrackId, VehicleClass

log = logging.getLogger(__name__)

MAX_EVENTS = 10_000
"""Most events waiting for :meth:`CameraIncidents.take`; older ones are dropped."""
_JAM_MIN_STOPPED = 3
_JAM_SHARE = 0.5

Location = tuple[float, float]


@dataclass(frozen=True, slots=True)
class SegmentIncidentSpec:
    """What incident detection knows of a segment.

    ``spillback_m``: distance of the spillback point from the stop line (m; None: no
    spillback detection); ``centre``: normalised point named as a density jump's location.
    """

    segment_id: SegmentId
    spillback_m: float | None
    spillback_location: Location | None
    centre: Location


@dataclass(frozen=True, slots=True)
class SegmentVehicles:
    """The vehicles of one segment in one frame (arrays of the same length N).

    ``known`` marks vehicles with a speed; ``stopped`` (below the stopped speed) and
    ``moving`` (at least twice it) are False where it is unknown; ``in_queue`` marks
    members of the stop-line queue; ``locations`` (N, 2) normalised anchors.
    """

    segment_id: SegmentId
    track_ids: npt.NDArray[np.int64]
    class_ids: npt.NDArray[np.int64]
    known: npt.NDArray[np.bool_]
    stopped: npt.NDArray[np.bool_]
    moving: npt.NDArray[np.bool_]
    in_queue: npt.NDArray[np.bool_]
    locations: npt.NDArray[np.float64]
    queue_m: float | None


@dataclass(slots=True)
class _Waiting:
    since: datetime
    segment_id: SegmentId


@dataclass(slots=True)
class _Spill:
    over_since: datetime | None = None
    under_since: datetime | None = None


@dataclass(slots=True)
class _Density:
    baseline: deque[float]
    trigger: float | None = None  # level the open jump must fall under


class CameraIncidents:
    """The incident state machines of one camera (module docstring); not thread-safe."""

    def __init__(
        self,
        *,
        site_id: str,
        camera_id: str,
        segments: Sequence[SegmentIncidentSpec],
        config: IncidentsConfig,
        max_tracks: int,
    ) -> None:
        self._site = SiteId(site_id)
        self._camera = CameraId(camera_id)
        self._cfg = config
        self._kinds = {IncidentKind(k) for k in config.kinds}
        self._specs = {s.segment_id: s for s in segments}
        self._max_tracks = max(1, max_tracks)
        self._hold = timedelta(seconds=config.stopped_after_s)
        self._waiting: OrderedDict[int, _Waiting] = OrderedDict()
        # open incident per owner (a track id, or a segment id for segment-wide kinds)
        self._owner: dict[tuple[int | str, IncidentKind], str] = {}
        self._open: dict[str, Incident] = {}
        self._spill = {s.segment_id: _Spill() for s in segments}
        self._density = {
            s.segment_id: _Density(deque(maxlen=config.density_baseline_windows)) for s in segments
        }
        self._events: deque[IncidentEvent] = deque()
        self._serial = 0
        self.dropped = 0

    # -- what the analyzer calls -----------------------------------------------------------

    def take(self) -> list[IncidentEvent]:
        """Return the events raised since the last call, in order."""
        out = list(self._events)
        self._events.clear()
        return out

    def open_incidents(self) -> list[Incident]:
        """Every open incident of the camera, oldest first."""
        return sorted(self._open.values(), key=lambda i: i.started_at)

    def on_frame(self, at: datetime, segments: Sequence[SegmentVehicles]) -> None:
        """Run the stopped-vehicle and spillback machines on one frame's vehicles."""
        seen: set[int] = set()
        for veh in segments:
            if IncidentKind.STOPPED_VEHICLE in self._kinds:
                self._stopped(at, veh, seen)
            if IncidentKind.SPILLBACK in self._kinds:
                self._spillback(at, veh)

    def on_wrong_way(
        self,
        at: datetime,
        segment_id: SegmentId,
        track_id: TrackId,
        vehicle_class: VehicleClass,
        *,
        location: Location | None,
        detail: str,
    ) -> None:
        """Open a wrong-way incident: a track crossed a one-way line against it at ``at``."""
        if IncidentKind.WRONG_WAY not in self._kinds:
            return
        if (int(track_id), IncidentKind.WRONG_WAY) in self._owner:
            return
        draft = self._draft(
            IncidentKind.WRONG_WAY, segment_id, at, track_id=track_id,
            vehicle_class=vehicle_class, location=location, detail=detail,
        )  # fmt: skip
        self._start(draft, at)

    def tracks_ended(self, at: datetime, track_ids: Iterable[int]) -> None:
        """Tracks that ended at ``at``: their vehicle incidents end, their waits are forgotten."""
        for tid in track_ids:
            self._waiting.pop(int(tid), None)
            for kind in (IncidentKind.STOPPED_VEHICLE, IncidentKind.WRONG_WAY):
                incident_id = self._owner.get((int(tid), kind))
                if incident_id is not None:
                    self._end(incident_id, at, at)

    def on_windows(self, metrics: Sequence[SegmentMetrics]) -> None:
        """Run the density-jump machine on finished windows (in time order)."""
        if IncidentKind.DENSITY_JUMP not in self._kinds:
            return
        for m in metrics:
            state = self._density.get(m.segment_id)
            if state is None or m.stale or m.partial:
                continue
            self._density_window(m, state)

    # -- stopped vehicles ------------------------------------------------------------------

    def _stopped(self, at: datetime, veh: SegmentVehicles, seen: set[int]) -> None:
        known = veh.known
        n_stopped = int(np.count_nonzero(veh.stopped))
        jammed = n_stopped >= _JAM_MIN_STOPPED and n_stopped >= _JAM_SHARE * int(known.sum())
        for i, tid in enumerate(veh.track_ids.tolist()):
            if tid in seen:
                continue  # a vehicle in two segments waits in the first
            seen.add(tid)
            open_id = self._owner.get((tid, IncidentKind.STOPPED_VEHICLE))
            if open_id is not None:
                if veh.moving[i]:
                    self._end(open_id, at, at)
                continue
            if not known[i]:
                continue
            if not veh.stopped[i] or veh.in_queue[i] or jammed:
                self._waiting.pop(tid, None)
                continue
            wait = self._waiting.get(tid)
            if wait is None or wait.segment_id != veh.segment_id:
                self._waiting[tid] = _Waiting(at, veh.segment_id)
                self._waiting.move_to_end(tid)
                while len(self._waiting) > self._max_tracks:
                    self._waiting.popitem(last=False)
                wait = self._waiting[tid]
            if at - wait.since >= self._hold:
                del self._waiting[tid]
                stopped_s = (at - wait.since).total_seconds()
                where = (float(veh.locations[i, 0]), float(veh.locations[i, 1]))
                vclass = VehicleClass(int(veh.class_ids[i]))
                detail = f"{vclass.label} (track {tid}) stopped for {stopped_s:.0f} s"
                draft = self._draft(
                    IncidentKind.STOPPED_VEHICLE, veh.segment_id, wait.since,
                    track_id=TrackId(tid), vehicle_class=vclass, location=where,
                    value=stopped_s, detail=detail,
                )  # fmt: skip
                self._start(draft, at)

    # -- spillback -------------------------------------------------------------------------

    def _spillback(self, at: datetime, veh: SegmentVehicles) -> None:
        spec = self._specs.get(veh.segment_id)
        if spec is None or spec.spillback_m is None or veh.queue_m is None:
            return
        state = self._spill[veh.segment_id]
        over = veh.queue_m >= spec.spillback_m
        open_id = self._owner.get((str(veh.segment_id), IncidentKind.SPILLBACK))
        if over:
            state.under_since = None
            if state.over_since is None:
                state.over_since = at
            held = (at - state.over_since).total_seconds()
            if open_id is None and held >= self._cfg.spillback_after_s:
                detail = (
                    f"queue of {veh.queue_m:.0f} m reaches back past the spillback point "
                    f"({spec.spillback_m:.0f} m) for {held:.0f} s"
                )
                draft = self._draft(
                    IncidentKind.SPILLBACK, veh.segment_id, state.over_since,
                    location=spec.spillback_location, value=veh.queue_m, detail=detail,
                )  # fmt: skip
                self._start(draft, at)
            return
        state.over_since = None
        if open_id is None:
            return
        if state.under_since is None:
            state.under_since = at
        if (at - state.under_since).total_seconds() >= self._cfg.clear_after_s:
            self._end(open_id, state.under_since, at)
            state.under_since = None

    # -- density jumps ---------------------------------------------------------------------

    def _density_window(self, m: SegmentMetrics, state: _Density) -> None:
        density = m.density_pcu_km_lane
        key = (str(m.segment_id), IncidentKind.DENSITY_JUMP)
        if state.trigger is not None:
            open_id = self._owner.get(key)
            if density < state.trigger:
                state.trigger = None
                if open_id is not None:
                    self._end(open_id, m.window_start, m.window_end)
            return
        full = len(state.baseline) == state.baseline.maxlen
        base = float(np.mean(state.baseline)) if state.baseline else 0.0
        trigger = max(
            base + self._cfg.density_jump_pcu_km_lane, base * self._cfg.density_jump_ratio
        )
        if full and density >= trigger:
            state.trigger = trigger
            spec = self._specs[m.segment_id]
            detail = (
                f"density {density:.1f} pcu/km/lane, up from a baseline of {base:.1f} "
                f"over the last {len(state.baseline)} windows"
            )
            draft = self._draft(
                IncidentKind.DENSITY_JUMP, m.segment_id, m.window_start,
                location=spec.centre, value=density, detail=detail,
            )  # fmt: skip
            self._start(draft, m.window_end)
            return
        state.baseline.append(density)

    # -- bookkeeping -----------------------------------------------------------------------

    def _draft(
        self,
        kind: IncidentKind,
        segment_id: SegmentId,
        started_at: datetime,
        *,
        track_id: TrackId | None = None,
        vehicle_class: VehicleClass | None = None,
        location: Location | None = None,
        value: float | None = None,
        detail: str = "",
    ) -> Incident:
        """Return an incident of this camera before it gets its id and slot (from _start)."""
        return Incident(
            incident_id="",
            kind=kind,
            site_id=self._site,
            camera_id=self._camera,
            segment_id=segment_id,
            started_at=started_at,
            track_id=track_id,
            vehicle_class=vehicle_class,
            location=location,
            value=value,
            detail=detail,
        )

    def _start(self, draft: Incident, at: datetime) -> None:
        if len(self._open) >= self._cfg.max_active_per_camera:
            if not self.dropped:
                log.warning(
                    "camera %s: %d incidents open; new ones are dropped until some end",
                    self._camera,
                    len(self._open),
                )
            self.dropped += 1
            return
        self._serial += 1
        kind, segment_id = draft.kind, draft.segment_id
        taken = {
            i.slot for i in self._open.values() if i.kind is kind and i.segment_id == segment_id
        }
        slot = next(s for s in range(len(taken) + 1) if s not in taken)
        stamp = draft.started_at.strftime("%Y%m%dT%H%M%S%f")
        incident = replace(
            draft, incident_id=f"{segment_id}-{kind.value}-{stamp}-{self._serial}", slot=slot
        )
        self._open[incident.incident_id] = incident
        self._owner[(_owner_of(incident), kind)] = incident.incident_id
        log.info("camera %s incident started: %s: %s", self._camera, kind.value, draft.detail)
        self._emit(IncidentPhase.START, incident, at)

    def _end(self, incident_id: str, ended_at: datetime, at: datetime) -> None:
        incident = self._open.pop(incident_id, None)
        if incident is None:
            return
        self._owner.pop((_owner_of(incident), incident.kind), None)
        ended = replace(incident, ended_at=max(ended_at, incident.started_at))
        log.info(
            "camera %s incident ended: %s in %s after %.0f s",
            self._camera, ended.kind.value, ended.segment_id, ended.duration_s or 0.0,
        )  # fmt: skip
        self._emit(IncidentPhase.END, ended, at)

    def _emit(self, phase: IncidentPhase, incident: Incident, at: datetime) -> None:
        active = tuple(
            sorted(
                (i for i in self._open.values() if i.segment_id == incident.segment_id),
                key=lambda i: i.started_at,
            )
        )
        self._events.append(IncidentEvent(phase, incident, at, active))
        if len(self._events) > MAX_EVENTS:
            self._events.popleft()
            log.warning("camera %s: incident events not taken; the oldest dropped", self._camera)


def _owner_of(incident: Incident) -> int | str:
    """Return what an incident belongs to: its track, or its segment (segment-wide kinds)."""
    return int(incident.track_id) if incident.track_id is not None else str(incident.segment_id)
