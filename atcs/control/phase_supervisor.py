"""The engine's side of phase-by-phase control for one intersection (pure, injected time).

Every second :meth:`PhaseSupervisor.decide` asks the controller which phase should be
green, turns the answer into a command with a deadline ``ttl_s`` ahead and passes it
through the engine's envelope (:func:`controllers.phase.envelope.check_command`) before it
leaves. It knows what the signal runs only from the controller's state reports
(:meth:`PhaseSupervisor.on_state`); without a report for ``state_stale_s`` it sends
nothing, so that the signal controller falls back to its local plan when its commands run
out. Times are controller seconds.
"""

from __future__ import annotations

import logging
from collections import Counter

from atcs.types import PhaseId, SegmentId
from controllers.phase.base import PhaseController, exit_blocked
from controllers.phase.commands import PhaseCommand, SignalState
from controllers.phase.envelope import CommandCheck, CommandOutcome, check_command, command_for
from controllers.phase.observe import IntersectionLayout, ZoneView
from controllers.phase.timing import SignalTiming, validate_timing

log = logging.getLogger(__name__)

COMMAND_TTL_S = 5.0
"""Validity of each command (s): the signal falls back this long after the engine stops."""

HEAD_M = 10.0
"""A vehicle standing this close (m) to the stop line in green is not being served."""

STATE_STALE_S = 3.0
"""Without a state report this recent (s) the engine sends no command."""


class PhaseSupervisor:
    """Decides and checks the phase commands of one intersection.

    ``max_wait_s`` bounds how long a phase with demand waits (default: the timing's
    ``recall_wait_s``, the longest cycle the engineers allow); ``state_stale_s`` how old
    (controller seconds) the last state report may be for a command to leave; the first
    command carries ``seq_start + 1`` (a restarted engine starts above its last run's).
    """

    def __init__(
        self,
        timing: SignalTiming,
        layout: IntersectionLayout,
        controller: PhaseController,
        *,
        ttl_s: float = COMMAND_TTL_S,
        max_wait_s: float | None = None,
        state_stale_s: float = STATE_STALE_S,
        seq_start: int = 0,
    ) -> None:
        validate_timing(timing)
        self.timing = timing
        self.layout = layout
        self.controller = controller
        self.ttl_s = ttl_s
        self.state_stale_s = state_stale_s
        self.max_wait_s = timing.recall_wait_s if max_wait_s is None else max_wait_s
        self.outcomes: Counter[str] = Counter()
        self._state: SignalState | None = None
        self._seq = seq_start
        self.last_check: CommandCheck | None = None
        self._served: dict[SegmentId, float] = {}
        self._serving: dict[PhaseId, tuple[SegmentId, ...]] = {
            p.phase_id: tuple(m.segment_id for m in p.movements) for p in layout.phases
        }

    @property
    def state(self) -> SignalState | None:
        """The last state the signal controller reported."""
        return self._state

    def on_state(self, state: SignalState) -> None:
        """Take a state report from the signal controller (older reports are ignored)."""
        if self._state is not None and state.at_s < self._state.at_s:
            return
        if not self._served:
            segments = [m for ms in self._serving.values() for m in ms]
            self._served = dict.fromkeys(segments, state.at_s)
        self._state = state

    def _note_service(self, state: SignalState, now_s: float, view: ZoneView) -> None:
        """Mark the movements the green in force really serves now.

        A movement is served when a phase serving it is green and no vehicle stands at
        its stop line (within :data:`HEAD_M`): a permissive left turn that finds no gap
        keeps waiting. A movement whose exit is jammed back to the junction counts as
        served: forcing its green would move nobody.
        """
        if not state.in_green:
            return
        for movement in self.layout.phase(state.phase).movements:
            zone = view.zones.get(movement.segment_id)
            standing = zone is not None and any(
                v.halted and v.distance_m <= HEAD_M for v in zone.vehicles
            )
            if not standing or exit_blocked(self.layout, view, movement) > 0:
                self._served[movement.segment_id] = now_s

    def _waits(self, now_s: float, view: ZoneView) -> dict[PhaseId, float]:
        """Return, per phase, the longest any of its waiting movements has gone unserved.

        A movement waits when its camera sees vehicles (or is down); it is served
        whenever any phase that serves it is green (a left turn served permissively with
        the through traffic is not waiting).
        """
        out: dict[PhaseId, float] = {}
        for phase in self.layout.phases:
            waits = [
                now_s - self._served.get(m.segment_id, now_s)
                for m in phase.movements
                if m.segment_id not in view.zones or view.zones[m.segment_id].vehicles
            ]
            if waits:
                out[phase.phase_id] = max(waits)
        return out

    def decide(self, now_s: float, view: ZoneView) -> PhaseCommand | None:
        """Return the command to send now (None: nothing to send)."""
        state = self._state
        if state is None or now_s - state.at_s > self.state_stale_s:
            self.outcomes["no_state"] += 1
            return None
        decision = self.controller.decide(self.layout, self.timing, state, view)
        command = command_for(decision, state, now_s, self._seq + 1, self.ttl_s)
        self._note_service(state, now_s, view)
        waited = self._waits(now_s, view)
        check = check_command(
            self.timing, state, command, now_s, waited_s=waited, max_wait_s=self.max_wait_s
        )
        self.outcomes[check.outcome.value] += 1
        self.last_check = check
        if check.outcome is CommandOutcome.REPAIRED:
            log.debug("%s: command repaired: %s", self.timing.intersection_id, check.reasons)
        if check.command is None:
            log.warning("%s: command refused: %s", self.timing.intersection_id, check.reasons)
            return None
        self._seq += 1
        return check.command
