"""CameraAnalyzer end to end on hand-built detections: measures, windows, flow, queue."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from atcs.config import AtcsConfig, LineConfig, SegmentConfig
from atcs.errors import ConfigError, DataError
from atcs.metrics import CameraAnalyzer
from atcs.types import (
    Detections,
    Direction,
    LevelOfService,
    LineCrossing,
    SegmentMetrics,
    VehicleClass,
)

W, H = 640, 320
ORIGIN = datetime(2024, 5, 1, 7, 0, 0, tzinfo=UTC)
CAR, MOTO, BUS = VehicleClass.CAR, VehicleClass.MOTORCYCLE, VehicleClass.BUS
TRUCK = VehicleClass.TRUCK

# Left segment: x 80..320, y 80..240 px. Right segment: x 320..560, y 80..240 px.
LEFT = [[0.125, 0.25], [0.5, 0.25], [0.5, 0.75], [0.125, 0.75]]
RIGHT = [[0.5, 0.25], [0.875, 0.25], [0.875, 0.75], [0.5, 0.75]]


def config(**overrides: Any) -> AtcsConfig:
    raw: dict[str, Any] = {
        "site": {"id": "test-site"},
        "cameras": [{"id": "cam", "source": "clip.mp4"}, {"id": "other", "source": "b.mp4"}],
        "segments": [
            {"id": "left", "camera": "cam", "polygon": LEFT, "length_m": 50.0, "lanes": 2},
            {
                "id": "right",
                "camera": "cam",
                "polygon": RIGHT,
                "length_m": 40.0,
                "lanes": 1,
                "movement": "opposed",
            },
            {"id": "elsewhere", "camera": "other", "polygon": LEFT, "length_m": 9, "lanes": 1},
        ],
        "lines": [
            # Horizontal line across the left segment at y = 160 px, drawn left to right.
            {
                "id": "left-count",
                "camera": "cam",
                "segment": "left",
                "points": [[0.125, 0.5], [0.5, 0.5]],
            },
        ],
        "analysis": {"window_s": 10.0, "crossing_confirm_frames": 2},
    }
    raw.update(overrides)
    return AtcsConfig.model_validate(raw)


def dets(boxes: list[list[float]], classes: list[VehicleClass]) -> Detections:
    return Detections(
        xyxy=np.array(boxes, dtype=np.float32).reshape(-1, 4),
        confidence=np.full(len(boxes), 0.8, dtype=np.float32),
        class_id=np.array([int(c) for c in classes], dtype=np.int64),
    )


def box(cx: float, bottom: float, w: float = 20.0, h: float = 20.0) -> list[float]:
    """A box whose anchor (bottom centre) is (cx, bottom)."""
    return [cx - w / 2, bottom - h, cx + w / 2, bottom]


def analyzer(cfg: AtcsConfig | None = None) -> CameraAnalyzer:
    return CameraAnalyzer.from_config(cfg or config(), "cam", W, H, ORIGIN)


def at(seconds: float) -> datetime:
    return ORIGIN + timedelta(seconds=seconds)


def by_id(metrics: list[SegmentMetrics]) -> dict[str, list[SegmentMetrics]]:
    out: dict[str, list[SegmentMetrics]] = {}
    for m in metrics:
        out.setdefault(m.segment_id, []).append(m)
    return out


def test_geometry_is_converted_once_and_only_this_cameras_segments() -> None:
    an = analyzer()
    assert [g.segment_id for g in an.segments] == ["left", "right"]
    assert an.segments[0].polygon_px.tolist() == [[80, 80], [320, 80], [320, 240], [80, 240]]
    assert [(ln.line_id, ln.a_px, ln.b_px) for ln in an.lines] == [
        ("left-count", (80.0, 160.0), (320.0, 160.0))
    ]


def test_membership_counts_pcu_and_occupancy_per_frame() -> None:
    an = analyzer()
    frame = an.update(
        0,
        at(0.5),
        0.5,
        dets(
            [
                box(100, 200),  # car in left
                box(200, 240),  # motorcycle, anchor on left's bottom edge: inside
                box(300, 100, w=40),  # bus in left
                box(400, 200),  # car in right
                box(420, 200),  # motorcycle in right
                box(440, 200),  # motorcycle in right
                box(600, 200),  # car outside both
                box(200, 250),  # car below both (anchor outside), box overlaps left
            ],
            [CAR, MOTO, BUS, CAR, MOTO, MOTO, CAR, CAR],
        ),
    )
    left, right = frame.segments
    assert left.vehicles == 3
    assert right.vehicles == 3
    assert left.vehicles_by_class[CAR] == 1
    assert left.vehicles_by_class[MOTO] == 1
    assert left.vehicles_by_class[BUS] == 1
    assert left.vehicles_by_class[VehicleClass.TRUCK] == 0
    # PKJI: car 1.0, bus 1.3, motorcycle 0.15 protected (left) / 0.40 opposed (right).
    assert left.pcu == pytest.approx(1.0 + 0.15 + 1.3)
    assert right.pcu == pytest.approx(1.0 + 0.40 + 0.40)
    assert left.members.tolist() == [True, True, True, False, False, False, False, False]
    # Left polygon is 240 x 160 = 38400 px²; its members' boxes cover 400 + 400 + 800 px²
    # (the car below the polygon does not belong to it, so its box does not count).
    assert left.occupancy == (400 + 400 + 800) / 38400
    # Right: three 20x20 boxes side by side at x 390..450, overlapping by 0: 1200 px².
    assert right.occupancy == 1200 / 38400
    assert left.queue_m is None
    assert frame.detections.tracker_id is not None
    assert len(set(frame.detections.tracker_id.tolist())) == 8


def test_overlapping_boxes_count_once_in_occupancy() -> None:
    an = analyzer()
    frame = an.update(0, at(0), 0.0, dets([box(100, 200), box(110, 200)], [CAR, CAR]))
    # Two 20x20 boxes overlapping 10x20: union 600 px².
    assert frame.segments[0].occupancy == 600 / 38400


def test_window_means_density_and_los() -> None:
    an = analyzer()
    # Frame 1: 4 cars in left; frame 2: 2 cars in left. Right stays empty.
    four = [box(100 + 40 * k, 200) for k in range(4)]
    an.update(0, at(1), 1.0, dets(four, [CAR] * 4))
    an.update(1, at(2), 2.0, dets(four[:2], [CAR] * 2))
    assert an.close_windows(at(9.99)) == []
    metrics = by_id(an.close_windows(at(10)))
    (left,) = metrics["left"]
    (right,) = metrics["right"]
    assert (left.window_start, left.window_end, left.frames) == (at(0), at(10), 2)
    assert left.vehicles == 3.0
    assert left.vehicles_by_class[CAR] == 3.0
    assert left.vehicles_by_class[MOTO] == 0.0
    assert left.pcu == 3.0
    # 3 PCU / (0.05 km * 2 lanes) = 30 pcu/km/lane: above 28, LOS F, congested.
    assert left.density_pcu_km_lane == pytest.approx(30.0)
    assert left.los is LevelOfService.F
    assert left.congested
    assert left.occupancy == pytest.approx(((4 * 400) + (2 * 400)) / 2 / 38400)
    assert left.site_id == "test-site"
    assert left.camera_id == "cam"
    assert not left.stale
    assert (right.frames, right.vehicles, right.los, right.congested) == (
        2,
        0.0,
        LevelOfService.A,
        False,
    )


def move_down(
    an: CameraAnalyzer,
    t0: float,
    seq0: int,
    xs: list[float],
    classes: list[VehicleClass],
    y_from: float = 140,
    y_to: float = 180,
    steps: int = 9,
) -> int:
    """Move boxes at columns ``xs`` from y_from to y_to (anchor y) over ``steps`` frames."""
    seq = seq0
    for k in range(steps):
        y = y_from + (y_to - y_from) * k / (steps - 1)
        an.update(seq, at(t0 + 0.1 * k), t0 + 0.1 * k, dets([box(x, y) for x in xs], classes))
        seq += 1
    return seq


def test_flow_per_hour_of_observed_time_by_class_and_direction() -> None:
    an = analyzer()
    seq = move_down(an, 0.0, 0, [100, 150, 200], [CAR, CAR, MOTO])  # 3 forward crossings
    seq = move_down(an, 2.0, seq, [250], [CAR], y_from=180, y_to=140)  # 1 backward
    crossings_seen = an.close_windows(at(10))
    (left,) = by_id(crossings_seen)["left"]
    # Frames from 0 to 2.8 s (the 1.2-s gap is within max_frame_gap_s): 2.8 s observed.
    assert left.observed_s == pytest.approx(2.8)
    assert left.partial  # 2.8 s of 10 is below the 0.8 share
    # The approach is the forward direction (the default): 3 crossings per 2.8 s.
    assert left.flow_veh_h == pytest.approx(3 / (2.8 / 3600))
    flows = {(str(f.line_id), f.vehicle_class, f.direction): f for f in left.flows}
    assert len(flows) == len(VehicleClass) * 2
    assert flows[("left-count", CAR, Direction.FORWARD)].count == 2
    assert flows[("left-count", CAR, Direction.FORWARD)].flow_veh_h == pytest.approx(2 / 2.8 * 3600)
    assert flows[("left-count", CAR, Direction.FORWARD)].approach
    assert flows[("left-count", MOTO, Direction.FORWARD)].count == 1
    backward = flows[("left-count", CAR, Direction.BACKWARD)]
    assert (backward.count, backward.approach) == (1, False)  # published, not in the approach
    assert backward.flow_veh_h == pytest.approx(1 / 2.8 * 3600)
    assert flows[("left-count", BUS, Direction.FORWARD)].count == 0
    (right,) = by_id(crossings_seen)["right"]
    assert right.flow_veh_h == 0.0
    assert right.flows == ()


def test_crossings_are_reported_by_the_confirming_frame_and_dated_by_the_crossing() -> None:
    an = analyzer()
    reports = []
    for k, y in enumerate([150, 155, 165, 170, 175]):
        frame = an.update(k, at(k * 0.1), k * 0.1, dets([box(100, y)], [CAR]))
        reports.append(
            [(c.line_id, c.direction, c.frame_seq, c.at, c.offset_s) for c in frame.crossings]
        )
    # First frame below the line is k=2; with 2 confirm frames it is confirmed at k=3.
    assert reports == [[], [], [], [("left-count", Direction.FORWARD, 2, at(0.2), 0.2)], []]
    frame_crossing = an.update(9, at(1), 1.0, Detections.empty())
    assert frame_crossing.crossings == ()


def test_a_crossing_confirmed_in_the_next_window_counts_in_its_own() -> None:
    an = analyzer()
    for k, y in enumerate([150, 155, 165, 170]):  # crosses at 9.9 s, confirmed at 10.0 s
        an.update(k, at(9.7 + k * 0.1), None, dets([box(100, y)], [CAR]))
    an.update(9, at(12), None, Detections.empty())
    left = by_id(an.close_windows(at(20)))["left"]
    # Window 0 was seen from 9.7 s to its end (0.3 s), window 1 from 10 s to 12 s.
    assert [m.window_start for m in left] == [at(0), at(10)]
    assert [m.observed_s for m in left] == [pytest.approx(0.3), pytest.approx(2.0)]
    assert [m.flow_veh_h for m in left] == [pytest.approx(1 / (0.3 / 3600)), 0.0]


def expiry_config() -> AtcsConfig:
    """Counting as in the service: 3 confirm frames, tracks end 1.5 s after last seen."""
    return config(analysis={"window_s": 10.0, "crossing_confirm_frames": 3, "track_max_age_s": 1.5})


def leave_after_the_line(an: CameraAnalyzer, t0: float, seq0: int) -> int:
    """One car at 5 frames/s: two frames above the line at y = 160, one below, then gone."""
    for k, y in enumerate([140, 150, 170]):
        frame = an.update(seq0 + k, at(t0 + 0.2 * k), t0 + 0.2 * k, dets([box(100, y)], [CAR]))
        assert frame.crossings == ()
    return seq0 + 3


def test_a_vehicle_leaving_the_image_after_the_line_counts_when_its_track_ends() -> None:
    an = analyzer(expiry_config())
    seq = leave_after_the_line(an, 1.0, 0)  # crosses at frame 2, 1.4 s
    found = []
    for k in range(12):  # empty frames at 5 frames/s
        t = 1.6 + 0.2 * k
        frame = an.update(seq + k, at(t), t, Detections.empty())
        found += [
            (frame.frame_seq, c.frame_seq, c.at, c.offset_s, c.direction) for c in frame.crossings
        ]
    # Last seen at 1.4 s, the track ends on the first frame more than 1.5 s later (3.0 s,
    # frame 10); the crossing keeps the frame and time where it happened.
    assert found == [(10, 2, at(1.4), 1.4, Direction.FORWARD)]
    assert an.live_tracks == 0
    (left,) = by_id(an.close_windows(at(10)))["left"]
    assert left.observed_s == pytest.approx(2.8)  # frames from 1.0 to 3.8 s
    assert left.flow_veh_h == pytest.approx(1 / (2.8 / 3600))


def test_an_ended_crossing_lands_in_the_current_window_when_its_own_is_closed() -> None:
    an = analyzer(expiry_config())
    seq = leave_after_the_line(an, 9.2, 0)  # crosses at 9.6 s
    for k in range(10):  # frames go on: 10.0 s closes window 0 before the track ends
        an.update(seq + k, at(9.8 + 0.2 * k), None, Detections.empty())
    left = by_id(an.close_windows(at(20)))["left"]
    assert [m.observed_s for m in left] == [pytest.approx(0.8), pytest.approx(1.6)]
    assert [m.flow_veh_h for m in left] == [0.0, pytest.approx(1 / (1.6 / 3600))]


def test_an_ended_crossing_lands_in_its_own_window_while_that_is_open() -> None:
    an = analyzer(expiry_config())
    seq = leave_after_the_line(an, 9.2, 0)  # crosses at 9.6 s
    # No frame for a while (a stalled camera): the next one, at 11.5 s, ends the track.
    frame = an.update(seq, at(11.5), None, Detections.empty())
    assert [c.at for c in frame.crossings] == [at(9.6)]
    left = by_id(an.close_windows(at(20)))["left"]
    # The 1.9-s gap is within max_frame_gap_s: seen, split at the window boundary.
    assert [m.observed_s for m in left] == [pytest.approx(0.8), pytest.approx(1.5)]
    assert [m.flow_veh_h for m in left] == [pytest.approx(1 / (0.8 / 3600)), 0.0]


def test_close_windows_partial_counts_the_last_pending_crossing() -> None:
    an = analyzer(expiry_config())
    leave_after_the_line(an, 1.0, 0)  # the clip ends right after the crossing
    (left, _right) = an.close_windows(at(1.6), partial=True)
    assert left.observed_s == pytest.approx(0.6)  # from the first frame to the end
    assert left.flow_veh_h == pytest.approx(1 / (0.6 / 3600))
    assert an.flush() == ()  # confirmed once
    assert an.close_windows(at(3), partial=True)[0].flow_veh_h == 0.0


def test_flush_returns_the_crossings_it_confirms() -> None:
    an = analyzer(expiry_config())
    leave_after_the_line(an, 1.0, 0)
    (crossing,) = an.flush()
    assert (crossing.frame_seq, crossing.at, crossing.offset_s) == (2, at(1.4), 1.4)
    assert (crossing.track_id, crossing.vehicle_class) == (1, CAR)
    assert an.flush() == ()
    # The track goes on below the line and ends: nothing more.
    an.update(3, at(1.6), 1.6, dets([box(100, 190)], [CAR]))
    assert an.update(4, at(3.5), 3.5, Detections.empty()).crossings == ()
    (left, _right) = an.close_windows(at(4), partial=True)
    assert left.observed_s == pytest.approx(3.0)  # 1.0 s to 4 s, every gap within 2 s
    assert left.flow_veh_h == pytest.approx(1 / (3.0 / 3600))


def test_a_track_born_below_the_line_never_counts() -> None:
    an = analyzer(expiry_config())
    total = 0
    for k, y in enumerate([165, 180, 200, 220]):
        total += len(an.update(k, at(0.2 * k), None, dets([box(100, y)], [CAR])).crossings)
    total += len(an.update(9, at(3), None, Detections.empty()).crossings)  # ends
    total += len(an.flush())
    assert total == 0


def test_a_flickering_box_that_vanishes_counts_once() -> None:
    an = analyzer(expiry_config())
    total = 0
    # Back and forth across y = 160, then gone while just below it.
    ys = [150, 155, 162, 158, 161, 159, 163, 157, 161, 164]
    for k, y in enumerate(ys):
        total += len(an.update(k, at(0.2 * k), None, dets([box(100, y)], [CAR])).crossings)
    assert total == 0
    for k in range(10, 22):
        total += len(an.update(k, at(0.2 * k), None, Detections.empty()).crossings)
    total += len(an.flush())
    assert total == 1


def test_flickering_box_on_the_line_counts_once_through_the_analyzer() -> None:
    an = analyzer()
    total = 0
    ys = [155, 162, 158, 161, 159, 163, 157, 161, 165, 170, 172, 158, 174, 176]
    for k, y in enumerate(ys):
        total += len(an.update(k, at(k * 0.1), k * 0.1, dets([box(100, y)], [CAR])).crossings)
    assert total == 1


def test_stale_windows_have_zeros() -> None:
    an = analyzer()
    an.update(0, at(1), 1.0, dets([box(100, 200)], [CAR]))
    an.update(1, at(35), 35.0, dets([box(100, 200)], [CAR]))
    left = by_id(an.close_windows(at(40)))["left"]
    assert [(m.window_start, m.frames, m.stale) for m in left] == [
        (at(0), 1, False),
        (at(10), 0, True),
        (at(20), 0, True),
        (at(30), 1, False),
    ]
    stale = left[1]
    assert (stale.vehicles, stale.pcu, stale.density_pcu_km_lane, stale.occupancy) == (0, 0, 0, 0)
    assert (stale.flow_veh_h, stale.queue_m, stale.los, stale.congested) == (
        0.0,
        None,
        LevelOfService.A,
        False,
    )


def test_no_frames_at_all_gives_stale_windows_from_the_first_call() -> None:
    an = analyzer()
    # Nothing is reported before the analyzer's first call ...
    assert an.close_windows(at(25)) == []
    # ... then every window ending by `until`, starting with the one that held at(25).
    metrics = an.close_windows(at(40))
    assert [(m.segment_id, m.window_start, m.stale) for m in metrics] == [
        ("left", at(20), True),
        ("right", at(20), True),
        ("left", at(30), True),
        ("right", at(30), True),
    ]
    assert an.close_windows(at(40)) == []


def test_epoch_origin_reports_only_windows_since_the_first_frame() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    an = CameraAnalyzer.from_config(config(), "cam", W, H, epoch)
    # Windows stay aligned to the epoch: 07:00:03 falls in [07:00:00, 07:00:10).
    an.update(0, at(3), None, dets([box(100, 200)], [CAR]))
    an.update(1, at(13), None, dets([box(100, 200)], [CAR]))
    metrics = by_id(an.close_windows(at(30)))["left"]
    assert [(m.window_start, m.frames, m.stale) for m in metrics] == [
        (at(0), 1, False),
        (at(10), 1, False),
        (at(20), 0, True),
    ]


def test_partial_window_uses_its_real_length() -> None:
    an = analyzer()
    move_down(an, 0.0, 0, [100], [CAR])  # one crossing at t=0.3 s
    an.update(20, at(12), 12.0, dets([box(100, 200)], [CAR]))
    metrics = by_id(an.close_windows(at(14.5), partial=True))["left"]
    assert [(m.window_start, m.window_end) for m in metrics] == [
        (at(0), at(10)),
        (at(10), at(14.5)),
    ]
    # Window 0 was seen for 0.8 s (frames 0 to 0.8 s), window 1 not at all: the gaps
    # to 12 s and from 12 s to its end are longer than max_frame_gap_s.
    assert metrics[0].observed_s == pytest.approx(0.8)
    assert metrics[0].flow_veh_h == pytest.approx(1 / (0.8 / 3600))
    assert (metrics[1].observed_s, metrics[1].partial, metrics[1].flow_veh_h) == (0.0, True, 0.0)
    assert metrics[1].window_s == 4.5
    assert metrics[1].vehicles == 1.0
    # After a partial close, earlier frames are late; later ones go on from there.
    late = an.update(21, at(14), 14.0, dets([box(100, 200)], [CAR]))
    assert not late.counted
    assert an.late_frames == 1
    an.update(22, at(16), 16.0, dets([box(100, 200)], [CAR]))
    rest = by_id(an.close_windows(at(20)))["left"]
    assert [(m.window_start, m.window_end, m.frames) for m in rest] == [(at(14.5), at(20), 1)]


def test_partial_close_on_a_boundary_adds_nothing() -> None:
    an = analyzer()
    an.update(0, at(1), 1.0, Detections.empty())
    metrics = an.close_windows(at(10), partial=True)
    assert [(m.window_start, m.window_end) for m in metrics] == [(at(0), at(10))] * 2


def queue_config() -> AtcsConfig:
    seg = {
        "id": "approach",
        "camera": "cam",
        # y 80..240 px; the stop line is the top edge; 160 px is 16 m: 0.1 m per px.
        "polygon": LEFT,
        "stop_line": [[0.125, 0.25], [0.5, 0.25]],
        "length_m": 16.0,
        "lanes": 2,
    }
    return config(
        segments=[seg],
        lines=[],
        analysis={"window_s": 10.0, "queue_speed_m_s": 1.5, "queue_max_gap_m": 6.0},
    )


def test_queue_from_stopped_vehicles() -> None:
    an = analyzer(queue_config())
    # Stopped cars at 2 m, 6 m and 11 m (contiguous with 6 m gaps at most), one at 15.5 m
    # after a 4.5 m gap, and one more at 10 m that is moving at 2 m/s (20 px/s).
    stopped = [box(100, 100), box(130, 140), box(160, 190), box(190, 235)]
    first = an.update(0, at(0), 0.0, dets([*stopped, box(220, 180, h=60)], [CAR] * 5))
    assert first.segments[0].queue_m == 0.0  # speeds unknown on a track's first frame
    second = an.update(1, at(1), 1.0, dets([*stopped, box(220, 200, h=60)], [CAR] * 5))
    assert first.detections.tracker_id is not None
    assert second.detections.tracker_id is not None
    assert second.detections.tracker_id.tolist() == first.detections.tracker_id.tolist()
    assert second.segments[0].queue_m == pytest.approx(15.5)
    # The first car leaves: the nearest stopped car is now 6 m from the line, still queued.
    third = an.update(2, at(2), 2.0, dets(stopped[1:], [CAR] * 3))
    assert third.segments[0].queue_m == pytest.approx(15.5)
    (m,) = an.close_windows(at(10))
    assert m.queue_m == pytest.approx((0.0 + 15.5 + 15.5) / 3)
    assert m.queue_max_m == pytest.approx(15.5)


def test_queue_gap_from_the_stop_line() -> None:
    an = analyzer(queue_config())
    far = [box(100, 170), box(150, 200)]  # 9 m and 12 m: first is more than 6 m away
    an.update(0, at(0), 0.0, dets(far, [CAR] * 2))
    frame = an.update(1, at(1), 1.0, dets(far, [CAR] * 2))
    assert frame.segments[0].queue_m == 0.0


def test_segment_wholly_outside_the_image_is_skipped_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outside = SegmentConfig.model_construct(
        id="off",
        camera="cam",
        polygon=[(1.1, 0.1), (1.5, 0.1), (1.5, 0.5)],
        length_m=10.0,
        lanes=1,
        movement="protected",
        name="",
        stop_line=None,
    )
    line = LineConfig.model_construct(
        id="off-line",
        camera="cam",
        segment="off",
        points=((1.1, 0.2), (1.4, 0.2)),
        forward_label="forward",
        backward_label="backward",
    )
    # The config refuses such geometry; the analyzer still skips it in a model built
    # without validation (defence in depth).
    base = config()
    cfg = base.model_copy(
        update={
            "segments": [*base.segments, outside],
            "lines": [*base.lines, line],
        }
    )
    with caplog.at_level(logging.WARNING, logger="atcs.metrics"):
        an = analyzer(cfg)
    assert [g.segment_id for g in an.segments] == ["left", "right"]
    assert [ln.line_id for ln in an.lines] == ["left-count"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "off" in warnings[0].getMessage()
    an.update(0, at(1), 1.0, Detections.empty())
    assert {m.segment_id for m in an.close_windows(at(10))} == {"left", "right"}


def test_no_segments_still_runs() -> None:
    an = CameraAnalyzer.from_config(config(), "cam", W, H, ORIGIN)
    empty = CameraAnalyzer(
        site_id="s",
        camera_id="cam",
        segments=[],
        lines=[],
        analysis=config().analysis,
        pcu=config().pcu,
        width_px=W,
        height_px=H,
        origin=ORIGIN,
    )
    frame = empty.update(0, at(1), 1.0, dets([box(100, 200)], [CAR]))
    assert frame.segments == ()
    assert empty.close_windows(at(10)) == []
    assert len(an.segments) == 2


def test_unknown_camera_and_naive_times() -> None:
    with pytest.raises(ConfigError):
        CameraAnalyzer.from_config(config(), "nope", W, H, ORIGIN)
    with pytest.raises(DataError):
        CameraAnalyzer.from_config(config(), "cam", W, H, datetime(2024, 1, 1))
    an = analyzer()
    with pytest.raises(DataError):
        an.update(0, datetime(2024, 1, 1), None, Detections.empty())


def test_a_box_inside_a_larger_box_of_its_class_is_a_duplicate() -> None:
    outer = box(100, 200, w=40, h=60)
    inner = box(100, 200, w=30, h=40)  # the same vehicle's second box, wholly inside
    frame = analyzer().update(0, at(0), 0.0, dets([inner, outer], [MOTO, MOTO]))
    assert frame.detections.xyxy.tolist() == [outer]
    assert frame.segments[0].vehicles == 1
    other_class = analyzer().update(0, at(0), 0.0, dets([inner, outer], [MOTO, CAR]))
    assert len(other_class.detections) == 2
    kept = CameraAnalyzer.from_config(config(), "cam", W, H, ORIGIN, nested_fraction=None)
    assert len(kept.update(0, at(0), 0.0, dets([inner, outer], [MOTO, MOTO])).detections) == 2


def test_non_finite_boxes_are_dropped() -> None:
    an = analyzer()
    d = dets([box(100, 200), [np.nan, 0, 10, 10]], [CAR, CAR])
    frame = an.update(0, at(0), 0.0, d)
    assert len(frame.detections) == 1
    assert frame.segments[0].vehicles == 1


def test_memory_stays_bounded_over_a_long_run() -> None:
    cfg = config(analysis={"track_max_count": 10, "track_max_age_s": 0.5, "window_s": 1.0})
    an = analyzer(cfg)
    rng = np.random.default_rng(3)
    for k in range(600):
        # 15 unrelated boxes a frame: every one starts a new track.
        xs = rng.uniform(90, 300, 15)
        ys = rng.uniform(100, 230, 15)
        boxes = [box(float(x), float(y), w=4, h=4) for x, y in zip(xs, ys, strict=True)]
        an.update(k, at(k * 0.2), k * 0.2, dets(boxes, [MOTO] * 15))
        assert an.live_tracks <= 10
        assert len(an._counter) <= 10
        if k % 50 == 49:
            an.close_windows(at(k * 0.2))
    assert len(an._windows._done) <= 2


def test_a_vehicle_boxed_as_car_and_truck_at_once_is_one_track_counted_once() -> None:
    an = analyzer()
    total: list[LineCrossing] = []
    for k, y in enumerate([140, 150, 170, 180, 190]):
        car = box(100, y, w=40, h=30)
        truck = box(101, y + 1, w=42, h=31)  # the same vehicle, IoU about 0.9
        conf = np.array([0.7, 0.5] if k % 2 else [0.4, 0.8], dtype=np.float32)
        frame = an.update(
            k, at(0.2 * k), 0.2 * k,
            Detections(np.array([car, truck], np.float32), conf, np.array([CAR, TRUCK])),
        )  # fmt: skip
        assert len(frame.detections) == 1  # the less confident box of the pair is dropped
        total += frame.crossings
    total += an.flush()
    assert [(c.direction, c.vehicle_class) for c in total] == [(Direction.FORWARD, TRUCK)]


def test_the_approach_direction_alone_makes_the_segment_flow() -> None:
    lines = [
        {
            "id": "left-count",
            "camera": "cam",
            "segment": "left",
            "points": [[0.125, 0.5], [0.5, 0.5]],
            "approach_direction": "backward",
        }
    ]
    an = analyzer(config(lines=lines))
    seq = move_down(an, 0.0, 0, [100, 150], [CAR, CAR])  # 2 forward: the other direction
    move_down(an, 1.0, seq, [250], [MOTO], y_from=180, y_to=140)  # 1 backward: the approach
    (left,) = by_id(an.close_windows(at(10)))["left"]
    assert left.observed_s == pytest.approx(1.8)
    assert left.flow_veh_h == pytest.approx(1 / (1.8 / 3600))  # only the backward crossing
    approach = [(f.direction, f.count) for f in left.flows if f.approach and f.count]
    other = [(f.direction, f.count) for f in left.flows if not f.approach and f.count]
    assert approach == [(Direction.BACKWARD, 1)]
    assert other == [(Direction.FORWARD, 2)]


def test_an_engine_start_late_in_a_window_gives_the_flow_of_the_time_seen() -> None:
    an = analyzer()
    # Started 7 s into the window; frames every 0.1 s to its end; 1 car crosses.
    move_down(an, 7.0, 0, [100], [CAR])
    for k in range(22):  # empty frames 7.9 .. 10.0 s
        an.update(100 + k, at(7.9 + 0.1 * k), None, Detections.empty())
    (left,) = by_id(an.close_windows(at(10.0)))["left"]
    assert left.observed_s == pytest.approx(3.0)
    assert left.partial
    assert left.flow_veh_h == pytest.approx(1200.0)  # 1 per 3 s, not 360 (1 per 10 s)


def test_a_camera_class_threshold_drops_its_unsure_boxes_before_tracking() -> None:
    cameras = [
        {"id": "cam", "source": "clip.mp4", "detection": {"class_confidence": {"truck": 0.35}}},
        {"id": "other", "source": "b.mp4"},
    ]
    boxes = dets([box(100, 200), box(150, 200, w=30), box(200, 200)], [CAR, TRUCK, TRUCK])
    boxes = Detections(boxes.xyxy, np.array([0.3, 0.3, 0.6], np.float32), boxes.class_id)
    plain = analyzer().update(0, at(0.5), 0.5, boxes)
    strict = analyzer(config(cameras=cameras)).update(0, at(0.5), 0.5, boxes)
    assert plain.segments[0].vehicles_by_class[TRUCK] == 2
    # the 0.3 truck (a van the model is unsure of) is gone; the 0.3 car is not a truck
    assert strict.segments[0].vehicles_by_class[TRUCK] == 1
    assert strict.segments[0].vehicles_by_class[CAR] == 1


def test_each_member_gets_its_distance_from_the_stop_line_speed_and_pcu() -> None:
    an = analyzer(queue_config())
    stopped = [box(100, 100), box(130, 140), box(160, 190), box(190, 235)]
    first = an.update(0, at(0), 0.0, dets([*stopped, box(220, 180, h=60)], [CAR] * 5))
    second = an.update(1, at(1), 1.0, dets([*stopped, box(220, 200, h=60)], [CAR] * 5))
    for frame in (first, second):
        seg = frame.segments[0]
        assert seg.near_m is not None
        # the box's top (its nearest corner) from the line at y 80 px, 0.1 m per px
        moving_m = 4.0 + 2.0 * frame.frame_seq  # drives away from the line
        assert seg.near_m.tolist() == pytest.approx([0.0, 4.0, 9.0, 13.5, moving_m])
        assert seg.member_pcu.tolist() == [1.0] * seg.vehicles
    assert first.segments[0].speed_m_s is not None
    assert np.isnan(first.segments[0].speed_m_s).all()  # unknown on a track's first frame
    speeds = second.segments[0].speed_m_s
    assert speeds is not None
    assert speeds[:4].tolist() == pytest.approx([0.0] * 4, abs=1e-6)
    assert speeds[4] > 1.5  # moving: not queued, as the queue measure sees it
    # without a stop line: PCU per member only (a motorcycle on the opposed segment: 0.4)
    plain = analyzer().update(0, at(0), 0.0, dets([box(400, 200)], [MOTO]))
    right = plain.segments[1]
    assert (right.vehicles, right.near_m, right.speed_m_s) == (1, None, None)
    assert right.member_pcu.tolist() == [0.4]
