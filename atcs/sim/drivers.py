"""Who drives each light in a closed-loop run: one driver per light and per kind of run.

- :class:`CycleDriver`: the engine's cycle plans (supervisor -> plan payloads -> the
  cycle :class:`~atcs.sim.bridge.SignalBridge`), audited by cycle;
- :class:`PhaseDriver`: the engine's phase-by-phase control (cameras -> controller ->
  engine envelope -> command -> :class:`~atcs.sim.phase_site.PhaseBridge`; the bridge's
  state reports go back to the engine), audited by :class:`PhaseAudit`;
- :class:`PeerDriver`: RESCO's MaxPressure or Greedy, on its own (3 s yellow, no all-red)
  or as commands to the same signal controller as the engine ("inside the envelope");
- :class:`ProgramDriver`: the network's own program, untouched.

Every driver returns, each step, the state string to show (None: leave the light alone).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from atcs.bus.messages import MessageMeta
from atcs.bus.payloads import decode_plan_ack, encode_timing_plan
from atcs.bus.phase_payloads import (
    Clock,
    decode_signal_state,
    encode_phase_command,
)
from atcs.control.phase_supervisor import PhaseSupervisor
from atcs.control.supervisor import Supervisor
from atcs.errors import ControlError, PayloadError
from atcs.sim.audit import SignalAudit
from atcs.sim.bridge import SignalBridge
from atcs.sim.clock import SimClock
from atcs.sim.engine import CountedController
from atcs.sim.peers import PeerRule, RescoSignal, RescoTiming, best_phase, phase_scores
from atcs.sim.phase_audit import PhaseAudit
from atcs.sim.phase_site import PhaseBridge
from atcs.sim.specs import SimIntersection
from atcs.types import SegmentId, SegmentMetrics, SiteId
from controllers.phase.base import target_phase
from controllers.phase.commands import CommandKind, PhaseCommand
from controllers.phase.observe import ZoneView

log = logging.getLogger(__name__)

ZonesNow = Callable[[], ZoneView]
"""Returns the camera zones as seen now (computed at most once per step)."""

Observation = Callable[[float], dict[str, tuple[int, int]]]
"""Returns RESCO's per-lane observation (queued, approaching) for a range (m)."""


class Driver(Protocol):
    """Drives one light; :attr:`audit` checks what SUMO showed."""

    audit: SignalAudit | PhaseAudit

    def step(self, now_s: float, zones: ZonesNow, observe: Observation) -> str | None:
        """Return the state string to show from ``now_s`` (None: leave the light alone)."""
        ...

    def on_windows(self, windows: Iterable[SegmentMetrics]) -> None:
        """Take closed measurement windows."""
        ...

    def observe(self, at_s: float, state: str, dt_s: float) -> None:
        """Audit the state SUMO showed from ``at_s`` for ``dt_s`` seconds."""
        ...

    def cameras_down(self, segments: frozenset[SegmentId]) -> None:
        """Take the set of segments whose camera is down now."""
        ...

    def plans(self) -> dict[str, int]:
        """Cycle plans published, applied, rejected."""
        ...

    def verdicts(self) -> dict[str, int]:
        """Return the engine envelope's verdicts (plans or commands)."""
        ...


class _Base:
    """Defaults every driver shares: audit feeding, no plans, no verdicts."""

    audit: SignalAudit | PhaseAudit

    def on_windows(self, windows: Iterable[SegmentMetrics]) -> None:
        """Ignore windows (only cycle plans use them)."""

    def observe(self, at_s: float, state: str, dt_s: float) -> None:
        """Feed the audit."""
        if isinstance(self.audit, SignalAudit):
            self.audit.observe(at_s, state, dt_s)
        else:
            self.audit.observe(at_s, state)

    def cameras_down(self, segments: frozenset[SegmentId]) -> None:
        """Ignore camera health."""

    def plans(self) -> dict[str, int]:
        """No cycle plans."""
        return {}

    def verdicts(self) -> dict[str, int]:
        """No envelope verdicts."""
        return {}


class ProgramDriver(_Base):
    """The network's own program: nothing to drive."""

    def __init__(self, audit: SignalAudit) -> None:
        self.audit: SignalAudit | PhaseAudit = audit

    def step(self, now_s: float, zones: ZonesNow, observe: Observation) -> str | None:
        """Leave the light to its program."""
        return None


class PhaseDriver(_Base):
    """The engine's phase-by-phase control of one light, through the contract's payloads."""

    def __init__(
        self, supervisor: PhaseSupervisor, bridge: PhaseBridge, audit: PhaseAudit, clock: Clock
    ) -> None:
        self.supervisor = supervisor
        self.bridge = bridge
        self.audit: SignalAudit | PhaseAudit = audit
        self._clock = clock
        self.sent = 0

    def step(self, now_s: float, zones: ZonesNow, observe: Observation) -> str | None:
        """Engine decides on the last reported state; the controller runs the command."""
        ix = self.supervisor.timing.intersection_id
        if self.supervisor.state is not None:
            command = self.supervisor.decide(now_s, zones())
            if command is not None:
                self.sent += 1
                self.bridge.receive_payload(encode_phase_command(command, self._clock), now_s)
        text, state = self.bridge.step(now_s)
        try:
            report = decode_signal_state(self.bridge.state_payload(state), ix, self._clock)
        except PayloadError as exc:  # pragma: no cover - our own encoder
            log.warning("%s: state payload refused: %s", ix, exc)
        else:
            self.supervisor.on_state(report)
        return text

    def cameras_down(self, segments: frozenset[SegmentId]) -> None:
        """Put the phases fed by a down camera on recall (the controller's detector fault)."""
        for phase in self.supervisor.layout.phases:
            blind = any(m.segment_id in segments for m in phase.movements)
            self.bridge.executor.set_recall(phase.phase_id, blind)

    def verdicts(self) -> dict[str, int]:
        """Return the engine envelope's verdicts on the commands."""
        return dict(self.supervisor.outcomes)


class PeerDriver(_Base):
    """RESCO's MaxPressure or Greedy on one light, every ``timing.step_s`` seconds.

    Outside the envelope (no ``bridge``) a change shows ``timing.yellow_s`` of yellow, no
    all-red.
    """

    def __init__(
        self,
        ix: SimIntersection,
        rule: PeerRule,
        timing: RescoTiming,
        audit: PhaseAudit,
        *,
        bridge: PhaseBridge | None = None,
        downstream: Mapping[str, str] | None = None,
    ) -> None:
        self.ix = ix
        self.downstream = downstream or {}
        self.rule = rule
        self.step_s = timing.step_s
        self.audit: SignalAudit | PhaseAudit = audit
        self.bridge = bridge
        self.signal = RescoSignal(ix, timing.yellow_s)
        self._next_s: float | None = None
        self._seq = 0

    def step(self, now_s: float, zones: ZonesNow, observe: Observation) -> str | None:
        """Decide on the step boundaries; show RESCO's states or run the controller."""
        if self._next_s is None:
            self._next_s = now_s
        if now_s + 1e-6 >= self._next_s:
            self._next_s += self.step_s
            scores = phase_scores(
                self.ix, self.rule, observe(self.rule.distance_m), self.downstream
            )
            self._choose(best_phase(scores), now_s)
        if self.bridge is None:
            return self.signal.state(now_s)
        text, _ = self.bridge.step(now_s)
        return text

    def _choose(self, index: int, now_s: float) -> None:
        if self.bridge is None:
            self.signal.choose(index, now_s)
            return
        phase = self.ix.signals[index].phase_id
        state = self.bridge.executor.state
        deadline = now_s + self.step_s + 1.0
        self._seq += 1
        if phase == target_phase(state):
            command = PhaseCommand(
                state.intersection_id,
                CommandKind.EXTEND,
                phase,
                now_s,
                deadline,
                deadline,
                self._seq,
            )
        else:
            command = PhaseCommand(
                state.intersection_id,
                CommandKind.SERVE_NEXT,
                phase,
                now_s,
                deadline,
                None,
                self._seq,
            )
        self.bridge.receive(command, now_s)


class CycleDriver(_Base):
    """The engine's cycle plans: supervisor -> plan payloads -> bridge -> ack payloads."""

    def __init__(
        self,
        supervisor: Supervisor,
        bridge: SignalBridge,
        audit: SignalAudit,
        *,
        clock: SimClock,
        message: Callable[[], MessageMeta],
        site_id: SiteId,
        counted: CountedController,
    ) -> None:
        self._counted = counted
        self.supervisor = supervisor
        self._site_id = site_id
        self.bridge = bridge
        self.audit: SignalAudit | PhaseAudit = audit
        self._clock = clock
        self._message = message
        self.plans_sent: Counter[str] = Counter(
            dict.fromkeys(("published", "applied", "rejected"), 0)
        )

    def step(self, now_s: float, zones: ZonesNow, observe: Observation) -> str | None:
        """Run the supervisor's tick, carry plans and acks, return the state to show."""
        sup, bridge = self.supervisor, self.bridge
        acks: list[bytes] = []
        for plan in sup.tick(self._clock.at(now_s)):
            self.plans_sent["published"] += 1
            payload = encode_timing_plan(self._site_id, plan, self._message())
            acks += bridge.receive(payload, now_s)
        state, applied = bridge.step(now_s)
        for payload in acks + applied:
            self._ack(payload, now_s)
        return state

    def _ack(self, payload: bytes, now_s: float) -> None:
        sup = self.supervisor
        try:
            ack = decode_plan_ack(payload, sup.spec.intersection_id)
            sup.on_ack(ack, self._clock.at(now_s))
        except (PayloadError, ControlError) as exc:
            log.warning("%s: ack not taken: %s", sup.spec.intersection_id, exc)
            return
        self.plans_sent[ack.result.value] += 1

    def on_windows(self, windows: Iterable[SegmentMetrics]) -> None:
        """Hand closed windows to the supervisor."""
        self.supervisor.on_metrics(windows)

    def plans(self) -> dict[str, int]:
        """Plans published and acks by result."""
        return dict(self.plans_sent)

    def verdicts(self) -> dict[str, int]:
        """Return the envelope's verdicts on the controller's proposals."""
        return dict(self._counted.outcomes)
