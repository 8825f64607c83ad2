"""One phase-by-phase intersection in the running service (pure logic, injected time).

:class:`LivePhase` wraps the engine-side :class:`~atcs.control.phase_supervisor.
PhaseSupervisor` for the live service, where the simulator's bridge is replaced by a
real signal controller on the bus:

- **Measures**: the segment windows (from the in-process engine or the bus feed) and the
  camera health go to a :class:`~atcs.control.inputs.MeasureBoard`; each frame's vehicles
  of the watched segments with a stop line arrive too, from the in-process engine
  (:meth:`LivePhase.on_frame`, every analysed frame) or from the bus
  (:meth:`LivePhase.on_zone`, the zone messages a measuring node publishes once a second
  per segment), and the newest of each segment is kept (never an older over a newer). Each
  tick, every approach and exit segment becomes a camera zone: from its newest frame's
  vehicles (:func:`~atcs.control.frame_zones.zone_snapshot`) when that frame is no
  older than ``frame_stale_s``, else from its newest fresh window
  (:func:`~atcs.control.zones.zone_from_window`). A segment whose camera is down, or
  that has neither a fresh frame nor a window younger than ``stale_after_s``, has no
  zone: its phases are **blind** and the controllers and the envelope serve them on
  recall. A camera failure never sends the whole intersection to fallback.
- **Signal state**: each state report is kept with its arrival time (engine clock). The
  engine speaks the controller's clock: now, for the controller, is the last report's
  ``at`` plus the time since it arrived, so a skewed clock on either side changes
  nothing. Without a report for ``state_stale_s`` the engine stops commanding (the
  controller returns to its time-of-day plan when the last command's deadline passes)
  and the intersection reports ``fallback`` with the reason, which raises the
  intersection-fallback alarm exactly as stale inputs do in cycle mode.
- **Commands**: every tick at most one command, decided and checked by the supervisor
  (the engine's envelope); refusals are logged, kept in the history and handed to the
  owner (the control loop audits them).
- **Operator**: ``hold`` stops commanding (the signal controller runs its own
  time-of-day plan) until ``release``; ``fixed`` is refused, as a phase-by-phase
  controller runs its own plans.

Every event is kept in a bounded history and logged (throttled).
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from atcs.bus.messages import Override, OverrideAction
from atcs.config import AtcsConfig, PcuConfig
from atcs.config.control import IntersectionConfig, intersection_spec
from atcs.config.phase_mode import intersection_layout, signal_timing
from atcs.control.frame_zones import frame_zone_of, zone_snapshot
from atcs.control.inputs import MeasureBoard
from atcs.control.phase_supervisor import PhaseSupervisor
from atcs.control.state import (
    ActiveOverride,
    ControlEvent,
    ControlSettings,
    EventKind,
    IntersectionState,
    ReasonParams,
    SignalView,
    Source,
    control_event,
)
from atcs.control.zones import zone_from_window
from atcs.errors import ControlError
from atcs.logthrottle import ThrottledLog
from atcs.text import printable
from atcs.types import (
    CameraId,
    CameraStatus,
    FrameZone,
    IntersectionId,
    PhaseId,
    PlanMode,
    SegmentId,
    SegmentMetrics,
)
from controllers.phase.commands import PhaseCommand, SignalState
from controllers.phase.envelope import CommandOutcome
from controllers.phase.observe import ZoneSnapshot, ZoneView
from controllers.phase.registry import get_phase_controller

if TYPE_CHECKING:
    from atcs.metrics.analyzer import FrameAnalysis

log = logging.getLogger(__name__)

COMMAND_EVERY_S = 1.0
"""Seconds between two decisions (one command a second at most)."""
_MODES = {Source.ADAPTIVE: PlanMode.ADAPTIVE, Source.FALLBACK: PlanMode.FALLBACK}


def check_phase_override(ix: IntersectionId, override: Override) -> None:
    """Raise :class:`ControlError` for an override phase-mode intersection ``ix`` refuses."""
    if override.intersection_id != ix:
        raise ControlError(f"override for {override.intersection_id!r} reached {ix!r}")
    if not override.who.strip() or not override.why.strip():
        raise ControlError(f"intersection {ix}: an override needs who and why")
    if override.action is OverrideAction.FIXED:
        raise ControlError(
            f"intersection {ix} runs phase by phase: 'fixed' is not available; 'hold' "
            "stops the commands and the signal controller runs its own time-of-day plan"
        )


class LivePhase:
    """The engine's phase-by-phase control of one intersection (see the module docstring).

    ``geometry`` gives each segment's (length in m, lanes); ``segment_cameras`` the
    camera that sees it; ``seq_start`` the number after which its commands count (give
    the wall clock in milliseconds, so that a restarted engine's commands are not taken
    for old ones by a signal controller that remembers the last).
    """

    def __init__(
        self,
        config: IntersectionConfig,
        default_timezone: str,
        geometry: Mapping[SegmentId, tuple[float, int]],
        *,
        pcu: PcuConfig | None = None,
        segment_cameras: Mapping[SegmentId, CameraId] | None = None,
        settings: ControlSettings | None = None,
        seq_start: int = 0,
    ) -> None:
        mode = config.phase_mode
        if config.mode != "phase" or mode is None:
            raise ControlError(f"intersection {config.id!r} is not configured for phase mode")
        self.spec = intersection_spec(config, default_timezone)
        self.intersection_id = IntersectionId(config.id)
        self.controller_name = mode.controller
        self.state_stale_s = mode.state_stale_s
        self.frame_stale_s = mode.frame_stale_s
        lanes = {seg: g[1] for seg, g in geometry.items()}
        self.supervisor = PhaseSupervisor(
            signal_timing(config, default_timezone),
            intersection_layout(config, lanes),
            get_phase_controller(mode.controller),
            ttl_s=mode.command_ttl_s,
            state_stale_s=mode.state_stale_s,
            seq_start=seq_start,
        )
        self.board = MeasureBoard(self.spec, pcu, segment_cameras=segment_cameras)
        self._geometry = dict(geometry)
        self._exits = frozenset(self.supervisor.layout.exit_lanes)
        self._frames: dict[SegmentId, FrameZone] = {}
        self._zones_from: dict[SegmentId, str] = {}
        self._history: deque[ControlEvent] = deque(
            maxlen=(settings or ControlSettings()).history_max
        )
        self._log = ThrottledLog(log)
        self._received_at: datetime | None = None
        self._signal_stale = True
        self._recall: frozenset[PhaseId] = frozenset()
        self._override: ActiveOverride | None = None
        self._controller_mode: str | None = None
        self._last_reason = "waiting for the signal controller's first state report"
        self._last_code: tuple[str, ReasonParams] = ("signal_waiting", {})
        self.commands_sent = 0
        self._last_command = ""
        self._next_at: datetime | None = None
        self.zones_refused: Counter[str] = Counter()
        """Zones not kept, by reason: ``future``, ``camera`` (another camera's), ``older``."""
        self.refusals: deque[str] = deque(maxlen=100)
        """Reasons of commands the envelope refused, for the owner to audit (bounded)."""

    @classmethod
    def from_config(
        cls,
        config: IntersectionConfig,
        cfg: AtcsConfig,
        settings: ControlSettings | None = None,
        seq_start: int = 0,
    ) -> LivePhase:
        """Build it with the site's time zone, segment geometry, cameras and PCU factors."""
        geometry = {SegmentId(s.id): (s.length_m, s.lanes) for s in cfg.segments}
        cameras = {SegmentId(s.id): CameraId(s.camera) for s in cfg.segments}
        return cls(
            config,
            cfg.site.timezone,
            geometry,
            pcu=cfg.pcu,
            segment_cameras=cameras,
            settings=settings,
            seq_start=seq_start,
        )

    # Inputs ------------------------------------------------------------------------------

    def on_metrics(self, metrics: Sequence[SegmentMetrics]) -> None:
        """Keep the fresh windows of this intersection's segments."""
        self.board.add(metrics)

    def on_frame(self, result: FrameAnalysis) -> None:
        """Keep the newest frame of each watched segment that has a stop line."""
        for frame in result.segments:
            if frame.near_m is None or frame.segment_id not in self.board.watched:
                continue
            zone = frame_zone_of(result.camera_id, result.at, frame)
            if zone is not None:
                self.on_zone(zone)

    def on_zone(self, zone: FrameZone, now: datetime | None = None) -> bool:
        """Keep ``zone`` if its segment is watched and it is no older than the kept one.

        False when it was not kept: a segment this intersection does not watch, another
        camera than the segment's, an older frame than the one kept, or (given ``now``) a
        frame captured more than ``frame_stale_s`` in the future, which would otherwise
        stay fresh and shadow the real ones.
        """
        seg = zone.segment_id
        if seg not in self.board.watched:
            return False
        if now is not None and (ahead_s := (zone.at - now).total_seconds()) > self.frame_stale_s:
            return self._refuse(
                "future", seg, "zone of segment %s from camera %s captured %.1f s ahead of "
                "this node's clock: ignored; check the two nodes' clocks (NTP)",
                seg, printable(zone.camera_id, 80), ahead_s,
            )  # fmt: skip
        camera = self.board.camera_of(seg)
        if camera is not None and camera != zone.camera_id:
            return self._refuse(
                "camera", seg, "zone of segment %s from camera %s, but the configuration "
                "gives the segment camera %s: ignored; do the nodes run the same site "
                "configuration?", seg, printable(zone.camera_id, 80), camera,
            )  # fmt: skip
        kept = self._frames.get(seg)
        if kept is not None and kept.at > zone.at:
            self.zones_refused["older"] += 1  # arrived out of order: normal now and then
            return False
        self._frames[seg] = zone
        return True

    def _refuse(self, why: str, seg: SegmentId, msg: str, *args: object) -> bool:
        """Count and log (throttled per reason and segment) a zone not kept; False."""
        self.zones_refused[why] += 1
        self._log.emit(logging.WARNING, f"zone_{why}:{seg}", msg, *args)
        return False

    def on_camera_status(self, status: CameraStatus, now: datetime) -> None:
        """Record a camera's health (its phases go on recall at the next tick)."""
        self.board.set_camera_status(status)

    def on_state(self, state: SignalState, now: datetime) -> None:
        """Take the signal controller's state report, arrived at ``now`` (engine clock)."""
        last = self.supervisor.state
        if last is not None and state.at_s < last.at_s:
            return
        if self._received_at is None:
            self._event(
                now, EventKind.INPUTS, f"first state from the signal controller: {state.phase} "
                f"{state.interval.value} ({state.mode.value})",
                code=("signal_first_state", {"phase": state.phase, "mode": state.mode.value}),
            )  # fmt: skip
        if self._controller_mode is not None and state.mode.value != self._controller_mode:
            self._event(
                now, EventKind.INPUTS,
                f"signal controller now in {state.mode.value} mode: {state.reason}",
                level=logging.WARNING if state.mode.value == "local" else logging.INFO,
                code=("signal_mode", {"mode": state.mode.value, "why": state.reason[:300]}),
            )  # fmt: skip
        self._controller_mode = state.mode.value
        self.supervisor.on_state(state)
        self._received_at = now

    @property
    def override(self) -> ActiveOverride | None:
        """The operator's hold in force, if any."""
        return self._override

    def check_override(self, override: Override) -> None:
        """Raise :class:`ControlError` for an override this intersection cannot honour."""
        check_phase_override(self.intersection_id, override)

    def apply_override(self, override: Override, now: datetime) -> None:
        """Apply an operator's ``hold`` or ``release``; :class:`ControlError` otherwise."""
        try:
            self.check_override(override)
        except ControlError as exc:
            self._event(
                now, EventKind.REJECTED, f"override rejected: {exc}", level=logging.WARNING,
                code=("override_rejected", {"who": override.who, "error": str(exc)}),
            )  # fmt: skip
            raise
        params: ReasonParams = {"action": override.action.value, "who": override.who,
                                "why": override.why}  # fmt: skip
        if override.action is OverrideAction.RELEASE:
            if self._override is None:
                self._event(now, EventKind.OVERRIDE, f"release by {override.who}: no override",
                            code=("release_nothing", params))  # fmt: skip
                return
            self._override = None
            self._event(now, EventKind.OVERRIDE, f"hold released by {override.who}: "
                        f"{override.why}", code=("override_released", params))  # fmt: skip
            return
        self._override = ActiveOverride(override.action, override.who, override.why, now)
        self._event(
            now, EventKind.OVERRIDE, f"hold by {override.who} ({override.why}): no commands, "
            "the signal controller runs its time-of-day plan", level=logging.WARNING,
            code=("override_applied", params),
        )  # fmt: skip

    # The tick ----------------------------------------------------------------------------

    def _frame_zone(self, seg: SegmentId, now: datetime) -> ZoneSnapshot | None:
        """Return the zone of ``seg``'s newest frame if no older than ``frame_stale_s``."""
        kept = self._frames.get(seg)
        if kept is None or (now - kept.at).total_seconds() > self.frame_stale_s:
            return None
        length_m, lanes = self._geometry.get(seg, (50.0, 1))
        return zone_snapshot(seg, kept.vehicles, length_m, lanes)

    def zones(self, now: datetime) -> dict[SegmentId, ZoneSnapshot]:
        """Return the camera zones the controllers see at ``now`` (see the module docstring)."""
        out: dict[SegmentId, ZoneSnapshot] = {}
        sources: dict[SegmentId, str] = {}
        for seg in self.board.watched:
            if self.board.camera_down(seg):
                continue
            zone = self._frame_zone(seg, now)
            if zone is not None:
                sources[seg] = "frame"
            window = None if zone is not None else self.board.fresh_window(seg, now)
            if window is not None:
                length_m, lanes = self._geometry.get(seg, (50.0, 1))
                zone = zone_from_window(window, length_m, lanes, exit_zone=seg in self._exits)
                sources[seg] = "window"
            if zone is not None:
                out[seg] = zone
        self._zones_from = sources
        return out

    def _state_age_s(self, now: datetime) -> float | None:
        if self._received_at is None:
            return None
        return max(0.0, (now - self._received_at).total_seconds())

    def _note_recall(self, now: datetime, view: ZoneView) -> None:
        blind = view.blind(self.supervisor.layout)
        if blind == self._recall:
            return
        on, off = sorted(blind - self._recall), sorted(self._recall - blind)
        self._recall = blind
        why = "; ".join(self.board.stale_reasons(now)) or "cameras fresh"
        text = ", ".join(
            [f"{p} on recall" for p in on] + [f"{p} off recall" for p in off]
        )  # fmt: skip
        self._event(
            now, EventKind.INPUTS, f"{text} ({why})",
            level=logging.WARNING if on else logging.INFO,
            code=("phase_recall", {"on": ", ".join(on), "off": ", ".join(off)}),
        )  # fmt: skip

    def _note_signal(self, now: datetime, age_s: float | None) -> bool:
        """Log the signal going silent or reporting again; return whether it is silent."""
        stale = age_s is None or age_s > self.state_stale_s
        if stale != self._signal_stale and age_s is not None:
            code: tuple[str, ReasonParams] = ("signal_fresh", {})
            text = "signal controller reporting: commands start"
            if stale:
                text = (
                    f"no state from the signal controller for {age_s:.1f} s (limit "
                    f"{self.state_stale_s:g} s): commands stopped, the signal controller "
                    "returns to its time-of-day plan"
                )
                code = ("signal_stale", {"age_s": round(age_s, 1), "limit_s": self.state_stale_s})
            self._last_reason, self._last_code = text, code
            level = logging.WARNING if stale else logging.INFO
            self._event(now, EventKind.INPUTS, text, level=level, code=code)
        self._signal_stale = stale
        return stale

    def tick(self, now: datetime) -> PhaseCommand | None:
        """Return the command to send now (None: nothing to send; one a second at most)."""
        if self._next_at is not None and now < self._next_at:
            return None
        self._next_at = now + timedelta(seconds=COMMAND_EVERY_S)
        age_s = self._state_age_s(now)
        state = self.supervisor.state
        view_now = 0.0 if state is None or age_s is None else state.at_s + age_s
        view = ZoneView(view_now, self.zones(now))
        self._note_recall(now, view)
        if self._note_signal(now, age_s) or state is None or self._override is not None:
            return None
        refused = self.supervisor.outcomes[CommandOutcome.REFUSED.value]
        command = self.supervisor.decide(view_now, view)
        check = self.supervisor.last_check
        if self.supervisor.outcomes[CommandOutcome.REFUSED.value] > refused and check:
            why = "; ".join(check.reasons)
            self.refusals.append(why)
            self._last_reason = f"command refused by the engine's envelope: {why}"
            self._last_code = ("command_refused", {"error": why})
            self._event(now, EventKind.REJECTED, self._last_reason, level=logging.WARNING,
                        code=self._last_code)  # fmt: skip
        return command

    def sent(self, command: PhaseCommand, ok: bool) -> None:
        """Record that ``command`` was handed to the bus (``ok``: it left)."""
        if ok:
            self.commands_sent += 1
        what = "" if ok else " (not sent)"
        self._last_command = f"{command.kind.value} {command.phase} #{command.seq}{what}"
        self._last_reason = f"{command.kind.value} {command.phase}: {command.reason}"
        params: ReasonParams = {
            "command": command.kind.value, "phase": command.phase, "why": command.reason,
        }  # fmt: skip
        self._last_code = ("phase_command", params)

    # Reporting ---------------------------------------------------------------------------

    def _event(
        self, now: datetime, kind: EventKind, text: str, *, level: int = logging.INFO,
        code: tuple[str, ReasonParams] = ("", {}),
    ) -> None:  # fmt: skip
        event = control_event(now, kind, text, None, code)
        self._history.append(event)
        self._log.emit(level, kind.value, "intersection %s: %s", self.intersection_id, event.text)

    def source(self, now: datetime) -> Source:
        """Who drives the signal now: the operator, its own plan (stale), or the engine."""
        if self._override is not None:
            return Source.HOLD
        age_s = self._state_age_s(now)
        return Source.FALLBACK if age_s is None or age_s > self.state_stale_s else Source.ADAPTIVE

    def state(self, now: datetime) -> IntersectionState:
        """Return a snapshot for dashboards, alarms and health checks."""
        source = self.source(now)
        age_s = self._state_age_s(now)
        stale: tuple[str, ...] = ()
        codes: tuple[tuple[str, ReasonParams], ...] = ()
        if source is Source.FALLBACK:
            limit = f"limit {self.state_stale_s:g} s"
            stale = (
                "signal controller: no state report yet"
                if age_s is None
                else f"signal controller: last state {age_s:.1f} s ago ({limit})",
            )
            codes = (("stale_signal", {"age_s": -1 if age_s is None else round(age_s, 1),
                                       "limit_s": self.state_stale_s}),)  # fmt: skip
        s = self.supervisor.state
        signal = SignalView(
            phase=None if s is None else s.phase,
            interval=None if s is None else s.interval.value,
            time_in_interval_s=None if s is None else round(s.time_in_interval_s, 1),
            next_phase=None if s is None else s.next_phase,
            controller_mode=None if s is None else s.mode.value,
            controller_reason="" if s is None else s.reason,
            controller_recall=() if s is None else tuple(sorted(s.recall)),
            recall=tuple(sorted(self._recall)),
            state_age_s=None if age_s is None else round(age_s, 1),
            commands_sent=self.commands_sent,
            verdicts=dict(self.supervisor.outcomes),
            last_command=self._last_command,
            zones_from=dict(self._zones_from),
        )
        return IntersectionState(
            intersection_id=self.intersection_id,
            controller=self.controller_name,
            source=source,
            mode=_MODES.get(source, PlanMode.MANUAL),
            running=None,
            pending=None,
            override=self._override,
            stale=stale,
            last_reason=self._last_reason,
            next_decision_at=None,
            plans=(),
            history=tuple(self._history),
            last_reason_code=self._last_code[0],
            last_reason_params=dict(self._last_code[1]),
            stale_codes=codes,
            signal=signal,
        )
