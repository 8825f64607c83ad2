"""Limits of an intersection: the bounds every controller and the safety envelope share.

:func:`spec_problems` lists everything that makes an :class:`IntersectionSpec` unable to
satisfy its own limits, each message starting with the field path inside the spec
(``phases[1].min_green_s: ...``); :func:`validate_spec` raises :class:`ControlError` with
them. The other functions give the per-phase bounds in seconds.
"""

from __future__ import annotations

import math

from atcs.errors import ControlError
from controllers.spec import FallbackPlan, IntersectionSpec, PhaseSpec

EPS_S = 1e-6
"""Tolerance in seconds when comparing durations (absorbs floating-point rounding)."""

MIN_YELLOW_S = 3.0
"""The shortest yellow (amber) any plan may show, in seconds."""

MIN_ALL_RED_S = 1.0
"""The shortest all-red clearance any plan may show, in seconds."""

DURATION_MAX_S = 86400.0
"""The longest duration, cycle, step, age or offset (s) a spec or a plan may name: one day.

Larger finite numbers are input errors, not timings; bounding them keeps every sum the
envelope forms finite (``math.fsum`` raises ``OverflowError`` near ``1e308``).
"""

SATURATION_FLOW_MAX_PCU_H = 100000.0
"""Largest saturation flow of a phase, PCU/h (about fifty lanes' worth)."""

CROSSING_MAX_M = 1000.0
"""Longest pedestrian crossing, m."""

WALKING_SPEED_MAX_M_S = 10.0
"""Fastest design walking speed, m/s."""


def pedestrian_clearance_s(phase: PhaseSpec) -> float:
    """Seconds a pedestrian needs to cross with ``phase`` (0 when it carries no crossing)."""
    if phase.pedestrian_crossing_m is None:
        return 0.0
    return phase.pedestrian_crossing_m / phase.walking_speed_m_s


def green_floor_s(phase: PhaseSpec) -> float:
    """Shortest green of ``phase`` in seconds: its min green or its pedestrian clearance.

    Capped at the max green, so that a clearance within rounding of it leaves a valid range.
    """
    return min(phase.max_green_s, max(phase.min_green_s, pedestrian_clearance_s(phase)))


def yellow_floor_s(phase: PhaseSpec) -> float:
    """Shortest yellow of ``phase`` in seconds: the configured yellow, at least 3 s."""
    return max(MIN_YELLOW_S, phase.yellow_s)


def all_red_floor_s(phase: PhaseSpec) -> float:
    """Shortest all-red of ``phase`` in seconds: the configured all-red, at least 1 s."""
    return max(MIN_ALL_RED_S, phase.all_red_s)


def intergreen_s(phase: PhaseSpec) -> float:
    """Return the configured yellow plus all-red of ``phase`` (s): its Webster lost time."""
    return phase.yellow_s + phase.all_red_s


def green_bounds_s(spec: IntersectionSpec) -> tuple[list[float], list[float]]:
    """Lowest and highest green of every phase, in ring order, in seconds."""
    return [green_floor_s(p) for p in spec.phases], [p.max_green_s for p in spec.phases]


def feasible_cycle_s(spec: IntersectionSpec) -> tuple[float, float]:
    """Shortest and longest cycle (s) that both the cycle bounds and the greens allow."""
    lo, hi = green_bounds_s(spec)
    lost = math.fsum(intergreen_s(p) for p in spec.phases)
    return (
        max(spec.cycle_min_s, math.fsum(lo) + lost),
        min(spec.cycle_max_s, math.fsum(hi) + lost),
    )


def bounded_s(value: float, upper: float = DURATION_MAX_S) -> bool:
    """Tell whether ``value`` is a real number of magnitude at most ``upper`` (not NaN, inf)."""
    return isinstance(value, int | float) and math.isfinite(value) and abs(value) <= upper


def _phase_problems(i: int, phase: PhaseSpec) -> list[str]:
    at = f"phases[{i}]"
    out: list[str] = []
    numbers = {
        "min_green_s": (phase.min_green_s, DURATION_MAX_S),
        "max_green_s": (phase.max_green_s, DURATION_MAX_S),
        "yellow_s": (phase.yellow_s, DURATION_MAX_S),
        "all_red_s": (phase.all_red_s, DURATION_MAX_S),
        "saturation_flow_pcu_h": (phase.saturation_flow_pcu_h, SATURATION_FLOW_MAX_PCU_H),
        "walking_speed_m_s": (phase.walking_speed_m_s, WALKING_SPEED_MAX_M_S),
    }
    if phase.pedestrian_crossing_m is not None:
        numbers["pedestrian_crossing_m"] = (phase.pedestrian_crossing_m, CROSSING_MAX_M)
    bad = {
        name: upper
        for name, (value, upper) in numbers.items()
        if not bounded_s(value, upper) or value <= 0
    }
    out += [
        f"{at}.{name}: must be a positive finite number up to {upper:g}"
        for name, upper in bad.items()
    ]
    if bad:
        return out
    if phase.min_green_s > phase.max_green_s:
        out.append(
            f"{at}.min_green_s: {phase.min_green_s:g} s is more than max_green_s "
            f"{phase.max_green_s:g} s"
        )
    if phase.yellow_s < MIN_YELLOW_S:
        out.append(f"{at}.yellow_s: {phase.yellow_s:g} s is below the {MIN_YELLOW_S:g} s minimum")
    if phase.all_red_s < MIN_ALL_RED_S:
        out.append(
            f"{at}.all_red_s: {phase.all_red_s:g} s is below the {MIN_ALL_RED_S:g} s minimum"
        )
    clearance = pedestrian_clearance_s(phase)
    if clearance > phase.max_green_s + EPS_S:
        out.append(
            f"{at}.pedestrian_crossing_m: clearance {clearance:.1f} s "
            f"({phase.pedestrian_crossing_m:g} m at {phase.walking_speed_m_s:g} m/s) "
            f"does not fit in max_green_s {phase.max_green_s:g} s"
        )
    return out


def fallback_problems(spec: IntersectionSpec, index: int, plan: FallbackPlan) -> list[str]:
    """List what makes fallback plan number ``index`` break the limits of ``spec``."""
    at = f"fallback_plans[{index}]"
    out: list[str] = []
    ids = [p.phase_id for p in spec.phases]
    unknown = sorted(set(plan.greens_s) - set(ids))
    missing = [pid for pid in ids if pid not in plan.greens_s]
    if unknown:
        out.append(f"{at}.greens_s: unknown phases {unknown}; phases are {ids}")
    if missing:
        out.append(f"{at}.greens_s: no green for phases {missing}")
    if not bounded_s(plan.offset_s) or plan.offset_s < 0:
        out.append(f"{at}.offset_s: must be a finite number from 0 to {DURATION_MAX_S:g} s")
    if plan.starts_at.tzinfo is not None:
        out.append(f"{at}.starts_at: must be a local time of day without a time zone")
    if out:
        return out
    for phase in spec.phases:
        green = plan.greens_s[phase.phase_id]
        floor = green_floor_s(phase)
        if not bounded_s(green) or green < floor - EPS_S or green > phase.max_green_s + EPS_S:
            out.append(
                f"{at}.greens_s.{phase.phase_id}: {green:g} s is outside "
                f"[{floor:g}, {phase.max_green_s:g}] s (min green, pedestrian clearance, "
                "max green)"
            )
    if out:
        return out
    cycle = math.fsum(plan.greens_s[p.phase_id] + intergreen_s(p) for p in spec.phases)
    if cycle < spec.cycle_min_s - EPS_S or cycle > spec.cycle_max_s + EPS_S:
        out.append(
            f"{at}.greens_s: cycle {cycle:g} s (greens plus yellows and all-reds) is outside "
            f"[{spec.cycle_min_s:g}, {spec.cycle_max_s:g}] s"
        )
    elif plan.offset_s >= cycle:
        out.append(f"{at}.offset_s: {plan.offset_s:g} s is not shorter than its cycle {cycle:g} s")
    return out


def _cycle_problems(spec: IntersectionSpec) -> list[str]:
    out: list[str] = []
    for name in ("cycle_min_s", "cycle_max_s", "max_cycle_step_s", "max_split_step_s"):
        value = getattr(spec, name)
        if not bounded_s(value) or value <= 0:
            out.append(f"{name}: must be a positive finite number up to {DURATION_MAX_S:g} s")
    if not bounded_s(spec.stale_after_s) or spec.stale_after_s <= 0:
        out.append(f"stale_after_s: must be a positive finite number up to {DURATION_MAX_S:g} s")
    if not bounded_s(spec.offset_s) or spec.offset_s < 0:
        out.append(f"offset_s: must be a finite number from 0 to {DURATION_MAX_S:g} s")
    if out:
        return out
    if spec.cycle_min_s > spec.cycle_max_s:
        out.append(
            f"cycle_min_s: {spec.cycle_min_s:g} s is more than cycle_max_s {spec.cycle_max_s:g} s"
        )
    return out


def spec_problems(spec: IntersectionSpec) -> list[str]:
    """Every reason ``spec`` cannot satisfy its own limits; empty when it can.

    Each message starts with the field path inside the spec, e.g.
    ``phases[0].min_green_s: 30 s is more than max_green_s 20 s``.
    """
    out = _cycle_problems(spec)
    if len(spec.phases) < 2:
        out.append("phases: an intersection needs at least two phases")
    seen: set[str] = set()
    for i, phase in enumerate(spec.phases):
        if phase.phase_id in seen:
            out.append(f"phases[{i}].phase_id: duplicate phase id {phase.phase_id!r}")
        seen.add(phase.phase_id)
        out += _phase_problems(i, phase)
    if out:
        return out
    lo, hi = green_bounds_s(spec)
    lost = math.fsum(intergreen_s(p) for p in spec.phases)
    if math.fsum(lo) + lost > spec.cycle_max_s + EPS_S:
        out.append(
            f"cycle_max_s: {spec.cycle_max_s:g} s is shorter than the shortest possible cycle "
            f"{math.fsum(lo) + lost:g} s (min greens or pedestrian clearances plus yellows and "
            "all-reds)"
        )
    if math.fsum(hi) + lost < spec.cycle_min_s - EPS_S:
        out.append(
            f"cycle_min_s: {spec.cycle_min_s:g} s is longer than the longest possible cycle "
            f"{math.fsum(hi) + lost:g} s (max greens plus yellows and all-reds)"
        )
    if not spec.fallback_plans:
        out.append("fallback_plans: at least one time-of-day fallback plan is needed")
    starts = [f.starts_at.replace(tzinfo=None) for f in spec.fallback_plans]
    for i, start in enumerate(starts):
        if start in starts[:i]:
            out.append(f"fallback_plans[{i}].starts_at: another plan also starts at {start}")
    if out:
        return out
    for i, plan in enumerate(spec.fallback_plans):
        out += fallback_problems(spec, i, plan)
    return out


def validate_spec(spec: IntersectionSpec) -> None:
    """Raise :class:`ControlError` naming every limit ``spec`` cannot satisfy."""
    problems = spec_problems(spec)
    if problems:
        raise ControlError(
            f"intersection {spec.intersection_id!r} cannot satisfy its limits: "
            + "; ".join(problems)
        )


def phase_ids(spec: IntersectionSpec) -> tuple[str, ...]:
    """Phase ids of ``spec`` in ring order."""
    return tuple(p.phase_id for p in spec.phases)
