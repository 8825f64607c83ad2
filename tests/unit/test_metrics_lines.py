"""Counting lines: direction, confirmation, flicker, track ends, endpoints and bounded state."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from atcs.metrics.lines import CrossingEvent, LineCounter, LineGeometry
from atcs.types import Direction, LineId, SegmentId, VehicleClass

# Drawn left to right along y = 50: FORWARD (left -> right of the directed line) is downwards.
LINE = LineGeometry(LineId("l"), SegmentId("s"), (0.0, 50.0), (100.0, 50.0))
CAR = int(VehicleClass.CAR)
FRAMES = itertools.count(1000)  # stamps of the frames fed by `feed`


def make(
    confirm_frames: int, max_tracks: int = 100, lines: Sequence[LineGeometry] = (LINE,)
) -> LineCounter[int]:
    """A counter whose stamps are frame numbers."""
    return LineCounter(lines, confirm_frames=confirm_frames, max_tracks=max_tracks)


def step(
    counter: LineCounter[int], tid: int, x: float, y: float, frame: int
) -> list[CrossingEvent[int]]:
    """One frame, stamped ``frame``, with one track at anchor (x, y)."""
    return counter.update(
        np.array([tid], dtype=np.int64),
        np.array([[x, y]], dtype=np.float32),
        np.array([CAR], dtype=np.int64),
        frame,
    )


def feed(
    counter: LineCounter[int], path: Sequence[tuple[float, float]], tid: int = 7
) -> list[Direction]:
    """Feed one track's anchors frame by frame; return the directions counted."""
    out: list[Direction] = []
    for x, y in path:
        out += [e.direction for e in step(counter, tid, x, y, next(FRAMES))]
    return out


def test_sides_sign_convention() -> None:
    sides = LINE.sides(np.array([[10.0, 60.0], [10.0, 40.0], [10.0, 50.0]], dtype=np.float32))
    assert np.sign(sides).tolist() == [1.0, -1.0, 0.0]


def test_downward_crossing_is_forward_after_confirm_frames() -> None:
    counter = make(3)
    path = [(50, 40), (50, 45), (50, 55), (50, 60)]
    assert feed(counter, path) == []  # only two frames on the new side so far
    assert feed(counter, [(50, 65)]) == [Direction.FORWARD]
    assert feed(counter, [(50, 70), (50, 80)]) == []


def test_a_held_crossing_is_stamped_with_the_first_frame_on_the_new_side() -> None:
    counter = make(3)
    got = [step(counter, 1, 50, y, frame) for frame, y in enumerate([40, 45, 55, 60, 65])]
    assert [[(e.direction, e.stamp, e.by_end) for e in events] for events in got] == [
        [],
        [],
        [],
        [],
        [(Direction.FORWARD, 2, False)],  # confirmed at frame 4, crossed at frame 2
    ]


def test_upward_crossing_is_backward() -> None:
    counter = make(2)
    assert feed(counter, [(30, 70), (30, 60), (30, 45), (30, 40)]) == [Direction.BACKWARD]


def test_reversed_line_direction_flips_the_direction() -> None:
    reversed_line = LineGeometry(LineId("r"), SegmentId("s"), (100.0, 50.0), (0.0, 50.0))
    counter = make(1, lines=[reversed_line])
    assert feed(counter, [(50, 40), (50, 60)]) == [Direction.BACKWARD]


def test_event_carries_line_track_and_class() -> None:
    counter = make(1)
    counter.update(np.array([3]), np.array([[5.0, 40.0]], np.float32), np.array([1]), 10)
    events = counter.update(np.array([3]), np.array([[5.0, 60.0]], np.float32), np.array([1]), 11)
    assert [(e.line_index, e.track_id, e.vehicle_class, e.stamp, e.by_end) for e in events] == [
        (0, 3, VehicleClass.MOTORCYCLE, 11, False)
    ]


def test_flickering_box_counts_once() -> None:
    counter = make(3)
    # A box jittering across the line every frame or two never holds the new side.
    flicker = [(50, 48), (50, 52), (50, 48), (50, 52), (50, 53), (50, 49), (50, 51), (50, 47)]
    assert feed(counter, flicker) == []
    # It then settles below: one crossing.
    assert feed(counter, [(50, 52), (50, 55), (50, 58)]) == [Direction.FORWARD]
    # More jitter back and forth afterwards adds nothing.
    assert feed(counter, [(50, 49), (50, 52), (50, 48), (50, 51), (50, 60)]) == []


def test_a_track_counts_once_per_line_never_back_then_forth() -> None:
    counter = make(1)
    down_up_down_up = [(50, 40), (50, 60), (50, 40), (50, 60), (50, 40)]
    assert feed(counter, down_up_down_up) == [Direction.FORWARD]
    counter = make(2)
    # Backward, held, then forward 6 frames later: still the first crossing only.
    up_then_down = [(50, 60), (50, 40), (50, 38), (50, 36), (50, 45), (50, 55), (50, 60)]
    assert feed(counter, up_then_down, tid=2) == [Direction.BACKWARD]


def test_points_on_the_line_are_ignored() -> None:
    counter = make(2)
    assert feed(counter, [(50, 40), (50, 50), (50, 50), (50, 60), (50, 50), (50, 61)]) == [
        Direction.FORWARD
    ]


def test_crossing_beyond_the_endpoints_does_not_count() -> None:
    counter = make(1)
    assert feed(counter, [(150, 40), (150, 60)], tid=1) == []
    assert feed(counter, [(-5, 40), (-5, 60)], tid=2) == []
    # On the endpoint itself it counts; a diagonal move is judged where it meets the line.
    assert feed(counter, [(100, 40), (100, 60)], tid=3) == [Direction.FORWARD]
    assert feed(counter, [(120, 40), (80, 60)], tid=4) == [Direction.FORWARD]
    assert feed(counter, [(150, 40), (110, 60)], tid=5) == []


def test_two_tracks_and_two_lines_are_independent() -> None:
    vertical = LineGeometry(LineId("v"), SegmentId("s"), (50.0, 0.0), (50.0, 100.0))
    counter = make(1, lines=[LINE, vertical])
    track_ids = np.array([1, 2], dtype=np.int64)
    classes = np.array([CAR, CAR], dtype=np.int64)
    counter.update(track_ids, np.array([[20, 40], [60, 20]], np.float32), classes, 0)
    events = counter.update(track_ids, np.array([[20, 60], [40, 20]], np.float32), classes, 1)
    got = sorted((e.track_id, e.line_index, e.direction.value) for e in events)
    # Track 1 went down across LINE; track 2 went left across the vertical line drawn
    # downwards, whose right-hand side on the image is -x: forward.
    assert got == [(1, 0, "forward"), (2, 1, "forward")]


def test_state_is_forgotten_and_bounded() -> None:
    counter = make(1, max_tracks=10)
    for tid in range(50):
        feed(counter, [(50, 40)], tid=tid)
    assert len(counter) == 10
    counter.forget([45, 46, 1000])
    assert len(counter) == 8
    # A forgotten track that comes back starts afresh: its first point only sets the side.
    assert feed(counter, [(50, 60)], tid=45) == []


# --- Tracks that end while pending on the new side ------------------------------------


def test_a_pending_track_that_vanishes_counts_once_when_it_ends() -> None:
    counter = make(3)
    for frame, y in enumerate([30, 40, 45]):
        assert step(counter, 5, 50, y, frame) == []
    assert step(counter, 5, 50, 58, 3) == []  # crossed: pending, 1 of 3 frames
    assert step(counter, 5, 50, 66, 4) == []  # 2 of 3, then the vehicle leaves the image
    (event,) = counter.end([5])
    assert (event.line_index, event.track_id, event.vehicle_class) == (0, 5, VehicleClass.CAR)
    assert (event.direction, event.stamp, event.by_end) == (Direction.FORWARD, 3, True)
    assert len(counter) == 0
    assert counter.end([5]) == []  # ending it again (or an unknown track) adds nothing
    assert counter.flush() == []


def test_a_track_ending_on_the_old_side_does_not_count() -> None:
    counter = make(3)
    assert feed(counter, [(50, 40), (50, 45), (50, 55), (50, 44)], tid=1) == []  # back again
    assert counter.end([1]) == []
    assert feed(counter, [(50, 40), (50, 45)], tid=2) == []  # never crossed
    assert counter.end([2]) == []


def test_a_pending_move_beyond_the_endpoints_does_not_count_at_the_end() -> None:
    counter = make(3)
    assert feed(counter, [(150, 40), (150, 60)], tid=1) == []
    assert counter.end([1]) == []


def test_a_flickering_box_counts_at_most_once_whatever_ends_it() -> None:
    flicker = [(50, 48), (50, 52), (50, 48), (50, 52), (50, 53), (50, 49), (50, 51), (50, 47)]
    # Ends on the old side after flickering: nothing.
    counter = make(3)
    assert feed(counter, flicker, tid=1) == []
    assert counter.end([1]) == []
    # Ends while on the new side: the one crossing, dated by its last move across.
    counter = make(3)
    frames = list(range(100, 100 + len(flicker) + 1))
    for frame, (x, y) in zip(frames, [*flicker, (50, 52)], strict=True):
        assert step(counter, 1, x, y, frame) == []
    assert [(e.direction, e.stamp) for e in counter.end([1])] == [(Direction.FORWARD, frames[-1])]
    # Settles below (counted by holding), flickers again, ends on the new side: still one.
    counter = make(3)
    assert feed(counter, [*flicker, (50, 52), (50, 55), (50, 58)], tid=1) == [Direction.FORWARD]
    assert feed(counter, [(50, 49), (50, 52), (50, 48), (50, 51)], tid=1) == []
    assert counter.end([1]) == []


def test_a_track_born_on_the_new_side_never_counts() -> None:
    counter = make(3)
    # First seen below the line (the new side of a forward crossing), going further down.
    assert feed(counter, [(50, 60), (50, 70), (50, 80)], tid=1) == []
    assert counter.end([1]) == []
    # First seen on the line itself (no side yet), then below: its first side is below.
    assert feed(counter, [(50, 50), (50, 55)], tid=2) == []
    assert counter.flush() == []
    assert counter.end([2]) == []
    # Born below, it can only count a move back up (backward), and only once it crossed.
    assert feed(counter, [(50, 60), (50, 45)], tid=3) == []
    assert [e.direction for e in counter.end([3])] == [Direction.BACKWARD]


def test_flush_confirms_pending_crossings_and_keeps_the_tracks() -> None:
    counter = make(3)
    step(counter, 1, 50, 40, 0)
    step(counter, 2, 20, 40, 0)
    step(counter, 1, 50, 60, 1)  # pending for track 1; track 2 stays above
    step(counter, 2, 20, 45, 1)
    assert [(e.track_id, e.direction, e.stamp, e.by_end) for e in counter.flush()] == [
        (1, Direction.FORWARD, 1, True)
    ]
    assert len(counter) == 2
    assert counter.flush() == []
    # The flushed crossing is final: holding the new side or ending adds nothing.
    assert feed(counter, [(50, 65), (50, 70), (50, 75)], tid=1) == []
    assert counter.end([1, 2]) == []


def test_a_pending_track_dropped_by_the_bound_counts() -> None:
    counter = make(3, max_tracks=2)
    step(counter, 1, 50, 40, 0)
    step(counter, 1, 50, 60, 1)  # pending
    step(counter, 2, 20, 40, 2)
    events = step(counter, 3, 20, 40, 3)  # a third track evicts track 1, the oldest
    assert [(e.track_id, e.direction, e.stamp, e.by_end) for e in events] == [
        (1, Direction.FORWARD, 1, True)
    ]
    assert len(counter) == 2


def test_forget_drops_pending_crossings_without_counting() -> None:
    counter = make(3)
    feed(counter, [(50, 40), (50, 60)], tid=1)
    counter.forget([1])
    assert counter.end([1]) == []
    assert counter.flush() == []


def test_an_ending_track_counts_each_line_it_was_pending_on() -> None:
    vertical = LineGeometry(LineId("v"), SegmentId("s"), (50.0, 0.0), (50.0, 100.0))
    counter = make(3, lines=[LINE, vertical])
    step(counter, 4, 40, 40, 0)
    step(counter, 4, 60, 60, 1)  # across both lines at once
    got = sorted((e.line_index, e.direction.value, e.stamp) for e in counter.end([4]))
    # Moving right across the vertical line drawn downwards is backward (its left side).
    assert got == [(0, "forward", 1), (1, "backward", 1)]
