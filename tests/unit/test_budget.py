"""The CPU budget: counting cameras first, shortfalls and CPU over budget reported."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from atcs.budget import BudgetMonitor
from atcs.config import CameraConfig
from atcs.sources import CameraGroup
from atcs.types import CameraId, Frame


def _cameras() -> list[CameraConfig]:
    return [
        CameraConfig(id="d1", source="d1.mp4"),  # density, 1 frame/s by default
        CameraConfig(id="d2", source="d2.mp4"),
        CameraConfig.model_validate({"id": "c1", "source": "c1.mp4", "profile": "counting"}),
    ]


def test_profiles_set_the_default_sampling_rate() -> None:
    density, _, counting = _cameras()
    assert (density.profile, density.sample_fps, density.decode) == ("density", 1.0, "auto")
    assert (counting.profile, counting.sample_fps) == ("counting", 5.0)
    explicit = CameraConfig.model_validate(
        {"id": "c", "source": "c.mp4", "profile": "counting", "sample_fps": 8}
    )
    assert explicit.sample_fps == 8.0


def test_within_budget_when_every_wanted_frame_is_analysed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = BudgetMonitor(_cameras(), 2.0, every_s=10.0)
    live = ["d1", "d2", "c1"]
    assert monitor.report(0.0, live, {}, 0.0, 0.0) is None  # starts the first interval
    for _ in range(10):
        monitor.analysed("d1")
        monitor.analysed("d2")
    for _ in range(50):
        monitor.analysed("c1")
    assert monitor.report(5.0, live, {}, 2.0, 4.0) is None  # not due yet
    report = monitor.report(10.0, live, {}, 6.0, 15.0)
    assert report is not None
    counting, density = report.profiles
    assert (counting.cameras, counting.target_fps, counting.analysed_fps) == (1, 5.0, 5.0)
    assert (density.cameras, density.target_fps, density.analysed_fps) == (2, 2.0, 2.0)
    assert report.cores_used == pytest.approx(1.5)
    assert report.detector_busy == pytest.approx(0.6)
    assert not report.over
    assert "over budget" not in caplog.text


def test_drops_and_shortfalls_are_reported_once_then_repeated_and_cleared(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="atcs.budget")
    monitor = BudgetMonitor(_cameras(), 2.0, every_s=10.0)
    live = ["d1", "d2", "c1"]
    monitor.report(0.0, live, {"d1": 3}, 0.0, 0.0)
    for _ in range(50):
        monitor.analysed("c1")
    for _ in range(6):
        monitor.analysed("d1")
    report = monitor.report(10.0, live, {"d1": 7}, 10.0, 19.8)
    assert report is not None
    assert report.over
    density = report.profiles[1]
    assert (density.analysed_fps, density.dropped) == (0.6, 4)
    assert not report.profiles[0].short  # counting cameras kept their rate
    assert caplog.text.count("over budget") == 1
    assert "density: 2 cameras, 0.6 of 2.0 frames/s analysed, 4 dropped" in caplog.text
    monitor.report(20.0, live, {"d1": 9}, 20.0, 39.8)  # still over: not repeated yet
    assert caplog.text.count("over budget") == 1
    monitor.report(80.0, live, {"d1": 12}, 80.0, 159.0)  # a minute later: said again
    assert caplog.text.count("over budget") == 2
    for _ in range(50):
        monitor.analysed("c1")
    for _ in range(20):
        monitor.analysed("d1")
        monitor.analysed("d2")
    report = monitor.report(90.0, live, {"d1": 12}, 85.0, 170.0)
    assert report is not None
    assert not report.over
    assert "back within budget" in caplog.text


def test_cpu_above_the_budget_is_over_budget_and_offline_cameras_want_nothing() -> None:
    monitor = BudgetMonitor(_cameras(), 1.0, every_s=10.0)
    monitor.report(0.0, ["c1"], {}, 0.0, 0.0)
    for _ in range(50):
        monitor.analysed("c1")
    report = monitor.report(10.0, ["c1"], {}, 9.0, 15.0)  # 1.5 cores of 1
    assert report is not None
    assert report.profiles[1].cameras == 0  # the density cameras are not streaming
    assert report.over
    assert "cpu 1.50 of 1.00 cores" in report.describe()


def _frame(camera: str) -> Frame:
    return Frame(CameraId(camera), 0, datetime.now(UTC), np.zeros((4, 4, 3), np.uint8))


def test_counting_cameras_are_served_first() -> None:
    group = CameraGroup(_cameras(), queue_size=4)
    for camera in ("d1", "d2", "c1"):
        for _ in range(3):
            group.readers[CameraId(camera)].queue.put(_frame(camera))
    first = group.next_batch(4, timeout_s=0.1)
    assert [f.camera_id for f in first] == ["c1", "c1", "c1", "d1"]
    rest = group.next_batch(8, timeout_s=0.1)
    assert sorted(f.camera_id for f in rest) == ["d1", "d1", "d2", "d2", "d2"]


def test_the_oldest_waiting_frames_are_taken_first() -> None:
    group = CameraGroup(_cameras(), queue_size=4)
    now = datetime.now(UTC)
    for camera, age_s in (("d1", 0.5), ("d2", 3.0), ("d2", 2.0), ("c1", 0.1)):
        frame = Frame(CameraId(camera), 0, now - timedelta(seconds=age_s), _frame(camera).image)
        group.readers[CameraId(camera)].queue.put(frame)
    # counting first; then one frame per density camera, the camera waiting longest first
    first = group.next_batch(2, timeout_s=0.1)
    assert [f.camera_id for f in first] == ["c1", "d2"]
    rest = group.next_batch(8, timeout_s=0.1)
    assert [(f.camera_id, round((now - f.captured_at).total_seconds(), 1)) for f in rest] == [
        ("d2", 2.0),
        ("d1", 0.5),
    ]
