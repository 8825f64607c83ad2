"""Turning movements: the counter on hand-built tracks, and the analyzer's matrices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from atcs.config import AtcsConfig
from atcs.metrics import CameraAnalyzer
from atcs.metrics.geometry import PreparedPolygon
from atcs.metrics.movements import MovementCounter, MovementEvent, MovementSpec, ZoneGeometry
from atcs.types import Detections, IntersectionId, VehicleClass, ZoneId

IX = IntersectionId("ix")


def square(x0: float, y0: float, size: float = 100.0) -> PreparedPolygon:
    return PreparedPolygon(
        np.array([[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size]])
    )


# Zones on a 600 x 600 image: south (bottom middle, entry), north (top middle, exit),
# east (right middle, both), west (left middle, both).
ZONES = [
    ZoneGeometry(ZoneId("south"), IX, square(250, 500), starts=True, ends=False),
    ZoneGeometry(ZoneId("north"), IX, square(250, 0), starts=False, ends=True),
    ZoneGeometry(ZoneId("east"), IX, square(500, 250), starts=True, ends=True),
    ZoneGeometry(ZoneId("west"), IX, square(0, 250), starts=True, ends=True),
]
SOUTH, NORTH, EAST = (300.0, 550.0), (300.0, 50.0), (550.0, 300.0)
WEST, MIDDLE = (50.0, 300.0), (300.0, 300.0)


def step(
    counter: MovementCounter[int], frame: int, points: dict[int, tuple[float, float]]
) -> list[MovementEvent[int]]:
    ids = np.array(list(points), dtype=np.int64)
    anchors = np.array([points[i] for i in points], dtype=np.float32).reshape(-1, 2)
    classes = np.full(len(ids), int(VehicleClass.CAR), dtype=np.int64)
    return counter.update(ids, anchors, classes, frame)


def run(path: list[tuple[float, float]], confirm: int = 2) -> list[tuple[str, str, int]]:
    counter: MovementCounter[int] = MovementCounter(ZONES, confirm, 100)
    events: list[MovementEvent[int]] = []
    for frame, point in enumerate(path):
        events += step(counter, frame, {7: point})
    events += counter.end([7])
    return [(e.from_zone, e.to_zone, e.stamp) for e in events]


def test_a_track_from_one_zone_to_another_counts_once_dated_by_its_arrival() -> None:
    path = [SOUTH, SOUTH, MIDDLE, MIDDLE, NORTH, NORTH, NORTH]
    assert run(path) == [("south", "north", 4)]


def test_a_track_that_re_enters_zones_counts_once() -> None:
    path = [SOUTH, MIDDLE, NORTH, NORTH, MIDDLE, NORTH, NORTH, MIDDLE, EAST, EAST, WEST, WEST]
    assert run(path) == [("south", "north", 2)]


def test_a_flicker_into_a_zone_is_not_a_movement_and_a_later_arrival_is() -> None:
    # one frame in the east zone, out again (confirm 2), then settles in the north zone
    assert run([SOUTH, MIDDLE, EAST, MIDDLE, NORTH, NORTH]) == [("south", "north", 4)]


def test_the_origin_is_where_the_track_entered_the_intersection_from() -> None:
    assert run([MIDDLE, NORTH, NORTH, NORTH]) == []  # never in a start zone
    assert run([SOUTH, MIDDLE, SOUTH, MIDDLE, MIDDLE]) == []  # back to the origin: nothing
    # west is a start and an end zone: a track from it counts west -> east
    assert run([WEST, WEST, MIDDLE, EAST, EAST]) == [("west", "east", 3)]
    # first seen inside the intersection, then across the west zone: its origin is unknown
    assert run([MIDDLE, WEST, WEST, MIDDLE, EAST, EAST]) == []
    # from the south, through the west zone (a start and end zone): south -> west, once
    assert run([SOUTH, MIDDLE, WEST, WEST, MIDDLE, EAST, EAST]) == [("south", "west", 2)]


def test_a_track_ending_while_arriving_counts_then() -> None:
    assert run([SOUTH, MIDDLE, NORTH]) == [("south", "north", 2)]  # ends after one frame
    counter: MovementCounter[int] = MovementCounter(ZONES, 3, 100)
    step(counter, 0, {1: SOUTH, 2: SOUTH})
    step(counter, 1, {1: NORTH, 2: NORTH})
    counter.forget([2])  # a duplicate of another track: nothing it had pending counts
    assert [(e.track_id, e.stamp) for e in counter.flush()] == [(1, 1)]
    assert counter.flush() == []  # a flushed arrival is final
    assert step(counter, 2, {1: NORTH}) == []


def test_state_is_bounded_and_evicted_tracks_settle() -> None:
    counter: MovementCounter[int] = MovementCounter(ZONES, 3, 2)
    step(counter, 0, {1: SOUTH})
    step(counter, 1, {1: NORTH})
    events = step(counter, 2, {2: SOUTH, 3: SOUTH})  # track 1 is evicted, pending in north
    assert [(e.track_id, e.to_zone) for e in events] == [(1, "north")]
    assert len(counter) == 2


def test_spec_pairs_and_zero_counts() -> None:
    (spec,) = MovementSpec.of(ZONES)
    assert spec.pairs == (
        ("south", "north"), ("south", "east"), ("south", "west"), ("east", "north"),
        ("east", "west"), ("west", "north"), ("west", "east"),
    )  # fmt: skip


W, H = 600, 600
ORIGIN = datetime(2024, 5, 1, 7, 0, 0, tzinfo=UTC)


def norm_square(x0: float, y0: float) -> list[list[float]]:
    return [[x0 / W, y0 / H], [(x0 + 100) / W, y0 / H], [(x0 + 100) / W, (y0 + 100) / H],
            [x0 / W, (y0 + 100) / H]]  # fmt: skip


def config() -> AtcsConfig:
    raw: dict[str, Any] = {
        "site": {"id": "s"},
        "cameras": [{"id": "cam", "source": "clip.mp4"}],
        "zones": [
            {
                "id": "south",
                "camera": "cam",
                "intersection": "ix",
                "role": "entry",
                "polygon": norm_square(250, 500),
            },
            {
                "id": "north",
                "camera": "cam",
                "intersection": "ix",
                "role": "exit",
                "polygon": norm_square(250, 0),
            },
        ],
        "analysis": {"window_s": 10.0, "crossing_confirm_frames": 2},
    }
    return AtcsConfig.model_validate(raw)


def box_at(x: float, y: float) -> list[float]:
    return [x - 30, y - 60, x + 30, y]


def test_analyzer_reports_the_matrix_per_window() -> None:
    an = CameraAnalyzer.from_config(config(), "cam", W, H, ORIGIN)
    # a bus drives from the south zone to the north zone in 5 s (5 frames/s), in window 0
    for k in range(26):
        y = 560 - k * 20
        dets = Detections(
            xyxy=np.array([box_at(300, y)], dtype=np.float32),
            confidence=np.array([0.9], dtype=np.float32),
            class_id=np.array([int(VehicleClass.BUS)]),
        )
        an.update(k, ORIGIN + timedelta(seconds=0.2 * k), 0.2 * k, dets)
    an.close_windows(ORIGIN + timedelta(seconds=10))
    (matrix,) = an.take_events().movements
    assert matrix.intersection_id == "ix"
    assert (matrix.window_start, matrix.window_end) == (ORIGIN, ORIGIN + timedelta(seconds=10))
    counts = {(c.from_zone, c.to_zone, c.vehicle_class): c.count for c in matrix.counts}
    assert counts == {("south", "north", vc): int(vc is VehicleClass.BUS) for vc in VehicleClass}
    assert matrix.total == 1
    assert matrix.observed_s == pytest.approx(5.0)
    assert an.take_events().movements == ()  # taken once


def test_config_checks_zone_references() -> None:
    raw = config().model_dump()
    raw["zones"].append(
        {"id": "south", "camera": "cam", "intersection": "ix", "role": "both",
         "polygon": norm_square(0, 0)}
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"zones\[2\].id: duplicate id 'south'"):
        AtcsConfig.model_validate(raw)
    raw = config().model_dump()
    raw["zones"][1]["role"] = "entry"
    with pytest.raises(ValueError, match="needs a zone where movements start"):
        AtcsConfig.model_validate(raw)
    raw = config().model_dump()
    raw["cameras"].append({"id": "cam2", "source": "b.mp4"})
    raw["zones"][1]["camera"] = "cam2"
    with pytest.raises(ValueError, match="a movement is seen by one camera"):
        AtcsConfig.model_validate(raw)
