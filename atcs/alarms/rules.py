"""When alarms hold: pure rules over windows, camera states, control states, nodes, incidents.

:class:`AlarmRules` keeps the little state each rule needs (consecutive congested windows,
since when a camera is down, the last window of each segment ...) and answers
:meth:`AlarmRules.conditions`: every condition that holds at ``now``. Every map is keyed
by a configured id (segments, cameras, intersections) or bounded (nodes, incidents). No
I/O, no clock: every call takes the time.

=========================  ==========  =================================================
kind                       severity    holds while
=========================  ==========  =================================================
``congestion``             major (F:   ``onset_windows`` consecutive windows at
                           critical)   ``congested_from_los`` or worse, until
                                       ``clear_windows`` consecutive windows below it
``camera_down``            major       a camera is not streaming for ``camera_down_after_s``
``stale_data``             minor       a segment has no new window for ``stale_after_s``
                                       (not while its camera is down: that alarm says it)
``node_down``              critical    an engine node announced itself and then went
                                       offline (hook: :meth:`AlarmRules.on_node`)
``intersection_fallback``  major       an intersection runs its time-of-day plan on stale
                                       inputs
``intersection_manual``    info        an operator override is in force
``plan_rejected``          major       the newest acknowledged plan was rejected by the
                                       signal controller
``incident``               reported    an incident detector reports an incident
=========================  ==========  =================================================
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from atcs.alarms.model import (
    AlarmKind,
    Condition,
    IncidentReport,
    Severity,
    SubjectType,
)
from atcs.config.room import AlarmsConfig
from atcs.control.state import IntersectionState, PlanState, Source
from atcs.types import CameraState, CameraStatus, IntersectionId, LevelOfService, SegmentMetrics

NODES_MAX = 256
"""Most engine nodes remembered."""

INCIDENTS_MAX = 1000
"""Most incidents open at once; beyond, the oldest is forgotten."""

_LOS_ORDER = list(LevelOfService)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(slots=True)
class _Congestion:
    bad_run: int = 0
    good_run: int = 0
    active_since: datetime | None = None
    first_bad_at: datetime | None = None
    worst: LevelOfService = LevelOfService.A
    density: float = 0.0


class AlarmRules:
    """The alarm conditions of one site (see the module docstring for the table)."""

    def __init__(
        self,
        cfg: AlarmsConfig,
        *,
        segment_cameras: Mapping[str, str],
        cameras: Sequence[str],
        started_at: datetime,
    ) -> None:
        self.cfg = cfg
        self._segment_cameras = dict(segment_cameras)
        self._cameras = set(cameras)
        self._started_at = started_at
        self._congestion = {s: _Congestion() for s in segment_cameras}
        self._last_window: dict[str, datetime] = {}
        self._down_since: dict[str, tuple[datetime, str, str]] = {}
        self._control: dict[str, IntersectionState] = {}
        self._control_since: dict[tuple[AlarmKind, str], datetime] = {}
        self._nodes: OrderedDict[str, tuple[bool, datetime]] = OrderedDict()
        self._incidents: OrderedDict[str, IncidentReport] = OrderedDict()
        self._incidents_unseen: set[str] = set()
        """Incidents started since the last evaluation (an end before it keeps them once)."""

    # Inputs ------------------------------------------------------------------------------

    def on_metrics(self, metrics: Iterable[SegmentMetrics]) -> None:
        """Take closed windows (unknown segments are ignored)."""
        threshold = _LOS_ORDER.index(self.cfg.congested_from_los)
        for m in metrics:
            state = self._congestion.get(m.segment_id)
            if state is None:
                continue
            last = self._last_window.get(m.segment_id)
            if last is None or m.window_end > last:
                self._last_window[m.segment_id] = m.window_end
            if m.stale or m.frames == 0:
                continue
            bad = _LOS_ORDER.index(m.los) >= threshold
            if bad:
                state.good_run = 0
                state.bad_run += 1
                if state.bad_run == 1:
                    state.first_bad_at = m.window_start
                if state.active_since is None and state.bad_run >= self.cfg.onset_windows:
                    state.active_since = state.first_bad_at or m.window_start
                    state.worst = m.los
                if state.active_since is not None and _LOS_ORDER.index(m.los) > _LOS_ORDER.index(
                    state.worst
                ):
                    state.worst = m.los
                state.density = m.density_pcu_km_lane
            else:
                state.bad_run = 0
                state.good_run += 1
                if state.active_since is not None and state.good_run >= self.cfg.clear_windows:
                    state.active_since = None
                    state.worst = LevelOfService.A

    def on_camera_status(self, status: CameraStatus, now: datetime) -> None:
        """Take a camera's state (unknown cameras are ignored)."""
        cam = str(status.camera_id)
        if cam not in self._cameras:
            return
        if status.state is CameraState.STREAMING:
            self._down_since.pop(cam, None)
        elif cam not in self._down_since:
            self._down_since[cam] = (now, status.state.value, status.detail[:200])
        else:
            since, _, _ = self._down_since[cam]
            self._down_since[cam] = (since, status.state.value, status.detail[:200])

    def on_control(self, states: Mapping[IntersectionId, IntersectionState]) -> None:
        """Take the control loop's snapshot of every intersection."""
        self._control = {str(k): v for k, v in states.items()}

    def on_node(self, node_id: str, online: bool, at: datetime) -> None:
        """Take a node's announcement (``online``) or its last will / timeout (offline).

        The multi-node roles call this; a node never seen online raises nothing.
        """
        if node_id not in self._nodes and not online:
            return
        previous = self._nodes.get(node_id)
        if previous is None or previous[0] != online:
            self._nodes[node_id] = (online, at)
        self._nodes.move_to_end(node_id)
        while len(self._nodes) > NODES_MAX:
            self._nodes.popitem(last=False)

    def on_incident(self, report: IncidentReport) -> None:
        """Take an incident's start or end.

        An end forgets the incident, unless no evaluation saw it yet: then it is kept for the
        next one, so that an incident shorter than the check period still raises (and ends)
        its alarm.
        """
        ident = report.incident_id
        if report.ended_at is not None:
            if ident in self._incidents and ident in self._incidents_unseen:
                self._incidents[ident] = report
            else:
                self._incidents.pop(ident, None)
            return
        self._incidents[ident] = report
        self._incidents_unseen.add(ident)
        while len(self._incidents) > INCIDENTS_MAX:
            oldest, _ = self._incidents.popitem(last=False)
            self._incidents_unseen.discard(oldest)

    # Output ------------------------------------------------------------------------------

    def conditions(self, now: datetime) -> list[Condition]:
        """Every condition that holds at ``now``."""
        out = self._congested() + self._cameras_down(now)
        down = {c.subject for c in out if c.kind is AlarmKind.CAMERA_DOWN}
        out += self._stale(now, down)
        out += self._control_conditions(now)
        out += self._nodes_down()
        out += [_incident(r) for r in self._incidents.values()]
        self._incidents_unseen.clear()
        for ident in [i for i, r in self._incidents.items() if r.ended_at is not None]:
            del self._incidents[ident]
        return out

    def _congested(self) -> list[Condition]:
        out = []
        for seg, state in self._congestion.items():
            if state.active_since is None:
                continue
            severity = Severity.CRITICAL if state.worst is LevelOfService.F else Severity.MAJOR
            params: dict[str, str | float | int | bool] = {
                "los": state.worst.value, "density": round(state.density, 1),
                "windows": self.cfg.onset_windows,
            }  # fmt: skip
            out.append(
                Condition(AlarmKind.CONGESTION, SubjectType.SEGMENT, seg, severity,
                          "congestion", state.active_since, params)
            )  # fmt: skip
        return out

    def _cameras_down(self, now: datetime) -> list[Condition]:
        out = []
        for cam, (since, state, detail) in self._down_since.items():
            if (now - since).total_seconds() < self.cfg.camera_down_after_s:
                continue
            out.append(
                Condition(AlarmKind.CAMERA_DOWN, SubjectType.CAMERA, cam, Severity.MAJOR,
                          "camera_down", since, {"state": state, "detail": detail})
            )  # fmt: skip
        return out

    def _stale(self, now: datetime, cameras_down: set[str]) -> list[Condition]:
        out = []
        for seg, camera in self._segment_cameras.items():
            if camera in cameras_down:
                continue
            last = self._last_window.get(seg, self._started_at)
            age_s = (now - last).total_seconds()
            if age_s < self.cfg.stale_after_s:
                continue
            params: dict[str, str | float | int | bool] = {"age_s": round(age_s), "camera": camera}
            out.append(
                Condition(AlarmKind.STALE_DATA, SubjectType.SEGMENT, seg, Severity.MINOR,
                          "stale_data", last, params)
            )  # fmt: skip
        return out

    def _control_conditions(self, now: datetime) -> list[Condition]:
        out: list[Condition] = []
        holding: set[tuple[AlarmKind, str]] = set()
        for ix, state in self._control.items():
            found = _control_state_conditions(ix, state)
            for kind, severity, code, params, since in found:
                key = (kind, ix)
                holding.add(key)
                start = since or self._control_since.setdefault(key, now)
                out.append(
                    Condition(kind, SubjectType.INTERSECTION, ix, severity, code, start, params)
                )
        for key in [k for k in self._control_since if k not in holding]:
            del self._control_since[key]
        return out

    def _nodes_down(self) -> list[Condition]:
        return [
            Condition(AlarmKind.NODE_DOWN, SubjectType.NODE, node, Severity.CRITICAL,
                      "node_down", at, {})
            for node, (online, at) in self._nodes.items()
            if not online
        ]  # fmt: skip


_Found = tuple[AlarmKind, Severity, str, dict[str, str | float | int | bool], datetime | None]


def _control_state_conditions(ix: str, state: IntersectionState) -> list[_Found]:
    out: list[_Found] = []
    if state.override is not None:
        ov = state.override
        params: dict[str, str | float | int | bool] = {
            "action": ov.action.value, "who": ov.who, "why": ov.why[:300],
        }  # fmt: skip
        if ov.plan_name:
            params["plan"] = ov.plan_name
        out.append(
            (AlarmKind.INTERSECTION_MANUAL, Severity.INFO, "intersection_manual", params, ov.since)
        )
    elif state.source is Source.FALLBACK:
        params = {"inputs": "; ".join(state.stale)[:300]}
        out.append(
            (AlarmKind.INTERSECTION_FALLBACK, Severity.MAJOR, "intersection_fallback", params, None)
        )
    acked = [p for p in state.plans if p.acked_at is not None]
    if acked:
        newest = max(acked, key=lambda p: p.acked_at or p.sent_at)
        if newest.state is PlanState.REJECTED:
            params = {"plan": newest.plan.plan_id, "by": newest.acked_by, "why": newest.detail}
            out.append(
                (AlarmKind.PLAN_REJECTED, Severity.MAJOR, "plan_rejected", params, newest.acked_at)
            )
    return out


def _incident(report: IncidentReport) -> Condition:
    params: dict[str, str | float | int | bool] = dict(report.params)
    params["incident"] = report.kind
    params["camera"] = report.camera_id
    subject_type = SubjectType.SEGMENT if report.segment_id else SubjectType.CAMERA
    subject = report.segment_id or report.camera_id
    ident = _SAFE.sub("_", report.incident_id)[:100]
    return Condition(
        AlarmKind.INCIDENT, subject_type, f"{subject}~{ident}",
        report.severity, f"incident.{report.kind}", report.started_at, params,
    )  # fmt: skip
