"""The bounded IoU tracker: identity, classes, speed, expiry and the track bound."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from atcs.metrics.tracking import Tracker, iou_matrix
from atcs.types import Detections, VehicleClass

CAR = VehicleClass.CAR
MOTO = VehicleClass.MOTORCYCLE


def dets(boxes: Sequence[Sequence[float]], classes: list[VehicleClass]) -> Detections:
    return Detections(
        xyxy=np.array(boxes, dtype=np.float32).reshape(-1, 4),
        confidence=np.full(len(boxes), 0.9, dtype=np.float32),
        class_id=np.array([int(c) for c in classes], dtype=np.int64),
    )


def ids(tracker: Tracker, t_s: float, d: Detections) -> list[int]:
    out = tracker.update(t_s, d).detections.tracker_id
    assert out is not None
    return [int(v) for v in out]


def test_iou_matrix_values() -> None:
    a = [[0, 0, 10, 10]]
    b = [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]]
    assert iou_matrix(a, b).tolist() == [[1.0, 50 / 150, 0.0, 0.0]]


def test_moving_box_keeps_its_id_and_new_box_gets_a_new_one() -> None:
    tr = Tracker()
    assert ids(tr, 0.0, dets([[0, 0, 20, 20]], [CAR])) == [1]
    assert ids(tr, 0.1, dets([[4, 0, 24, 20], [100, 100, 120, 120]], [CAR, CAR])) == [1, 2]
    assert ids(tr, 0.2, dets([[100, 102, 120, 122], [8, 0, 28, 20]], [CAR, CAR])) == [2, 1]
    assert len(tr) == 2


def test_matching_is_per_class() -> None:
    tr = Tracker()
    ids(tr, 0.0, dets([[0, 0, 20, 20]], [CAR]))
    # Same place, other class: a new track, and the car track stays alive.
    assert ids(tr, 0.1, dets([[0, 0, 20, 20]], [VehicleClass.TRUCK])) == [2]
    assert ids(tr, 0.2, dets([[0, 0, 20, 20]], [CAR])) == [1]


def test_greedy_matching_prefers_highest_iou() -> None:
    tr = Tracker(match_iou=0.1)
    ids(tr, 0.0, dets([[0, 0, 20, 20], [15, 0, 35, 20]], [CAR, CAR]))
    # The detection at x=16 overlaps track 2 most; x=1 overlaps track 1 most.
    assert ids(tr, 0.1, dets([[16, 0, 36, 20], [1, 0, 21, 20]], [CAR, CAR])) == [2, 1]


def test_below_match_iou_starts_a_new_track() -> None:
    tr = Tracker(match_iou=0.5)
    ids(tr, 0.0, dets([[0, 0, 20, 20]], [CAR]))
    assert ids(tr, 0.1, dets([[10, 0, 30, 20]], [CAR])) == [2]  # IoU 1/3


def test_speed_in_px_per_second_from_anchor_history() -> None:
    tr = Tracker()
    first = tr.update(0.0, dets([[0, 0, 20, 20]], [CAR]))
    assert np.isnan(first.speeds_px_s).all()
    tr.update(0.5, dets([[3, 4, 23, 24]], [CAR]))
    out = tr.update(1.0, dets([[6, 8, 26, 28]], [CAR]))
    # Anchor moved (6, 8) px in 1 s.
    assert out.speeds_px_s.tolist() == [10.0]


def test_velocity_prediction_keeps_fast_car_whose_boxes_do_not_overlap() -> None:
    tr = Tracker(match_iou=0.1)
    ids(tr, 0.0, dets([[0, 0, 20, 20]], [CAR]))
    ids(tr, 0.1, dets([[15, 0, 35, 20]], [CAR]))  # IoU 5/35 > 0.1: same track
    # Next box does not overlap the last one at all, but it is where the track is heading.
    assert ids(tr, 0.2, dets([[30, 0, 50, 20]], [CAR])) == [1]


def test_motorcycle_centre_distance_fallback() -> None:
    tr = Tracker(match_iou=0.1)
    ids(tr, 0.0, dets([[0, 0, 10, 20]], [MOTO]))
    # No overlap (jumped 15 px); the centre is within 1.5 diagonals (~33 px): same track.
    assert ids(tr, 0.2, dets([[15, 0, 25, 20]], [MOTO])) == [1]
    # A car making the same jump is not matched by distance.
    tr2 = Tracker(match_iou=0.1)
    ids(tr2, 0.0, dets([[0, 0, 10, 20]], [CAR]))
    assert ids(tr2, 0.2, dets([[15, 0, 25, 20]], [CAR])) == [2]


def test_fallback_does_not_reach_far_boxes() -> None:
    tr = Tracker(match_iou=0.1)
    ids(tr, 0.0, dets([[0, 0, 10, 20]], [MOTO]))
    assert ids(tr, 0.2, dets([[200, 0, 210, 20]], [MOTO])) == [2]


def test_tracks_expire_after_max_age() -> None:
    tr = Tracker(max_age_s=1.0)
    ids(tr, 0.0, dets([[0, 0, 20, 20]], [CAR]))
    out = tr.update(0.9, Detections.empty())
    assert out.removed == ()
    assert len(tr) == 1
    # Seen again within the age: same id.
    assert ids(tr, 1.0, dets([[0, 0, 20, 20]], [CAR])) == [1]
    out = tr.update(2.01, Detections.empty())
    assert out.removed == (1,)
    assert len(tr) == 0
    assert ids(tr, 2.02, dets([[0, 0, 20, 20]], [CAR])) == [2]


def test_track_count_is_bounded_oldest_dropped() -> None:
    tr = Tracker(max_count=10, max_age_s=100.0)
    for k in range(10):
        ids(tr, float(k), dets([[k * 30, 0, k * 30 + 20, 20]], [CAR]))
    assert len(tr) == 10
    # Track 1 (least recently seen) goes when an 11th track is created.
    out = tr.update(10.0, dets([[1000, 0, 1020, 20]], [CAR]))
    assert out.removed == (1,)
    assert len(tr) == 10
    # Many new boxes at once: still at most 10 tracks.
    boxes = [[k * 30, 500, k * 30 + 20, 520] for k in range(25)]
    out = tr.update(11.0, dets(boxes, [CAR] * 25))
    assert len(tr) == 10
    assert len(out.removed) == 25


def test_history_is_bounded() -> None:
    tr = Tracker(history_len=8, max_age_s=100.0)
    for k in range(100):
        tr.update(k * 0.1, dets([[k, 0, k + 20, 20]], [CAR]))
    track = next(iter(tr._tracks.values()))
    assert len(track.history) == 8


def test_empty_frame() -> None:
    tr = Tracker()
    out = tr.update(0.0, Detections.empty())
    assert len(out.detections) == 0
    assert out.detections.tracker_id is not None


@pytest.mark.parametrize("t_s", [0.0, 0.05])
def test_time_going_backwards_does_not_crash(t_s: float) -> None:
    tr = Tracker()
    ids(tr, 0.1, dets([[0, 0, 20, 20]], [CAR]))
    ids(tr, 0.2, dets([[1, 0, 21, 20]], [CAR]))
    assert ids(tr, t_s, dets([[1, 0, 21, 20]], [CAR])) == [1]


def test_a_much_bigger_box_does_not_continue_a_track() -> None:
    tr = Tracker(match_iou=0.1)
    ids(tr, 0.0, dets([[0, 0, 20, 20]], [CAR]))
    # IoU 400/1600 = 0.25 passes the threshold, but the area grew 4x (limit 2.5x).
    assert ids(tr, 0.1, dets([[0, 0, 40, 40]], [CAR])) == [2]


def test_box_cut_by_the_image_border_keeps_its_track() -> None:
    tr = Tracker(match_iou=0.1, image_size_px=(100, 100))
    ids(tr, 0.0, dets([[60, 60, 100, 100]], [CAR]))
    # Leaving the image at the bottom right: the visible box shrinks to a quarter.
    assert ids(tr, 0.1, dets([[80, 80, 100, 100]], [CAR])) == [1]
    no_size = Tracker(match_iou=0.1)
    ids(no_size, 0.0, dets([[60, 60, 100, 100]], [CAR]))
    assert ids(no_size, 0.1, dets([[80, 80, 100, 100]], [CAR])) == [2]


def test_distance_fallback_never_revives_a_track_missed_in_the_last_frame() -> None:
    tr = Tracker(match_iou=0.1, max_age_s=5.0)
    ids(tr, 0.0, dets([[0, 0, 10, 20]], [MOTO]))
    tr.update(0.2, Detections.empty())  # missed once
    assert ids(tr, 0.4, dets([[15, 0, 25, 20]], [MOTO])) == [2]
