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
from controllers.phase.turns import TurnMemory

PHASE_GREEDY = "phase-greedy"
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
    ) -> None:
        super().__init__(step_s)
        self.clear_turns = clear_turns
        self._turners = TurnMemory(turn_zone_max_m)

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
        decision = super().decide(layout, timing, state, view)
        if not self.clear_turns or decision.phase == current:
            return decision
        clearing = self._turners.clearing_phase(layout, current, decision.phase, state.at_s)
        if clearing is None:
            return decision
        why = f"{decision.reason}; permissive turns of {current} clear first"
        return PhaseDecision(clearing, why)
