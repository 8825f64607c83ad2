"""Geometry of segments: pixels, clipping, anchors in polygons, occupancy, metres."""

from __future__ import annotations

import numpy as np
import pytest

from atcs.errors import DataError
from atcs.metrics.geometry import (
    CoverageGrid,
    RoadAxis,
    clip_line,
    clip_polygon,
    points_in_polygon,
    polygon_area_px2,
    to_pixels,
)

SQUARE = np.array([[10.0, 10.0], [90.0, 10.0], [90.0, 90.0], [10.0, 90.0]])


def test_to_pixels_scales_x_by_width_and_y_by_height() -> None:
    px = to_pixels([(0.0, 0.0), (0.5, 0.25), (1.0, 1.0)], 640, 480)
    assert px.tolist() == [[0.0, 0.0], [320.0, 120.0], [640.0, 480.0]]


def test_to_pixels_rejects_empty_image() -> None:
    with pytest.raises(DataError):
        to_pixels([(0.5, 0.5)], 0, 480)


def test_clip_polygon_partly_outside_keeps_the_part_inside() -> None:
    poly = np.array([[-50.0, 20.0], [50.0, 20.0], [50.0, 150.0], [-50.0, 150.0]])
    clipped = clip_polygon(poly, 100, 100)
    assert polygon_area_px2(clipped) == 50.0 * 80.0
    assert clipped[:, 0].min() == 0.0
    assert clipped[:, 1].max() == 100.0


def test_clip_polygon_wholly_outside_is_empty() -> None:
    poly = np.array([[120.0, 10.0], [150.0, 10.0], [150.0, 40.0]])
    assert len(clip_polygon(poly, 100, 100)) == 0


def test_clip_polygon_inside_is_unchanged() -> None:
    assert polygon_area_px2(clip_polygon(SQUARE, 100, 100)) == 6400.0


def test_clip_line() -> None:
    assert clip_line((-10.0, 50.0), (110.0, 50.0), 100, 100) == ((0.0, 50.0), (100.0, 50.0))
    assert clip_line((20.0, 30.0), (40.0, 60.0), 100, 100) == ((20.0, 30.0), (40.0, 60.0))
    assert clip_line((-10.0, -5.0), (-1.0, 50.0), 100, 100) is None


@pytest.mark.parametrize(
    ("point", "inside"),
    [
        ((50.0, 50.0), True),  # centre
        ((9.99, 50.0), False),  # just left of the left edge
        ((10.0, 50.0), True),  # on the left edge
        ((90.0, 50.0), True),  # on the right edge
        ((50.0, 90.0), True),  # on the bottom edge
        ((50.0, 90.01), False),  # just below
        ((10.0, 10.0), True),  # a vertex
        ((90.0, 90.0), True),  # the opposite vertex
        ((95.0, 95.0), False),  # outside, diagonal
    ],
)
def test_points_in_square_boundary_is_inside(point: tuple[float, float], inside: bool) -> None:
    assert points_in_polygon(np.array([point]), SQUARE).tolist() == [inside]


def test_points_in_concave_polygon() -> None:
    # A "U": the notch (40..60, 0..60) is outside.
    u_shape = np.array(
        [[0, 0], [40, 0], [40, 60], [60, 60], [60, 0], [100, 0], [100, 100], [0, 100]],
        dtype=np.float64,
    )
    pts = np.array([[20, 30], [50, 30], [80, 30], [50, 80], [50, 60], [40, 30]])
    assert points_in_polygon(pts, u_shape).tolist() == [True, False, True, True, True, True]


def test_points_on_slanted_edge() -> None:
    triangle = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    pts = np.array([[50.0, 50.0], [50.5, 50.0], [25.0, 25.0]])
    assert points_in_polygon(pts, triangle).tolist() == [True, False, True]


def test_points_in_polygon_vectorised_and_empty() -> None:
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 100, size=(500, 2))
    got = points_in_polygon(pts, SQUARE)
    want = (pts >= 10).all(axis=1) & (pts <= 90).all(axis=1)
    assert np.array_equal(got, want)
    assert points_in_polygon(np.zeros((0, 2)), SQUARE).shape == (0,)


def test_polygon_touching_image_bottom_holds_boxes_touching_it() -> None:
    bottom = np.array([[0.0, 50.0], [100.0, 50.0], [100.0, 100.0], [0.0, 100.0]])
    # Anchor (bottom centre) of a box clipped to the image's bottom row.
    assert points_in_polygon(np.array([[30.0, 100.0]]), bottom).tolist() == [True]


def _grid() -> CoverageGrid:
    return CoverageGrid(SQUARE, 100, 100)


def test_occupancy_one_box() -> None:
    assert _grid().covered_fraction([[20, 20, 40, 40]]) == 400 / 6400


def test_occupancy_union_of_overlapping_boxes_counts_overlap_once() -> None:
    # 400 + 400 - 100 overlap = 700 px².
    boxes = [[20, 20, 40, 40], [30, 30, 50, 50]]
    assert _grid().covered_fraction(boxes) == 700 / 6400


def test_occupancy_identical_boxes_count_once() -> None:
    boxes = [[20, 20, 40, 40]] * 3
    assert _grid().covered_fraction(boxes) == 400 / 6400


def test_occupancy_box_partly_outside_polygon_is_clipped() -> None:
    # Only 80..90 x 80..90 of this box lies in the polygon.
    assert _grid().covered_fraction([[80, 80, 100, 100]]) == 100 / 6400


def test_occupancy_box_outside_and_full_cover() -> None:
    grid = _grid()
    assert grid.covered_fraction([[0, 0, 5, 100]]) == 0.0
    assert grid.covered_fraction(np.zeros((0, 4))) == 0.0
    assert grid.covered_fraction([[0, 0, 100, 100]]) == 1.0


def test_occupancy_triangle_is_area_ratio() -> None:
    triangle = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    grid = CoverageGrid(triangle, 100, 100)
    # Cells whose centre lies in the triangle: 100 + 99 + ... + 1 = 5050 (vs 5000 exact).
    assert grid.area_cells == 5050
    assert grid.covered_fraction([[0, 0, 10, 10]]) == 100 / 5050


def test_occupancy_reduced_grid_is_close_and_exact_on_aligned_boxes() -> None:
    poly = np.array([[0.0, 0.0], [1920.0, 0.0], [1920.0, 1080.0], [0.0, 1080.0]])
    grid = CoverageGrid(poly, 1920, 1080, max_side_px=640)
    assert grid.scale == pytest.approx(1 / 3)
    assert grid.area_cells == 640 * 360
    assert grid.covered_fraction([[0, 0, 960, 1080]]) == 0.5
    frac = grid.covered_fraction([[100.5, 200.2, 357.3, 611.9]])
    exact = (357.3 - 100.5) * (611.9 - 200.2) / (1920 * 1080)
    assert frac == pytest.approx(exact, rel=0.02)


def test_small_polygon_uses_full_resolution() -> None:
    tiny = np.array([[100.0, 100.0], [110.0, 100.0], [110.0, 110.0], [100.0, 110.0]])
    grid = CoverageGrid(tiny, 1920, 1080, max_side_px=640)
    assert grid.scale == 1.0
    assert grid.covered_fraction([[100, 100, 105, 110]]) == 0.5


def test_road_axis_maps_normal_distance_to_metres() -> None:
    # Stop line along y = 100, polygon extends down to y = 300: 200 px is 50 m.
    stop = np.array([[0.0, 100.0], [200.0, 100.0]])
    poly = np.array([[0.0, 100.0], [200.0, 100.0], [200.0, 300.0], [0.0, 300.0]])
    axis = RoadAxis(stop, poly, length_m=50.0)
    assert axis.metres_per_px == 0.25
    got = axis.distance_m([[50.0, 100.0], [80.0, 140.0], [10.0, 300.0], [0.0, 60.0]])
    assert got.tolist() == [0.0, 10.0, 50.0, -10.0]


def test_road_axis_orientation_follows_polygon_not_line_direction() -> None:
    # Same geometry with the stop line drawn right to left and the polygon above it.
    stop = np.array([[200.0, 300.0], [0.0, 300.0]])
    poly = np.array([[0.0, 100.0], [200.0, 100.0], [200.0, 300.0], [0.0, 300.0]])
    axis = RoadAxis(stop, poly, length_m=50.0)
    assert axis.distance_m([[5.0, 260.0], [5.0, 100.0]]).tolist() == [10.0, 50.0]


def test_road_axis_slanted_stop_line() -> None:
    stop = np.array([[0.0, 0.0], [100.0, 100.0]])
    poly = np.array([[0.0, 0.0], [100.0, 100.0], [100.0, 0.0]])
    axis = RoadAxis(stop, poly, length_m=10.0)
    # (100, 0) is 100/sqrt(2) px from the line.
    assert axis.metres_per_px == pytest.approx(10.0 / (100.0 / np.sqrt(2.0)))
    assert axis.distance_m([[50.0, 0.0]])[0] == pytest.approx(5.0)


def test_road_axis_degenerate() -> None:
    poly = np.array([[0.0, 0.0], [100.0, 0.0], [50.0, 0.0]])
    with pytest.raises(DataError):
        RoadAxis(np.array([[0.0, 0.0], [100.0, 0.0]]), poly, 10.0)
    with pytest.raises(DataError):
        RoadAxis(np.array([[5.0, 5.0], [5.0, 5.0]]), SQUARE, 10.0)
