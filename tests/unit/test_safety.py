"""The safety envelope: exact repairs, refusals, bad input and the rule checker."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from datetime import timedelta

import pytest

from atcs.errors import ControlError, SafetyError
from atcs.types import IntersectionId, PhaseTiming, PlanMode, TimingPlan
from controllers import (
    ControlInput,
    IntersectionSpec,
    SafetyOutcome,
    check,
    enforce,
    get_controller,
)
from tests.unit.test_controllers import NOW, fallback, make_spec, measures, phase, running_plan


def spec2(*, max_split_step_s: float = 5.0, max_cycle_step_s: float = 10.0) -> IntersectionSpec:
    """Two phases, min 10 s, max 60 s, 3 s yellow and 2 s all-red; cycle 30-120 s."""
    return make_spec(
        [phase("a", min_green_s=10.0), phase("b", min_green_s=10.0)],
        fallbacks=[fallback("00:00", {"a": 30.0, "b": 20.0})],
        max_split_step_s=max_split_step_s,
        max_cycle_step_s=max_cycle_step_s,
    )


def plan_of(
    spec: IntersectionSpec,
    green_s: Sequence[float],
    *,
    yellow_s: Sequence[float] | None = None,
    all_red_s: Sequence[float] | None = None,
    cycle_s: float | None = None,
    controller: str = "webster",
    offset_s: float = 0.0,
) -> TimingPlan:
    ys = yellow_s or [p.yellow_s for p in spec.phases]
    rs = all_red_s or [p.all_red_s for p in spec.phases]
    phases = tuple(
        PhaseTiming(p.phase_id, g, y, r)
        for p, g, y, r in zip(spec.phases, green_s, ys, rs, strict=True)
    )
    return TimingPlan(
        intersection_id=spec.intersection_id,
        plan_id="proposed",
        controller=controller,
        mode=PlanMode.ADAPTIVE,
        cycle_s=math.fsum(p.duration_s for p in phases) if cycle_s is None else cycle_s,
        offset_s=offset_s,
        phases=phases,
        valid_from=NOW,
        reason="test proposal",
    )


def greens(plan: TimingPlan) -> list[float]:
    return [p.green_s for p in plan.phases]


# --- Accepted ------------------------------------------------------------------------------


def test_a_safe_plan_is_accepted_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    spec = spec2()
    proposed = plan_of(spec, [30.0, 20.0])
    with caplog.at_level(logging.INFO, logger="controllers.safety"):
        decision = enforce(spec, proposed, None, NOW)
    assert decision.outcome is SafetyOutcome.ACCEPTED
    assert decision.plan is proposed
    assert decision.changed
    assert decision.reasons == ("within the envelope",)
    assert "plan proposed from webster accepted" in caplog.text


def test_controller_plans_over_their_own_running_plan_are_accepted() -> None:
    spec = spec2()
    running = running_plan(spec, [30.0, 20.0], NOW - timedelta(seconds=600))
    for name in ("fixed", "webster", "max-pressure"):
        inputs = ControlInput(NOW, measures(flows={"a": 480.0, "b": 360.0}), running=running)
        proposed = get_controller(name).propose(spec, inputs)
        decision = enforce(spec, proposed, running, NOW)
        assert check(spec, decision.plan, running) == []
        if name == "fixed":
            assert decision.outcome is SafetyOutcome.ACCEPTED


# --- Repairs -------------------------------------------------------------------------------


def test_green_below_min_is_raised_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    spec = spec2()
    with caplog.at_level(logging.WARNING, logger="controllers.safety"):
        decision = enforce(spec, plan_of(spec, [4.0, 30.0]), None, NOW)
    assert decision.outcome is SafetyOutcome.REPAIRED
    assert greens(decision.plan) == [10.0, 30.0]
    assert decision.plan.cycle_s == pytest.approx(50.0)
    assert decision.plan.plan_id != "proposed"
    assert "[repaired by the safety envelope]" in decision.plan.reason
    assert any("phase a: green 4 s raised to 10 s" in r for r in decision.reasons)
    assert "repaired" in caplog.text
    assert "phase a: green 4 s raised to 10 s" in caplog.text


def test_green_above_max_is_lowered() -> None:
    spec = spec2()
    decision = enforce(spec, plan_of(spec, [75.0, 20.0]), None, NOW)
    assert greens(decision.plan) == [60.0, 20.0]
    assert decision.plan.cycle_s == pytest.approx(90.0)


def test_pedestrian_clearance_lengthens_the_green_it_rides_on() -> None:
    spec = make_spec([phase("a", min_green_s=5.0, crossing_m=15.0), phase("b")])
    decision = enforce(spec, plan_of(spec, [8.0, 20.0]), None, NOW)
    # 12.5 s of clearance, rounded up to the whole second the plan leaves on
    assert greens(decision.plan) == [13.0, 20.0]
    assert decision.outcome is SafetyOutcome.REPAIRED


def test_short_yellow_and_all_red_are_raised_to_the_configured_values() -> None:
    spec = make_spec([phase("a", yellow_s=4.0), phase("b")])
    proposed = plan_of(spec, [20.0, 20.0], yellow_s=[3.0, 2.0], all_red_s=[2.0, 0.0])
    decision = enforce(spec, proposed, None, NOW)
    assert [(p.yellow_s, p.all_red_s) for p in decision.plan.phases] == [(4.0, 2.0), (3.0, 2.0)]
    assert decision.plan.cycle_s == pytest.approx(51.0)
    assert any("yellow/all-red 2/0 s set to 3/2 s" in r for r in decision.reasons)


def test_a_wrong_cycle_is_set_to_the_sum_of_the_phases() -> None:
    spec = spec2()
    decision = enforce(spec, plan_of(spec, [30.0, 20.0], cycle_s=90.0), None, NOW)
    assert decision.outcome is SafetyOutcome.REPAIRED
    assert decision.plan.cycle_s == pytest.approx(60.0)
    assert any("was not the sum of its phase durations 60 s" in r for r in decision.reasons)


def test_a_cycle_above_its_bound_is_rescaled_in_proportion() -> None:
    spec = make_spec([phase("a"), phase("b")], cycle_max_s=100.0)
    decision = enforce(spec, plan_of(spec, [60.0, 30.0]), None, NOW)
    # 100 s cycle leaves 90 s of green... the proposal is 100 s already; ask for more:
    assert decision.outcome is SafetyOutcome.ACCEPTED
    decision = enforce(spec, plan_of(spec, [60.0, 50.0]), None, NOW)
    assert decision.plan.cycle_s == pytest.approx(100.0)
    # 90 s of green split 6:5 (49.09 / 40.91 s), on whole seconds
    assert greens(decision.plan) == [49.0, 41.0]
    assert any("greens rescaled: cycle 120 s -> 100 s" in r for r in decision.reasons)


def test_a_cycle_below_its_bound_is_rescaled_in_proportion() -> None:
    spec = make_spec(
        [phase("a"), phase("b")],
        cycle_min_s=70.0,
        fallbacks=[fallback("00:00", {"a": 40.0, "b": 30.0})],
    )
    decision = enforce(spec, plan_of(spec, [20.0, 10.0]), None, NOW)
    assert decision.plan.cycle_s == pytest.approx(70.0)
    assert greens(decision.plan) == pytest.approx([40.0, 20.0])


def test_split_steps_limit_each_green_change() -> None:
    spec = spec2(max_split_step_s=5.0, max_cycle_step_s=10.0)
    running = running_plan(spec, [30.0, 20.0], NOW)
    decision = enforce(spec, plan_of(spec, [45.0, 5.0]), running, NOW)
    assert greens(decision.plan) == [35.0, 15.0]
    assert decision.plan.cycle_s == pytest.approx(60.0)
    assert check(spec, decision.plan, running) == []


def test_cycle_step_limits_the_cycle_change_and_rescales() -> None:
    spec = spec2(max_split_step_s=20.0, max_cycle_step_s=10.0)
    running = running_plan(spec, [30.0, 20.0], NOW)  # cycle 60 s
    decision = enforce(spec, plan_of(spec, [60.0, 50.0]), running, NOW)
    # Clamped by the split step to 50 / 40 s (cycle 100 s), then rescaled to the cycle
    # step's 70 s: 60 s of green split 5:4 (33.3 / 26.7 s), on whole seconds.
    assert decision.plan.cycle_s == pytest.approx(70.0)
    assert greens(decision.plan) == [33.0, 27.0]
    assert check(spec, decision.plan, running) == []


def test_a_safe_plan_off_whole_seconds_is_accepted_rounded() -> None:
    spec = spec2()
    proposed = plan_of(spec, [30.4, 19.6])
    decision = enforce(spec, proposed, None, NOW)
    assert decision.outcome is SafetyOutcome.ACCEPTED
    assert greens(decision.plan) == [30.0, 20.0]
    assert decision.plan.plan_id != proposed.plan_id
    assert decision.reasons == ("within the envelope", "durations rounded to whole seconds")
    assert enforce(spec, decision.plan, None, NOW).plan is decision.plan


def test_limits_off_whole_seconds_keep_the_plan_unrounded() -> None:
    # a's green must be exactly 12.5 s: no whole-second plan keeps the rules
    spec = make_spec(
        [phase("a", min_green_s=12.5, max_green_s=12.5), phase("b")],
        fallbacks=[fallback("00:00", {"a": 12.5, "b": 20.0})],
    )
    proposed = plan_of(spec, [12.5, 20.0])
    decision = enforce(spec, proposed, None, NOW)
    assert decision.outcome is SafetyOutcome.ACCEPTED
    assert decision.plan is proposed


def test_a_new_plan_waits_for_the_next_cycle_boundary() -> None:
    spec = spec2()
    start = NOW - timedelta(seconds=70)
    running = running_plan(spec, [30.0, 20.0], start)
    decision = enforce(spec, plan_of(spec, [30.0, 20.0]), running, NOW)
    assert decision.outcome is SafetyOutcome.REPAIRED
    assert decision.plan.valid_from == start + timedelta(seconds=120)
    assert any("valid_from moved" in r for r in decision.reasons)


def test_an_offset_beyond_the_cycle_is_wrapped() -> None:
    spec = spec2()
    decision = enforce(spec, plan_of(spec, [30.0, 20.0], offset_s=75.0), None, NOW)
    assert decision.plan.offset_s == pytest.approx(15.0)


def test_step_limits_are_waived_when_the_running_plan_breaks_the_rules() -> None:
    spec = spec2()
    bad_running = running_plan(spec, [5.0, 90.0], NOW)  # a: below min, b: above max
    decision = enforce(spec, plan_of(spec, [30.0, 20.0]), bad_running, NOW)
    assert decision.outcome is SafetyOutcome.ACCEPTED
    assert greens(decision.plan) == [30.0, 20.0]
    assert any("step limits waived" in r for r in decision.reasons)
    assert check(spec, decision.plan, bad_running) == []


def test_running_intergreens_are_the_last_resort_within_the_cycle_step() -> None:
    spec = spec2(max_split_step_s=1.0, max_cycle_step_s=1.0)
    running = plan_of(spec, [30.0, 20.0], yellow_s=[6.0, 6.0], all_red_s=[4.0, 4.0])
    running = dataclasses.replace(running, plan_id="running")
    proposed = plan_of(spec, [30.0, 20.0], yellow_s=[12.0, 12.0])
    decision = enforce(spec, proposed, running, NOW)
    assert [(p.yellow_s, p.all_red_s) for p in decision.plan.phases] == [(6.0, 4.0)] * 2
    assert check(spec, decision.plan, running) == []


# --- Refusals and bad input ----------------------------------------------------------------


def test_a_plan_with_the_wrong_phases_is_refused_and_the_running_plan_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec = spec2()
    running = running_plan(spec, [30.0, 20.0], NOW)
    other = make_spec([phase("a", min_green_s=10.0), phase("c", min_green_s=10.0)])
    with caplog.at_level(logging.WARNING, logger="controllers.safety"):
        decision = enforce(spec, plan_of(other, [30.0, 20.0]), running, NOW)
    assert decision.outcome is SafetyOutcome.REFUSED
    assert decision.plan is running
    assert not decision.changed
    assert "differ from the intersection's ['a', 'b']" in decision.reasons[0]
    assert "refused, plan running keeps running" in caplog.text


def test_a_plan_with_non_finite_timings_is_refused() -> None:
    spec = spec2()
    running = running_plan(spec, [30.0, 20.0], NOW)
    decision = enforce(spec, plan_of(spec, [math.nan, 20.0]), running, NOW)
    assert decision.outcome is SafetyOutcome.REFUSED
    assert "phase a: timings are not finite numbers within ±86400 s" in decision.reasons


def test_refusal_with_nothing_running_is_a_safety_error() -> None:
    spec = spec2()
    with pytest.raises(SafetyError, match="cannot be made safe and no plan is running"):
        enforce(spec, plan_of(spec, [math.inf, 20.0]), None, NOW)


def test_a_plan_from_an_unknown_controller_is_rejected() -> None:
    spec = spec2()
    with pytest.raises(ControlError, match="unknown controller 'rl-agent'; known: fixed"):
        enforce(spec, plan_of(spec, [30.0, 20.0], controller="rl-agent"), None, NOW)


def test_an_operator_plan_is_a_known_source() -> None:
    spec = spec2()
    decision = enforce(spec, plan_of(spec, [30.0, 20.0], controller="manual"), None, NOW)
    assert decision.outcome is SafetyOutcome.ACCEPTED


def test_a_plan_for_another_intersection_is_rejected() -> None:
    spec = spec2()
    proposed = dataclasses.replace(
        plan_of(spec, [30.0, 20.0]), intersection_id=IntersectionId("elsewhere")
    )
    with pytest.raises(ControlError, match="is for intersection 'elsewhere', not 'ix'"):
        enforce(spec, proposed, None, NOW)


def test_an_intersection_that_cannot_satisfy_its_limits_is_rejected() -> None:
    spec = make_spec([phase("a", min_green_s=30.0, max_green_s=20.0), phase("b")])
    with pytest.raises(ControlError, match=r"phases\[0\].min_green_s: 30 s is more than"):
        enforce(spec, plan_of(spec, [20.0, 20.0]), None, NOW)


def test_a_naive_decision_time_is_rejected() -> None:
    spec = spec2()
    with pytest.raises(ControlError, match="timezone-aware"):
        enforce(spec, plan_of(spec, [30.0, 20.0]), None, NOW.replace(tzinfo=None))


# --- The checker ---------------------------------------------------------------------------


def test_check_lists_every_broken_rule() -> None:
    spec = make_spec([phase("a", min_green_s=10.0, crossing_m=18.0), phase("b")], cycle_max_s=70.0)
    bad = plan_of(spec, [12.0, 70.0], yellow_s=[2.0, 3.0], all_red_s=[2.0, 0.5], cycle_s=99.0)
    problems = check(spec, bad, None)
    assert "phase a: yellow 2 s < 3 s" in problems
    assert "phase b: all-red 0.5 s < 2 s" in problems
    assert "phase a: green 12 s < pedestrian clearance 15.00 s" in problems
    assert "phase b: green 70 s > max green 60 s" in problems
    assert "cycle 99 s != sum of phase durations 89.5 s" in problems
    assert "cycle 99 s outside [30, 70] s" in problems
    short = plan_of(spec, [4.0, 20.0])
    assert "phase a: green 4 s < min green 10 s" in check(spec, short, None)


def test_check_steps_and_cycle_boundaries_against_the_running_plan() -> None:
    spec = spec2(max_split_step_s=5.0, max_cycle_step_s=8.0)
    running = running_plan(spec, [30.0, 20.0], NOW - timedelta(seconds=60))
    jump = dataclasses.replace(plan_of(spec, [40.0, 20.0]), valid_from=NOW + timedelta(seconds=7))
    problems = check(spec, jump, running)
    assert any("cycle changes by +10 s from the running 60 s" in p for p in problems)
    assert any("phase a: green changes by +10 s" in p for p in problems)
    assert any("is not a cycle boundary" in p for p in problems)
    early = dataclasses.replace(plan_of(spec, [30.0, 20.0]), valid_from=NOW - timedelta(hours=1))
    assert any("before the running plan's start" in p for p in check(spec, early, running))
    on_time = dataclasses.replace(plan_of(spec, [34.0, 22.0]), valid_from=NOW + timedelta(hours=1))
    assert check(spec, on_time, running) == []


def test_check_reports_structural_problems() -> None:
    spec = spec2()
    other = dataclasses.replace(
        plan_of(spec, [30.0, 20.0]), intersection_id=IntersectionId("elsewhere")
    )
    assert check(spec, other, None) == ["plan is for intersection 'elsewhere', not 'ix'"]
    naive = dataclasses.replace(plan_of(spec, [30.0, 20.0]), valid_from=NOW.replace(tzinfo=None))
    assert check(spec, naive, None) == ["valid_from must be timezone-aware"]
