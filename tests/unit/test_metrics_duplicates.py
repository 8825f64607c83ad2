"""Duplicate detections: nested boxes of one class, and one vehicle given two classes."""

from __future__ import annotations

import numpy as np

from atcs.metrics.duplicates import cross_class_duplicates, nested_boxes


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


def cross(boxes: list[list[float]], classes: list[int], confidence: list[float]) -> list[bool]:
    return [
        bool(v)
        for v in cross_class_duplicates(
            np.array(boxes, dtype=np.float32).reshape(-1, 4),
            np.array(classes, dtype=np.int64),
            np.array(confidence, dtype=np.float32),
        )
    ]


CAR, MOTO, BUS, TRUCK = 0, 1, 2, 3


def test_one_vehicle_called_car_and_truck_keeps_the_more_confident_box() -> None:
    car = [100.0, 100.0, 200.0, 180.0]
    truck = [102.0, 98.0, 204.0, 182.0]  # IoU about 0.9
    assert cross([car, truck], [CAR, TRUCK], [0.6, 0.4]) == [False, True]
    assert cross([car, truck], [CAR, TRUCK], [0.3, 0.7]) == [True, False]


def test_a_lorry_cab_called_car_inside_the_lorry_is_dropped() -> None:
    lorry = [0.0, 0.0, 300.0, 150.0]
    cab = [200.0, 20.0, 290.0, 140.0]  # wholly inside, IoU 0.24
    assert cross([lorry, cab], [TRUCK, CAR], [0.8, 0.5]) == [False, True]


def test_a_motorcycle_in_front_of_a_bus_is_its_own_vehicle() -> None:
    bus = [0.0, 0.0, 400.0, 200.0]
    motorcycle = [100.0, 120.0, 140.0, 200.0]  # inside the bus box: passing in front
    assert cross([bus, motorcycle], [BUS, MOTO], [0.9, 0.5]) == [False, False]


def test_neighbours_of_other_classes_and_same_class_pairs_are_kept() -> None:
    car = [0.0, 0.0, 100.0, 80.0]
    truck_beside = [90.0, 0.0, 200.0, 80.0]  # IoU 0.05
    assert cross([car, truck_beside], [CAR, TRUCK], [0.9, 0.9]) == [False, False]
    twin = [1.0, 0.0, 101.0, 80.0]  # same class: the detector's NMS already decided
    assert cross([car, twin], [CAR, CAR], [0.9, 0.8]) == [False, False]


def test_a_chain_keeps_one_box_per_vehicle() -> None:
    car = [100.0, 100.0, 200.0, 180.0]
    truck = [101.0, 100.0, 201.0, 181.0]
    bus = [99.0, 99.0, 199.0, 181.0]
    assert cross([car, truck, bus], [CAR, TRUCK, BUS], [0.5, 0.9, 0.4]) == [True, False, True]
