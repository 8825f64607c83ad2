"""Ground speed: smoothing, capping, per-window mean and 85th percentile, exact values."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from atcs.config import AtcsConfig
from atcs.homography import GroundHomography
from atcs.metrics import CameraAnalyzer
from atcs.metrics.speed import GroundSpeeds, SpeedSums, TrackSpeeds
from atcs.types import Detections, VehicleClass

# 10 px per metre, y down the image is -y on the ground: image (x, y) <-> ground (x/10, -y/10)
IMAGE = [[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0]]
GROUND = [[0.0, 0.0], [10.0, 0.0], [10.0, -10.0], [0.0, -10.0]]


def speeds(max_speed_m_s: float = 50.0) -> GroundSpeeds:
    h = GroundHomography(IMAGE, GROUND)
    return GroundSpeeds(h, smoothing_s=1.0, max_speed_m_s=max_speed_m_s, max_tracks=10)


def feed(g: GroundSpeeds, t_s: float, points: dict[int, tuple[float, float]]) -> TrackSpeeds:
    ids = np.array(list(points), dtype=np.int64)
    anchors = np.array(list(points.values()), dtype=np.float32).reshape(-1, 2)
    return g.update(t_s, ids, anchors, np.ones(len(ids), dtype=np.bool_))


def test_speed_is_the_slope_of_the_last_second_of_positions() -> None:
    g = speeds()
    got = []
    for k in range(8):  # 5 frames/s, 3 m (30 px) per frame sideways: 15 m/s
        got.append(float(feed(g, 0.2 * k, {1: (30.0 * k, 500.0)}).speeds_m_s[0]))
    assert all(math.isnan(v) for v in got[:3])  # positions must span half a second
    assert got[3:] == pytest.approx([15.0] * 5)


def test_one_bad_box_moves_the_speed_by_a_fraction() -> None:
    g = speeds()
    for k in range(6):
        jitter = 10.0 if k == 5 else 0.0  # the last box 1 m too far down (toward the camera)
        result = feed(g, 0.2 * k, {1: (100.0, 500.0 - 20.0 * k + jitter)})
    # 10 m/s along; a frame-to-frame difference would read 5 m/s, the fit 9.29 m/s:
    # the error (1 m at t = 1.0 s, 0.5 s from the mean time) over sum((t - mean)^2) = 0.7
    slope = 10.0 - 1.0 * (1.0 - 0.5) / 0.7
    assert float(result.speeds_m_s[0]) == pytest.approx(slope, rel=1e-6)


def test_implausible_speeds_are_capped_and_flagged() -> None:
    g = speeds(max_speed_m_s=50.0)
    for k in range(4):  # 200 m (2000 px) per 0.2 s: 1000 m/s
        result = feed(g, 0.2 * k, {1: (0.0, -2000.0 * k), 2: (10.0 * k, 0.0)})
    assert result.speeds_m_s.tolist() == pytest.approx([50.0, 5.0])
    assert result.capped.tolist() == [True, False]


def test_boxes_cut_by_the_border_and_above_the_horizon_give_no_position() -> None:
    h = GroundHomography(
        [[100.0, 400.0], [500.0, 400.0], [400.0, 200.0], [200.0, 200.0]],
        [[0.0, 0.0], [10.0, 0.0], [10.0, 30.0], [0.0, 30.0]],
    )  # a perspective road: its horizon lies above y = 200
    g = GroundSpeeds(h, smoothing_s=1.0, max_speed_m_s=60.0, max_tracks=10)
    ids = np.array([1, 2], dtype=np.int64)
    results = []
    for k in range(5):
        anchors = np.array([[300.0, 390.0 - 5 * k], [300.0, -1000.0]], dtype=np.float32)
        results.append(g.update(0.25 * k, ids, anchors, np.array([k != 4, True])).speeds_m_s)
    assert not math.isnan(float(results[3][0]))
    assert math.isnan(float(results[4][0]))  # cut by the border in the last frame
    assert all(math.isnan(float(r[1])) for r in results)  # above the horizon: never
    assert len(g) == 1


def test_window_mean_and_85th_percentile_are_per_vehicle() -> None:
    sums = SpeedSums()
    # vehicle 1 is seen in four frames at 10 m/s, vehicles 2..4 once at 20, 30, 40 m/s
    for _ in range(4):
        sums.add(TrackSpeeds(np.array([1]), np.array([10.0], np.float32), np.array([False])))
    sums.add(
        TrackSpeeds(
            np.array([2, 3, 4, 5]),
            np.array([20.0, 30.0, 40.0, np.nan], np.float32),
            np.array([False, False, True, False]),
        )
    )
    summary = sums.summary()
    assert summary.vehicles == 4
    assert summary.capped == 1
    assert summary.mean_kmh == pytest.approx(25.0 * 3.6)
    # ranks 0..3 of 36, 72, 108, 144 km/h: 85th percentile at rank 2.55
    assert summary.p85_kmh == pytest.approx(108.0 + 0.55 * 36.0)
    assert SpeedSums().summary().mean_kmh is None


W, H = 600, 600
ORIGIN = datetime(2024, 5, 1, 7, 0, 0, tzinfo=UTC)


def config(**calibration: Any) -> AtcsConfig:
    raw: dict[str, Any] = {
        "site": {"id": "s"},
        "cameras": [{"id": "cam", "source": "clip.mp4"}],
        "segments": [
            {
                "id": "road",
                "camera": "cam",
                "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
                "length_m": 60.0,
                "lanes": 2,
            },
        ],
        "calibrations": [
            {
                "camera": "cam",
                # 10 px per metre across the whole 600 x 600 image
                "image_points": [[0, 0], [1, 0], [1, 1], [0, 1]],
                "ground_points_m": [[0, 60], [60, 60], [60, 0], [0, 0]],
                **calibration,
            }
        ],
        "analysis": {"window_s": 10.0},
    }
    return AtcsConfig.model_validate(raw)


def drive(an: CameraAnalyzer, pixels_per_frame: float, frames: int) -> None:
    for k in range(frames):
        y = 500.0 - pixels_per_frame * k
        dets = Detections(
            xyxy=np.array([[270.0, y - 60.0, 330.0, y]], dtype=np.float32),
            confidence=np.array([0.9], dtype=np.float32),
            class_id=np.array([int(VehicleClass.CAR)]),
        )
        an.update(k, ORIGIN + timedelta(seconds=0.2 * k), 0.2 * k, dets)


def test_analyzer_windows_carry_the_ground_speed() -> None:
    an = CameraAnalyzer.from_config(config(), "cam", W, H, ORIGIN)
    assert an.calibrated
    drive(an, 20.0, 20)  # 2 m per 0.2 s: 10 m/s = 36 km/h
    (m,) = an.close_windows(ORIGIN + timedelta(seconds=10))
    assert m.speed_vehicles == 1
    assert m.speed_kmh == pytest.approx(36.0, rel=1e-3)
    assert m.speed_p85_kmh == pytest.approx(36.0, rel=1e-3)
    assert m.speed_capped == 0
    uncalibrated = CameraAnalyzer.from_config(
        config().model_copy(update={"calibrations": []}), "cam", W, H, ORIGIN
    )
    drive(uncalibrated, 20.0, 20)
    (m,) = uncalibrated.close_windows(ORIGIN + timedelta(seconds=10))
    assert (m.speed_kmh, m.speed_vehicles) == (None, 0)


def test_analyzer_caps_a_bad_calibration_s_speeds() -> None:
    an = CameraAnalyzer.from_config(config(max_speed_kmh=30.0), "cam", W, H, ORIGIN)
    drive(an, 20.0, 20)  # 36 km/h against a 30 km/h cap
    (m,) = an.close_windows(ORIGIN + timedelta(seconds=10))
    assert m.speed_kmh == pytest.approx(30.0)
    assert m.speed_capped == 1
