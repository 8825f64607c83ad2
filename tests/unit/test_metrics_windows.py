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


def agg(
    window_s: float = 10.0, max_buffered_windows: int = 1000, **analysis: float
) -> WindowAggregator:
    return WindowAggregator(
        site_id=SiteId("site"),
        camera_id=CameraId("cam"),
        segments=[SPEC],
        analysis=AnalysisConfig(window_s=window_s, **analysis),
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
    # Seen from the first frame (1 s) to the last (3 s): one crossing per 2 s.
    assert m.observed_s == pytest.approx(2.0)
    assert m.flow_veh_h == pytest.approx(1800.0)


def test_observed_time_counts_frame_gaps_up_to_the_limit_and_splits_them_at_boundaries() -> None:
    a = agg()  # window 10 s, max_frame_gap_s 2 s
    for t in (7.0, 8.0, 9.5, 11.0, 12.0):  # starts 7 s into window 0 (engine start)
        a.add_frame(at(t), values(1, 0.0), [crossing()] if t == 8.0 else [])
    a.add_frame(at(16.0), values(1, 0.0), [])  # a 4-s gap (camera lost): not observed
    a.add_frame(at(17.0), values(1, 0.0), [])
    first, second = a.close(at(20))
    # Window 0: 7 -> 10 s (the 9.5 -> 11 gap is split at 10 s) = 3 s of 10.
    assert first.observed_s == pytest.approx(3.0)
    assert first.partial
    # One crossing in 3 s observed: 1200 veh/h, not the 360 a whole window would give.
    assert first.flow_veh_h == pytest.approx(1200.0)
    # Window 1: 10 -> 12 s and 16 -> 17 s = 3 s.
    assert second.observed_s == pytest.approx(3.0)
    assert second.partial


def test_a_window_seen_for_most_of_its_length_is_not_partial() -> None:
    a = agg()
    for k in range(0, 21):  # every 0.5 s from 0 to 10 s
        a.add_frame(at(0.5 * k), values(1, 0.0), [])
    (m,) = a.close(at(10))
    assert m.observed_s == pytest.approx(10.0)
    assert not m.partial
    b = agg(partial_below_share=1.0)
    for k in range(0, 20):  # the last frame at 9.5 s: 9.5 s of 10
        b.add_frame(at(0.5 * k), values(1, 0.0), [])
    (n,) = b.close(at(10))
    assert n.observed_s == pytest.approx(9.5)
    assert n.partial


def test_a_final_partial_window_is_seen_up_to_its_end_within_the_gap() -> None:
    a = agg()
    a.add_frame(at(1.0), values(1, 0.0), [crossing()])
    a.add_frame(at(2.0), values(1, 0.0), [])
    (m,) = a.close(at(3.0), partial=True)
    assert m.window_s == 3.0
    assert m.observed_s == pytest.approx(2.0)
    assert m.partial
    assert m.flow_veh_h == pytest.approx(1800.0)


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
