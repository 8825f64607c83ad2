"""WindowAggregator: alignment, late frames, crossings' windows, bounds on buffered windows."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from atcs.config import AnalysisConfig
from atcs.metrics.windows import FrameValues, SegmentSpec, WindowAggregator, WindowCrossing
from atcs.types import (
    CameraId,
    Direction,
    LineId,
    SegmentId,
    SegmentMetrics,
    SiteId,
    VehicleClass,
)

ORIGIN = datetime(2024, 5, 1, tzinfo=UTC)
SPEC = SegmentSpec(
    SegmentId("s"), length_m=100.0, lanes=2, has_stop_line=True, line_ids=(LineId("l"),)
)


def agg(window_s: float = 10.0, max_buffered_windows: int = 1000) -> WindowAggregator:
    return WindowAggregator(
        site_id=SiteId("site"),
        camera_id=CameraId("cam"),
        segments=[SPEC],
        analysis=AnalysisConfig(window_s=window_s),
        origin=ORIGIN,
        max_buffered_windows=max_buffered_windows,
    )


def at(seconds: float) -> datetime:
    return ORIGIN + timedelta(seconds=seconds)


def values(cars: int, queue_m: float) -> list[FrameValues]:
    by_class = np.zeros(len(VehicleClass), dtype=np.int64)
    by_class[VehicleClass.CAR] = cars
    return [FrameValues(by_class, pcu=float(cars), occupancy=0.25, queue_m=queue_m)]


def crossing(
    crossed_at: datetime | None = None, direction: Direction = Direction.FORWARD
) -> WindowCrossing:
    return WindowCrossing(0, LineId("l"), VehicleClass.CAR, direction, crossed_at)


def counts(metrics: list[SegmentMetrics]) -> list[tuple[datetime, int]]:
    """(window start, crossings counted) of each window."""
    return [(m.window_start, sum(f.count for f in m.flows)) for m in metrics]


def test_window_boundaries_belong_to_the_later_window() -> None:
    a = agg()
    assert a.index_of(at(0)) == 0
    assert a.index_of(at(9.999999)) == 0
    assert a.index_of(at(10)) == 1
    assert a.index_of(at(-0.5)) == -1
    fractional = agg(window_s=2.5)
    assert fractional.index_of(at(7.6)) == 3


def test_sums_and_queue_max() -> None:
    a = agg()
    a.add_frame(at(1), values(2, 10.0), [crossing()])
    a.add_frame(at(2), values(4, 30.0), [])
    a.add_frame(at(3), values(0, 5.0), [])
    (m,) = a.close(at(10))
    assert (m.frames, m.vehicles, m.pcu, m.occupancy) == (3, 2.0, 2.0, 0.25)
    assert m.density_pcu_km_lane == pytest.approx(2.0 / (0.1 * 2))
    assert (m.queue_m, m.queue_max_m) == (15.0, 30.0)
    assert m.flow_veh_h == pytest.approx(360.0)


def test_late_frame_is_not_counted() -> None:
    a = agg()
    assert a.add_frame(at(15), values(1, 0.0), [])
    assert not a.add_frame(at(5), values(1, 0.0), [])
    assert a.late_frames == 1
    (m,) = a.close(at(20))
    assert (m.window_start, m.frames) == (at(10), 1)


def test_long_gap_emits_at_most_the_buffer_of_stale_windows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = agg(max_buffered_windows=5)
    a.add_frame(at(1), values(1, 0.0), [])
    with caplog.at_level(logging.WARNING, logger="atcs.metrics"):
        a.add_frame(at(1000), values(1, 0.0), [])
        out = a.close(at(1010))
    assert len(out) <= 5
    assert out[-1].window_start == at(1000)
    assert not out[-1].stale
    assert all(m.stale for m in out[:-1])
    assert any("skipped" in r.getMessage() for r in caplog.records)


def test_unclosed_windows_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    a = agg(max_buffered_windows=3)
    with caplog.at_level(logging.WARNING, logger="atcs.metrics"):
        for k in range(20):
            a.add_frame(at(10 * k + 1), values(k, 0.0), [])
    assert len(a._done) == 3
    out = a.close(at(200))
    assert [m.vehicles for m in out] == [17.0, 18.0, 19.0]
    assert any("dropped" in r.getMessage() for r in caplog.records)


def test_naive_origin_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        WindowAggregator(
            site_id=SiteId("s"),
            camera_id=CameraId("c"),
            segments=[SPEC],
            analysis=AnalysisConfig(),
            origin=datetime(2024, 1, 1),
        )


def test_a_crossing_goes_to_the_window_of_its_time_while_that_window_is_open() -> None:
    a = agg()
    a.add_frame(at(9.8), values(1, 0.0), [])
    # Confirmed by the first frame of the next window; it crossed at 9.9 s, window 0 is
    # still open when that frame comes: it counts there.
    a.add_frame(at(10.1), values(1, 0.0), [crossing(at(9.9))])
    # Crossed at 10.2 s, confirmed at 10.3 s: same window.
    a.add_frame(at(10.3), values(1, 0.0), [crossing(at(10.2))])
    assert counts(a.close(at(20))) == [(at(0), 1), (at(10), 1)]


def test_a_crossing_whose_window_is_closed_goes_to_the_frames_window() -> None:
    a = agg()
    a.add_frame(at(8), values(1, 0.0), [])
    a.add_frame(at(12), values(1, 0.0), [])  # closes window 0
    # Confirmed at 23 s (its track ended) for a crossing at 8 s: window 0 is closed, the
    # frame's window 2 gets it. The one at 12 s still finds window 1 open: it goes there.
    a.add_frame(at(23), values(1, 0.0), [crossing(at(8.0)), crossing(at(12.0))])
    # Without a time, a crossing belongs to the frame's window.
    a.add_frame(at(24), values(1, 0.0), [crossing(None)])
    assert counts(a.close(at(30))) == [(at(0), 0), (at(10), 1), (at(20), 2)]


def test_crossings_of_a_late_frame_are_dropped() -> None:
    a = agg()
    a.add_frame(at(15), values(1, 0.0), [])
    assert not a.add_frame(at(5), values(1, 0.0), [crossing(at(4))])
    assert counts(a.close(at(20))) == [(at(10), 0)]


def test_crossings_added_outside_a_frame_go_to_the_open_window() -> None:
    a = agg()
    a.add_crossings([crossing(at(3))])  # before any frame: opens the window of that time
    a.add_frame(at(12), values(1, 0.0), [])
    a.add_crossings([crossing(at(5)), crossing(at(11), Direction.BACKWARD)])
    a.add_crossings([])
    metrics = a.close(at(15), partial=True)
    assert counts(metrics) == [(at(0), 1), (at(10), 2)]
    flows = {(f.direction, f.count) for f in metrics[1].flows if f.count}
    assert flows == {(Direction.FORWARD, 1), (Direction.BACKWARD, 1)}
