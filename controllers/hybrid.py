"""Controllers that combine the baseline plan, Webster and max-pressure.

- ``webster-pressure``: Webster's cycle from the measured critical flow ratios (as
  :class:`~controllers.webster.WebsterController`) and splits by pressure on that cycle (as
  :class:`~controllers.maxpressure.MaxPressureController`): the cycle follows demand, the
  splits the queues actually waiting.
- ``tod-pressure``: the time-of-day plan in force (the engineers' plan, the ``fixed``
  baseline) with its cycle and offset kept, and each green moved towards the max-pressure
  split but only within a band around the time-of-day green (``band_fraction`` of it, 30 %
  by default, at least ``band_min_s``, 4 s). Keeping the plan's cycle and offset keeps the
  coordination the plans were made with: intersections of a corridor that share a cycle in
  their time-of-day plans still share it and keep their offsets, so the plans' progression
  survives; and a bad measurement cannot take a split far from the engineers' one.

Both fall back to the time-of-day plan when a phase's measures are unusable.
"""

from __future__ import annotations

import math

from atcs.types import PlanMode, TimingPlan
from controllers.allocate import spread
from controllers.fixed import time_of_day_plan
from controllers.limits import green_bounds_s, intergreen_s, validate_spec
from controllers.maxpressure import phase_pressures, pressure_greens, time_of_day_cycle_s
from controllers.measures import inputs_age_s, unusable_measures
from controllers.plans import active_fallback, build_plan, fallback_greens_s, require_aware
from controllers.spec import ControlInput, IntersectionSpec
from controllers.webster import clamp_cycle_s, flow_ratios, webster_cycle_s

WEBSTER_PRESSURE = "webster-pressure"
TOD_PRESSURE = "tod-pressure"


class WebsterPressureController:
    """Webster's cycle with max-pressure splits."""

    name = WEBSTER_PRESSURE

    def propose(self, spec: IntersectionSpec, inputs: ControlInput) -> TimingPlan:
        """Return the plan; the time-of-day plan when a phase's measures are unusable."""
        validate_spec(spec)
        require_aware(inputs.now, "ControlInput.now")
        unusable = unusable_measures(spec, inputs)
        if unusable:
            return time_of_day_plan(
                spec, inputs, controller=self.name, why="stale inputs: " + "; ".join(unusable)
            )
        flow_ratio_sum = math.fsum(flow_ratios(spec, inputs))
        lost_s = math.fsum(intergreen_s(p) for p in spec.phases)
        optimum_s = webster_cycle_s(flow_ratio_sum, lost_s)
        cycle_s = clamp_cycle_s(spec, optimum_s)
        tod = fallback_greens_s(spec, active_fallback(spec, inputs.now))
        pressures = phase_pressures(spec, inputs)
        greens, why = pressure_greens(spec, cycle_s, pressures, tod)
        extra = {
            "flow_ratio_sum": flow_ratio_sum,
            "lost_time_s": lost_s,
            "total_pressure_pcu": math.fsum(pressures),
        }
        if math.isfinite(optimum_s):
            extra["webster_cycle_s"] = optimum_s
        return build_plan(
            spec,
            inputs,
            controller=self.name,
            mode=PlanMode.ADAPTIVE,
            greens_s=greens,
            reason=f"webster-pressure: Y={flow_ratio_sum:.3f}, cycle {cycle_s:.1f} s, {why}",
            data_age_s=inputs_age_s(spec, inputs),
            extra=extra,
        )


class TimeOfDayPressureController:
    """The time-of-day plan's cycle, its greens moved towards pressure within a band.

    ``band_fraction`` (of each time-of-day green) and ``band_min_s`` (s) bound how far a
    green may move from the time-of-day green; the envelope's step limits apply on top.
    """

    name = TOD_PRESSURE

    def __init__(self, band_fraction: float = 0.3, band_min_s: float = 4.0) -> None:
        self.band_fraction = band_fraction
        self.band_min_s = band_min_s

    def band_s(self, tod_green_s: float) -> float:
        """How far (s) a green may move from the time-of-day green ``tod_green_s``."""
        return max(self.band_min_s, self.band_fraction * tod_green_s)

    def propose(self, spec: IntersectionSpec, inputs: ControlInput) -> TimingPlan:
        """Return the plan; the time-of-day plan when a phase's measures are unusable."""
        validate_spec(spec)
        require_aware(inputs.now, "ControlInput.now")
        unusable = unusable_measures(spec, inputs)
        if unusable:
            return time_of_day_plan(
                spec, inputs, controller=self.name, why="stale inputs: " + "; ".join(unusable)
            )
        plan = active_fallback(spec, inputs.now)
        tod = fallback_greens_s(spec, plan)
        cycle_s = time_of_day_cycle_s(spec, tod)
        pressures = phase_pressures(spec, inputs)
        target, why = pressure_greens(spec, cycle_s, pressures, tod)
        lo, hi = green_bounds_s(spec)
        band_lo, band_hi = [], []
        for g, low, high in zip(tod, lo, hi, strict=True):
            b_lo = min(high, max(low, g - self.band_s(g)))
            band_lo.append(b_lo)
            band_hi.append(max(b_lo, min(high, g + self.band_s(g))))
        lost_s = math.fsum(intergreen_s(p) for p in spec.phases)
        greens = [min(h, max(low, t)) for t, low, h in zip(target, band_lo, band_hi, strict=True)]
        greens = spread(greens, cycle_s - lost_s - math.fsum(greens), band_lo, band_hi)
        return build_plan(
            spec,
            inputs,
            controller=self.name,
            mode=PlanMode.ADAPTIVE,
            greens_s=greens,
            reason=(
                f"tod-pressure: time-of-day cycle {cycle_s:.1f} s, {why}, greens within "
                f"{self.band_fraction:.0%} (at least {self.band_min_s:g} s) of the plan's"
            ),
            offset_s=plan.offset_s,
            data_age_s=inputs_age_s(spec, inputs),
            extra={"total_pressure_pcu": math.fsum(pressures)},
        )
