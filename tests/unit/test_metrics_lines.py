"""Counting lines: direction, confirmation, flicker, endpoints and bounded state."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from atcs.metrics.lines import LineCounter, LineGeometry
from atcs.types import Direction, LineId, SegmentId, VehicleClass

# Drawn left to right along y = 50: FORWARD (left -> right of the directed line) is downwards.
LINE = LineGeometry(LineId("l"), SegmentId("s"), (0.0, 50.0), (100.0, 50.0))
CAR = int(VehicleClass.CAR)


def feed(
    counter: LineCounter, path: Sequence[tuple[float, float]], tid: int = 7
) -> list[Direction]:
    """Feed one track's anchors frame by frame; return the directions counted."""
    out: list[Direction] = []
    for x, y in path:
        events = counter.update(
            np.array([tid], dtype=np.int64),
            np.array([[x, y]], dtype=np.float32),
            np.array([CAR], dtype=np.int64),
        )
        out += [e.direction for e in events]
    return out


def test_sides_sign_convention() -> None:
    sides = LINE.sides(np.array([[10.0, 60.0], [10.0, 40.0], [10.0, 50.0]], dtype=np.float32))
    assert np.sign(sides).tolist() == [1.0, -1.0, 0.0]


def test_downward_crossing_is_forward_after_confirm_frames() -> None:
    counter = LineCounter([LINE], confirm_frames=3, max_tracks=100)
    path = [(50, 40), (50, 45), (50, 55), (50, 60)]
    assert feed(counter, path) == []  # only two frames on the new side so far
    assert feed(counter, [(50, 65)]) == [Direction.FORWARD]
    assert feed(counter, [(50, 70), (50, 80)]) == []


def test_upward_crossing_is_backward() -> None:
    counter = LineCounter([LINE], confirm_frames=2, max_tracks=100)
    assert feed(counter, [(30, 70), (30, 60), (30, 45), (30, 40)]) == [Direction.BACKWARD]


def test_reversed_line_direction_flips_the_direction() -> None:
    reversed_line = LineGeometry(LineId("r"), SegmentId("s"), (100.0, 50.0), (0.0, 50.0))
    counter = LineCounter([reversed_line], confirm_frames=1, max_tracks=100)
    assert feed(counter, [(50, 40), (50, 60)]) == [Direction.BACKWARD]


def test_event_carries_line_track_and_class() -> None:
    counter = LineCounter([LINE], confirm_frames=1, max_tracks=100)
    counter.update(np.array([3]), np.array([[5.0, 40.0]], np.float32), np.array([1]))
    events = counter.update(np.array([3]), np.array([[5.0, 60.0]], np.float32), np.array([1]))
    assert [(e.line_index, e.track_id, e.vehicle_class) for e in events] == [
        (0, 3, VehicleClass.MOTORCYCLE)
    ]


def test_flickering_box_counts_once() -> None:
    counter = LineCounter([LINE], confirm_frames=3, max_tracks=100)
    # A box jittering across the line every frame or two never holds the new side.
    flicker = [(50, 48), (50, 52), (50, 48), (50, 52), (50, 53), (50, 49), (50, 51), (50, 47)]
    assert feed(counter, flicker) == []
    # It then settles below: one crossing.
    assert feed(counter, [(50, 52), (50, 55), (50, 58)]) == [Direction.FORWARD]
    # More jitter back and forth afterwards adds nothing.
    assert feed(counter, [(50, 49), (50, 52), (50, 48), (50, 51), (50, 60)]) == []


def test_a_track_counts_once_per_direction() -> None:
    counter = LineCounter([LINE], confirm_frames=1, max_tracks=100)
    down_up_down_up = [(50, 40), (50, 60), (50, 40), (50, 60), (50, 40)]
    assert feed(counter, down_up_down_up) == [Direction.FORWARD, Direction.BACKWARD]


def test_points_on_the_line_are_ignored() -> None:
    counter = LineCounter([LINE], confirm_frames=2, max_tracks=100)
    assert feed(counter, [(50, 40), (50, 50), (50, 50), (50, 60), (50, 50), (50, 61)]) == [
        Direction.FORWARD
    ]


def test_crossing_beyond_the_endpoints_does_not_count() -> None:
    counter = LineCounter([LINE], confirm_frames=1, max_tracks=100)
    assert feed(counter, [(150, 40), (150, 60)], tid=1) == []
    assert feed(counter, [(-5, 40), (-5, 60)], tid=2) == []
    # On the endpoint itself it counts; a diagonal move is judged where it meets the line.
    assert feed(counter, [(100, 40), (100, 60)], tid=3) == [Direction.FORWARD]
    assert feed(counter, [(120, 40), (80, 60)], tid=4) == [Direction.FORWARD]
    assert feed(counter, [(150, 40), (110, 60)], tid=5) == []


def test_two_tracks_and_two_lines_are_independent() -> None:
    vertical = LineGeometry(LineId("v"), SegmentId("s"), (50.0, 0.0), (50.0, 100.0))
    counter = LineCounter([LINE, vertical], confirm_frames=1, max_tracks=100)
    track_ids = np.array([1, 2], dtype=np.int64)
    classes = np.array([CAR, CAR], dtype=np.int64)
    counter.update(track_ids, np.array([[20, 40], [60, 20]], np.float32), classes)
    events = counter.update(track_ids, np.array([[20, 60], [40, 20]], np.float32), classes)
    got = sorted((e.track_id, e.line_index, e.direction.value) for e in events)
    # Track 1 went down across LINE; track 2 went left across the vertical line drawn
    # downwards, whose right-hand side on the image is -x: forward.
    assert got == [(1, 0, "forward"), (2, 1, "forward")]


def test_state_is_forgotten_and_bounded() -> None:
    counter = LineCounter([LINE], confirm_frames=1, max_tracks=10)
    for tid in range(50):
        feed(counter, [(50, 40)], tid=tid)
    assert len(counter) == 10
    counter.forget([45, 46, 1000])
    assert len(counter) == 8
    # A forgotten track that comes back starts afresh: its first point only sets the side.
    assert feed(counter, [(50, 60)], tid=45) == []
