"""Duplicate detections: boxes lying inside a larger box of the same class."""

from __future__ import annotations

import numpy as np

from atcs.metrics.duplicates import nested_boxes


def marks(boxes: list[list[float]], classes: list[int], fraction: float = 0.9) -> list[bool]:
    xyxy = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    return [bool(v) for v in nested_boxes(xyxy, np.array(classes, dtype=np.int64), fraction)]


def test_a_box_inside_a_larger_one_of_its_class_is_marked() -> None:
    outer = [0.0, 0.0, 100.0, 100.0]
    inner = [10.0, 20.0, 90.0, 100.0]  # wholly inside, bottom edges shared
    assert marks([outer, inner], [1, 1]) == [False, True]
    assert marks([inner, outer], [1, 1]) == [True, False]
    assert marks([inner, outer], [1, 2]) == [False, False]  # another class: two vehicles


def test_the_fraction_inside_decides() -> None:
    outer = [0.0, 0.0, 100.0, 100.0]
    # 90 x 100 box, 81 of its 90 columns inside the outer box: 90 % inside.
    shifted = [19.0, 0.0, 109.0, 100.0]
    assert marks([outer, shifted], [0, 0], fraction=0.9) == [False, True]
    assert marks([outer, shifted], [0, 0], fraction=0.95) == [False, False]
    # Two cars side by side overlapping a little are both kept.
    assert marks([[0, 0, 50, 40], [45, 0, 95, 40]], [0, 0]) == [False, False]


def test_equal_boxes_keep_the_first_and_degenerate_boxes_stay() -> None:
    b = [5.0, 5.0, 25.0, 25.0]
    assert marks([b, b, b], [0, 0, 0]) == [False, True, True]
    assert marks([[0, 0, 100, 100], [10, 10, 10, 50]], [0, 0]) == [False, False]
    assert marks([], []) == []
    assert marks([b], [0]) == [False]
