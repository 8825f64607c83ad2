"""The Kalman tracker: identity at low frame rates, classes by vote, gates, expiry, bounds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from atcs.metrics.appearance import box_histograms, hellinger
from atcs.metrics.kalman import BoxFilter, MotionNoise
from atcs.metrics.tracking import FlowPrior, Tracker, iou_matrix
from atcs.types import Detections, VehicleClass

CAR = VehicleClass.CAR
MOTO = VehicleClass.MOTORCYCLE
TRUCK = VehicleClass.TRUCK


def dets(
    boxes: Sequence[Sequence[float]],
    classes: list[VehicleClass],
    confidence: Sequence[float] | None = None,
) -> Detections:
    conf = np.full(len(boxes), 0.9) if confidence is None else np.asarray(confidence)
    return Detections(
        xyxy=np.array(boxes, dtype=np.float32).reshape(-1, 4),
        confidence=conf.astype(np.float32),
        class_id=np.array([int(c) for c in classes], dtype=np.int64),
    )


def ids(tracker: Tracker, t_s: float, d: Detections) -> list[int]:
    out = tracker.update(t_s, d).detections.tracker_id
    assert out is not None
    return [int(v) for v in out]


def moto(x: float, y: float) -> list[float]:
    """A 30 x 60 px motorcycle box whose anchor (bottom centre) is (x, y)."""
    return [x - 15, y - 60, x + 15, y]


def test_iou_matrix_values() -> None:
    a = [[0, 0, 10, 10]]
    b = [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]]
    assert iou_matrix(a, b).tolist() == [[1.0, 50 / 150, 0.0, 0.0]]


def test_kalman_filter_learns_a_constant_velocity_and_predicts_ahead() -> None:
    f = BoxFilter(np.array([0.0, 0.0, 20.0, 40.0]), MotionNoise())
    for k in range(1, 8):  # 100 px/s to the right, 5 samples a second
        x = 100.0 * 0.2 * k
        f.update(0.2, np.array([x, 0.0, x + 20.0, 40.0]))
    assert f.velocity_px_s[0] == pytest.approx(100.0, abs=5.0)
    state, _ = f.predicted(0.2)
    assert state[0] == pytest.approx(140.0 + 10.0 + 20.0, abs=2.0)  # anchor x at 1.6 s


def test_moving_box_keeps_its_id_and_new_box_gets_a_new_one() -> None:
    tr = Tracker()
    assert ids(tr, 0.0, dets([[0, 0, 20, 20]], [CAR])) == [1]
    assert ids(tr, 0.1, dets([[4, 0, 24, 20], [100, 100, 120, 120]], [CAR, CAR])) == [1, 2]
    assert ids(tr, 0.2, dets([[100, 102, 120, 122], [8, 0, 28, 20]], [CAR, CAR])) == [2, 1]
    assert len(tr) == 2


def test_a_motorcycle_whose_boxes_barely_overlap_keeps_its_track() -> None:
    # 5 frames/s, 250 px/s downwards: 50 px per sample, IoU 0.09 between samples.
    assert iou_matrix([moto(100, 50)], [moto(100, 100)])[0, 0] < 0.1
    tr = Tracker()
    got = [ids(tr, 0.2 * k, dets([moto(100, 50 + 50 * k)], [MOTO])) for k in range(6)]
    assert got == [[1]] * 6


def test_two_motorcycles_in_a_stream_do_not_swap() -> None:
    # Riders 70 px apart, both 50 px per sample: the follower reaches the place the leader
    # just left. A rider seen once could be either; the flow prior (learned from an earlier
    # rider on the same road) and then each track's own velocity keep them apart.
    tr = Tracker(image_size_px=(200, 800))
    for k in range(10):
        ids(tr, 0.2 * k, dets([moto(100, 60 + 50 * k)], [MOTO]))
    for k in range(6):
        lead, follow = moto(100, 130 + 50 * k), moto(100, 60 + 50 * k)
        assert ids(tr, 10.0 + 0.2 * k, dets([follow, lead], [MOTO, MOTO])) == [2, 3]


def test_association_is_class_agnostic_and_the_class_is_a_vote() -> None:
    tr = Tracker()
    boxes = [[0, 0, 40, 30], [5, 0, 45, 30], [10, 0, 50, 30], [15, 0, 55, 30]]
    classes = [CAR, TRUCK, CAR, CAR]
    conf = [0.8, 0.5, 0.7, 0.9]
    voted = []
    for k, (b, c, p) in enumerate(zip(boxes, classes, conf, strict=True)):
        out = tr.update(0.1 * k, dets([b], [c], [p])).detections
        assert out.tracker_id is not None
        assert out.tracker_id.tolist() == [1]
        voted.append(VehicleClass(int(out.class_id[0])))
    # One track throughout; the single truck frame (0.5) never outvotes the car (0.8).
    assert voted == [CAR, CAR, CAR, CAR]


def test_a_track_missed_for_a_few_samples_gets_its_vehicle_back() -> None:
    tr = Tracker(max_age_s=1.5)
    for k in range(4):
        assert ids(tr, 0.2 * k, dets([moto(100, 50 + 40 * k)], [MOTO])) == [1]
    tr.update(0.8, Detections.empty())
    tr.update(1.0, Detections.empty())
    # Seen again where its velocity put it: the same track, not a new one.
    assert ids(tr, 1.2, dets([moto(100, 50 + 40 * 6)], [MOTO])) == [1]


def test_a_moving_track_never_continues_on_a_box_behind_it() -> None:
    tr = Tracker()
    for k in range(4):
        ids(tr, 0.2 * k, dets([moto(100, 100 + 40 * k)], [MOTO]))
    # The next box is 60 px (1.5 box sizes) behind the last one: another vehicle.
    assert ids(tr, 0.8, dets([moto(100, 160)], [MOTO])) == [2]


def test_a_track_seen_once_is_not_revived_after_a_miss() -> None:
    tr = Tracker(max_age_s=5.0)
    ids(tr, 0.0, dets([moto(100, 100)], [MOTO]))
    tr.update(0.2, Detections.empty())
    assert ids(tr, 0.4, dets([moto(100, 110)], [MOTO])) == [2]


def test_far_boxes_start_new_tracks() -> None:
    tr = Tracker()
    ids(tr, 0.0, dets([moto(100, 100)], [MOTO]))
    assert ids(tr, 0.2, dets([moto(600, 100)], [MOTO])) == [2]


def test_a_missed_track_predicted_out_of_the_image_has_left() -> None:
    tr = Tracker(image_size_px=(200, 400), max_age_s=3.0)
    for k in range(4):
        ids(tr, 0.2 * k, dets([moto(100, 200 + 50 * k)], [MOTO]))
    for k in range(4, 9):
        tr.update(0.2 * k, Detections.empty())
    # Predicted far below the image by now: a box near the top is another vehicle.
    assert ids(tr, 1.8, dets([moto(100, 380)], [MOTO])) == [2]


def test_flow_prior_gives_new_tracks_the_local_direction_of_traffic() -> None:
    prior = FlowPrior(400, 400, cells=4)
    assert prior.velocity_at(50, 50) is None
    for _ in range(5):
        prior.add(50, 50, np.array([0.0, 200.0]))
    vel = prior.velocity_at(50, 50)
    assert vel is not None
    assert vel.tolist() == pytest.approx([0.0, 200.0])
    # An empty neighbour cell borrows from its neighbours.
    near = prior.velocity_at(150, 50)
    assert near is not None
    assert near.tolist() == pytest.approx([0.0, 200.0])
    # Traffic both ways in one cell: no prior.
    for _ in range(5):
        prior.add(350, 350, np.array([0.0, 200.0]))
        prior.add(350, 350, np.array([0.0, -200.0]))
    assert prior.velocity_at(350, 350) is None


def test_colour_histograms_tell_two_colours_apart() -> None:
    image = np.zeros((200, 400, 3), dtype=np.uint8)
    image[:, :200] = (0, 0, 200)  # red on the left
    image[:, 200:] = (200, 0, 0)  # blue on the right
    boxes = np.array([[50, 50, 90, 150], [250, 50, 290, 150]], dtype=np.float32)
    hist = box_histograms(image, boxes)
    assert hist.shape == (2, 32)
    assert hist.sum(axis=1).tolist() == pytest.approx([1.0, 1.0])
    distance = hellinger(hist, hist)
    assert distance[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert distance[0, 1] == pytest.approx(1.0)


def test_speed_in_px_per_second_of_the_anchor() -> None:
    tr = Tracker()
    first = tr.update(0.0, dets([[0, 0, 20, 20]], [CAR]))
    assert np.isnan(first.speeds_px_s).all()
    out = None
    for k in range(1, 10):
        out = tr.update(0.2 * k, dets([[6 * k, 8 * k, 20 + 6 * k, 20 + 8 * k]], [CAR]))
    assert out is not None
    # The anchor moves (30, 40) px/s: 50 px/s.
    assert out.speeds_px_s[0] == pytest.approx(50.0, rel=0.05)


def test_tracks_expire_after_max_age() -> None:
    tr = Tracker(max_age_s=1.0)
    ids(tr, 0.0, dets([[0, 0, 20, 20]], [CAR]))
    ids(tr, 0.1, dets([[0, 0, 20, 20]], [CAR]))
    out = tr.update(1.0, Detections.empty())
    assert out.removed == ()
    assert len(tr) == 1
    assert ids(tr, 1.05, dets([[0, 0, 20, 20]], [CAR])) == [1]  # seen again within the age
    out = tr.update(2.1, Detections.empty())
    assert out.removed == (1,)
    assert len(tr) == 0
    assert ids(tr, 2.2, dets([[0, 0, 20, 20]], [CAR])) == [2]


def test_track_count_is_bounded_oldest_dropped() -> None:
    tr = Tracker(max_count=10, max_age_s=100.0)
    for k in range(10):
        ids(tr, float(k), dets([[k * 300, 0, k * 300 + 20, 20]], [CAR]))
    assert len(tr) == 10
    # Track 1 (least recently seen) goes when an 11th track is created.
    out = tr.update(10.0, dets([[5000, 0, 5020, 20]], [CAR]))
    assert out.removed == (1,)
    assert len(tr) == 10
    boxes = [[k * 30, 500, k * 30 + 20, 520] for k in range(25)]
    out = tr.update(11.0, dets(boxes, [CAR] * 25))
    assert len(tr) == 10
    assert len(out.removed) == 25


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
    tr = Tracker()
    ids(tr, 0.0, dets([[0, 0, 20, 20]], [CAR]))
    # The area grew 4x in a tenth of a second (limit 2.5x per 0.2 s).
    assert ids(tr, 0.1, dets([[0, 0, 40, 40]], [CAR])) == [2]


def test_box_cut_by_the_image_border_keeps_its_track() -> None:
    tr = Tracker(image_size_px=(100, 100))
    ids(tr, 0.0, dets([[60, 60, 100, 100]], [CAR]))
    # Leaving the image at the bottom right: the visible box shrinks to a quarter.
    assert ids(tr, 0.1, dets([[80, 80, 100, 100]], [CAR])) == [1]
    no_size = Tracker()
    ids(no_size, 0.0, dets([[60, 60, 100, 100]], [CAR]))
    assert ids(no_size, 0.1, dets([[80, 80, 100, 100]], [CAR])) == [2]


def test_a_duplicate_track_is_merged_into_the_one_that_keeps_the_vehicle() -> None:
    tr = Tracker()
    # Two boxes on one motorcycle for two samples (rider and machine, not nested).
    for k in range(2):
        y = 100 + 30 * k
        tr.update(0.2 * k, dets([moto(100, y), moto(102, y - 2)], [MOTO, MOTO]))
    # Then one box: one track takes it; the other, predicted onto it, is a duplicate.
    out = tr.update(0.4, dets([moto(100, 160)], [MOTO]))
    assert len(out.merged) == 1
    assert len(tr) == 1
