"""Queue-based greedy control on camera zones, phase by phase.

Every ``step_s`` seconds of green (after the minimum green) the phase with the most PCU
detected in its approach zones (queued and approaching alike, each movement by its
weight) gets the green: RESCO's Greedy/MaxWave rule, decided on what the cameras see.

With turn clearance (:mod:`controllers.phase.turns`), a green that served a turn
permissively and leaves turners standing at the stop line goes first to the phase that
serves that turn protected. The greedy score alone never picks that phase: it serves a
subset of the permissive green's movements, so it never scores higher. By default only
turns from a short link between two close lights (an approach zone of at most
:data:`~controllers.phase.base.SHORT_LINK_M`) are cleared: there a turner stuck in the box
fills the link and locks both lights (ingolstadt21); clearing every permissive turn costs
greedy's frequent changes an extra phase each (cologne1: 39.7 / 44.5 s became 55.2 / 61.4 s
on seeds 1 and 2).
"""

from __future__ import annotations

from atcs.types import PhaseId, SegmentId
from controllers.phase.base import (
    SHORT_LINK_M,
    PhaseDecision,
    SlottedArgmax,
    green_elapsed_s,
    phase_pcu,
    target_phase,
)
from controllers.phase.commands import SignalState
from controllers.phase.observe import IntersectionLayout, PhaseLayout, ZoneView
from controllers.phase.timing import SignalTiming
from controllers.phase.turns import TurnMemory, standing_turns, turn_clearance

PHASE_GREEDY = "phase-greedy"
PHASE_GREEDY_TURN_WAIT = "phase-greedy-turn-wait"
TURN_WAIT_MAX_S = 10.0
"""Seconds a short link's turner may stand at the line in a permissive green (``turn_wait_s``)."""
TURNS_AFTER_S = 4.0
"""Seconds of green after which a turner still standing at the line found no gap."""


class PhaseGreedy(SlottedArgmax):
    """The phase with the most vehicles in its zones, decided every ``step_s`` seconds."""

    name = PHASE_GREEDY
    what = "most vehicles, pcu"

    def __init__(
        self,
        step_s: float = 5.0,
        clear_turns: bool = True,
        turn_zone_max_m: float | None = SHORT_LINK_M,
        turn_wait_s: float | None = None,
    ) -> None:
        super().__init__(step_s)
        self.clear_turns = clear_turns
        self.turn_wait_s = turn_wait_s
        self._turners = TurnMemory(turn_zone_max_m)
        self._zone_max_m = turn_zone_max_m
        self._standing: dict[SegmentId, float] = {}

    def score(self, layout: IntersectionLayout, phase: PhaseLayout, view: ZoneView) -> float:
        """Return the PCU in ``phase``'s zones."""
        return phase_pcu(phase, view)

    def decide(
        self,
        layout: IntersectionLayout,
        timing: SignalTiming,
        state: SignalState,
        view: ZoneView,
    ) -> PhaseDecision:
        """Serve the most-loaded phase; a permissive green's standing turners clear first."""
        current = target_phase(state)
        if self.clear_turns and state.in_green and green_elapsed_s(state) > TURNS_AFTER_S:
            self._turners.note(layout.phase(current), view, state.at_s)
        cut = self._turner_waited(layout, current, state, view)
        if cut is not None:
            return cut
        decision = super().decide(layout, timing, state, view)
        if not self.clear_turns or decision.phase == current:
            return decision
        clearing = self._turners.clearing_phase(layout, current, decision.phase, state.at_s)
        if clearing is None:
            return decision
        why = f"{decision.reason}; permissive turns of {current} clear first"
        return PhaseDecision(clearing, why)

    def _turner_waited(
        self, layout: IntersectionLayout, current: PhaseId, state: SignalState, view: ZoneView
    ) -> PhaseDecision | None:
        """With ``turn_wait_s``: the protected phase once a short link's turner stood that long.

        The head of a permissive movement from a short link standing at the stop line in
        green has found no gap; the turners ahead of it wait inside the junction for the
        opposing stream, which feeds the short link the other way. Held on, the green lets
        both boxes fill (ingolstadt21 seed 10): the turn is served protected instead.
        """
        if self.turn_wait_s is None or not state.in_green:
            self._standing.clear()
            return None
        now = state.at_s
        self._standing = {
            s: max(self._standing.get(s, now), state.green_started_s)
            for s in standing_turns(layout.phase(current), view, self._zone_max_m)
        }
        waited = frozenset(
            s for s, since in self._standing.items() if now - since >= self.turn_wait_s
        )
        protected = turn_clearance(layout, current, current, waited)
        if protected is None:
            return None
        return PhaseDecision(protected, f"a short link's turner stood {self.turn_wait_s:g} s")
