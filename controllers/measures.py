"""Which measures a controller may trust: present, finite, non-negative and fresh."""

from __future__ import annotations

import math

from controllers.spec import ControlInput, IntersectionSpec, PhaseMeasure


def _sane(measure: PhaseMeasure) -> bool:
    values = [measure.flow_pcu_h, measure.queue_pcu, measure.exit_queue_pcu, measure.age_s]
    if measure.queue_m is not None:
        values.append(measure.queue_m)
    return all(math.isfinite(v) and v >= 0 for v in values)


def unusable_measures(spec: IntersectionSpec, inputs: ControlInput) -> list[str]:
    """Why the measures of ``inputs`` cannot drive an adaptive plan (empty: they can).

    Every phase fed by segments needs a measure that is finite, non-negative and no older
    than ``spec.stale_after_s``. Phases without segments are not measured and need none.
    """
    out: list[str] = []
    for phase in spec.phases:
        if not phase.segments:
            continue
        measure = inputs.measures.get(phase.phase_id)
        if measure is None:
            out.append(f"phase {phase.phase_id}: no measures")
        elif not _sane(measure):
            out.append(f"phase {phase.phase_id}: measures are negative or not finite")
        elif measure.age_s > spec.stale_after_s:
            out.append(
                f"phase {phase.phase_id}: measures {measure.age_s:.0f} s old "
                f"(stale after {spec.stale_after_s:g} s)"
            )
    return out


def inputs_age_s(spec: IntersectionSpec, inputs: ControlInput) -> float | None:
    """Return the age (s) of the stalest measure a plan uses (None when it uses none)."""
    ages = [
        inputs.measures[p.phase_id].age_s
        for p in spec.phases
        if p.segments and p.phase_id in inputs.measures
    ]
    return max(ages) if ages else None
