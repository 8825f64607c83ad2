"""Operator overrides: checking a request and turning it into the plan it asks for.

``hold`` keeps the timings in force when it arrives; ``fixed`` runs a configured
time-of-day plan (by name, or by its start time ``"HH:MM"`` when it has no name) or explicit
greens for every phase; ``release`` hands control back. Each needs ``who`` and ``why``. A
``fixed`` request must itself keep the envelope's static rules (green limits, pedestrian
clearance, cycle bounds): it is refused, not silently clamped, when it does not. The step
limits still apply: the plans that reach the signal walk towards the requested one through
:func:`controllers.enforce`, one allowed step per cycle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

from atcs.bus.messages import Override, OverrideAction
from atcs.bus.override_state import OverrideState
from atcs.control.state import ActiveOverride
from atcs.errors import ControlError
from atcs.types import IntersectionId, PhaseId, PhaseTiming, PlanMode, TimingPlan
from controllers import MANUAL, ControlInput, IntersectionSpec, check, next_cycle_boundary
from controllers.plans import build_plan, make_plan_id, wrap_offset_s
from controllers.spec import FallbackPlan

_MAX_TEXT = 1000


def _label(plan: FallbackPlan) -> str:
    return plan.name or plan.starts_at.strftime("%H:%M")


def find_fallback(spec: IntersectionSpec, name: str) -> FallbackPlan:
    """Return the time-of-day plan called ``name`` (or starting at ``"HH:MM"`` when unnamed)."""
    for plan in spec.fallback_plans:
        if plan.name == name:
            return plan
    for plan in spec.fallback_plans:
        if not plan.name and plan.starts_at.strftime("%H:%M") == name:
            return plan
    known = ", ".join(repr(_label(p)) for p in spec.fallback_plans)
    raise ControlError(
        f"intersection {spec.intersection_id}: override 'fixed' names unknown plan {name!r}; "
        f"known: {known}"
    )


def _check_text(override: Override, ix: str) -> None:
    for what in ("who", "why"):
        value = getattr(override, what)
        if not isinstance(value, str) or not value.strip():
            raise ControlError(
                f"intersection {ix}: override {override.action.value!r} without {what!r}: "
                "every override must say who asks and why"
            )
        if len(value) > _MAX_TEXT:
            raise ControlError(f"intersection {ix}: override {what!r} longer than {_MAX_TEXT}")


def _explicit_greens(spec: IntersectionSpec, greens: Mapping[PhaseId, float]) -> list[float]:
    ix = spec.intersection_id
    phases = [p.phase_id for p in spec.phases]
    unknown = sorted(set(greens) - set(phases))
    missing = [p for p in phases if p not in greens]
    if unknown:
        raise ControlError(f"intersection {ix}: override greens_s names unknown phases {unknown}")
    if missing:
        raise ControlError(
            f"intersection {ix}: override greens_s must give every phase; missing {missing}"
        )
    out = []
    for p in phases:
        value = greens[p]
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ControlError(
                f"intersection {ix}: override green of phase {p} must be a positive number "
                f"of seconds, got {value!r}"
            )
        out.append(float(value))
    return out


def accept_override(
    spec: IntersectionSpec, override: Override, running: TimingPlan | None, now: datetime
) -> ActiveOverride | None:
    """Check ``override`` and return the override it puts in force (None for ``release``).

    Raises :class:`ControlError` with the reason for a request that cannot be honoured:
    another intersection, no ``who``/``why``, a ``hold`` with no plan running or with a
    plan, a ``fixed`` without (or with both) a plan name and greens, an unknown plan name
    or phase, greens that break the envelope's static rules.
    """
    ix = spec.intersection_id
    if override.intersection_id != ix:
        raise ControlError(
            f"override for intersection {override.intersection_id!r} reached intersection {ix!r}"
        )
    _check_text(override, ix)
    has_name, has_greens = override.plan_name is not None, bool(override.greens_s)
    if override.action is not OverrideAction.FIXED:
        if has_name or has_greens:
            raise ControlError(
                f"intersection {ix}: override {override.action.value!r} takes no plan_name "
                "or greens_s"
            )
        if override.action is OverrideAction.RELEASE:
            return None
        if running is None:
            raise ControlError(f"intersection {ix}: override 'hold': no plan is running to hold")
        return ActiveOverride(
            OverrideAction.HOLD,
            override.who,
            override.why,
            now,
            greens_s={p.phase_id: p.green_s for p in running.phases},
        )
    if has_name == has_greens:
        raise ControlError(
            f"intersection {ix}: override 'fixed' needs either plan_name or greens_s "
            f"({'both' if has_name else 'neither'} given)"
        )
    if override.plan_name is not None:
        fallback = find_fallback(spec, override.plan_name)
        greens = [float(fallback.greens_s[p.phase_id]) for p in spec.phases]
    else:
        greens = _explicit_greens(spec, override.greens_s)
    target = ActiveOverride(
        OverrideAction.FIXED,
        override.who,
        override.why,
        now,
        plan_name=override.plan_name,
        greens_s={p.phase_id: g for p, g in zip(spec.phases, greens, strict=True)},
    )
    problems = check(spec, fixed_plan(spec, target, ControlInput(now, {}, None)), None)
    if problems:
        raise ControlError(
            f"intersection {ix}: override 'fixed' asks for a plan outside the safety envelope: "
            + "; ".join(problems)
        )
    return target


def override_state_of(
    ix: IntersectionId, active: ActiveOverride | None, at: datetime
) -> OverrideState:
    """Return the bus record of ``active`` (None: none in force) at ``ix``, published ``at``."""
    if active is None:
        return OverrideState(ix, at)
    greens = {str(k): v for k, v in active.greens_s.items()}
    return OverrideState(
        ix, at, active.action, active.who, active.why, active.since, active.plan_name, greens
    )


def active_override_of(state: OverrideState) -> ActiveOverride | None:
    """Return the :class:`ActiveOverride` an override state on the bus describes (or None)."""
    if state.action is None or state.since is None:
        return None
    greens = {PhaseId(k): v for k, v in state.greens_s.items()}
    return ActiveOverride(state.action, state.who, state.why, state.since, state.plan_name, greens)


def describe(active: ActiveOverride) -> str:
    """Name an override for logs and plan reasons."""
    what = active.action.value
    if active.plan_name is not None:
        what += f" plan {active.plan_name!r}"
    elif active.action is OverrideAction.FIXED:
        what += " greens " + ", ".join(f"{k}={v:g} s" for k, v in active.greens_s.items())
    return f"operator override {what} by {active.who}: {active.why}"


def fixed_plan(spec: IntersectionSpec, active: ActiveOverride, inputs: ControlInput) -> TimingPlan:
    """Return the plan a ``fixed`` override asks for (mode ``manual``) from the next boundary."""
    offset_s = spec.offset_s
    if active.plan_name is not None:
        offset_s = find_fallback(spec, active.plan_name).offset_s
    return build_plan(
        spec,
        inputs,
        controller=MANUAL,
        mode=PlanMode.MANUAL,
        greens_s=[active.greens_s[p.phase_id] for p in spec.phases],
        reason=describe(active),
        offset_s=offset_s,
    )


def held_plan(
    spec: IntersectionSpec, held: TimingPlan, active: ActiveOverride, inputs: ControlInput
) -> TimingPlan:
    """``held``'s exact timings as an operator plan (mode ``manual``) from the coming boundary."""
    phases = tuple(PhaseTiming(p.phase_id, p.green_s, p.yellow_s, p.all_red_s) for p in held.phases)
    cycle_s = math.fsum(p.duration_s for p in phases)
    offset_s = wrap_offset_s(held.offset_s, cycle_s)
    valid_from = next_cycle_boundary(inputs.running, inputs.now)
    return TimingPlan(
        intersection_id=spec.intersection_id,
        plan_id=make_plan_id(
            spec.intersection_id,
            controller=MANUAL,
            mode=PlanMode.MANUAL,
            phases=phases,
            offset_s=offset_s,
            valid_from=valid_from,
        ),
        controller=MANUAL,
        mode=PlanMode.MANUAL,
        cycle_s=cycle_s,
        offset_s=offset_s,
        phases=phases,
        valid_from=valid_from,
        reason=f"{describe(active)}; keeping plan {held.plan_id}",
    )
