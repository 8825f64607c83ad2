"""Queue length, density and level of service arithmetic."""

from __future__ import annotations

import pytest

from atcs.config import AnalysisConfig
from atcs.metrics import density_pcu_km_lane, is_congested, level_of_service, queue_length_m
from atcs.types import LevelOfService

LOS = LevelOfService


def test_queue_contiguous_from_the_stop_line() -> None:
    assert queue_length_m([2.0, 9.0, 15.0, 24.0], [True] * 4, max_gap_m=10.0) == 24.0


def test_queue_stops_at_the_first_gap() -> None:
    # 15 -> 30 is a 15 m gap: the vehicle at 30 m (and beyond) is not in the queue.
    assert queue_length_m([3.0, 15.0, 30.0, 35.0], [True] * 4, max_gap_m=12.0) == 15.0


def test_queue_gap_equal_to_the_limit_is_still_contiguous() -> None:
    assert queue_length_m([12.0, 24.0], [True, True], max_gap_m=12.0) == 24.0


def test_no_queue_when_first_vehicle_is_far_from_the_stop_line() -> None:
    assert queue_length_m([20.0, 25.0], [True, True], max_gap_m=12.0) == 0.0


def test_moving_vehicles_do_not_queue_or_bridge_gaps() -> None:
    dist = [5.0, 14.0, 20.0, 27.0]
    slow = [True, False, False, True]
    # The moving vehicles at 14 and 20 m do not bridge 5 -> 27 (22 m gap).
    assert queue_length_m(dist, slow, max_gap_m=12.0) == 5.0


def test_queue_unordered_input_and_vehicles_past_the_line() -> None:
    assert queue_length_m([18.0, -3.0, 8.0], [True] * 3, max_gap_m=10.0) == 18.0
    assert queue_length_m([], [], max_gap_m=10.0) == 0.0
    assert queue_length_m([1.0, 2.0], [False, False], max_gap_m=10.0) == 0.0


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
