"""The envelope's rules as a checker: :func:`check` lists every rule a plan breaks.

Rules (durations in seconds, compared with a tolerance of :data:`EPS_S`):

1. the plan is for the spec's intersection and has its phases, in ring order;
2. every timing is a finite number of at most a day (:data:`DURATION_MAX_S`) either way;
   ``valid_from`` is timezone-aware;
3. yellow >= max(3 s, the phase's configured yellow); all-red >= max(1 s, configured);
4. every green within [min green, max green] of its phase;
5. every green at least the pedestrian clearance (crossing / walking speed) it carries;
6. the cycle equals the sum of the phase durations and lies within the cycle bounds;
7. ``0 <= offset < cycle``;
8. against a running plan that itself keeps rules 1-7: the cycle changes by at most
   ``max_cycle_step_s`` and each green by at most ``max_split_step_s`` (a running plan that
   breaks the rules, e.g. after the limits were tightened, waives the step limits so that a
   safe plan can be reached at once);
9. against a running plan with a positive cycle: ``valid_from`` is one of its cycle
   boundaries (``running.valid_from + k * running.cycle_s``, k >= 0).
"""

from __future__ import annotations

import math

from atcs.types import TimingPlan
from controllers.limits import (
    DURATION_MAX_S,
    EPS_S,
    all_red_floor_s,
    bounded_s,
    pedestrian_clearance_s,
    phase_ids,
    yellow_floor_s,
)
from controllers.plans import BOUNDARY_TOLERANCE_S, boundary_offset_s, schedulable
from controllers.spec import IntersectionSpec


def structure_problems(spec: IntersectionSpec, plan: TimingPlan) -> list[str]:
    """Rules 1 and 2: what makes ``plan`` impossible to compare with ``spec``."""
    out: list[str] = []
    if plan.intersection_id != spec.intersection_id:
        out.append(
            f"plan is for intersection {plan.intersection_id!r}, not {spec.intersection_id!r}"
        )
    got = tuple(p.phase_id for p in plan.phases)
    if got != phase_ids(spec):
        out.append(
            f"plan phases {list(got)} differ from the intersection's {list(phase_ids(spec))}"
        )
    for p in plan.phases:
        if not all(bounded_s(v) for v in (p.green_s, p.yellow_s, p.all_red_s)):
            out.append(
                f"phase {p.phase_id}: timings are not finite numbers within ±{DURATION_MAX_S:g} s"
            )
    if not (bounded_s(plan.cycle_s) and bounded_s(plan.offset_s)):
        out.append(f"cycle_s and offset_s must be finite numbers within ±{DURATION_MAX_S:g} s")
    if plan.valid_from.utcoffset() is None:
        out.append("valid_from must be timezone-aware")
    return out


def static_problems(spec: IntersectionSpec, plan: TimingPlan) -> list[str]:
    """Rules 1 to 7: the rules that do not depend on the running plan."""
    out = structure_problems(spec, plan)
    if out:
        return out
    for phase, timing in zip(spec.phases, plan.phases, strict=True):
        at = f"phase {phase.phase_id}"
        if timing.yellow_s < yellow_floor_s(phase) - EPS_S:
            out.append(f"{at}: yellow {timing.yellow_s:g} s < {yellow_floor_s(phase):g} s")
        if timing.all_red_s < all_red_floor_s(phase) - EPS_S:
            out.append(f"{at}: all-red {timing.all_red_s:g} s < {all_red_floor_s(phase):g} s")
        if timing.green_s < phase.min_green_s - EPS_S:
            out.append(f"{at}: green {timing.green_s:g} s < min green {phase.min_green_s:g} s")
        if timing.green_s > phase.max_green_s + EPS_S:
            out.append(f"{at}: green {timing.green_s:g} s > max green {phase.max_green_s:g} s")
        clearance = pedestrian_clearance_s(phase)
        if timing.green_s < clearance - EPS_S:
            out.append(f"{at}: green {timing.green_s:g} s < pedestrian clearance {clearance:.2f} s")
    total = math.fsum(p.duration_s for p in plan.phases)
    if abs(plan.cycle_s - total) > EPS_S:
        out.append(f"cycle {plan.cycle_s:g} s != sum of phase durations {total:g} s")
    if plan.cycle_s < spec.cycle_min_s - EPS_S or plan.cycle_s > spec.cycle_max_s + EPS_S:
        out.append(
            f"cycle {plan.cycle_s:g} s outside [{spec.cycle_min_s:g}, {spec.cycle_max_s:g}] s"
        )
    if plan.offset_s < 0 or plan.offset_s >= plan.cycle_s:
        out.append(f"offset {plan.offset_s:g} s outside [0, cycle {plan.cycle_s:g} s)")
    return out


def steps_apply(spec: IntersectionSpec, running: TimingPlan | None) -> bool:
    """Tell whether the step limits bind a new plan: ``running`` keeps rules 1 to 7."""
    return running is not None and not static_problems(spec, running)


def step_problems(spec: IntersectionSpec, plan: TimingPlan, running: TimingPlan) -> list[str]:
    """Rule 8 for a structurally sound ``plan``: changes beyond the allowed steps."""
    out: list[str] = []
    if abs(plan.cycle_s - running.cycle_s) > spec.max_cycle_step_s + EPS_S:
        out.append(
            f"cycle changes by {plan.cycle_s - running.cycle_s:+g} s from the running "
            f"{running.cycle_s:g} s (step limit {spec.max_cycle_step_s:g} s)"
        )
    for new, old in zip(plan.phases, running.phases, strict=True):
        if abs(new.green_s - old.green_s) > spec.max_split_step_s + EPS_S:
            out.append(
                f"phase {new.phase_id}: green changes by {new.green_s - old.green_s:+g} s "
                f"from the running {old.green_s:g} s (step limit {spec.max_split_step_s:g} s)"
            )
    return out


def boundary_problems(plan: TimingPlan, running: TimingPlan) -> list[str]:
    """Rule 9: ``plan`` starts at a cycle boundary of ``running`` (at or after its start)."""
    if not schedulable(running) or plan.valid_from.utcoffset() is None:
        return []
    if (plan.valid_from - running.valid_from).total_seconds() < -BOUNDARY_TOLERANCE_S:
        return [
            f"valid_from {plan.valid_from.isoformat()} is before the running plan's start "
            f"{running.valid_from.isoformat()}"
        ]
    if boundary_offset_s(running, plan.valid_from) > BOUNDARY_TOLERANCE_S:
        return [
            f"valid_from {plan.valid_from.isoformat()} is not a cycle boundary of the running "
            f"plan (cycle {running.cycle_s:g} s from {running.valid_from.isoformat()})"
        ]
    return []


def check(spec: IntersectionSpec, plan: TimingPlan, running: TimingPlan | None) -> list[str]:
    """Every envelope rule ``plan`` breaks when it replaces ``running``; empty when none.

    ``running`` is the plan in force (None when nothing is known to run). Used by the
    safety envelope, the tests and the simulator's audit of what the signals really ran.
    """
    out = static_problems(spec, plan)
    if running is None:
        return out
    if not structure_problems(spec, plan) and steps_apply(spec, running):
        out += step_problems(spec, plan, running)
    out += boundary_problems(plan, running)
    return out
