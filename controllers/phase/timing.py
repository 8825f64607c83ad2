"""What a phase-by-phase signal controller must keep: its phases, clearances and local plan.

A :class:`SignalTiming` is the controller-side description of one intersection for the
phase-by-phase (acyclic) mode: per phase its minimum and maximum green, walk and
pedestrian clearance; per ordered pair of phases the change interval (yellow, then
all-red) between them; and the local time-of-day plans the controller falls back to. The
:class:`~controllers.phase.executor.SignalExecutor` enforces it whatever it is told;
:func:`timing_problems` lists what makes a description unusable (durations in seconds).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from atcs.errors import ControlError
from atcs.types import IntersectionId, PhaseId
from controllers.phase.clearance import ALL_RED_FLOOR_S, YELLOW_FLOOR_S
from controllers.plans import plan_in_force, zone_named
from controllers.spec import FallbackPlan

_EPS = 1e-6


class Interval(enum.StrEnum):
    """The interval a phase shows, as in SPaT.

    Vehicle green (with walk and pedestrian clearance at its start for a phase with a
    crossing), then yellow and all-red.
    """

    WALK = "walk"
    PED_CLEAR = "ped_clear"
    GREEN = "green"
    YELLOW = "yellow"
    ALL_RED = "all_red"

    @property
    def vehicle_green(self) -> bool:
        """Tell whether vehicles of the phase see green in this interval."""
        return self in (Interval.WALK, Interval.PED_CLEAR, Interval.GREEN)


@dataclass(frozen=True, slots=True)
class ExecPhase:
    """One phase: green bounds, walk and pedestrian clearance (s), the signal groups it serves.

    ``signal_groups`` name what the phase shows green (a group served protected and a
    group served permissive are different names); a change that ends any of them needs a
    yellow and an all-red.
    """

    phase_id: PhaseId
    min_green_s: float
    max_green_s: float
    walk_s: float = 0.0
    ped_clear_s: float = 0.0
    signal_groups: frozenset[str] = frozenset()

    @property
    def green_floor_s(self) -> float:
        """Shortest green (s): the min green, or walk plus pedestrian clearance if longer."""
        return max(self.min_green_s, self.walk_s + self.ped_clear_s)


@dataclass(frozen=True, slots=True)
class Change:
    """The change interval from one phase's green to another's: yellow then all-red (s).

    Both are 0 only where the change ends no signal group (an overlap continues).
    """

    yellow_s: float
    all_red_s: float

    @property
    def total_s(self) -> float:
        """Yellow plus all-red (s)."""
        return self.yellow_s + self.all_red_s


@dataclass(frozen=True, slots=True)
class SignalTiming:
    """Everything the phase-by-phase controller enforces on its own (durations in s).

    ``phases`` are in ring order (the order of the local plans); ``changes`` hold one
    entry per ordered pair of distinct phases; ``local_plans`` are the time-of-day plans
    (a green per phase) run when no valid command is in force, chosen by local time in
    ``timezone``. ``recall_wait_s`` bounds how long a phase on recall (its camera is
    down) waits before it is served next; ``max_horizon_s`` how far ahead a command's
    deadline may lie (further deadlines are cut to it).
    """

    intersection_id: IntersectionId
    phases: tuple[ExecPhase, ...]
    changes: Mapping[tuple[PhaseId, PhaseId], Change]
    local_plans: tuple[FallbackPlan, ...]
    timezone: str = "UTC"
    recall_wait_s: float = 120.0
    max_horizon_s: float = 30.0

    def phase(self, phase_id: PhaseId) -> ExecPhase:
        """Return the phase called ``phase_id``; :class:`ControlError` when unknown."""
        for p in self.phases:
            if p.phase_id == phase_id:
                return p
        raise ControlError(f"{self.intersection_id}: no phase {phase_id!r}")

    def change(self, from_id: PhaseId, to_id: PhaseId) -> Change:
        """Return the change interval from ``from_id`` to ``to_id``."""
        try:
            return self.changes[(from_id, to_id)]
        except KeyError:
            raise ControlError(
                f"{self.intersection_id}: no change interval from {from_id!r} to {to_id!r}"
            ) from None

    def ring_next(self, phase_id: PhaseId) -> PhaseId:
        """Return the phase after ``phase_id`` in ring order."""
        ids = [p.phase_id for p in self.phases]
        return ids[(ids.index(phase_id) + 1) % len(ids)]


def local_greens_s(timing: SignalTiming, at_s: float) -> dict[PhaseId, float]:
    """Greens (s) of the local plan in force at ``at_s`` (controller seconds), within bounds."""
    when = datetime.fromtimestamp(at_s, UTC)
    plan = plan_in_force(
        timing.local_plans,
        zone_named(timing.timezone, timing.intersection_id),
        when,
        timing.intersection_id,
    )
    return {
        p.phase_id: min(p.max_green_s, max(p.green_floor_s, plan.greens_s[p.phase_id]))
        for p in timing.phases
    }


def _bad(value: float) -> bool:
    return not (isinstance(value, int | float) and math.isfinite(value)) or value < 0


def _phase_problems(i: int, p: ExecPhase) -> list[str]:
    at = f"phases[{i}] ({p.phase_id})"
    values = (p.min_green_s, p.max_green_s, p.walk_s, p.ped_clear_s)
    if any(_bad(v) for v in values):
        return [f"{at}: durations must be finite and >= 0"]
    out = []
    if p.max_green_s <= 0:
        out.append(f"{at}: max green must be positive")
    if p.green_floor_s > p.max_green_s + _EPS:
        out.append(
            f"{at}: min green / walk + clearance {p.green_floor_s:g} s exceeds max green "
            f"{p.max_green_s:g} s"
        )
    return out


def _change_problems(timing: SignalTiming, a: ExecPhase, b: ExecPhase) -> list[str]:
    at = f"changes[{a.phase_id}->{b.phase_id}]"
    change = timing.changes.get((a.phase_id, b.phase_id))
    if change is None:
        return [f"{at}: missing"]
    if _bad(change.yellow_s) or _bad(change.all_red_s):
        return [f"{at}: durations must be finite and >= 0"]
    ending = a.signal_groups - b.signal_groups
    if change.yellow_s <= _EPS and change.all_red_s <= _EPS and not ending:
        return []
    out = []
    if change.yellow_s < YELLOW_FLOOR_S - _EPS:
        out.append(f"{at}: yellow {change.yellow_s:g} s < {YELLOW_FLOOR_S:g} s")
    if change.all_red_s < ALL_RED_FLOOR_S - _EPS:
        out.append(f"{at}: all-red {change.all_red_s:g} s < {ALL_RED_FLOOR_S:g} s")
    return out


def timing_problems(timing: SignalTiming) -> list[str]:
    """Everything that makes ``timing`` unusable (empty: nothing)."""
    out: list[str] = []
    if len(timing.phases) < 2:
        out.append("phases: at least two are needed")
    ids = [p.phase_id for p in timing.phases]
    if len(set(ids)) != len(ids):
        out.append(f"phases: duplicate ids in {ids}")
    for i, p in enumerate(timing.phases):
        out += _phase_problems(i, p)
    for a in timing.phases:
        for b in timing.phases:
            if a.phase_id != b.phase_id:
                out += _change_problems(timing, a, b)
    if not timing.local_plans:
        out.append("local_plans: at least one time-of-day plan is needed")
    for k, plan in enumerate(timing.local_plans):
        for i, p in enumerate(timing.phases):
            green = plan.greens_s.get(p.phase_id)
            if green is None or _bad(green):
                out.append(f"local_plans[{k}].{p.phase_id}: missing or not a duration")
            elif not out and not p.green_floor_s - _EPS <= green <= p.max_green_s + _EPS:
                out.append(
                    f"local_plans[{k}].{p.phase_id}: {green:g} s outside "
                    f"[{p.green_floor_s:g}, {p.max_green_s:g}] s (phases[{i}])"
                )
    for name, value in (
        ("recall_wait_s", timing.recall_wait_s),
        ("max_horizon_s", timing.max_horizon_s),
    ):
        if _bad(value) or value <= 0:
            out.append(f"{name}: must be a positive duration")
    return out


def validate_timing(timing: SignalTiming) -> None:
    """Raise :class:`ControlError` listing every problem of ``timing``."""
    problems = timing_problems(timing)
    if problems:
        raise ControlError(f"{timing.intersection_id}: " + "; ".join(problems))
