"""Helpers every controller shares: building a plan, scheduling it, the time-of-day plan.

A plan's ``valid_from`` is the next cycle boundary of the running plan at or after the
decision time (:func:`next_cycle_boundary`); its id is derived from its content
(:func:`make_plan_id`), so equal plans get equal ids and a repaired plan a new one.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from atcs.errors import ControlError
from atcs.types import PhaseTiming, PlanMode, TimingPlan
from controllers.limits import DURATION_MAX_S, EPS_S
from controllers.spec import ControlInput, FallbackPlan, IntersectionSpec

BOUNDARY_TOLERANCE_S = 1e-3
"""How far (s) a ``valid_from`` may sit from an exact cycle boundary (datetime rounding)."""


def require_aware(now: datetime, what: str = "now") -> None:
    """Raise :class:`ControlError` unless ``now`` is timezone-aware."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ControlError(f"{what} must be a timezone-aware datetime, got {now!r}")


def schedulable(running: TimingPlan | None) -> bool:
    """Tell whether ``running`` has cycle boundaries (a cycle of 1 s to a day, aware start)."""
    return (
        running is not None
        and math.isfinite(running.cycle_s)
        and 1.0 <= running.cycle_s <= DURATION_MAX_S
        and running.valid_from.utcoffset() is not None
    )


def next_cycle_boundary(running: TimingPlan | None, now: datetime) -> datetime:
    """Return the first cycle boundary of ``running`` at or after ``now`` (or ``now``).

    Boundaries are ``running.valid_from + k * running.cycle_s`` for k = 0, 1, 2, ...

    Raises :class:`ControlError` for a naive ``now`` and for times the calendar cannot
    hold (a boundary past the year 9999).
    """
    require_aware(now)
    try:
        if running is None or not schedulable(running):
            return now.astimezone(UTC)
        elapsed_s = (now - running.valid_from).total_seconds()
        if elapsed_s <= 0:
            return running.valid_from.astimezone(UTC)
        k = math.ceil(elapsed_s / running.cycle_s - BOUNDARY_TOLERANCE_S / running.cycle_s)
        return (running.valid_from + timedelta(seconds=k * running.cycle_s)).astimezone(UTC)
    except OverflowError:
        raise ControlError(
            f"the cycle boundary after {now.isoformat()} is outside the calendar"
        ) from None


def boundary_offset_s(running: TimingPlan, at: datetime) -> float:
    """Distance (s) from ``at`` to the nearest cycle boundary of ``running`` (k >= 0)."""
    elapsed_s = (at - running.valid_from).total_seconds()
    if elapsed_s < 0:
        return -elapsed_s
    k = round(elapsed_s / running.cycle_s)
    return abs(elapsed_s - k * running.cycle_s)


def wrap_offset_s(offset_s: float, cycle_s: float) -> float:
    """Bring ``offset_s`` into ``[0, cycle_s)`` (0 for a non-finite offset or cycle)."""
    if not (math.isfinite(offset_s) and math.isfinite(cycle_s)) or cycle_s <= EPS_S:
        return 0.0
    wrapped = offset_s % cycle_s
    return 0.0 if wrapped >= cycle_s else wrapped


def make_plan_id(
    intersection_id: str,
    *,
    controller: str,
    mode: PlanMode,
    phases: Sequence[PhaseTiming],
    offset_s: float,
    valid_from: datetime,
) -> str:
    """Id of a plan: intersection, start time (UTC) and a digest of its content."""
    content = "|".join(
        [controller, mode.value, f"{offset_s:.3f}", valid_from.isoformat()]
        + [f"{p.phase_id}:{p.green_s:.3f}:{p.yellow_s:.3f}:{p.all_red_s:.3f}" for p in phases]
    )
    digest = hashlib.blake2s(content.encode("utf-8"), digest_size=4).hexdigest()
    return f"{intersection_id}-{valid_from.astimezone(UTC):%Y%m%dT%H%M%SZ}-{digest}"


def build_plan(
    spec: IntersectionSpec,
    inputs: ControlInput,
    *,
    controller: str,
    mode: PlanMode,
    greens_s: Sequence[float],
    reason: str,
    offset_s: float | None = None,
    data_age_s: float | None = None,
    extra: Mapping[str, float] | None = None,
) -> TimingPlan:
    """Build a plan for ``spec`` from ``greens_s`` (ring order) and configured intergreens.

    The cycle is the sum of the phase durations; the plan starts at the next cycle boundary
    of ``inputs.running`` at or after ``inputs.now``.
    """
    phases = tuple(
        PhaseTiming(p.phase_id, float(g), p.yellow_s, p.all_red_s)
        for p, g in zip(spec.phases, greens_s, strict=True)
    )
    cycle_s = math.fsum(p.duration_s for p in phases)
    offset = wrap_offset_s(spec.offset_s if offset_s is None else offset_s, cycle_s)
    valid_from = next_cycle_boundary(inputs.running, inputs.now)
    return TimingPlan(
        intersection_id=spec.intersection_id,
        plan_id=make_plan_id(
            spec.intersection_id,
            controller=controller,
            mode=mode,
            phases=phases,
            offset_s=offset,
            valid_from=valid_from,
        ),
        controller=controller,
        mode=mode,
        cycle_s=cycle_s,
        offset_s=offset,
        phases=phases,
        valid_from=valid_from,
        reason=reason,
        data_age_s=data_age_s,
        extra=dict(extra or {}),
    )


def zone_named(name: str, owner: str) -> ZoneInfo:
    """Return the time zone ``name``; :class:`ControlError` naming ``owner`` when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ControlError(f"intersection {owner!r}: unknown time zone {name!r}") from exc


def local_time_zone(spec: IntersectionSpec) -> ZoneInfo:
    """Return the intersection's time zone; :class:`ControlError` for an unknown name."""
    return zone_named(spec.timezone, spec.intersection_id)


def plan_in_force(
    plans: Sequence[FallbackPlan], zone: ZoneInfo, now: datetime, owner: str
) -> FallbackPlan:
    """Return the time-of-day plan of ``plans`` in force at ``now`` (local time in ``zone``).

    That is the plan with the latest ``starts_at`` at or before the local time of day;
    before the earliest start, the last plan of the previous day still runs.
    """
    require_aware(now)
    if not plans:
        raise ControlError(f"intersection {owner!r} has no fallback plan")
    local = now.astimezone(zone).time().replace(tzinfo=None)
    ordered = sorted(plans, key=lambda f: f.starts_at.replace(tzinfo=None))
    current = ordered[-1]
    for plan in ordered:
        if plan.starts_at.replace(tzinfo=None) <= local:
            current = plan
    return current


def active_fallback(spec: IntersectionSpec, now: datetime) -> FallbackPlan:
    """Return the time-of-day plan in force at ``now`` (local time in ``spec.timezone``)."""
    require_aware(now)
    return plan_in_force(spec.fallback_plans, local_time_zone(spec), now, spec.intersection_id)


def fallback_greens_s(spec: IntersectionSpec, plan: FallbackPlan) -> list[float]:
    """Greens (s) of a time-of-day plan in ring order."""
    return [float(plan.greens_s[p.phase_id]) for p in spec.phases]


def describe_fallback(plan: FallbackPlan) -> str:
    """Name a time-of-day plan for humans: its name or its start time."""
    start = plan.starts_at.strftime("%H:%M")
    return f"{plan.name!r} (from {start})" if plan.name else f"from {start}"
