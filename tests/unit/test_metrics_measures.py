"""Queue length, density and level of service arithmetic."""

from __future__ import annotations

import pytest

from atcs.config import AnalysisConfig
from atcs.metrics import density_pcu_km_lane, is_congested, level_of_service, queue_length_m
from atcs.types import LevelOfService

LOS = LevelOfService


def test_queue_runs_bumper_to_bumper_and_ends_at_the_last_back() -> None:
    # Fronts at 2, 11, 19 m; each vehicle 5 m long: gaps of 4 m and 3 m.
    near, far = [2.0, 11.0, 19.0], [7.0, 16.0, 24.0]
    assert queue_length_m(near, far, [True] * 3, max_gap_m=5.0) == 24.0


def test_queue_stops_at_the_first_bumper_gap_over_the_limit() -> None:
    # Back of the second car at 15 m, front of the third at 30 m: a 15 m gap.
    near, far = [3.0, 10.0, 30.0, 36.0], [8.0, 15.0, 35.0, 41.0]
    assert queue_length_m(near, far, [True] * 4, max_gap_m=12.0) == 15.0


def test_the_gap_is_between_bumpers_not_anchors() -> None:
    # Anchors (fronts) 8 m apart but 4.5 m long cars: 3.5 m gaps, well within 4 m.
    near = [0.0, 8.0, 16.0]
    far = [4.5, 12.5, 20.5]
    assert queue_length_m(near, far, [True] * 3, max_gap_m=4.0) == 20.5


def test_a_single_stopped_car_reads_its_length() -> None:
    assert queue_length_m([0.5], [5.0], [True], max_gap_m=12.0) == 5.0


def test_three_stopped_buses_one_and_a_half_metres_apart_are_one_queue() -> None:
    # 12 m buses: fronts 13.5 m apart (more than the 12 m gap), bumpers 1.5 m apart.
    near = [1.0, 14.5, 28.0]
    far = [13.0, 26.5, 40.0]
    assert queue_length_m(near, far, [True] * 3, max_gap_m=12.0) == 40.0


def test_gap_equal_to_the_limit_is_still_contiguous() -> None:
    assert queue_length_m([12.0, 29.0], [17.0, 34.0], [True, True], max_gap_m=12.0) == 34.0


def test_no_queue_when_the_first_vehicle_is_far_from_the_stop_line() -> None:
    assert queue_length_m([20.0, 27.0], [25.0, 32.0], [True, True], max_gap_m=12.0) == 0.0


def test_moving_vehicles_do_not_queue_or_bridge_gaps() -> None:
    near, far = [1.0, 10.0, 18.0, 27.0], [5.0, 14.0, 22.0, 31.0]
    slow = [True, False, False, True]
    # The moving vehicles do not bridge the 22 m gap from 5 m to 27 m.
    assert queue_length_m(near, far, slow, max_gap_m=12.0) == 5.0


def test_queue_unordered_input_and_vehicles_past_the_line() -> None:
    # A car straddling the stop line (front past it) is at 0; its back still counts.
    near, far = [18.0, -3.0, 8.0], [22.0, 2.0, 12.0]
    assert queue_length_m(near, far, [True] * 3, max_gap_m=10.0) == 22.0
    assert queue_length_m([], [], [], max_gap_m=10.0) == 0.0
    assert queue_length_m([1.0, 2.0], [5.0, 6.0], [False, False], max_gap_m=10.0) == 0.0


def test_density_arithmetic() -> None:
    # 6 PCU on 50 m of 3 lanes: 6 / (0.05 * 3) = 40 pcu/km/lane.
    assert density_pcu_km_lane(6.0, 50.0, 3) == pytest.approx(40.0)
    assert density_pcu_km_lane(2.5, 250.0, 1) == 10.0


BOUNDS = AnalysisConfig().los_density_pcu_km_lane  # (7, 11, 16, 22, 28)


@pytest.mark.parametrize(
    ("density", "los"),
    [
        (0.0, LOS.A),
        (7.0, LOS.A),  # upper bounds are inclusive
        (7.01, LOS.B),
        (11.0, LOS.B),
        (15.9, LOS.C),
        (16.0, LOS.C),
        (22.0, LOS.D),
        (22.5, LOS.E),
        (28.0, LOS.E),
        (28.01, LOS.F),
        (500.0, LOS.F),
    ],
)
def test_level_of_service_thresholds(density: float, los: LOS) -> None:
    assert BOUNDS == (7.0, 11.0, 16.0, 22.0, 28.0)
    assert level_of_service(density, BOUNDS) is los


def test_congested_from_los() -> None:
    assert [is_congested(x, LOS.E) for x in LOS] == [False, False, False, False, True, True]
    assert [is_congested(x, LOS.D) for x in LOS] == [False, False, False, True, True, True]
    assert is_congested(LOS.A, LOS.A)
