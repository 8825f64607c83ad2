"""The safety envelope: no plan leaves the engine unless it keeps every rule.

:func:`enforce` takes the plan a controller (or an operator) proposes, the plan running now
and the decision time, and returns a :class:`SafetyDecision`: the plan that may run, and
whether it was accepted as is, repaired to the nearest safe plan, or refused (the running
plan stays). The rules are listed in :mod:`controllers.rules`; :func:`check` lists the ones
a plan breaks.

Repair, in order: yellows and all-reds below their floors are raised to the configured
values; each green is clamped into its box (min green or pedestrian clearance, max green,
and within ``max_split_step_s`` of the running green); if the cycle then falls outside its
allowed range (cycle bounds, within ``max_cycle_step_s`` of the running cycle) the greens
are rescaled in proportion, inside their boxes, to the nearest allowed cycle; the cycle is
set to the sum of the phase durations; the offset is wrapped into the cycle; the plan is
scheduled at the next cycle boundary of the running plan. A plan with the wrong phases or
non-finite timings cannot be repaired and is refused.

Every plan that may run is then put on whole seconds (:func:`controllers.seconds.whole_seconds`,
kept only when it still keeps every rule), so a signal controller never rounds; rounding
alone is not a repair: a safe proposal off whole seconds is accepted, rounded.
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass
from datetime import datetime

from atcs.errors import ControlError, SafetyError
from atcs.types import PhaseTiming, TimingPlan
from controllers.allocate import allocate
from controllers.limits import (
    EPS_S,
    all_red_floor_s,
    green_floor_s,
    validate_spec,
    yellow_floor_s,
)
from controllers.plans import (
    BOUNDARY_TOLERANCE_S,
    make_plan_id,
    next_cycle_boundary,
    require_aware,
    wrap_offset_s,
)
from controllers.registry import controller_names, known_plan_source
from controllers.rules import check, steps_apply, structure_problems
from controllers.seconds import whole_seconds
from controllers.spec import IntersectionSpec

__all__ = ["SafetyDecision", "SafetyOutcome", "check", "enforce"]

logger = logging.getLogger(__name__)

_SNAP_S = 1e-9
"""Slack (s) below which a green sum counts as inside its range; far below ``EPS_S``."""


class SafetyOutcome(enum.Enum):
    """What the envelope did with a proposed plan."""

    ACCEPTED = "accepted"
    REPAIRED = "repaired"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class SafetyDecision:
    """The envelope's verdict on one proposed plan.

    ``plan`` is the plan that may run: the proposal (accepted), its nearest safe version
    (repaired) or the running plan (refused). ``reasons`` say what was repaired or why the
    proposal was refused.
    """

    plan: TimingPlan
    outcome: SafetyOutcome
    reasons: tuple[str, ...]
    proposed: TimingPlan

    @property
    def changed(self) -> bool:
        """True when a new plan is to be sent (accepted or repaired)."""
        return self.outcome is not SafetyOutcome.REFUSED


@dataclass(frozen=True, slots=True)
class _Box:
    """Allowed greens per phase and the allowed cycle range, all in seconds."""

    lo: list[float]
    hi: list[float]
    cycle_lo: float
    cycle_hi: float


def _box(spec: IntersectionSpec, running: TimingPlan | None) -> _Box:
    lo = [green_floor_s(p) for p in spec.phases]
    hi = [p.max_green_s for p in spec.phases]
    cycle_lo, cycle_hi = spec.cycle_min_s, spec.cycle_max_s
    if running is not None:
        step = spec.max_split_step_s
        for i, timing in enumerate(running.phases):
            low, high = max(lo[i], timing.green_s - step), min(hi[i], timing.green_s + step)
            if low > high:
                low = high = min(hi[i], max(lo[i], timing.green_s))
            lo[i], hi[i] = low, high
        cycle_lo = max(cycle_lo, running.cycle_s - spec.max_cycle_step_s)
        cycle_hi = min(cycle_hi, running.cycle_s + spec.max_cycle_step_s)
    return _Box(lo, hi, cycle_lo, cycle_hi)


def _intergreens(
    spec: IntersectionSpec, proposed: TimingPlan, running: TimingPlan | None, box: _Box
) -> tuple[list[tuple[float, float]], float, float] | None:
    """Yellow and all-red per phase and the range of the green sum they leave, or None.

    Tried in order: the proposal's (raised to their floors), the configured ones, the
    running plan's (always feasible when the running plan keeps the rules).
    """
    kept = [
        (max(t.yellow_s, yellow_floor_s(p)), max(t.all_red_s, all_red_floor_s(p)))
        for p, t in zip(spec.phases, proposed.phases, strict=True)
    ]
    candidates = [kept, [(yellow_floor_s(p), all_red_floor_s(p)) for p in spec.phases]]
    if running is not None:
        candidates.append(
            [
                (max(t.yellow_s, yellow_floor_s(p)), max(t.all_red_s, all_red_floor_s(p)))
                for p, t in zip(spec.phases, running.phases, strict=True)
            ]
        )
    for option in candidates:
        lost = math.fsum(y + r for y, r in option)
        low = max(box.cycle_lo - lost, math.fsum(box.lo))
        high = min(box.cycle_hi - lost, math.fsum(box.hi))
        if low <= high + _SNAP_S:
            return option, low, max(low, high)
    return None


def _describe_clamp(
    spec: IntersectionSpec, i: int, value: float, bounded: float, stepped: bool
) -> str:
    phase = spec.phases[i]
    side = "raised" if bounded > value else "lowered"
    step = f", step {spec.max_split_step_s:g} s from the running green" if stepped else ""
    return (
        f"phase {phase.phase_id}: green {value:g} s {side} to {bounded:g} s "
        f"(limits {green_floor_s(phase):g}-{phase.max_green_s:g} s{step})"
    )


def _repair(
    spec: IntersectionSpec, proposed: TimingPlan, running: TimingPlan | None, now: datetime
) -> tuple[TimingPlan, list[str]] | None:
    """Return the nearest safe plan to ``proposed`` and the changes; None if there is none."""
    stepped = running if steps_apply(spec, running) else None
    box = _box(spec, stepped)
    found = _intergreens(spec, proposed, stepped, box)
    if found is None:
        return None
    intergreens, green_lo, green_hi = found
    changes: list[str] = []
    for phase, timing, (yellow, all_red) in zip(
        spec.phases, proposed.phases, intergreens, strict=True
    ):
        if abs(timing.yellow_s - yellow) > EPS_S or abs(timing.all_red_s - all_red) > EPS_S:
            changes.append(
                f"phase {phase.phase_id}: yellow/all-red {timing.yellow_s:g}/{timing.all_red_s:g}"
                f" s set to {yellow:g}/{all_red:g} s"
            )
    asked = [t.green_s for t in proposed.phases]
    greens = [min(h, max(low, g)) for g, low, h in zip(asked, box.lo, box.hi, strict=True)]
    changes += [
        _describe_clamp(spec, i, a, g, stepped is not None)
        for i, (a, g) in enumerate(zip(asked, greens, strict=True))
        if abs(a - g) > EPS_S
    ]
    total = math.fsum(greens)
    if total < green_lo - _SNAP_S or total > green_hi + _SNAP_S:
        target = green_lo if total < green_lo else green_hi
        greens = allocate(target, box.lo, box.hi, greens)
        lost = math.fsum(y + r for y, r in intergreens)
        changes.append(
            f"greens rescaled: cycle {total + lost:g} s -> {math.fsum(greens) + lost:g} s to fit "
            f"[{box.cycle_lo:g}, {box.cycle_hi:g}] s"
            + (" (cycle bounds and step from the running cycle)" if stepped else " (cycle bounds)")
        )
    phases = tuple(
        PhaseTiming(t.phase_id, g, y, r)
        for t, g, (y, r) in zip(proposed.phases, greens, intergreens, strict=True)
    )
    cycle_s = math.fsum(p.duration_s for p in phases)
    own_sum_s = math.fsum(t.duration_s for t in proposed.phases)
    if abs(proposed.cycle_s - own_sum_s) > EPS_S:
        changes.append(
            f"cycle {proposed.cycle_s:g} s was not the sum of its phase durations {own_sum_s:g} s"
        )
    offset = wrap_offset_s(proposed.offset_s, cycle_s)
    if abs(offset - proposed.offset_s) > EPS_S:
        changes.append(f"offset {proposed.offset_s:g} s wrapped to {offset:g} s")
    valid_from = next_cycle_boundary(running, now)
    if abs((valid_from - proposed.valid_from).total_seconds()) > BOUNDARY_TOLERANCE_S:
        changes.append(
            f"valid_from moved to {valid_from.isoformat()}, the next cycle boundary of the "
            "running plan"
        )
    if not changes:
        return proposed, []
    plan = TimingPlan(
        intersection_id=proposed.intersection_id,
        plan_id=make_plan_id(
            spec.intersection_id,
            controller=proposed.controller,
            mode=proposed.mode,
            phases=phases,
            offset_s=offset,
            valid_from=valid_from,
        ),
        controller=proposed.controller,
        mode=proposed.mode,
        cycle_s=cycle_s,
        offset_s=offset,
        phases=phases,
        valid_from=valid_from,
        reason=f"{proposed.reason} [repaired by the safety envelope]",
        data_age_s=proposed.data_age_s,
        extra=proposed.extra,
    )
    return plan, changes


def _refuse(
    spec: IntersectionSpec, proposed: TimingPlan, running: TimingPlan | None, reasons: list[str]
) -> SafetyDecision:
    text = "; ".join(reasons)
    if running is None:
        logger.error(
            "intersection %s: plan %s from %s refused and no plan runs: %s",
            spec.intersection_id,
            proposed.plan_id,
            proposed.controller,
            text,
        )
        raise SafetyError(
            f"intersection {spec.intersection_id!r}: plan {proposed.plan_id!r} cannot be "
            f"made safe and no plan is running: {text}"
        )
    logger.warning(
        "intersection %s: plan %s from %s refused, plan %s keeps running: %s",
        spec.intersection_id,
        proposed.plan_id,
        proposed.controller,
        running.plan_id,
        text,
    )
    return SafetyDecision(running, SafetyOutcome.REFUSED, tuple(reasons), proposed)


def enforce(
    spec: IntersectionSpec, proposed: TimingPlan, running: TimingPlan | None, now: datetime
) -> SafetyDecision:
    """Decide what may run after ``proposed`` was proposed at ``now`` over ``running``.

    Raises :class:`ControlError` for bad input (a spec that cannot satisfy its limits, a
    plan for another intersection or from an unknown controller, a naive ``now``) and
    :class:`SafetyError` when the plan must be refused and no plan is running.
    """
    validate_spec(spec)
    require_aware(now)
    if not known_plan_source(proposed.controller):
        raise ControlError(
            f"plan {proposed.plan_id!r} comes from unknown controller {proposed.controller!r}; "
            f"known: {', '.join([*controller_names(), 'manual'])}"
        )
    if proposed.intersection_id != spec.intersection_id:
        raise ControlError(
            f"plan {proposed.plan_id!r} is for intersection {proposed.intersection_id!r}, "
            f"not {spec.intersection_id!r}"
        )
    broken = structure_problems(spec, proposed)
    if broken:
        return _refuse(spec, proposed, running, broken)
    repaired = _repair(spec, proposed, running, now)
    if repaired is None:
        return _refuse(spec, proposed, running, ["no plan within the limits and step limits"])
    plan, changes = repaired
    left = check(spec, plan, running)
    if left:
        return _refuse(spec, proposed, running, ["repair left violations: " + "; ".join(left)])
    notes = []
    if running is not None and not steps_apply(spec, running):
        notes.append(f"step limits waived: running plan {running.plan_id} breaks the rules")
    whole = whole_seconds(spec, plan, running)
    if whole is not plan:
        plan = whole
        notes.append("durations rounded to whole seconds")
    if changes:
        logger.warning(
            "intersection %s: plan %s from %s repaired as %s: %s",
            spec.intersection_id,
            proposed.plan_id,
            proposed.controller,
            plan.plan_id,
            "; ".join(changes + notes),
        )
        return SafetyDecision(plan, SafetyOutcome.REPAIRED, tuple(changes + notes), proposed)
    logger.info(
        "intersection %s: plan %s from %s accepted (cycle %.1f s, from %s): %s",
        spec.intersection_id,
        plan.plan_id,
        plan.controller,
        plan.cycle_s,
        plan.valid_from.isoformat(),
        "; ".join(["within the envelope", *notes]),
    )
    return SafetyDecision(plan, SafetyOutcome.ACCEPTED, ("within the envelope", *notes), proposed)
