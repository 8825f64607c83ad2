"""The service side of signal control: one supervisor per intersection, fed by the engine.

:class:`ControlLoop` plugs into the engine: :meth:`ControlLoop.on_metrics` is a metrics
listener, :meth:`ControlLoop.tick` runs from the engine's tick, and the plans it decides
leave through one ``publish_plan`` callback (the engine hands each plan to every sink's
``on_plan``: the bus publishes it retained on ``{p}/intersections/{ix}/plan``, the store
writes a ``signal_plan`` point).

Acks, overrides, retained plans and camera health may arrive on other threads (paho's
network thread): those calls only put the message in one of three bounded queues, and
:meth:`tick` applies them before deciding, operator commands first:

- operator overrides have their own queue and are never dropped behind other traffic; when
  it is full (``inbox_max`` commands waiting for one tick) a new command is refused and
  logged, the waiting ones kept;
- the engine's own messages (camera health, retained plans) have theirs;
- signal controllers' acks have theirs; when full the oldest ack is dropped (counted).

Within a queue, messages are applied in arrival order. The in-process engine (role
``all``) also hands over every analysed frame (:meth:`ControlLoop.on_frame`, a frame
observer on the engine's analysis thread) for the phase-mode intersections' per-frame
zones; a control node fed by the bus gets the same zones from the measuring nodes' zone
messages (:meth:`ControlLoop.on_zone_frame`, on paho's network thread). Only the newest
frame of a segment counts, so it is kept under the lock, not queued.

Intersections configured with ``mode = "phase"`` run a :class:`~atcs.control.phase_live.
LivePhase` instead of a cycle :class:`Supervisor`: signal controllers' state reports
(:meth:`ControlLoop.on_signal_state`, queued with the field traffic, stamped on arrival)
feed it, and at most one command a second per intersection leaves through the
``send_command`` callback (the bus signs it and sends it now or never); a command the
engine's envelope refuses is logged and handed to the ``on_command_refused`` callbacks
(the service audits it).
Whether an operator override is in force at each intersection goes to the
``on_override_state`` callbacks after the tick that changed it (and for every intersection
after the first tick): the bus publishes it retained for the room (``docs/nodes.md``).
A message that cannot be honoured (unknown intersection, unknown plan id, an override
without who/why ...) is logged with its reason and counted; it never stops the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from atcs.bus.messages import Override, PlanAck
from atcs.bus.override_state import OverrideState
from atcs.config import AtcsConfig
from atcs.config.control import intersection_spec
from atcs.control.counters import ControlLoopCounters
from atcs.control.overrides import override_state_of
from atcs.control.phase_live import LivePhase
from atcs.control.state import ActiveOverride, ControlSettings, IntersectionState
from atcs.control.supervisor import Supervisor
from atcs.errors import ControlError
from atcs.logthrottle import ThrottledLog
from atcs.text import printable
from atcs.types import CameraId, CameraStatus, IntersectionId, SegmentId, SegmentMetrics, TimingPlan
from controllers.phase.commands import PhaseCommand, SignalState

if TYPE_CHECKING:
    from atcs.metrics.analyzer import FrameAnalysis
    from atcs.types import Frame, FrameZone

log = logging.getLogger(__name__)

PlanPublisher = Callable[[TimingPlan], None]
CommandSender = Callable[[PhaseCommand], bool]
"""Sends a phase command now; False when it did not leave."""
RefusalSink = Callable[[IntersectionId, str, datetime], None]
"""Takes a command the envelope refused: intersection, reasons, when."""
OverrideSink = Callable[[OverrideState], None]
"""Takes an intersection's override state after it changed."""
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class _StateReport:
    """A signal controller's state and when it arrived (engine clock, UTC)."""

    state: SignalState
    at: datetime


_Message = PlanAck | Override | TimingPlan | CameraStatus | _StateReport

INBOX_MAX = 1000
"""Messages of one queue waiting for the next tick (see the module docstring)."""


def utc_now() -> datetime:
    """Return the current time, aware UTC."""
    return datetime.now(UTC)


class ControlLoop:
    """Supervisors of every configured intersection behind one thread-safe front."""

    def __init__(
        self,
        supervisors: Sequence[Supervisor],
        publish_plan: PlanPublisher,
        *,
        phases: Sequence[LivePhase] = (),
        send_command: CommandSender | None = None,
        clock: Clock = utc_now,
        inbox_max: int = INBOX_MAX,
    ) -> None:
        self._supervisors: dict[IntersectionId, Supervisor] = {}
        self._phases: dict[IntersectionId, LivePhase] = {}
        for sup in supervisors:
            if sup.spec.intersection_id in self._supervisors:
                raise ControlError(f"intersection {sup.spec.intersection_id!r} given twice")
            self._supervisors[sup.spec.intersection_id] = sup
        for phase in phases:
            ix = phase.intersection_id
            if ix in self._supervisors or ix in self._phases:
                raise ControlError(f"intersection {ix!r} given twice")
            self._phases[ix] = phase
        self._publish = publish_plan
        self._send_command = send_command
        self._refusal_sinks: list[RefusalSink] = []
        self._override_sinks: list[OverrideSink] = []
        self._overrides_out: dict[IntersectionId, ActiveOverride | None] = {}
        self._clock = clock
        self._lock = threading.Lock()
        self._operator: deque[Override] = deque()
        self._local: deque[_Message] = deque()
        self._field: deque[_Message] = deque()
        self._inbox_max = inbox_max
        self._counts: Counter[str] = Counter()
        self._log = ThrottledLog(log)

    @classmethod
    def from_config(
        cls,
        cfg: AtcsConfig,
        publish_plan: PlanPublisher,
        *,
        settings: ControlSettings | None = None,
        clock: Clock = utc_now,
        send_command: CommandSender | None = None,
    ) -> ControlLoop:
        """One supervisor per ``cfg.intersections`` entry, with the config's PCU factors.

        Intersections in phase mode get a :class:`LivePhase` whose commands leave through
        ``send_command`` (without one they are counted as not sent).
        """
        movements = {SegmentId(s.id): s.movement for s in cfg.segments}
        cameras = {SegmentId(s.id): CameraId(s.camera) for s in cfg.segments}
        supervisors = [
            Supervisor(
                intersection_spec(ix, cfg.site.timezone),
                settings=settings,
                pcu=cfg.pcu,
                movements=movements,
                segment_cameras=cameras,
            )
            for ix in cfg.intersections
            if ix.mode == "cycle"
        ]
        seq_start = int(time.time() * 1000)
        phases = [
            LivePhase.from_config(ix, cfg, settings, seq_start)
            for ix in cfg.intersections
            if ix.mode == "phase"
        ]
        return cls(supervisors, publish_plan, phases=phases, send_command=send_command, clock=clock)

    @property
    def intersections(self) -> tuple[IntersectionId, ...]:
        """The intersections this loop controls."""
        return (*self._supervisors, *self._phases)

    @property
    def phase_intersections(self) -> tuple[IntersectionId, ...]:
        """The intersections run phase by phase."""
        return tuple(self._phases)

    def phase(self, intersection: IntersectionId) -> LivePhase:
        """Return the phase-mode control of ``intersection`` (:class:`ControlError` if none)."""
        live = self._phases.get(intersection)
        if live is None:
            raise ControlError(f"no phase-mode intersection {intersection!r} in this control loop")
        return live

    def set_command_sender(self, send_command: CommandSender) -> None:
        """Send phase commands through ``send_command`` from now on."""
        self._send_command = send_command

    def on_command_refused(self, sink: RefusalSink) -> None:
        """Call ``sink`` (on the tick's thread) for every command the envelope refuses."""
        self._refusal_sinks.append(sink)

    def on_override_state(self, sink: OverrideSink) -> None:
        """Call ``sink`` (on the tick's thread) with each override state that changed."""
        self._override_sinks.append(sink)

    def supervisor(self, intersection: IntersectionId) -> Supervisor:
        """Return the supervisor of ``intersection`` (:class:`ControlError` when unknown)."""
        sup = self._supervisors.get(intersection)
        if sup is None:
            raise ControlError(f"no intersection {intersection!r} in this control loop")
        return sup

    # Inputs (any thread) -----------------------------------------------------------------

    def on_metrics(self, metrics: Sequence[SegmentMetrics]) -> None:
        """Engine metrics listener: take the windows that just closed."""
        with self._lock:
            for sup in self._supervisors.values():
                sup.on_metrics(metrics)
            for live in self._phases.values():
                live.on_metrics(metrics)

    def on_frame(self, frame: Frame, result: FrameAnalysis) -> None:
        """Engine frame observer: hand each phase-mode intersection the frame's vehicles.

        Called on the engine's analysis thread for every analysed frame (role ``all``).
        Only the newest frame of a segment matters, so it replaces the kept one under the
        lock rather than waiting in a queue for the tick; it costs a dictionary update
        per watched segment.
        """
        if not self._phases:
            return
        with self._lock:
            for live in self._phases.values():
                live.on_frame(result)

    def on_zone_frame(self, zone: FrameZone) -> None:
        """Bus zone listener: hand a segment's frame to the phase-mode intersections.

        Each intersection that watches the segment keeps its newest frame. Called on paho's
        network thread for every zone message (role ``control``); like
        :meth:`on_frame`, it replaces the kept frame under the lock instead of queueing.
        """
        if not self._phases:
            return
        now = self._clock()
        with self._lock:
            for live in self._phases.values():
                live.on_zone(zone, now)

    def on_ack(self, ack: PlanAck) -> None:
        """Take a signal controller's ack (applied at the next tick)."""
        self._put(self._field, ack)

    def on_signal_state(self, state: SignalState) -> None:
        """Take a signal controller's state report (stamped now, applied at the next tick)."""
        self._put(self._field, _StateReport(state, self._clock()))

    def on_override(self, override: Override) -> None:
        """Take an operator override (applied at the next tick, before anything else).

        When ``inbox_max`` commands already wait for the tick, this one is refused (logged
        and counted as ``operator_refused_full``); commands are never dropped once queued.
        """
        with self._lock:
            if len(self._operator) < self._inbox_max:
                self._operator.append(override)
                return
            self._counts["operator_refused_full"] += 1
        log.error(
            "operator queue full (%d commands wait for the tick): override %s for %s by %s refused",
            self._inbox_max,
            override.action.value,
            override.intersection_id,
            override.who,
        )

    def on_camera_status(self, status: CameraStatus) -> None:
        """Take a camera's health (a camera that is not streaming makes its segments stale)."""
        self._put(self._local, status)

    def adopt(self, plan: TimingPlan) -> None:
        """Take a plan found on the bus (a retained plan at start-up) as what the signal runs."""
        self._put(self._local, plan)

    def _put(self, queue: deque[_Message], message: _Message) -> None:
        with self._lock:
            dropped = None
            if len(queue) >= self._inbox_max:
                dropped = queue.popleft()
                self._counts["inbox_dropped"] += 1
            queue.append(message)
        if dropped is not None:
            self._log.warning_for(
                f"control inbox full {type(dropped).__name__}",
                "control inbox full (%d): dropped the oldest message (%s)",
                self._inbox_max,
                type(dropped).__name__,
            )

    # The tick (engine thread) ------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> list[TimingPlan]:
        """Apply waiting messages, let every supervisor decide, publish; return what left."""
        at = self._clock() if now is None else now
        out: list[TimingPlan] = []
        with self._lock:
            waiting: list[_Message] = [*self._operator, *self._local, *self._field]
            for queue in (self._operator, self._local, self._field):
                queue.clear()
            for message in waiting:
                self._apply(message, at)
            for ix, sup in self._supervisors.items():
                try:
                    out += sup.tick(at)
                except Exception:  # one intersection's failure must not stop the others
                    self._counts["tick_failures"] += 1
                    log.exception("control tick failed for intersection %s", ix)
            commands = self._phase_commands(at)
            overrides = self._override_changes(at) if self._override_sinks else []
        self._send(commands, at)
        for plan in out:
            try:
                self._publish(plan)
                self._counts["plans_published"] += 1
            except Exception:  # a sink's failure must not stop control
                self._counts["publish_failures"] += 1
                log.exception("publishing plan %s failed", plan.plan_id)
        for state, sink in [(s, k) for s in overrides for k in self._override_sinks]:
            try:
                sink(state)
            except Exception:  # a sink's failure must not stop control
                log.exception("publishing the override state of %s failed", state.intersection_id)
        return out

    def _override_changes(self, at: datetime) -> list[OverrideState]:
        out = []
        held: list[tuple[IntersectionId, ActiveOverride | None]] = [
            *((ix, sup.override) for ix, sup in self._supervisors.items()),
            *((ix, live.override) for ix, live in self._phases.items()),
        ]
        for ix, active in held:
            if ix not in self._overrides_out or self._overrides_out[ix] != active:
                self._overrides_out[ix] = active
                out.append(override_state_of(ix, active, at))
        return out

    def _phase_commands(self, at: datetime) -> list[tuple[LivePhase, PhaseCommand]]:
        out: list[tuple[LivePhase, PhaseCommand]] = []
        for ix, live in self._phases.items():
            try:
                command = live.tick(at)
            except Exception:  # one intersection's failure must not stop the others
                self._counts["tick_failures"] += 1
                log.exception("phase control tick failed for intersection %s", ix)
                continue
            if command is not None:
                out.append((live, command))
        return out

    def _send(self, commands: list[tuple[LivePhase, PhaseCommand]], at: datetime) -> None:
        for live, command in commands:
            ok = False
            try:
                ok = self._send_command is not None and self._send_command(command)
            except Exception:  # a bus failure must not stop control
                log.exception("sending the phase command for %s failed", live.intersection_id)
            self._counts["phase_commands_sent" if ok else "phase_commands_not_sent"] += 1
            with self._lock:
                live.sent(command, ok)
        refused: list[tuple[IntersectionId, str]] = []
        with self._lock:
            for ix, live in self._phases.items():
                while live.refusals:
                    refused.append((ix, live.refusals.popleft()))
        for ix, why in refused:
            self._counts["phase_commands_refused"] += 1
            for sink in self._refusal_sinks:
                try:
                    sink(ix, why, at)
                except Exception:  # the audit failing must not stop control
                    log.exception("recording a refused command of %s failed", ix)

    def _target(self, ix: IntersectionId, what: str) -> Supervisor:
        sup = self._supervisors.get(ix)
        if sup is None:
            if ix in self._phases:
                text = f"{what} for {printable(ix, 100)} rejected: it runs phase by phase"
                self._log.warning_for(f"phase intersection {what}", "%s", text)
                raise ControlError(text)
            known = ", ".join(self._supervisors) or "none"
            text = (
                f"{what} for unknown intersection '{printable(ix, 100)}' rejected; known: {known}"
            )
            self._log.warning_for(f"unknown intersection {what}", "%s", text)
            raise ControlError(text)
        return sup

    def _apply(self, message: _Message, now: datetime) -> None:
        kind = "SignalState" if isinstance(message, _StateReport) else type(message).__name__
        try:
            if isinstance(message, CameraStatus):
                for sup in self._supervisors.values():
                    sup.on_camera_status(message, now)
                for live in self._phases.values():
                    live.on_camera_status(message, now)
                return
            if isinstance(message, _StateReport):
                self._counts["signal_states"] += 1
                ix = message.state.intersection_id
                if ix not in self._phases:
                    self._log.warning_for(
                        "state unknown ix", "signal state for %s ignored: not a phase-mode "
                        "intersection of this loop", printable(ix, 100),
                    )  # fmt: skip
                    raise ControlError(f"state for {ix!r}: no phase-mode intersection")
                self._phases[ix].on_state(message.state, message.at)
                return
            if isinstance(message, PlanAck):
                self._counts["acks"] += 1
                self._target(message.intersection_id, "ack").on_ack(message, now)
            elif isinstance(message, Override):
                self._counts["overrides"] += 1
                target = self._phases.get(message.intersection_id)
                if target is not None:
                    target.apply_override(message, now)
                else:
                    self._target(message.intersection_id, "override").apply_override(message, now)
            else:
                self._counts["plans_offered"] += 1
                self._target(message.intersection_id, "plan").adopt(message, now)
        except ControlError as exc:  # already logged with its reason where it was found
            self._counts[f"{kind.lower()}_rejected"] += 1
            log.debug("%s rejected: %s", kind, exc)

    # Reporting ---------------------------------------------------------------------------

    def state(self, now: datetime | None = None) -> Mapping[IntersectionId, IntersectionState]:
        """Return a snapshot per intersection (running plan, mode, reason, acks, history)."""
        at = self._clock() if now is None else now
        with self._lock:
            out = {ix: sup.state(at) for ix, sup in self._supervisors.items()}
            out.update({ix: live.state(at) for ix, live in self._phases.items()})
            return out

    def counters(self) -> ControlLoopCounters:
        """Messages taken and rejected, plans published, failures (for health)."""
        with self._lock:
            counts = dict(self._counts)
            counts["zones_refused"] = sum(
                sum(live.zones_refused.values()) for live in self._phases.values()
            )
            return ControlLoopCounters.of(counts)
