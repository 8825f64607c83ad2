"""Queue-based greedy control on camera zones, phase by phase.

Every ``step_s`` seconds of green (after the minimum green) the phase with the most PCU
detected in its approach zones (queued and approaching alike, each movement by its
weight) gets the green: RESCO's Greedy/MaxWave rule, decided on what the cameras see.
"""

from __future__ import annotations

from controllers.phase.base import SlottedArgmax, phase_pcu
from controllers.phase.observe import IntersectionLayout, PhaseLayout, ZoneView

PHASE_GREEDY = "phase-greedy"


class PhaseGreedy(SlottedArgmax):
    """The phase with the most vehicles in its zones, decided every ``step_s`` seconds."""

    name = PHASE_GREEDY
    what = "most vehicles, pcu"

    def __init__(self, step_s: float = 5.0) -> None:
        super().__init__(step_s)

    def score(self, layout: IntersectionLayout, phase: PhaseLayout, view: ZoneView) -> float:
        """Return the PCU in ``phase``'s zones."""
        return phase_pcu(phase, view)
