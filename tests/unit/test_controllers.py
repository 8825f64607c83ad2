"""Controllers: Webster on textbook examples, max-pressure splits, time-of-day plans."""

from __future__ import annotations

import ast
import math
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from atcs.errors import ControlError
from atcs.types import IntersectionId, PhaseId, PhaseTiming, PlanMode, SegmentId, TimingPlan
from controllers import (
    ControlInput,
    FallbackPlan,
    IntersectionSpec,
    PhaseMeasure,
    PhaseSpec,
    check,
    controller_names,
    get_controller,
    next_cycle_boundary,
    spec_problems,
    webster_cycle_s,
)
from controllers.allocate import allocate

NOW = datetime(2024, 5, 6, 1, 0, tzinfo=UTC)  # 08:00 in Asia/Jakarta


def phase(
    pid: str,
    *,
    min_green_s: float = 5.0,
    max_green_s: float = 60.0,
    yellow_s: float = 3.0,
    all_red_s: float = 2.0,
    saturation_flow_pcu_h: float = 1800.0,
    crossing_m: float | None = None,
    segments: Sequence[str] | None = None,
) -> PhaseSpec:
    return PhaseSpec(
        phase_id=PhaseId(pid),
        segments=tuple(SegmentId(s) for s in (segments if segments is not None else [pid])),
        min_green_s=min_green_s,
        max_green_s=max_green_s,
        yellow_s=yellow_s,
        all_red_s=all_red_s,
        saturation_flow_pcu_h=saturation_flow_pcu_h,
        pedestrian_crossing_m=crossing_m,
        exit_segments=(SegmentId(f"{pid}-exit"),),
    )


def fallback(starts: str, greens: Mapping[str, float], offset_s: float = 0.0) -> FallbackPlan:
    return FallbackPlan(
        starts_at=time.fromisoformat(starts),
        greens_s={PhaseId(k): v for k, v in greens.items()},
        offset_s=offset_s,
        name=f"plan {starts}",
    )


def make_spec(
    phases: Sequence[PhaseSpec],
    *,
    cycle_min_s: float = 30.0,
    cycle_max_s: float = 120.0,
    max_cycle_step_s: float = 10.0,
    max_split_step_s: float = 5.0,
    fallbacks: Sequence[FallbackPlan] | None = None,
    controller: str = "webster",
    timezone: str = "UTC",
    stale_after_s: float = 60.0,
) -> IntersectionSpec:
    if fallbacks is None:
        greens: dict[str, float] = {p.phase_id: max(p.min_green_s, 20.0) for p in phases}
        fallbacks = [fallback("00:00", greens)]
    return IntersectionSpec(
        intersection_id=IntersectionId("ix"),
        phases=tuple(phases),
        cycle_min_s=cycle_min_s,
        cycle_max_s=cycle_max_s,
        max_cycle_step_s=max_cycle_step_s,
        max_split_step_s=max_split_step_s,
        controller=controller,
        fallback_plans=tuple(fallbacks),
        stale_after_s=stale_after_s,
        timezone=timezone,
    )


def measures(
    flows: Mapping[str, float] | None = None,
    queues: Mapping[str, float] | None = None,
    exits: Mapping[str, float] | None = None,
    age_s: float = 5.0,
) -> dict[PhaseId, PhaseMeasure]:
    flows, queues, exits = flows or {}, queues or {}, exits or {}
    ids = set(flows) | set(queues) | set(exits)
    return {
        PhaseId(i): PhaseMeasure(
            phase_id=PhaseId(i),
            flow_pcu_h=flows.get(i, 0.0),
            queue_pcu=queues.get(i, 0.0),
            exit_queue_pcu=exits.get(i, 0.0),
            age_s=age_s,
        )
        for i in ids
    }


def greens(plan: TimingPlan) -> list[float]:
    return [p.green_s for p in plan.phases]


def running_plan(spec: IntersectionSpec, green_s: Sequence[float], start: datetime) -> TimingPlan:
    phases = tuple(
        PhaseTiming(p.phase_id, g, p.yellow_s, p.all_red_s)
        for p, g in zip(spec.phases, green_s, strict=True)
    )
    return TimingPlan(
        intersection_id=spec.intersection_id,
        plan_id="running",
        controller="fixed",
        mode=PlanMode.FALLBACK,
        cycle_s=math.fsum(p.duration_s for p in phases),
        offset_s=0.0,
        phases=phases,
        valid_from=start,
        reason="test",
    )


# --- Webster -------------------------------------------------------------------------------


def test_webster_textbook_two_phase_kadiyali() -> None:
    # Two approaches at 500 and 300 PCU/h, saturation flow 1600 PCU/h each, lost time 16 s
    # per cycle: Y = 0.5, C0 = (1.5 * 16 + 5) / (1 - 0.5) = 58 s; effective green 42 s
    # split 500:300 -> 26.25 s and 15.75 s.
    spec = make_spec(
        [
            phase("a", yellow_s=4.0, all_red_s=4.0, saturation_flow_pcu_h=1600.0),
            phase("b", yellow_s=4.0, all_red_s=4.0, saturation_flow_pcu_h=1600.0),
        ]
    )
    plan = get_controller("webster").propose(
        spec, ControlInput(NOW, measures(flows={"a": 500.0, "b": 300.0}))
    )
    assert plan.cycle_s == pytest.approx(58.0, abs=1e-9)
    assert greens(plan) == pytest.approx([26.25, 15.75], abs=1e-9)
    assert plan.mode is PlanMode.ADAPTIVE
    assert plan.controller == "webster"
    assert plan.extra["flow_ratio_sum"] == pytest.approx(0.5)
    assert plan.extra["lost_time_s"] == pytest.approx(16.0)
    assert plan.extra["webster_cycle_s"] == pytest.approx(58.0)
    assert plan.valid_from == NOW
    assert plan.data_age_s == pytest.approx(5.0)
    assert check(spec, plan, None) == []


def test_webster_textbook_critical_flows_differing_saturation() -> None:
    # N-S critical flow 1000 of 2500, E-W 900 of 3000, L = 12 s: Y = 0.7,
    # C0 = (18 + 5) / 0.3 = 76.67 s (77 s in the textbook after rounding).
    spec = make_spec(
        [
            phase("ns", yellow_s=3.0, all_red_s=3.0, saturation_flow_pcu_h=2500.0),
            phase("ew", yellow_s=3.0, all_red_s=3.0, saturation_flow_pcu_h=3000.0),
        ]
    )
    plan = get_controller("webster").propose(
        spec, ControlInput(NOW, measures(flows={"ns": 1000.0, "ew": 900.0}))
    )
    assert plan.cycle_s == pytest.approx(23.0 / 0.3, abs=1e-9)
    effective = 23.0 / 0.3 - 12.0
    assert greens(plan) == pytest.approx([effective * 4 / 7, effective * 3 / 7], abs=1e-9)
    assert webster_cycle_s(0.7, 12.0) == pytest.approx(76.6667, abs=1e-4)


def test_webster_min_green_takes_time_from_the_others_in_proportion() -> None:
    spec = make_spec([phase("a"), phase("b"), phase("c", min_green_s=10.0)])
    plan = get_controller("webster").propose(
        spec, ControlInput(NOW, measures(flows={"a": 720.0, "b": 540.0, "c": 36.0}))
    )
    # y = 0.4, 0.3, 0.02; L = 15 s; C0 = 27.5 / 0.28; phase c's share (2.3 s) is below its
    # 10 s min green, so a and b share the rest 4:3.
    c0 = 27.5 / 0.28
    assert plan.cycle_s == pytest.approx(c0, abs=1e-9)
    rest = c0 - 15.0 - 10.0
    assert greens(plan) == pytest.approx([rest * 4 / 7, rest * 3 / 7, 10.0], abs=1e-9)


@pytest.mark.parametrize("flows", [(900.0, 900.0), (1200.0, 900.0), (850.0, 800.0)])
def test_webster_oversaturated_runs_the_longest_cycle(flows: tuple[float, float]) -> None:
    spec = make_spec([phase("a"), phase("b")], cycle_max_s=110.0)
    plan = get_controller("webster").propose(
        spec, ControlInput(NOW, measures(flows={"a": flows[0], "b": flows[1]}))
    )
    assert plan.cycle_s == pytest.approx(110.0)
    assert greens(plan) == pytest.approx(
        [100.0 * flows[0] / sum(flows), 100.0 * flows[1] / sum(flows)]
    )
    assert check(spec, plan, None) == []


def test_webster_no_demand_gives_the_shortest_cycle_split_evenly() -> None:
    spec = make_spec([phase("a"), phase("b")], cycle_min_s=40.0)
    plan = get_controller("webster").propose(
        spec, ControlInput(NOW, measures(flows={"a": 0.0, "b": 0.0}))
    )
    assert plan.cycle_s == pytest.approx(40.0)
    assert greens(plan) == pytest.approx([15.0, 15.0])


def test_webster_long_cycle_capped_by_max_greens() -> None:
    spec = make_spec(
        [phase("a", max_green_s=30.0), phase("b", max_green_s=20.0)], cycle_max_s=200.0
    )
    plan = get_controller("webster").propose(
        spec, ControlInput(NOW, measures(flows={"a": 800.0, "b": 700.0}))
    )
    assert greens(plan) == pytest.approx([30.0, 20.0])
    assert plan.cycle_s == pytest.approx(60.0)


def test_webster_unmeasured_phase_gets_its_min_green() -> None:
    spec = make_spec([phase("a"), phase("walk", min_green_s=12.0, segments=[])])
    plan = get_controller("webster").propose(spec, ControlInput(NOW, measures(flows={"a": 600.0})))
    assert greens(plan)[1] == pytest.approx(12.0)
    assert plan.mode is PlanMode.ADAPTIVE


@pytest.mark.parametrize("name", ["webster", "max-pressure", "webster-pressure", "tod-pressure"])
@pytest.mark.parametrize(
    ("ms", "why"),
    [
        (measures(flows={"a": 300.0}), "phase b: no measures"),
        (measures(flows={"a": 300.0, "b": 200.0}, age_s=61.0), "61 s old"),
        (measures(flows={"a": 300.0, "b": math.nan}), "phase b: measures are negative"),
        (measures(flows={"a": 300.0}, queues={"b": -1.0}), "phase b: measures are negative"),
    ],
)
def test_adaptive_controllers_fall_back_on_unusable_measures(
    name: str, ms: dict[PhaseId, PhaseMeasure], why: str
) -> None:
    spec = make_spec(
        [phase("a"), phase("b")],
        fallbacks=[fallback("00:00", {"a": 25.0, "b": 15.0}, offset_s=7.0)],
    )
    plan = get_controller(name).propose(spec, ControlInput(NOW, ms))
    assert plan.mode is PlanMode.FALLBACK
    assert plan.controller == name
    assert greens(plan) == [25.0, 15.0]
    assert plan.offset_s == 7.0
    assert why in plan.reason
    assert "stale inputs" in plan.reason


# --- Max-pressure --------------------------------------------------------------------------


def test_max_pressure_shares_green_above_min_by_pressure() -> None:
    spec = make_spec(
        [phase("a", min_green_s=10.0), phase("b", min_green_s=10.0)],
        fallbacks=[fallback("00:00", {"a": 25.0, "b": 25.0})],
    )
    plan = get_controller("max-pressure").propose(
        spec,
        ControlInput(NOW, measures(queues={"a": 25.0, "b": 10.0}, exits={"a": 5.0, "b": 0.0})),
    )
    # Cycle of the time-of-day plan: 60 s; 50 s of green, 20 s of it as min greens, the
    # other 30 s shared by pressure 20:10.
    assert plan.cycle_s == pytest.approx(60.0)
    assert greens(plan) == pytest.approx([30.0, 20.0])
    assert plan.extra["total_pressure_pcu"] == pytest.approx(30.0)
    assert plan.mode is PlanMode.ADAPTIVE


def test_max_pressure_negative_pressure_counts_as_none_and_max_green_caps() -> None:
    spec = make_spec(
        [phase("a", max_green_s=30.0), phase("b"), phase("c")],
        fallbacks=[fallback("00:00", {"a": 25.0, "b": 25.0, "c": 25.0})],
    )
    plan = get_controller("max-pressure").propose(
        spec,
        ControlInput(
            NOW,
            measures(queues={"a": 40.0, "b": 10.0, "c": 2.0}, exits={"b": 0.0, "c": 9.0}),
        ),
    )
    # Cycle 90 s, 75 s of green, 15 s as min greens: a wants 48 s beyond its min but is
    # capped at 30 s; b (pressure 10) takes the rest; c (pressure -7) keeps its min green.
    assert plan.cycle_s == pytest.approx(90.0)
    assert greens(plan) == pytest.approx([30.0, 40.0, 5.0])


def test_max_pressure_without_pressure_follows_the_time_of_day_split() -> None:
    spec = make_spec(
        [phase("a", min_green_s=10.0), phase("b", min_green_s=10.0)],
        fallbacks=[fallback("00:00", {"a": 40.0, "b": 20.0})],
    )
    plan = get_controller("max-pressure").propose(
        spec, ControlInput(NOW, measures(queues={"a": 0.0, "b": 3.0}, exits={"b": 8.0}))
    )
    assert greens(plan) == pytest.approx([40.0, 20.0])
    assert "no pressure" in plan.reason


# --- Fixed time of day -------------------------------------------------------------------


def tod_spec() -> IntersectionSpec:
    return make_spec(
        [phase("a"), phase("b")],
        timezone="Asia/Jakarta",
        fallbacks=[
            fallback("16:00", {"a": 30.0, "b": 30.0}),
            fallback("00:00", {"a": 10.0, "b": 10.0}),
            fallback("06:00", {"a": 40.0, "b": 20.0}, offset_s=12.0),
        ],
    )


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        (datetime(2024, 5, 5, 23, 30, tzinfo=UTC), [40.0, 20.0]),  # 06:30 WIB
        (datetime(2024, 5, 5, 22, 59, tzinfo=UTC), [10.0, 10.0]),  # 05:59 WIB
        (datetime(2024, 5, 6, 9, 0, tzinfo=UTC), [30.0, 30.0]),  # 16:00 WIB
        (datetime(2024, 5, 6, 17, 0, tzinfo=UTC), [10.0, 10.0]),  # 00:00 WIB next day
        (datetime(2024, 5, 6, 16, 59, 59, tzinfo=UTC), [30.0, 30.0]),  # 23:59:59 WIB
    ],
)
def test_fixed_picks_the_plan_of_the_local_time_of_day(
    utc: datetime, expected: list[float]
) -> None:
    plan = get_controller("fixed").propose(tod_spec(), ControlInput(utc, {}))
    assert greens(plan) == expected
    assert plan.mode is PlanMode.FALLBACK
    assert plan.controller == "fixed"
    assert plan.cycle_s == pytest.approx(sum(expected) + 10.0)
    assert plan.data_age_s is None


def test_fixed_plan_carries_its_offset_and_reason() -> None:
    plan = get_controller("fixed").propose(
        tod_spec(), ControlInput(datetime(2024, 5, 5, 23, 30, tzinfo=UTC), {})
    )
    assert plan.offset_s == 12.0
    assert "from 06:00" in plan.reason
    assert "06:30 Asia/Jakarta" in plan.reason


def test_before_the_first_start_the_last_plan_of_the_day_runs() -> None:
    spec = make_spec(
        [phase("a"), phase("b")],
        fallbacks=[
            fallback("06:00", {"a": 40.0, "b": 20.0}),
            fallback("20:00", {"a": 12.0, "b": 8.0}),
        ],
    )
    plan = get_controller("fixed").propose(
        spec, ControlInput(datetime(2024, 5, 6, 3, tzinfo=UTC), {})
    )
    assert greens(plan) == [12.0, 8.0]


def test_unknown_time_zone_is_a_control_error() -> None:
    spec = make_spec([phase("a"), phase("b")], timezone="Mars/Olympus")
    with pytest.raises(ControlError, match="unknown time zone 'Mars/Olympus'"):
        get_controller("fixed").propose(spec, ControlInput(NOW, {}))


# --- Shared behaviour --------------------------------------------------------------------


def test_registry_knows_the_controllers() -> None:
    assert set(controller_names()) == {
        "fixed",
        "webster",
        "max-pressure",
        "webster-pressure",
        "tod-pressure",
    }
    for name in controller_names():
        assert get_controller(name).name == name


def test_unknown_controller_is_a_control_error_naming_the_known_ones() -> None:
    with pytest.raises(ControlError, match=r"unknown controller 'scoot'; known: fixed, webster"):
        get_controller("scoot")


@pytest.mark.parametrize("name", controller_names())
def test_plans_start_at_the_next_cycle_boundary_of_the_running_plan(name: str) -> None:
    spec = make_spec([phase("a"), phase("b")])
    start = NOW - timedelta(seconds=130)
    running = running_plan(spec, [25.0, 25.0], start)  # cycle 60 s
    plan = get_controller(name).propose(
        spec, ControlInput(NOW, measures(flows={"a": 300.0, "b": 200.0}), running=running)
    )
    assert plan.valid_from == start + timedelta(seconds=180)


def test_next_cycle_boundary() -> None:
    spec = make_spec([phase("a"), phase("b")])
    running = running_plan(spec, [25.0, 25.0], NOW)
    assert next_cycle_boundary(None, NOW) == NOW
    assert next_cycle_boundary(running, NOW) == NOW
    assert next_cycle_boundary(running, NOW - timedelta(seconds=5)) == NOW
    assert next_cycle_boundary(running, NOW + timedelta(seconds=120)) == NOW + timedelta(
        seconds=120
    )
    assert next_cycle_boundary(running, NOW + timedelta(seconds=120.5)) == NOW + timedelta(
        seconds=180
    )
    with pytest.raises(ControlError, match="timezone-aware"):
        next_cycle_boundary(running, NOW.replace(tzinfo=None))


@pytest.mark.parametrize("name", controller_names())
def test_controllers_reject_an_intersection_that_cannot_satisfy_its_limits(name: str) -> None:
    spec = make_spec([phase("a", min_green_s=50.0), phase("b", min_green_s=50.0)], cycle_max_s=90.0)
    with pytest.raises(ControlError, match=r"'ix' cannot satisfy its limits: cycle_max_s: 90 s"):
        get_controller(name).propose(spec, ControlInput(NOW, {}))


@pytest.mark.parametrize("name", controller_names())
def test_controllers_reject_a_naive_time(name: str) -> None:
    spec = make_spec([phase("a"), phase("b")])
    with pytest.raises(ControlError, match="timezone-aware"):
        get_controller(name).propose(spec, ControlInput(NOW.replace(tzinfo=None), {}))


def test_plan_ids_follow_content() -> None:
    spec = make_spec([phase("a"), phase("b")])
    ctl = get_controller("webster")
    one = ctl.propose(spec, ControlInput(NOW, measures(flows={"a": 300.0, "b": 200.0})))
    same = ctl.propose(spec, ControlInput(NOW, measures(flows={"a": 300.0, "b": 200.0})))
    other = ctl.propose(spec, ControlInput(NOW, measures(flows={"a": 400.0, "b": 200.0})))
    assert one.plan_id == same.plan_id
    assert one.plan_id != other.plan_id
    assert one.plan_id.startswith("ix-20240506T010000Z-")


# --- Spec problems -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            make_spec([phase("a", min_green_s=70.0), phase("b")]),
            "phases[0].min_green_s: 70 s is more than max_green_s 60 s",
        ),
        (make_spec([phase("a", yellow_s=2.5), phase("b")]), "phases[0].yellow_s: 2.5 s is below"),
        (make_spec([phase("a"), phase("b", all_red_s=0.5)]), "phases[1].all_red_s: 0.5 s is below"),
        (
            make_spec([phase("a", crossing_m=90.0), phase("b")]),
            "phases[0].pedestrian_crossing_m: clearance 75.0 s",
        ),
        (make_spec([phase("a"), phase("a")]), "phases[1].phase_id: duplicate phase id 'a'"),
        (make_spec([phase("a")]), "phases: an intersection needs at least two phases"),
        (
            make_spec([phase("a"), phase("b")], cycle_min_s=140.0, cycle_max_s=200.0),
            "cycle_min_s: 140 s is longer than the longest possible cycle 130 s",
        ),
        (
            make_spec([phase("a"), phase("b")], cycle_min_s=90.0, cycle_max_s=60.0),
            "cycle_min_s: 90 s is more than cycle_max_s 60 s",
        ),
        (make_spec([phase("a"), phase("b")], max_split_step_s=0.0), "max_split_step_s: must be"),
        (make_spec([phase("a"), phase("b")], fallbacks=[]), "fallback_plans: at least one"),
        (
            make_spec([phase("a"), phase("b")], fallbacks=[fallback("00:00", {"a": 20.0})]),
            "fallback_plans[0].greens_s: no green for phases ['b']",
        ),
        (
            make_spec(
                [phase("a"), phase("b")], fallbacks=[fallback("00:00", {"a": 20.0, "b": 61.0})]
            ),
            "fallback_plans[0].greens_s.b: 61 s is outside [5, 60] s",
        ),
        (
            make_spec(
                [phase("a"), phase("b")],
                cycle_max_s=60.0,
                fallbacks=[fallback("00:00", {"a": 30.0, "b": 30.0})],
            ),
            "fallback_plans[0].greens_s: cycle 70 s",
        ),
        (
            make_spec(
                [phase("a"), phase("b")],
                fallbacks=[fallback("07:00", {"a": 20.0, "b": 20.0})] * 2,
            ),
            "fallback_plans[1].starts_at: another plan also starts at 07:00",
        ),
    ],
)
def test_spec_problems_name_the_field(spec: IntersectionSpec, message: str) -> None:
    problems = spec_problems(spec)
    assert any(message in p for p in problems), problems


def test_a_consistent_spec_has_no_problems() -> None:
    assert spec_problems(make_spec([phase("a", crossing_m=12.0), phase("b")])) == []


# --- Allocation ----------------------------------------------------------------------------


def test_allocate_proportional_clamped_and_exact() -> None:
    assert allocate(60.0, [0, 0], [100, 100], [2.0, 1.0]) == pytest.approx([40.0, 20.0])
    got = allocate(60.0, [5, 25], [100, 100], [5.0, 1.0])
    assert got == pytest.approx([35.0, 25.0])
    got = allocate(60.0, [5, 5, 5], [20, 100, 100], [10.0, 1.0, 1.0])
    assert got == pytest.approx([20.0, 20.0, 20.0])
    assert allocate(5.0, [5, 5], [10, 10], [1.0, 1.0]) == [5, 5]
    assert allocate(50.0, [5, 5], [10, 10], [1.0, 1.0]) == [10, 10]
    got = allocate(30.0, [5, 5], [20, 20], [1.0, 0.0])
    assert got == pytest.approx([20.0, 10.0])
    assert math.fsum(allocate(77.7, [3, 4, 5], [40, 40, 40], [0.1, 0.7, 0.3])) == pytest.approx(
        77.7, abs=1e-9
    )
    with pytest.raises(ControlError, match="weights"):
        allocate(10.0, [0, 0], [10, 10], [1.0, math.nan])


# --- Architecture --------------------------------------------------------------------------


def test_controllers_import_only_types_errors_and_each_other(repo_dir: Path) -> None:
    allowed_prefixes = ("atcs.types", "atcs.errors", "controllers")
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    offenders = []
    for file in sorted((repo_dir / "controllers").glob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in stdlib or name.startswith(allowed_prefixes):
                    continue
                offenders.append(f"{file.name}: {name}")
    assert offenders == []
