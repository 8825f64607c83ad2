"""Actuated control (NEMA-like) with calls and extensions from the camera zones.

- **Calls**: a phase not in green gets a call when its approach zones detect a vehicle; the
  call is kept (locked) until the phase is served. A phase whose camera is down is always
  called (recall).
- **Extension**: after its minimum green, the green is extended while vehicles move in its
  zones toward the stop line (or, in the first ``startup_s`` of green, while a queue
  stands there to start); it **gaps out** once no such vehicle was seen for
  ``passage_s``, and **maxes out** at its maximum green (the signal controller forces
  that). A phase whose camera is down is held for its time-of-day green.
- **Short maximum (option).** With ``max_green_s`` the engine gaps a green out at that
  many seconds even while vehicles keep coming (below the signal controller's own
  maximum, which still holds). For grids of short links under saturation: a link of
  about 190 m stores some 25 vehicles a lane, which a green of 50 s fills, so a longer
  green only pushes vehicles into a jam while every crossing lane waits a longer cycle.
  On arterial4x4 (five phases, 60 s maximums, cycles near 200 s) a 40 s maximum kept
  every vehicle from standing five minutes (registered as ``actuated-max40``).
- **Next phase**: the next one in ring order that has a call; phases without demand are
  skipped. With no call anywhere the green rests.
"""

from __future__ import annotations

from atcs.types import PhaseId
from controllers.phase.base import PhaseDecision, green_elapsed_s, phase_pcu, target_phase
from controllers.phase.commands import SignalState
from controllers.phase.observe import IntersectionLayout, PhaseLayout, ZoneView
from controllers.phase.timing import SignalTiming, local_greens_s

ACTUATED = "actuated"
ACTUATED_MAX40 = "actuated-max40"
SHORT_MAX_GREEN_S = 40.0
"""The short maximum green of ``actuated-max40`` (s); 30 s cost more than it saved."""


def has_extension_demand(
    phase: PhaseLayout, view: ZoneView, elapsed_s: float, startup_s: float
) -> bool:
    """Tell whether a vehicle in ``phase``'s zones keeps its green going."""
    for m in phase.movements:
        zone = view.zones.get(m.segment_id)
        if zone is None:
            continue
        for v in zone.vehicles:
            if not v.halted or elapsed_s < startup_s:
                return True
    return False


class Actuated:
    """Gap-out / max-out actuated control with skipping (see the module docstring)."""

    name = ACTUATED

    def __init__(
        self, passage_s: float = 2.0, startup_s: float = 4.0, max_green_s: float | None = None
    ) -> None:
        self.passage_s = passage_s
        self.startup_s = startup_s
        self.max_green_s = max_green_s
        if max_green_s is not None:
            self.name = f"{ACTUATED}-max{max_green_s:g}"
        self._calls: set[PhaseId] = set()
        self._green: float | None = None
        self._last_demand_s = float("-inf")

    def decide(
        self,
        layout: IntersectionLayout,
        timing: SignalTiming,
        state: SignalState,
        view: ZoneView,
    ) -> PhaseDecision:
        """Hold while vehicles keep coming; then the next called phase in ring order."""
        current = target_phase(state)
        blind = view.blind(layout)
        for p in layout.phases:
            if p.phase_id in blind or phase_pcu(p, view) > 0:
                self._calls.add(p.phase_id)
        if not state.in_green:
            return PhaseDecision(current, "change in progress")
        self._calls.discard(current)
        elapsed = green_elapsed_s(state)
        if state.green_started_s != self._green:
            self._green = state.green_started_s
            self._last_demand_s = state.green_started_s
        phase = layout.phase(current)
        if current in blind:
            if elapsed < local_greens_s(timing, state.at_s)[current] - 1e-6:
                return PhaseDecision(current, "camera down: time-of-day green")
        elif has_extension_demand(phase, view, elapsed, self.startup_s):
            self._last_demand_s = state.at_s
        if elapsed < timing.phase(current).green_floor_s - 1e-6:
            return PhaseDecision(current, "minimum green")
        short = self.max_green_s is not None and elapsed >= self.max_green_s - 1e-6
        if (
            state.at_s - self._last_demand_s < self.passage_s - 1e-6
            and current not in blind
            and not short
        ):
            return PhaseDecision(current, "extended: vehicles arriving")
        ids = [p.phase_id for p in timing.phases]
        start = ids.index(current)
        for k in range(1, len(ids)):
            candidate = ids[(start + k) % len(ids)]
            if candidate in self._calls:
                why = "short maximum" if short else "gap-out"
                return PhaseDecision(candidate, f"{why}: {candidate} has a call")
        return PhaseDecision(current, "no call elsewhere: rest in green")
