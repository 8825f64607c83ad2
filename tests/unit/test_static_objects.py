"""The static false-positive rule on drawn frames: scenery is flagged, stopped vehicles are not."""

from __future__ import annotations

import numpy as np

from atcs.metrics.static_objects import BACKGROUND_SIDE_PX, MAX_PLACES, SNAPSHOTS, StaticFilter
from atcs.types import Detections, Image

W, H = 640, 360
STONE = (100.0, 100.0, 130.0, 130.0)  # painted on the scene from the start, never moves
STOP_AT = 300.0  # where the arriving vehicle stops (x0)


def _frame(vehicle_x: float | None) -> Image:
    rng = np.random.default_rng(0)
    image = np.full((H, W, 3), 90, np.uint8) + rng.integers(0, 6, (H, W, 3), dtype=np.uint8)
    image[100:130, 100:130] = 240  # the "kerb stone"
    if vehicle_x is not None:
        x = int(vehicle_x)
        image[200:240, x : x + 60] = (20, 20, 200)  # a red car
    return image


def _dets(vehicle_x: float | None) -> Detections:
    boxes = [STONE]
    if vehicle_x is not None:
        boxes.append((vehicle_x, 200.0, vehicle_x + 60.0, 240.0))
    return Detections(
        xyxy=np.asarray(boxes, np.float32),
        confidence=np.full(len(boxes), 0.5, np.float32),
        class_id=np.zeros(len(boxes), np.int64),
    )


def _run(after_s: float = 20.0) -> list[tuple[float, list[bool]]]:
    """One frame a second for 120 s: the car drives in from 30 s, stops at 40 s for good."""
    flt = StaticFilter(after_s=after_s, history_s=80.0, change=12.0)
    out = []
    for t in range(120):
        x = None if t < 30 else min(STOP_AT, 30.0 * (t - 30))
        out.append((float(t), flt.update(float(t), _frame(x), _dets(x)).tolist()))
    return out


def test_scenery_is_flagged_once_it_has_not_moved_for_after_s() -> None:
    flags = {t: f[0] for t, f in _run()}
    assert not any(flags[t] for t in range(20))
    assert all(flags[t] for t in range(20, 120))


def test_a_vehicle_that_arrived_and_stopped_is_never_flagged() -> None:
    runs = _run()
    stopped = [f[1] for t, f in runs if t >= 40]
    assert len(stopped) == 80
    assert not any(stopped)  # it stood still for 80 s > after_s, but its place changed


def test_nothing_is_flagged_without_frames() -> None:
    flt = StaticFilter(after_s=1.0, history_s=10.0, change=12.0)
    for t in range(10):
        assert not flt.update(float(t), None, _dets(None)).any()


def test_a_broken_rule_would_fail_here() -> None:
    # with an absurd change threshold nothing ever "changed": the stopped car is flagged too,
    # which is exactly what the background comparison prevents
    flt = StaticFilter(after_s=20.0, history_s=80.0, change=255.0)
    last = []
    for t in range(120):
        x = None if t < 30 else min(STOP_AT, 30.0 * (t - 30))
        last = flt.update(float(t), _frame(x), _dets(x)).tolist()
    assert last == [True, True]


def _grid(n: int, first: int = 0) -> Detections:
    """``n`` small boxes on a grid, none overlapping another, from grid cell ``first`` on."""
    cells = np.arange(first, first + n)
    x, y = (cells % 60) * 10.0, (cells // 60) * 10.0
    return Detections(
        xyxy=np.stack([x, y, x + 8.0, y + 8.0], axis=1).astype(np.float32),
        confidence=np.full(n, 0.5, np.float32),
        class_id=np.zeros(n, np.int64),
    )


def test_past_max_places_the_longest_unseen_place_is_forgotten() -> None:
    """A busy frame past the bound forgets the place unseen longest, wherever it is held
    (this crashed the camera's analysis once: places compared by their box arrays)."""
    flt = StaticFilter(after_s=20.0, history_s=80.0, change=12.0)
    image = np.full((H, W, 3), 90, np.uint8)
    flt.update(0.0, image, _grid(MAX_PLACES))  # places 0 .. MAX_PLACES-1
    keep_first = _grid(1)  # place 0 seen again: the longest unseen is now place 1
    flt.update(1.0, image, keep_first)
    flt.update(2.0, image, _grid(2, first=MAX_PLACES))  # two new places: 1 and 2 forgotten
    # place 0 was remembered (matched, not new), places 1 and 2 were forgotten: seen again
    # at 3 s they are new places again and push out the next two longest unseen (3 and 4)
    flt.update(3.0, image, _grid(2, first=1))
    flt.update(4.0, image, _grid(1, first=3))  # place 3 is new again: forgotten before
    assert len(flt._places) == MAX_PLACES
    firsts = sorted(p.first_s for p in flt._places)
    assert firsts[:3] == [0.0, 0.0, 0.0]  # place 0 and places 6.. kept their first sighting
    assert firsts.count(3.0) == 2
    assert firsts.count(4.0) == 1


def test_the_background_history_holds_whole_grey_levels_in_a_fixed_size() -> None:
    """Memory per camera is bounded: SNAPSHOTS images of one byte per pixel at most
    BACKGROUND_SIDE_PX a side, however long the camera runs (a 60-camera node holds 8 of
    them per camera)."""
    flt = StaticFilter(after_s=20.0, history_s=80.0, change=12.0)
    for t in range(400):
        flt.update(float(t), _frame(None), _dets(None))
    snapshots = [snap for _, snap in flt._snapshots]
    assert len(snapshots) == SNAPSHOTS
    side = BACKGROUND_SIDE_PX
    assert all(s.dtype == np.uint8 and max(s.shape) == side for s in snapshots)
    assert sum(s.nbytes for s in snapshots) == SNAPSHOTS * side * round(side * H / W)
