"""Property tests: whatever the measures, controller and running plan, what leaves is safe."""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atcs.errors import SafetyError
from atcs.types import IntersectionId, PhaseId, PhaseTiming, PlanMode, SegmentId, TimingPlan
from controllers import (
    ControlInput,
    FallbackPlan,
    IntersectionSpec,
    PhaseMeasure,
    PhaseSpec,
    SafetyOutcome,
    check,
    controller_names,
    enforce,
    get_controller,
    next_cycle_boundary,
    spec_problems,
)
from controllers.limits import green_floor_s

PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

seconds = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def phase_specs(draw: st.DrawFn, index: int) -> PhaseSpec:
    min_green = draw(st.floats(1.0, 30.0))
    max_green = min_green + draw(st.floats(0.0, 60.0))
    walk = draw(st.floats(0.8, 1.6))
    crossing = draw(st.none() | st.floats(0.5, 1.0).map(lambda f: f * max_green * walk))
    return PhaseSpec(
        phase_id=PhaseId(f"p{index}"),
        segments=draw(st.sampled_from([(SegmentId(f"s{index}"),), ()])),
        min_green_s=min_green,
        max_green_s=max_green,
        yellow_s=draw(st.floats(3.0, 6.0)),
        all_red_s=draw(st.floats(1.0, 4.0)),
        saturation_flow_pcu_h=draw(st.floats(600.0, 8000.0)),
        pedestrian_crossing_m=crossing,
        walking_speed_m_s=walk,
        exit_segments=(SegmentId(f"x{index}"),),
    )


def _lost_s(phases: tuple[PhaseSpec, ...]) -> float:
    return math.fsum(p.yellow_s + p.all_red_s for p in phases)


def _greens_within(
    draw: st.DrawFn, phases: tuple[PhaseSpec, ...], cycle_min_s: float, cycle_max_s: float
) -> list[float]:
    """Greens inside the phases' bounds whose cycle lies within [cycle_min_s, cycle_max_s]."""
    lo = [green_floor_s(p) for p in phases]
    span = math.fsum(p.max_green_s - low for p, low in zip(phases, lo, strict=True))
    base = math.fsum(lo) + _lost_s(phases)
    if span <= 0:
        return lo
    t_lo = max(0.0, (cycle_min_s - base) / span)
    t_hi = min(1.0, (cycle_max_s - base) / span)
    t = t_lo + draw(seconds) * max(0.0, t_hi - t_lo)
    return [low + t * (p.max_green_s - low) for p, low in zip(phases, lo, strict=True)]


@st.composite
def specs(draw: st.DrawFn) -> IntersectionSpec:
    n = draw(st.integers(2, 5))
    phases = tuple(draw(phase_specs(i)) for i in range(n))
    lost = _lost_s(phases)
    lo_sum = math.fsum(green_floor_s(p) for p in phases)
    hi_sum = math.fsum(p.max_green_s for p in phases)
    cycle_min = draw(st.floats(10.0, hi_sum + lost))
    cycle_max = max(cycle_min, lo_sum + lost) + draw(st.floats(0.0, 150.0))
    starts = draw(st.lists(st.integers(0, 24 * 60 - 1), min_size=1, max_size=3, unique=True))
    fallbacks = []
    for minute in starts:
        greens = _greens_within(draw, phases, cycle_min, cycle_max)
        cycle = math.fsum(greens) + lost
        fallbacks.append(
            FallbackPlan(
                starts_at=time(minute // 60, minute % 60),
                greens_s={p.phase_id: g for p, g in zip(phases, greens, strict=True)},
                offset_s=draw(seconds) * 0.99 * cycle,
            )
        )
    return IntersectionSpec(
        intersection_id=IntersectionId("ix"),
        phases=phases,
        cycle_min_s=cycle_min,
        cycle_max_s=cycle_max,
        max_cycle_step_s=draw(st.floats(0.5, 60.0)),
        max_split_step_s=draw(st.floats(0.5, 30.0)),
        controller="webster",
        fallback_plans=tuple(fallbacks),
        stale_after_s=draw(st.floats(5.0, 300.0)),
        timezone=draw(st.sampled_from(["UTC", "Asia/Jakarta", "Asia/Makassar", "Europe/Berlin"])),
        offset_s=draw(st.floats(0.0, 30.0)),
    )


nows = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)
odd_numbers = st.sampled_from([math.nan, math.inf, -math.inf, -3.0])


def _measure_value(upper: float) -> st.SearchStrategy[float]:
    return st.floats(0.0, upper) | odd_numbers


@st.composite
def measure_maps(draw: st.DrawFn, spec: IntersectionSpec) -> dict[PhaseId, PhaseMeasure]:
    out: dict[PhaseId, PhaseMeasure] = {}
    for phase in spec.phases:
        if draw(st.integers(0, 9)) == 0:
            continue  # a missing measure
        clean = draw(st.booleans()) or draw(st.booleans())
        value = st.floats(0.0, 10000.0) if clean else _measure_value(10000.0)
        queue = st.floats(0.0, 300.0) if clean else _measure_value(300.0)
        out[phase.phase_id] = PhaseMeasure(
            phase_id=phase.phase_id,
            flow_pcu_h=draw(value),
            queue_pcu=draw(queue),
            exit_queue_pcu=draw(queue),
            age_s=draw(st.floats(0.0, 2.0 * spec.stale_after_s)),
        )
    return out


def _plan(
    spec: IntersectionSpec,
    phases: tuple[PhaseTiming, ...],
    start: datetime,
    cycle_s: float | None = None,
    controller: str = "fixed",
    offset_s: float = 0.0,
) -> TimingPlan:
    return TimingPlan(
        intersection_id=spec.intersection_id,
        plan_id="generated",
        controller=controller,
        mode=PlanMode.ADAPTIVE,
        cycle_s=sum(p.duration_s for p in phases) if cycle_s is None else cycle_s,
        offset_s=offset_s,
        phases=phases,
        valid_from=start,
        reason="generated",
    )


@st.composite
def running_plans(draw: st.DrawFn, spec: IntersectionSpec, now: datetime) -> TimingPlan | None:
    kind = draw(st.sampled_from(["none", "safe", "safe", "safe", "any", "other-phases"]))
    start = now + timedelta(seconds=draw(st.floats(-3 * 86400.0, 300.0)))
    if kind == "none":
        return None
    if kind == "safe":
        greens = _greens_within(draw, spec.phases, spec.cycle_min_s, spec.cycle_max_s)
        phases = tuple(
            PhaseTiming(
                p.phase_id,
                g,
                p.yellow_s + draw(st.sampled_from([0.0, 0.0, 1.0])),
                p.all_red_s,
            )
            for p, g in zip(spec.phases, greens, strict=True)
        )
        plan = _plan(spec, phases, start)
        if plan.cycle_s > spec.cycle_max_s:  # the longer yellows broke the bound: drop them
            phases = tuple(
                PhaseTiming(p.phase_id, g, p.yellow_s, p.all_red_s)
                for p, g in zip(spec.phases, greens, strict=True)
            )
            plan = _plan(spec, phases, start)
        return plan
    ids = [p.phase_id for p in spec.phases]
    if kind == "other-phases":
        ids = [*ids, PhaseId("extra")]
    phases = tuple(
        PhaseTiming(
            pid,
            draw(st.floats(0.0, 200.0)),
            draw(st.floats(0.0, 8.0)),
            draw(st.floats(0.0, 5.0)),
        )
        for pid in ids
    )
    return _plan(spec, phases, start, cycle_s=draw(st.none() | st.floats(1.0, 400.0)))


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[IntersectionSpec, datetime, TimingPlan | None, dict[PhaseId, PhaseMeasure]]:
    spec = draw(specs())
    now = draw(nows)
    return spec, now, draw(running_plans(spec, now)), draw(measure_maps(spec))


@PROPERTY
@given(specs())
def test_generated_specs_are_consistent(spec: IntersectionSpec) -> None:
    assert spec_problems(spec) == []


@PROPERTY
@given(scenarios(), st.sampled_from(controller_names()))
def test_every_controller_plan_leaves_the_envelope_safe(
    scenario: tuple[IntersectionSpec, datetime, TimingPlan | None, dict[PhaseId, PhaseMeasure]],
    name: str,
) -> None:
    spec, now, running, ms = scenario
    proposed = get_controller(name).propose(spec, ControlInput(now, ms, running=running))
    assert check(spec, proposed, None) == [], "controllers keep the static rules themselves"
    decision = enforce(spec, proposed, running, now)
    assert decision.outcome is not SafetyOutcome.REFUSED
    assert check(spec, decision.plan, running) == []
    assert decision.plan.valid_from == next_cycle_boundary(running, now)
    assert decision.plan.valid_from >= now - timedelta(milliseconds=1)
    again = enforce(spec, decision.plan, running, now)
    assert again.outcome is SafetyOutcome.ACCEPTED, again.reasons


@st.composite
def wild_plans(draw: st.DrawFn, spec: IntersectionSpec, now: datetime) -> TimingPlan:
    finite = draw(st.integers(0, 19)) > 0
    phases = tuple(
        PhaseTiming(
            p.phase_id,
            draw(st.floats(-50.0, 300.0) if finite else st.floats(-50.0, 300.0) | odd_numbers),
            draw(st.floats(-1.0, 10.0)),
            draw(st.floats(-1.0, 6.0)),
        )
        for p in spec.phases
    )
    return _plan(
        spec,
        phases,
        now + timedelta(seconds=draw(st.floats(-600.0, 600.0))),
        cycle_s=draw(st.none() | st.floats(-10.0, 500.0)),
        controller=draw(st.sampled_from([*controller_names(), "manual"])),
        offset_s=draw(st.floats(-100.0, 500.0)),
    )


@PROPERTY
@given(st.data())
def test_any_proposed_plan_is_repaired_to_a_safe_plan_or_refused(data: st.DataObject) -> None:
    spec, now, running, _ = data.draw(scenarios())
    proposed = data.draw(wild_plans(spec, now))
    finite = all(math.isfinite(p.green_s) for p in proposed.phases)
    if not finite and running is None:
        with pytest.raises(SafetyError):
            enforce(spec, proposed, running, now)
        return
    decision = enforce(spec, proposed, running, now)
    if not finite:
        assert decision.outcome is SafetyOutcome.REFUSED
        assert decision.plan is running
        return
    assert decision.outcome is not SafetyOutcome.REFUSED, decision.reasons
    assert check(spec, decision.plan, running) == []
    if decision.outcome is SafetyOutcome.ACCEPTED:
        rounded = "durations rounded to whole seconds" in decision.reasons
        assert decision.plan is proposed or rounded
        for new, old in zip(decision.plan.phases, proposed.phases, strict=True):
            assert abs(new.green_s - old.green_s) < 1.0
    else:
        assert decision.reasons
        assert decision.plan.plan_id != proposed.plan_id


@st.composite
def whole_second_specs(draw: st.DrawFn) -> IntersectionSpec:
    """Specs whose limits are all whole seconds, with whole-second time-of-day plans."""
    n = draw(st.integers(2, 5))
    phases = []
    for i in range(n):
        min_green = draw(st.integers(1, 30))
        phases.append(
            PhaseSpec(
                phase_id=PhaseId(f"p{i}"),
                segments=(SegmentId(f"s{i}"),),
                min_green_s=float(min_green),
                max_green_s=float(min_green + draw(st.integers(0, 60))),
                yellow_s=float(draw(st.integers(3, 6))),
                all_red_s=float(draw(st.integers(1, 4))),
                saturation_flow_pcu_h=draw(st.floats(600.0, 8000.0)),
                exit_segments=(SegmentId(f"x{i}"),),
            )
        )
    lost = _lost_s(tuple(phases))
    lo_sum = sum(p.min_green_s for p in phases) + lost
    hi_sum = sum(p.max_green_s for p in phases) + lost
    cycle_min = float(draw(st.integers(10, int(hi_sum))))
    cycle_max = max(cycle_min, lo_sum) + draw(st.integers(0, 150))
    greens = [p.min_green_s for p in phases]
    for i, p in enumerate(phases):  # grow greens to reach the cycle floor
        need = cycle_min - (sum(greens) + lost)
        if need > 0:
            greens[i] += min(p.max_green_s - p.min_green_s, need)
    return IntersectionSpec(
        intersection_id=IntersectionId("ix"),
        phases=tuple(phases),
        cycle_min_s=cycle_min,
        cycle_max_s=float(cycle_max),
        max_cycle_step_s=float(draw(st.integers(1, 60))),
        max_split_step_s=float(draw(st.integers(1, 30))),
        controller="webster",
        fallback_plans=(
            FallbackPlan(time(0, 0), {p.phase_id: g for p, g in zip(phases, greens, strict=True)}),
        ),
        stale_after_s=60.0,
    )


@PROPERTY
@given(st.data(), st.sampled_from(controller_names()))
def test_with_whole_second_limits_every_plan_leaves_on_whole_seconds(
    data: st.DataObject, name: str
) -> None:
    spec = data.draw(whole_second_specs())
    now = data.draw(nows)
    ms = data.draw(measure_maps(spec))
    first = enforce(spec, get_controller(name).propose(spec, ControlInput(now, ms)), None, now)
    running = first.plan
    for plan in (running,):
        assert check(spec, plan, None) == []
    later = now + timedelta(seconds=data.draw(st.floats(0.0, 900.0)))
    ms = data.draw(measure_maps(spec))
    proposed = get_controller(name).propose(spec, ControlInput(later, ms, running=running))
    decision = enforce(spec, proposed, running, later)
    assert check(spec, decision.plan, running) == []
    for plan in (running, decision.plan):
        for p in plan.phases:
            for value in (p.green_s, p.yellow_s, p.all_red_s):
                assert value == round(value), (plan.phases, plan.reason)
