"""Fixed time-of-day plans: the baseline controller and the fallback for stale data."""

from __future__ import annotations

from atcs.types import PlanMode, TimingPlan
from controllers.limits import validate_spec
from controllers.plans import (
    active_fallback,
    build_plan,
    describe_fallback,
    fallback_greens_s,
    local_time_zone,
    require_aware,
)
from controllers.spec import ControlInput, IntersectionSpec

FIXED = "fixed"


def time_of_day_plan(
    spec: IntersectionSpec, inputs: ControlInput, *, controller: str = FIXED, why: str = ""
) -> TimingPlan:
    """Return the time-of-day plan in force at ``inputs.now`` (mode ``fallback``).

    ``controller`` names who chose it (an adaptive controller falling back on stale data
    keeps its own name); ``why`` is put in front of the plan's reason.
    """
    validate_spec(spec)
    require_aware(inputs.now, "ControlInput.now")
    plan = active_fallback(spec, inputs.now)
    local = inputs.now.astimezone(local_time_zone(spec))
    reason = f"time-of-day plan {describe_fallback(plan)}, local time {local:%H:%M} {spec.timezone}"
    if why:
        reason = f"{why}; {reason}"
    return build_plan(
        spec,
        inputs,
        controller=controller,
        mode=PlanMode.FALLBACK,
        greens_s=fallback_greens_s(spec, plan),
        reason=reason,
        offset_s=plan.offset_s,
    )


class FixedTimeController:
    """Runs the time-of-day plan active at the intersection's local time."""

    name = FIXED

    def propose(self, spec: IntersectionSpec, inputs: ControlInput) -> TimingPlan:
        """Return the time-of-day plan in force at ``inputs.now``; measures are ignored."""
        return time_of_day_plan(spec, inputs)
