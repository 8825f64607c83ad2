"""Cycle-based max-pressure: each cycle, splits follow the phases' pressures.

A phase's pressure is the PCU queued on the segments feeding it minus the PCU queued on the
segments it discharges into (``queue_pcu - exit_queue_pcu``, floored at 0). The cycle is the
one of the time-of-day plan in force (the engineers' cycle for that time of day, clamped to
what the limits allow); every phase gets its min green (or pedestrian clearance) and the
rest of the green time is shared in proportion to pressure, up to each max green (after
Le et al. 2015, "Decentralized signal control for urban road networks", cycle-based form).
With no pressure anywhere, the rest is shared like the time-of-day plan's greens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from atcs.types import PlanMode, TimingPlan
from controllers.allocate import allocate
from controllers.fixed import time_of_day_plan
from controllers.limits import feasible_cycle_s, green_bounds_s, intergreen_s, validate_spec
from controllers.measures import inputs_age_s, unusable_measures
from controllers.plans import active_fallback, build_plan, fallback_greens_s, require_aware
from controllers.spec import ControlInput, IntersectionSpec

MAX_PRESSURE = "max-pressure"


def phase_pressures(spec: IntersectionSpec, inputs: ControlInput) -> list[float]:
    """Pressure of each phase in ring order (PCU): approach minus exit queue, floored at 0."""
    out = []
    for phase in spec.phases:
        measure = inputs.measures.get(phase.phase_id) if phase.segments else None
        pressure = 0.0 if measure is None else measure.queue_pcu - measure.exit_queue_pcu
        out.append(max(0.0, pressure))
    return out


def time_of_day_cycle_s(spec: IntersectionSpec, tod_greens_s: Sequence[float]) -> float:
    """Cycle (s) of the time-of-day greens ``tod_greens_s``, within what the limits allow."""
    lost_s = math.fsum(intergreen_s(p) for p in spec.phases)
    shortest_s, longest_s = feasible_cycle_s(spec)
    return min(longest_s, max(shortest_s, math.fsum(tod_greens_s) + lost_s))


def pressure_greens(
    spec: IntersectionSpec,
    cycle_s: float,
    pressures: Sequence[float],
    tod_greens_s: Sequence[float],
) -> tuple[list[float], str]:
    """Greens (s) filling ``cycle_s``: min greens plus the rest shared by pressure.

    With no pressure anywhere the rest is shared like ``tod_greens_s`` (above the minima).
    Returns the greens in ring order and a short reason.
    """
    lo, hi = green_bounds_s(spec)
    lost_s = math.fsum(intergreen_s(p) for p in spec.phases)
    if math.fsum(pressures) > 0:
        weights, why = list(pressures), f"pressures {[round(p, 1) for p in pressures]} pcu"
    else:
        weights = [max(0.0, g - low) for g, low in zip(tod_greens_s, lo, strict=True)]
        why = "no pressure: time-of-day split"
    extra_s = allocate(
        cycle_s - lost_s - math.fsum(lo),
        [0.0] * len(lo),
        [h - low for h, low in zip(hi, lo, strict=True)],
        weights,
    )
    return [low + e for low, e in zip(lo, extra_s, strict=True)], why


class MaxPressureController:
    """Cycle-based max-pressure splits on the time-of-day cycle."""

    name = MAX_PRESSURE

    def propose(self, spec: IntersectionSpec, inputs: ControlInput) -> TimingPlan:
        """Max-pressure plan; the time-of-day plan when a phase's measures are unusable."""
        validate_spec(spec)
        require_aware(inputs.now, "ControlInput.now")
        unusable = unusable_measures(spec, inputs)
        if unusable:
            return time_of_day_plan(
                spec, inputs, controller=MAX_PRESSURE, why="stale inputs: " + "; ".join(unusable)
            )
        pressures = phase_pressures(spec, inputs)
        tod = fallback_greens_s(spec, active_fallback(spec, inputs.now))
        cycle_s = time_of_day_cycle_s(spec, tod)
        greens, why = pressure_greens(spec, cycle_s, pressures, tod)
        total_pressure = math.fsum(pressures)
        return build_plan(
            spec,
            inputs,
            controller=MAX_PRESSURE,
            mode=PlanMode.ADAPTIVE,
            greens_s=greens,
            reason=f"max-pressure: {why}, cycle {cycle_s:.1f} s",
            data_age_s=inputs_age_s(spec, inputs),
            extra={"total_pressure_pcu": total_pressure},
        )
