"""What every phase-by-phase controller shares: its decision, its interface, demand counts.

A controller is asked every second (:meth:`PhaseController.decide`) which phase should
show green now; naming the phase in green means "hold it". It sees the layout, the
controller-side timing (so that it knows minimum greens and change intervals), the state
the signal controller last reported and the camera zones now. One instance per
intersection: controllers may keep state between decisions. The engine turns the decision
into a :class:`~controllers.phase.commands.PhaseCommand` and checks it
(:mod:`controllers.phase.envelope`) before it is sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from atcs.types import PhaseId
from controllers.phase.commands import SignalState
from controllers.phase.observe import IntersectionLayout, Movement, PhaseLayout, ZoneView
from controllers.phase.timing import SignalTiming

SPILLBACK_M = 15.0
"""A queued vehicle this close (m) to the junction in an exit zone blocks the exit."""
SHORT_LINK_M = 30.0
"""A camera zone this short (m) spans a whole link between two junctions a few metres
apart: it holds a vehicle or two per lane, so one turner stuck in the box ahead of it
fills it and the light upstream locks too."""


@dataclass(frozen=True, slots=True)
class PhaseDecision:
    """The phase that should be green now (the one in green: hold it) and why."""

    phase: PhaseId
    reason: str


class PhaseController(Protocol):
    """A phase-by-phase controller for one intersection."""

    name: str

    def decide(
        self,
        layout: IntersectionLayout,
        timing: SignalTiming,
        state: SignalState,
        view: ZoneView,
    ) -> PhaseDecision:
        """Return the phase that should be green now."""
        ...


def target_phase(state: SignalState) -> PhaseId:
    """Return the phase in green, or the one the signal is changing to."""
    return state.next_phase if state.next_phase is not None else state.phase


def exit_blocked(layout: IntersectionLayout, view: ZoneView, movement: Movement) -> float:
    """Share (0..1) of ``movement``'s exits whose queue reaches back to the junction."""
    if not movement.exits:
        return 0.0
    blocked = 0
    for exit_id in movement.exits:
        zone = view.zones.get(exit_id)
        if zone is None:
            continue
        lanes = max(1, layout.exit_lanes.get(exit_id, zone.lanes))
        near = sum(1 for v in zone.vehicles if v.halted and v.distance_m <= SPILLBACK_M)
        if near >= lanes:
            blocked += 1
    return blocked / len(movement.exits)


def movement_pcu(
    view: ZoneView, movement: Movement, *, halted_only: bool = False, within_m: float = 1e9
) -> float:
    """PCU detected on ``movement``'s zone (queued only, within ``within_m`` of the line)."""
    zone = view.zones.get(movement.segment_id)
    if zone is None:
        return 0.0
    return sum(
        v.pcu for v in zone.vehicles if v.distance_m <= within_m and (v.halted or not halted_only)
    )


def phase_pcu(
    phase: PhaseLayout,
    view: ZoneView,
    *,
    halted_only: bool = False,
    within_m: float = 1e9,
    layout: IntersectionLayout | None = None,
) -> float:
    """Weighted PCU a phase could serve; with ``layout``, blocked exits count out."""
    total = 0.0
    for m in phase.movements:
        share = 1.0 - exit_blocked(layout, view, m) if layout is not None else 1.0
        total += (
            m.weight * share * movement_pcu(view, m, halted_only=halted_only, within_m=within_m)
        )
    return total


def argmax_phase(scores: Iterable[tuple[PhaseId, float]], prefer: PhaseId) -> PhaseId:
    """Return the phase with the highest score; ``prefer`` wins ties."""
    best, best_score = prefer, float("-inf")
    for phase_id, score in scores:
        if score > best_score + 1e-9 or (abs(score - best_score) <= 1e-9 and phase_id == prefer):
            best, best_score = phase_id, score
    return best


def green_elapsed_s(state: SignalState) -> float:
    """Seconds the phase in green has been green (0 during a change)."""
    return state.green_elapsed_s if state.in_green else 0.0


class DecisionClock:
    """When a slotted controller decides.

    ``every_s`` seconds into each green, then again every ``every_s`` seconds while the
    same green lasts (never before its minimum).
    """

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._green: float | None = None
        self._next = 0.0

    def due(self, state: SignalState, floor_s: float) -> bool:
        """Tell whether a decision is due at ``state``; if so, schedule the next one."""
        if not state.in_green:
            return False
        if state.green_started_s != self._green:
            self._green = state.green_started_s
            self._next = state.green_started_s + max(floor_s, self.every_s)
        if state.at_s + 1e-6 >= self._next:
            self._next = state.at_s + self.every_s
            return True
        return False


class SlottedArgmax:
    """A controller that serves, every ``every_s`` seconds of green, the best-scored phase.

    Subclasses give :attr:`name`, :attr:`what` (for the reason) and :meth:`score`.
    """

    name = "slotted"
    what = "score"

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._clock = DecisionClock(every_s)

    def score(self, layout: IntersectionLayout, phase: PhaseLayout, view: ZoneView) -> float:
        """Return the score of ``phase`` (higher is served first)."""
        raise NotImplementedError

    def decide(
        self,
        layout: IntersectionLayout,
        timing: SignalTiming,
        state: SignalState,
        view: ZoneView,
    ) -> PhaseDecision:
        """Serve the best-scored phase at each decision; hold in between."""
        current = target_phase(state)
        if not self._clock.due(state, timing.phase(current).green_floor_s):
            return PhaseDecision(current, "hold until the next decision")
        scores = [(p.phase_id, self.score(layout, p, view)) for p in layout.phases]
        best = argmax_phase(scores, current)
        return PhaseDecision(best, f"{self.what} {dict(scores)[best]:.1f}")
