"""Webster's method: cycle and splits from measured critical flow ratios.

With critical flow ratios ``y_i = flow_pcu_h / saturation_flow_pcu_h``, ``Y = sum(y_i)``
and lost time ``L`` (the sum of the phases' yellow plus all-red, s), the optimum cycle is
``C0 = (1.5 L + 5) / (1 - Y)`` (Webster 1958). The cycle is clamped to the cycle bounds and
to what the greens allow; at ``Y >= 1`` (oversaturated, no finite optimum) it is the
longest allowed. The effective green ``C - L`` is split in proportion to ``y_i`` and each
green is held within its min green (or pedestrian clearance) and max green.
"""

from __future__ import annotations

import math

from atcs.types import PlanMode, TimingPlan
from controllers.allocate import allocate
from controllers.fixed import time_of_day_plan
from controllers.limits import feasible_cycle_s, green_bounds_s, intergreen_s, validate_spec
from controllers.measures import inputs_age_s, unusable_measures
from controllers.plans import build_plan, require_aware
from controllers.spec import ControlInput, IntersectionSpec

WEBSTER = "webster"


def webster_cycle_s(flow_ratio_sum: float, lost_time_s: float) -> float:
    """Webster's optimum cycle (s); ``math.inf`` when ``flow_ratio_sum >= 1``."""
    if flow_ratio_sum >= 1.0:
        return math.inf
    return (1.5 * lost_time_s + 5.0) / (1.0 - flow_ratio_sum)


def flow_ratios(spec: IntersectionSpec, inputs: ControlInput) -> list[float]:
    """Critical flow ratio ``flow / saturation flow`` of each phase in ring order (0 unfed)."""
    return [
        inputs.measures[p.phase_id].flow_pcu_h / p.saturation_flow_pcu_h if p.segments else 0.0
        for p in spec.phases
    ]


def clamp_cycle_s(spec: IntersectionSpec, optimum_s: float) -> float:
    """``optimum_s`` (s, may be infinite) held within the cycles the limits allow."""
    shortest_s, longest_s = feasible_cycle_s(spec)
    return min(longest_s, max(shortest_s, optimum_s))


class WebsterController:
    """Webster's cycle and proportional splits, recomputed from the latest measures."""

    name = WEBSTER

    def propose(self, spec: IntersectionSpec, inputs: ControlInput) -> TimingPlan:
        """Webster's plan; the time-of-day plan when a phase's measures are unusable."""
        validate_spec(spec)
        require_aware(inputs.now, "ControlInput.now")
        unusable = unusable_measures(spec, inputs)
        if unusable:
            return time_of_day_plan(
                spec, inputs, controller=WEBSTER, why="stale inputs: " + "; ".join(unusable)
            )
        ratios = flow_ratios(spec, inputs)
        flow_ratio_sum = math.fsum(ratios)
        lost_s = math.fsum(intergreen_s(p) for p in spec.phases)
        optimum_s = webster_cycle_s(flow_ratio_sum, lost_s)
        cycle_s = clamp_cycle_s(spec, optimum_s)
        lo, hi = green_bounds_s(spec)
        weights = ratios if flow_ratio_sum > 0 else [1.0] * len(ratios)
        greens = allocate(cycle_s - lost_s, lo, hi, weights)
        if math.isinf(optimum_s):
            why = f"Y={flow_ratio_sum:.3f} >= 1 (oversaturated): longest cycle {cycle_s:.1f} s"
        else:
            why = f"Y={flow_ratio_sum:.3f}, L={lost_s:g} s, C0={optimum_s:.1f} s"
            why += f" -> cycle {cycle_s:.1f} s" if abs(cycle_s - optimum_s) > 1e-9 else ""
        extra = {"flow_ratio_sum": flow_ratio_sum, "lost_time_s": lost_s}
        if math.isfinite(optimum_s):
            extra["webster_cycle_s"] = optimum_s
        return build_plan(
            spec,
            inputs,
            controller=WEBSTER,
            mode=PlanMode.ADAPTIVE,
            greens_s=greens,
            reason=f"webster: {why}",
            data_age_s=inputs_age_s(spec, inputs),
            extra=extra,
        )
