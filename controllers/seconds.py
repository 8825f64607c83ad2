"""Plans on whole seconds, as field signal controllers run them.

:func:`controllers.enforce` passes every plan it lets leave the engine through
:func:`whole_seconds`, so a signal controller never has to round a duration itself (the
rounding of two consecutive plans by the signal could break a step limit by a second).
"""

from __future__ import annotations

import logging
import math

from atcs.types import PhaseTiming, TimingPlan
from controllers.plans import make_plan_id
from controllers.rules import check
from controllers.spec import IntersectionSpec

logger = logging.getLogger(__name__)

_EPS = 1e-9


def _half_up(value: float) -> int:
    return math.floor(value + 0.5)


def on_whole_seconds(plan: TimingPlan) -> bool:
    """Tell whether every duration and the offset of ``plan`` is a whole second."""
    values = [v for p in plan.phases for v in (p.green_s, p.yellow_s, p.all_red_s)]
    values.append(plan.offset_s)
    return all(math.isfinite(v) and v == math.floor(v) for v in values)


def whole_seconds(
    spec: IntersectionSpec, plan: TimingPlan, running: TimingPlan | None
) -> TimingPlan:
    """Return ``plan`` on whole seconds, or ``plan`` itself when it is or cannot be.

    Yellows and all-reds are rounded up; greens are rounded so that their sum is the
    rounded sum of the greens (largest remainders first), so each green moves by less than
    a second and the cycle by at most half a second; the offset is rounded half up. With
    whole-second limits and a whole-second running plan the result keeps every envelope
    rule; it is checked against ``running`` and, should a rule break (limits that are not
    whole seconds), ``plan`` is returned unrounded.
    """
    if on_whole_seconds(plan) or not all(
        math.isfinite(v) for p in plan.phases for v in (p.green_s, p.yellow_s, p.all_red_s)
    ):
        return plan
    greens = [p.green_s for p in plan.phases]
    floors = [math.floor(g + _EPS) for g in greens]
    extra = _half_up(math.fsum(greens)) - sum(floors)
    order = sorted(range(len(greens)), key=lambda i: greens[i] - floors[i], reverse=True)
    rounded = list(floors)
    for i in order[: max(0, extra)]:
        rounded[i] += 1
    phases = tuple(
        PhaseTiming(
            p.phase_id,
            float(g),
            float(math.ceil(p.yellow_s - _EPS)),
            float(math.ceil(p.all_red_s - _EPS)),
        )
        for p, g in zip(plan.phases, rounded, strict=True)
    )
    cycle_s = math.fsum(p.duration_s for p in phases)
    offset_s = float(_half_up(plan.offset_s) % cycle_s) if cycle_s > 0 else 0.0
    whole = TimingPlan(
        intersection_id=plan.intersection_id,
        plan_id=make_plan_id(
            plan.intersection_id,
            controller=plan.controller,
            mode=plan.mode,
            phases=phases,
            offset_s=offset_s,
            valid_from=plan.valid_from,
        ),
        controller=plan.controller,
        mode=plan.mode,
        cycle_s=cycle_s,
        offset_s=offset_s,
        phases=phases,
        valid_from=plan.valid_from,
        reason=plan.reason,
        data_age_s=plan.data_age_s,
        extra=plan.extra,
    )
    problems = check(spec, whole, running)
    if problems:
        logger.info(
            "intersection %s: whole-second version of plan %s breaks %s; kept unrounded",
            plan.intersection_id,
            plan.plan_id,
            "; ".join(problems),
        )
        return plan
    return whole
