"""Phase measures from segment windows: PCU conversion, aggregation, staleness."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from atcs.config import PcuConfig
from atcs.control import MeasureBoard, segment_flow_pcu_h
from atcs.control.inputs import line_flows_pcu_h
from atcs.types import (
    CameraId,
    CameraState,
    CameraStatus,
    Direction,
    FlowCount,
    LineId,
    PhaseId,
    SegmentId,
    VehicleClass,
)
from controllers import IntersectionSpec
from tests.unit.test_control_supervisor import T0, flow, ix_spec, window

PHASES: list[dict[str, Any]] = [
    {
        "id": "north",
        "segments": ["n-in", "n-in2"],
        "exit_segments": ["n-out", "n-out2"],
        "min_green_s": 10.0,
        "max_green_s": 60.0,
    },
    {"id": "east", "segments": ["e-in"], "min_green_s": 10.0, "max_green_s": 60.0},
]


def spec() -> IntersectionSpec:
    return ix_spec(phases=PHASES)


def board(**kw: Any) -> MeasureBoard:
    return MeasureBoard(spec(), PcuConfig(), **kw)


def test_flow_is_converted_to_pcu_by_class_with_the_segment_movement() -> None:
    w = window(
        "n-in",
        T0,
        flow_veh_h=1080.0,
        flows=[flow(VehicleClass.CAR, 360.0), flow(VehicleClass.MOTORCYCLE, 720.0)],
    )
    assert segment_flow_pcu_h(w, PcuConfig(), "protected") == pytest.approx(360 + 720 * 0.15)
    assert segment_flow_pcu_h(w, PcuConfig(), "opposed") == pytest.approx(360 + 720 * 0.40)
    assert segment_flow_pcu_h(w, PcuConfig(motorcycle_protected=0.5), "") == pytest.approx(720)


def test_without_a_class_breakdown_the_segment_pcu_per_vehicle_ratio_is_used() -> None:
    assert segment_flow_pcu_h(
        window("n-in", T0, flow_veh_h=600.0, pcu=4.0, vehicles=8.0), PcuConfig(), "protected"
    ) == pytest.approx(300.0)
    empty = window("n-in", T0, flow_veh_h=360.0, pcu=0.0, vehicles=0.0)
    assert segment_flow_pcu_h(empty, PcuConfig(), "protected") == pytest.approx(360.0)


def test_phase_measures_aggregate_max_flow_summed_pcu_longest_queue_stalest_age() -> None:
    b = board(movements={SegmentId("n-in"): "opposed"})
    now = T0 + timedelta(seconds=4)
    b.add(
        [
            window(
                "n-in",
                T0,
                flow_veh_h=1080.0,
                pcu=6.0,
                flows=[flow(VehicleClass.CAR, 360.0), flow(VehicleClass.MOTORCYCLE, 720.0)],
                queue_m=35.0,
            ),
            window("n-in2", T0 + timedelta(seconds=3), flow_veh_h=900.0, pcu=4.0, vehicles=8.0),
            window("n-out", T0, pcu=2.5),
            window("n-out2", T0 - timedelta(seconds=60), pcu=9.0),  # stale exit: skipped
            window("e-in", T0, flow_veh_h=300.0, pcu=2.0, vehicles=2.0, queue_m=12.0),
            window("elsewhere", T0, pcu=99.0),  # not this intersection's
        ]
    )
    measures = b.measures(now)
    north = measures[PhaseId("north")]
    assert north.flow_pcu_h == pytest.approx(648.0)  # max(360 + 720 * 0.4, 900 * 0.5)
    assert north.queue_pcu == pytest.approx(10.0)
    assert north.queue_m == pytest.approx(35.0)
    assert north.exit_queue_pcu == pytest.approx(2.5)
    assert north.age_s == pytest.approx(4.0)
    east = measures[PhaseId("east")]
    assert (east.flow_pcu_h, east.queue_pcu, east.queue_m, east.age_s) == (300.0, 2.0, 12.0, 4.0)
    assert east.exit_queue_pcu == 0.0
    assert b.stale_reasons(now) == []
    assert SegmentId("elsewhere") not in b.watched


def test_stale_flagged_and_older_windows_never_replace_newer_measures() -> None:
    b = board()
    b.add([window("n-in", T0, pcu=6.0), window("n-in2", T0), window("e-in", T0)])
    later = T0 + timedelta(seconds=10)
    b.add([window("n-in", later, stale=True), window("n-in", T0 - timedelta(seconds=10), pcu=1)])
    assert b.stale_windows_skipped == 1
    north = b.measures(later)[PhaseId("north")]
    assert north.queue_pcu == pytest.approx(6.0 + 5.0)
    assert north.age_s == pytest.approx(10.0)


def test_missing_and_old_segments_make_the_inputs_stale_and_drop_the_phase() -> None:
    b = board()
    assert b.stale_reasons(T0) == [
        "segment n-in: no measures yet",
        "segment n-in2: no measures yet",
        "segment e-in: no measures yet",
    ]
    b.add([window("n-in", T0), window("e-in", T0)])
    assert list(b.measures(T0)) == [PhaseId("east")]  # north lacks n-in2
    b.add([window("n-in2", T0 - timedelta(seconds=5))])
    at = T0 + timedelta(seconds=26)
    assert b.stale_reasons(at) == [
        "segment n-in2: newest measures 31.0 s old (stale after 30 s)",
    ]
    assert list(b.measures(at)) == [PhaseId("east")]
    assert b.stale_reasons(T0 + timedelta(seconds=30)) == [
        "segment n-in2: newest measures 35.0 s old (stale after 30 s)",
    ]
    assert b.stale_reasons(T0 + timedelta(seconds=24)) == []


def test_exit_segments_never_make_the_inputs_stale() -> None:
    b = board()
    b.add([window(s, T0) for s in ("n-in", "n-in2", "e-in")])
    assert b.stale_reasons(T0 + timedelta(seconds=1)) == []


def test_a_camera_that_is_not_streaming_makes_its_segments_stale() -> None:
    cams = {SegmentId("n-in"): CameraId("cam-n"), SegmentId("e-in"): CameraId("cam-e")}
    b = board(segment_cameras=cams)
    b.add([window(s, T0) for s in ("n-in", "n-in2", "e-in")])
    down = CameraStatus(CameraId("cam-e"), CameraState.STALLED, 0.0, T0, "no frame for 10 s")
    assert b.set_camera_status(down)
    assert not b.set_camera_status(down)  # no change
    assert b.stale_reasons(T0) == ["segment e-in: camera cam-e is stalled (no frame for 10 s)"]
    assert not b.set_camera_status(CameraStatus(CameraId("cam-x"), CameraState.OFFLINE, 0.0, T0))
    assert b.set_camera_status(CameraStatus(CameraId("cam-e"), CameraState.STREAMING, 2.0, T0))
    assert b.stale_reasons(T0) == []
    # without a config mapping the camera named in the windows counts
    b2 = board()
    b2.add([window("n-in", T0, camera="cam-9")])
    assert b2.set_camera_status(CameraStatus(CameraId("cam-9"), CameraState.RECONNECTING, 0, T0))
    assert "segment n-in: camera cam-9 is reconnecting" in b2.stale_reasons(T0)


SHARED: list[dict[str, Any]] = [
    {"id": "through", "segments": ["s-thru", "s-left"], "min_green_s": 10.0, "max_green_s": 60.0},
    {"id": "left", "segments": ["s-left"], "min_green_s": 5.0, "max_green_s": 30.0},
]


def test_flows_average_over_the_span_per_lane_and_the_critical_lane_counts() -> None:
    b = MeasureBoard(ix_spec(phases=PHASES, stale_after_s=60.0), PcuConfig())
    cars = VehicleClass.CAR
    for k, (lane1, lane2) in enumerate([(900.0, 0.0), (360.0, 360.0), (0.0, 720.0), (0.0, 180.0)]):
        at = T0 + timedelta(seconds=10 * k)
        flows = [flow(cars, lane1, "l1"), flow(cars, lane2, "l2")]
        b.add(
            [
                window("n-in", at, flows=flows),
                window("n-in2", at, flow_veh_h=0.0),
                window("e-in", at),
            ]
        )
    now = T0 + timedelta(seconds=30)
    b.flow_span_s = 30.0  # windows k = 1, 2, 3: l1 averages 120 veh/h, l2 420
    assert b.measures(now)[PhaseId("north")].flow_pcu_h == pytest.approx(420.0)
    b.flow_span_s = 15.0  # k = 2, 3: l1 0, l2 450
    assert b.measures(now)[PhaseId("north")].flow_pcu_h == pytest.approx(450.0)
    b.flow_span_s = 45.0  # all four: l1 315, l2 315
    assert b.measures(now)[PhaseId("north")].flow_pcu_h == pytest.approx(315.0)


def test_a_segment_served_by_two_phases_counts_half_in_each() -> None:
    plans = [{"starts_at": "00:00", "greens_s": {"through": 30.0, "left": 10.0}}]
    b = MeasureBoard(ix_spec(phases=SHARED, fallback_plans=plans), PcuConfig())
    cars = VehicleClass.CAR
    b.add(
        [
            window("s-thru", T0, pcu=6.0, flows=[flow(cars, 500.0, "t1")]),
            window("s-left", T0, pcu=4.0, flows=[flow(cars, 400.0, "t1")]),
        ]
    )
    ms = b.measures(T0)
    # lane t1 carries the through segment's 500 and half the left segment's 400
    assert ms[PhaseId("through")].flow_pcu_h == pytest.approx(700.0)
    assert ms[PhaseId("through")].queue_pcu == pytest.approx(6.0 + 2.0)
    assert ms[PhaseId("left")].flow_pcu_h == pytest.approx(200.0)
    assert ms[PhaseId("left")].queue_pcu == pytest.approx(2.0)


def test_queues_average_over_the_queue_span_and_history_is_bounded() -> None:
    from atcs.control.inputs import HISTORY_WINDOWS

    b = board()
    b.queue_span_s = 20.0
    for k, pcu in enumerate([50.0, 2.0, 4.0]):
        at = T0 + timedelta(seconds=10 * k)
        b.add([window("n-in", at, pcu=pcu), window("n-in2", at, pcu=0.0), window("e-in", at)])
    now = T0 + timedelta(seconds=20)
    assert b.measures(now)[PhaseId("north")].queue_pcu == pytest.approx(3.0)
    b.add([window("n-in", T0 + timedelta(seconds=5), pcu=99.0)])  # older than the newest
    assert b.measures(now)[PhaseId("north")].queue_pcu == pytest.approx(3.0)
    for k in range(3, 3 + 2 * HISTORY_WINDOWS):
        b.add([window("n-in", T0 + timedelta(seconds=10 * k))])
    assert all(len(h) <= HISTORY_WINDOWS for h in b._history.values())


def test_without_a_window_in_the_span_the_newest_one_counts() -> None:
    b = board()
    b.queue_span_s = 20.0
    b.add([window("n-in", T0, pcu=6.0), window("n-in2", T0, pcu=0.0), window("e-in", T0)])
    later = T0 + timedelta(seconds=25)  # past the queue span, not yet stale
    assert b.measures(later)[PhaseId("north")].queue_pcu == pytest.approx(6.0)


def test_only_the_approach_direction_feeds_the_phase_flow() -> None:
    toward = flow(VehicleClass.CAR, 720.0)
    away = FlowCount(LineId("l1"), VehicleClass.CAR, Direction.BACKWARD, 1, 360.0, False)
    w = window("n-in", T0, flow_veh_h=720.0, flows=[toward, away])
    assert segment_flow_pcu_h(w, PcuConfig(), "protected") == pytest.approx(720.0)
    assert line_flows_pcu_h([w], PcuConfig()) == {"l1": pytest.approx(720.0)}


def test_a_partial_window_weighs_by_the_time_it_was_observed() -> None:
    # A whole 10-s window at 360 veh/h and a window seen for 2 s (engine start) at
    # 1800 veh/h: 1 + 1 crossings in 12 s observed = 600 veh/h, not their mean (1080).
    whole = window("n-in", T0, flows=[flow(VehicleClass.CAR, 360.0)])
    start = replace(
        window("n-in", T0 + timedelta(seconds=10), flows=[flow(VehicleClass.CAR, 1800.0)]),
        observed_s=2.0,
        partial=True,
    )
    assert line_flows_pcu_h([whole, start], PcuConfig()) == {"l1": pytest.approx(600.0)}
    # A window never observed weighs nothing.
    blind = replace(whole, observed_s=0.0, partial=True)
    assert line_flows_pcu_h([blind], PcuConfig()) == {}
