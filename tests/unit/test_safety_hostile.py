"""The envelope on hostile numbers: huge, infinite, NaN, tiny, and times at the calendar's ends.

:func:`controllers.enforce` documents two exceptions, :class:`ControlError` (bad input) and
its subclass :class:`SafetyError` (a plan that cannot be made safe with nothing running).
Whatever numbers reach it, nothing else may escape, and what it lets run keeps every rule.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atcs.errors import ControlError, SafetyError
from atcs.types import PhaseTiming, PlanMode, TimingPlan
from controllers import IntersectionSpec, SafetyOutcome, check, enforce, next_cycle_boundary
from controllers.limits import DURATION_MAX_S
from tests.unit.test_controllers import NOW, fallback, make_spec, phase, running_plan

HOSTILE = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))

HUGE = [1e308, -1e308, 1.7976931348623157e308, 1e300, 1e20, 5e15, DURATION_MAX_S * 1.0001]
TINY = [5e-324, -5e-324, 1e-300]


def numbers(sane_lo: float, sane_hi: float) -> st.SearchStrategy[float]:
    """Mostly sane values, often huge, infinite, NaN or denormal ones."""
    return (
        st.floats(sane_lo, sane_hi)
        | st.sampled_from(HUGE + TINY)
        | st.floats(allow_nan=True, allow_infinity=True)
    )


def instants() -> st.SearchStrategy[datetime]:
    """Aware times anywhere in the calendar, with odd offsets near its ends."""
    zones = st.sampled_from(
        [UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12, minutes=59))]
    )
    edges = st.sampled_from([datetime.min, datetime.max, datetime(1, 1, 2), datetime(9999, 12, 30)])
    return st.one_of(
        st.just(NOW),
        st.datetimes(timezones=zones),
        st.builds(lambda at, tz: at.replace(tzinfo=tz), edges, zones),
    )


@st.composite
def hostile_specs(draw: st.DrawFn) -> IntersectionSpec:
    phases = [
        phase(
            pid,
            min_green_s=draw(numbers(5.0, 10.0)),
            max_green_s=draw(numbers(20.0, 60.0)),
            yellow_s=draw(numbers(3.0, 5.0)),
            all_red_s=draw(numbers(1.0, 3.0)),
            saturation_flow_pcu_h=draw(numbers(1000.0, 3000.0)),
            crossing_m=draw(st.none() | numbers(5.0, 20.0)),
        )
        for pid in ("a", "b")
    ]
    return make_spec(
        phases,
        cycle_min_s=draw(numbers(30.0, 40.0)),
        cycle_max_s=draw(numbers(100.0, 140.0)),
        max_cycle_step_s=draw(numbers(5.0, 20.0)),
        max_split_step_s=draw(numbers(3.0, 10.0)),
        fallbacks=[fallback("00:00", {"a": draw(numbers(20, 30)), "b": draw(numbers(20, 30))})],
        stale_after_s=draw(numbers(30.0, 120.0)),
    )


@st.composite
def hostile_plans(draw: st.DrawFn, spec: IntersectionSpec) -> TimingPlan:
    phases = tuple(
        PhaseTiming(
            p.phase_id, draw(numbers(5.0, 60.0)), draw(numbers(3.0, 5.0)), draw(numbers(1.0, 3.0))
        )
        for p in spec.phases
    )
    return TimingPlan(
        intersection_id=spec.intersection_id,
        plan_id="hostile",
        controller=draw(st.sampled_from(["webster", "manual", "fixed"])),
        mode=PlanMode.ADAPTIVE,
        cycle_s=draw(numbers(30.0, 120.0)),
        offset_s=draw(numbers(0.0, 100.0)),
        phases=phases,
        valid_from=draw(instants()),
        reason="hostile",
    )


@HOSTILE
@given(st.data())
def test_enforce_raises_only_its_documented_errors_and_lets_only_safe_plans_run(
    data: st.DataObject,
) -> None:
    spec = data.draw(hostile_specs())
    now = data.draw(instants())
    running = data.draw(st.none() | hostile_plans(spec))
    proposed = data.draw(hostile_plans(spec))
    logging.disable(logging.CRITICAL)
    try:
        decision = enforce(spec, proposed, running, now)
    except ControlError:  # SafetyError included: a documented answer
        return
    finally:
        logging.disable(logging.NOTSET)
    if decision.outcome is not SafetyOutcome.REFUSED:
        assert check(spec, decision.plan, running) == [], decision.reasons


@HOSTILE
@given(st.sampled_from(HUGE), st.sampled_from(["green", "yellow", "all_red", "cycle", "offset"]))
def test_a_huge_timing_is_refused_with_a_reason_and_the_running_plan_stays(
    value: float, field: str
) -> None:
    spec = make_spec([phase("a"), phase("b")])
    running = running_plan(spec, [30.0, 30.0], NOW - timedelta(seconds=600))
    greens = {"green": value} if field == "green" else {}
    intergreens = {k: value for k in (field,) if k in ("yellow", "all_red")}
    phases = tuple(
        PhaseTiming(
            p.phase_id,
            greens.get("green", 30.0),
            intergreens.get("yellow", 3.0),
            intergreens.get("all_red", 2.0),
        )
        for p in spec.phases
    )
    proposed = TimingPlan(
        intersection_id=spec.intersection_id,
        plan_id="huge",
        controller="manual",
        mode=PlanMode.MANUAL,
        cycle_s=value if field == "cycle" else 70.0,
        offset_s=value if field == "offset" else 0.0,
        phases=phases,
        valid_from=NOW,
        reason="forged",
    )
    decision = enforce(spec, proposed, running, NOW)
    assert decision.outcome is SafetyOutcome.REFUSED
    assert decision.plan is running
    assert any("finite numbers within" in r for r in decision.reasons), decision.reasons
    with pytest.raises(SafetyError, match="finite numbers within"):
        enforce(spec, proposed, None, NOW)


def test_a_spec_with_a_huge_limit_is_a_control_error_naming_the_field() -> None:
    spec = make_spec([phase("a", max_green_s=1e308), phase("b")])
    proposed = running_plan(make_spec([phase("a"), phase("b")]), [30.0, 30.0], NOW)
    with pytest.raises(ControlError, match=r"phases\[0\]\.max_green_s: must be a positive finite"):
        enforce(spec, proposed, None, NOW)


def test_a_cycle_boundary_past_the_calendar_is_a_control_error() -> None:
    spec = make_spec([phase("a"), phase("b")])
    end = datetime(9999, 12, 31, 23, 59, 30, tzinfo=UTC)
    running = running_plan(spec, [30.0, 30.0], end - timedelta(seconds=1))
    with pytest.raises(ControlError, match="outside the calendar"):
        next_cycle_boundary(running, end)
    edge = datetime.min.replace(tzinfo=timezone(timedelta(hours=7)))
    with pytest.raises(ControlError, match="outside the calendar"):
        next_cycle_boundary(None, edge)
