"""Queue-based greedy control on camera zones, phase by phase.

Every ``step_s`` seconds of green (after the minimum green) the phase with the most PCU
detected in its approach zones (queued and approaching alike, each movement by its
weight) gets the green: RESCO's Greedy/MaxWave rule, decided on what the cameras see.
"""

from __future__ import annotations

from controllers.phase.base import (
    DecisionClock,
    PhaseDecision,
    argmax_phase,
    phase_pcu,
    target_phase,
)
from controllers.phase.commands import SignalState
from controllers.phase.observe import IntersectionLayout, ZoneView
from controllers.phase.timing import SignalTiming

PHASE_GREEDY = "phase-greedy"


class PhaseGreedy:
    """The phase with the most vehicles in its zones, decided every ``step_s`` seconds."""

    name = PHASE_GREEDY

    def __init__(self, step_s: float = 5.0) -> None:
        self.step_s = step_s
        self._clock = DecisionClock(step_s)

    def decide(
        self,
        layout: IntersectionLayout,
        timing: SignalTiming,
        state: SignalState,
        view: ZoneView,
    ) -> PhaseDecision:
        """Serve the phase with the most PCU in its zones."""
        current = target_phase(state)
        if not self._clock.due(state, timing.phase(current).green_floor_s):
            return PhaseDecision(current, "hold until the next decision")
        scores = [(p.phase_id, phase_pcu(p, view)) for p in layout.phases]
        best = argmax_phase(scores, current)
        return PhaseDecision(best, f"most vehicles: {dict(scores)[best]:.1f} pcu")
