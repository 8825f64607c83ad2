"""Tiling geometry and cross-tile NMS (detectors/tiles.py), with exact boxes."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atcs.errors import DetectorError
from atcs.types import Detections, VehicleClass
from detectors.crop import PixelBox
from detectors.tiles import (
    TileSettings,
    drop_class_duplicates,
    merge_detections,
    plan_tiles,
    scaled_frame,
)

CAR, MOTORCYCLE = int(VehicleClass.CAR), int(VehicleClass.MOTORCYCLE)
TRUCK, BICYCLE = int(VehicleClass.TRUCK), int(VehicleClass.BICYCLE)


def _dets(rows: list[tuple[float, float, float, float, float, int]]) -> Detections:
    array = np.asarray(rows, dtype=np.float32).reshape(-1, 6)
    return Detections(
        xyxy=array[:, :4], confidence=array[:, 4], class_id=array[:, 5].astype(np.int64)
    )


def test_scaled_frame_at_native_resolution_resamples_nothing() -> None:
    g = scaled_frame(540, 960, 1.0, 32)
    assert (g.resized_height_px, g.resized_width_px) == (540, 960)
    assert (g.input_height_px, g.input_width_px) == (544, 960)
    assert (g.top_px, g.left_px) == (2, 0)
    g2 = scaled_frame(540, 960, 2.0, 32)
    assert (g2.resized_height_px, g2.resized_width_px, g2.input_height_px) == (1080, 1920, 1088)
    assert g2.top_px == 4


def test_tiles_cover_the_far_band_evenly_with_one_shape() -> None:
    frame = scaled_frame(540, 960, 2.0, 32)  # 1920x1088 input, image rows 4..1084
    tiles = plan_tiles(frame, PixelBox(0, 0, 960, 300), TileSettings(scale=2.0))
    # rows: image y 0..300 -> input 4..604 -> one 640 row from 0; columns 0..1920 in four
    assert [(t.top_px, t.left_px) for t in tiles] == [(0, 0), (0, 416), (0, 864), (0, 1280)]
    assert {t.input_shape for t in tiles} == {(640, 640)}
    overlaps = [a.left_px + a.width_px - b.left_px for a, b in pairwise(tiles)]
    assert overlaps == [224, 192, 224]


def test_a_box_found_in_a_tile_maps_back_to_image_pixels_exactly() -> None:
    frame = scaled_frame(540, 960, 2.0, 32)
    tile = plan_tiles(frame, PixelBox(0, 0, 960, 300), TileSettings(scale=2.0))[1]
    assert (tile.top_px, tile.left_px) == (0, 416)
    xyxy = np.array([[100.0, 50.0, 140.0, 90.0], [0.0, 0.0, 640.0, 640.0]], np.float32)
    tile.boxes_to_image(xyxy)
    # x: (416 + 100) / 2 = 258; y: (50 - 4) / 2 = 23; clipped to the 960x540 image
    np.testing.assert_array_equal(xyxy[0], [258.0, 23.0, 278.0, 43.0])
    np.testing.assert_array_equal(xyxy[1], [208.0, 0.0, 528.0, 318.0])


def test_a_tile_shows_the_image_pixels_where_its_boxes_map_back() -> None:
    image = np.zeros((540, 960, 3), np.uint8)
    image[200:230, 700:716] = 255  # a bright 16x30 px "motorcycle"
    frame = scaled_frame(540, 960, 1.0, 32)
    tiles = plan_tiles(frame, PixelBox(0, 100, 960, 400), TileSettings(tile_px=320, overlap_px=32))
    holding = [t for t in tiles if t.left_px <= 700 and t.left_px + t.width_px >= 716]
    assert holding
    for tile in holding:
        out = np.empty((*tile.input_shape, 3), np.uint8)
        tile.fill(image, out)
        ys, xs = np.nonzero(out[:, :, 0] == 255)
        found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
        tile.boxes_to_image(found)
        np.testing.assert_array_equal(found[0], [700.0, 200.0, 716.0, 230.0])


def test_a_region_outside_the_image_gets_no_tiles_and_bad_settings_are_refused() -> None:
    frame = scaled_frame(540, 960, 1.0, 32)
    assert plan_tiles(frame, PixelBox(1000, 0, 1100, 50), TileSettings()) == ()
    with pytest.raises(DetectorError, match="multiple of the stride"):
        TileSettings(tile_px=600)
    with pytest.raises(DetectorError, match="scale"):
        TileSettings(scale=9.0)
    with pytest.raises(DetectorError, match="overlap_px"):
        TileSettings(tile_px=320, overlap_px=200)


@settings(max_examples=200, deadline=None)
@given(
    height=st.integers(100, 1200),
    width=st.integers(100, 2000),
    scale=st.sampled_from([0.5, 1.0, 1.5, 2.0]),
    tile=st.sampled_from([256, 320, 640]),
    overlap=st.sampled_from([0, 32, 64, 96]),
    box=st.tuples(*[st.floats(0.0, 1.0)] * 4),
)
def test_tiles_cover_every_region_pixel_with_the_overlap_asked(
    height: int,
    width: int,
    scale: float,
    tile: int,
    overlap: int,
    box: tuple[float, float, float, float],
) -> None:
    x0, x1 = sorted((box[0] * (width - 1), box[2] * (width - 1)))
    y0, y1 = sorted((box[1] * (height - 1), box[3] * (height - 1)))
    region = PixelBox(x0, y0, x1 + 1, y1 + 1)
    frame = scaled_frame(height, width, scale, 32)
    tiles = plan_tiles(frame, region, TileSettings(scale=scale, tile_px=tile, overlap_px=overlap))
    assert tiles
    assert len({t.input_shape for t in tiles}) == 1
    for t in tiles:
        assert t.top_px % 32 == 0
        assert t.left_px % 32 == 0
        assert t.top_px >= 0
        assert t.left_px >= 0
        assert t.top_px + t.height_px <= frame.input_height_px
        assert t.left_px + t.width_px <= frame.input_width_px
    for axis in ("top_px", "left_px"):
        starts = sorted({getattr(t, axis) for t in tiles})
        size = tiles[0].height_px if axis == "top_px" else tiles[0].width_px
        assert all(b - a <= size - overlap for a, b in pairwise(starts))
    # the region's corners (model px) lie in some tile
    sx = frame.resized_width_px / width
    sy = frame.resized_height_px / height
    clipped = region.clipped(width, height)
    assert clipped is not None
    for px, py in [(clipped.x0, clipped.y0), (clipped.x1, clipped.y1)]:
        mx, my = frame.left_px + px * sx, frame.top_px + py * sy
        eps = 1e-6  # float noise of px * scale
        assert any(
            t.left_px - eps <= mx <= t.left_px + t.width_px + eps
            and t.top_px - eps <= my <= t.top_px + t.height_px + eps
            for t in tiles
        )


def test_merge_keeps_one_box_per_vehicle_seen_by_two_tiles() -> None:
    left = _dets([(100, 50, 130, 90, 0.6, MOTORCYCLE), (10, 10, 60, 40, 0.9, CAR)])
    right = _dets([(101, 51, 131, 91, 0.7, MOTORCYCLE)])
    merged = merge_detections([left, right])
    np.testing.assert_array_equal(merged.xyxy, [[10, 10, 60, 40], [101, 51, 131, 91]])
    np.testing.assert_array_equal(merged.class_id, [CAR, MOTORCYCLE])
    np.testing.assert_allclose(merged.confidence, [0.9, 0.7])


def test_merge_drops_the_part_of_a_vehicle_a_tile_edge_cut() -> None:
    whole = _dets([(300, 100, 360, 140, 0.8, CAR)])
    cut = _dets([(300, 100, 320, 140, 0.5, CAR)])  # IoU 1/3 only, but all inside the whole
    merged = merge_detections([cut, whole])
    np.testing.assert_array_equal(merged.xyxy, [[300, 100, 360, 140]])
    # a more confident fragment keeps its confidence and grows to the whole vehicle
    merged = merge_detections([_dets([(300, 100, 320, 140, 0.9, CAR)]), whole])
    np.testing.assert_array_equal(merged.xyxy, [[300, 100, 360, 140]])
    np.testing.assert_allclose(merged.confidence, [0.9])


def test_merge_keeps_a_half_hidden_car_found_in_the_same_tile() -> None:
    one_tile = _dets([(0, 0, 100, 60, 0.9, CAR), (60, 10, 90, 50, 0.6, CAR)])  # inside, IoU 0.2
    assert len(merge_detections([one_tile])) == 2
    other_tile = _dets([(60, 10, 90, 50, 0.6, CAR)])
    assert len(merge_detections([_dets([(0, 0, 100, 60, 0.9, CAR)]), other_tile])) == 1


def test_merge_keeps_neighbours_and_other_classes() -> None:
    parts = [
        _dets([(0, 0, 40, 40, 0.9, CAR), (30, 0, 70, 40, 0.8, CAR)]),  # IoU 0.14: two cars
        _dets([(10, 10, 20, 30, 0.7, MOTORCYCLE)]),  # a motorcycle in front of the car
    ]
    merged = merge_detections(parts)
    assert len(merged) == 3
    assert len(merge_detections([])) == 0
    with pytest.raises(DetectorError):
        merge_detections(parts, iou_threshold=0.0)


IMAGE = (960, 540)
"""(width, height) px of the image the window tests place their tiles in."""
TILE = PixelBox(0.0, 0.0, 320.0, 320.0)
"""A tile whose right and bottom edges lie inside the image (its top and left are the image's)."""


def test_merge_never_joins_two_neighbouring_cars_into_one_box() -> None:
    # the whole-frame pass saw two queued cars as one box; the tile saw each car
    whole = _dets([(100, 100, 200, 140, 0.6, CAR)])
    tile = _dets([(100, 100, 148, 140, 0.9, CAR), (152, 100, 200, 140, 0.8, CAR)])
    merged = merge_detections([whole, tile], windows=[None, TILE], image_size=IMAGE)
    np.testing.assert_array_equal(merged.xyxy, [[100, 100, 148, 140], [152, 100, 200, 140]])
    np.testing.assert_allclose(merged.confidence, [0.9, 0.8])


def test_merge_grows_only_a_box_cut_by_an_inner_tile_edge() -> None:
    whole = _dets([(300, 100, 360, 140, 0.5, CAR)])
    cut = _dets([(300, 100, 319, 140, 0.9, CAR)])  # ends at the tile's right edge (x = 320)
    merged = merge_detections([whole, cut], windows=[None, TILE], image_size=IMAGE)
    np.testing.assert_array_equal(merged.xyxy, [[300, 100, 360, 140]])
    np.testing.assert_allclose(merged.confidence, [0.9])
    # the same box away from every inner edge is a car of its own size: no growth
    inner = _dets([(300, 100, 319, 140, 0.9, CAR)])
    wide = PixelBox(0.0, 0.0, 640.0, 320.0)
    merged = merge_detections([whole, inner], windows=[None, wide], image_size=IMAGE)
    np.testing.assert_array_equal(merged.xyxy, [[300, 100, 319, 140]])
    # a tile edge that is the image's own edge cuts nothing
    edge = PixelBox(640.0, 0.0, 960.0, 320.0)
    at_edge = _dets([(900, 100, 960, 140, 0.9, CAR)])
    bigger = _dets([(890, 90, 960, 140, 0.5, CAR)])
    merged = merge_detections([bigger, at_edge], windows=[None, edge], image_size=IMAGE)
    np.testing.assert_array_equal(merged.xyxy, [[900, 100, 960, 140]])


def test_merge_drops_a_box_that_only_the_grown_box_covers() -> None:
    # the tile's cut box grows to the whole frame's box of the car; a fragment of the same car
    # beside it in the tile (IoU 0 with the cut box, 0.53 with the grown one) is then dropped
    whole = _dets([(240, 100, 350, 140, 0.5, CAR)])
    tile = _dets([(300, 100, 319, 140, 0.9, CAR), (240, 100, 298, 140, 0.3, CAR)])
    merged = merge_detections([whole, tile], windows=[None, TILE], image_size=IMAGE)
    np.testing.assert_array_equal(merged.xyxy, [[240, 100, 350, 140]])
    np.testing.assert_allclose(merged.confidence, [0.9])


def test_merge_gives_a_rider_seen_at_two_scales_the_box_with_its_rider() -> None:
    # the tile found the scooter alone, the whole frame the scooter and its rider
    whole = _dets([(200, 80, 220, 130, 0.4, MOTORCYCLE)])
    tile = _dets([(201, 105, 219, 130, 0.8, MOTORCYCLE)])  # IoU 0.45, all inside
    merged = merge_detections([whole, tile], windows=[None, TILE], image_size=IMAGE)
    np.testing.assert_array_equal(merged.xyxy, [[200, 80, 220, 130]])
    np.testing.assert_allclose(merged.confidence, [0.8])
    with pytest.raises(DetectorError):
        merge_detections([whole, tile], windows=[None], image_size=IMAGE)


def test_class_duplicates_keep_the_more_confident_class_of_one_group() -> None:
    found = _dets([
        (10, 10, 60, 40, 0.6, TRUCK),  # a van seen as truck ...
        (11, 10, 60, 41, 0.8, CAR),  # ... and as car
        (100, 10, 150, 40, 0.7, TRUCK),  # a truck next to a car: IoU 0.14
        (130, 10, 180, 40, 0.5, CAR),
        (12, 12, 58, 38, 0.9, MOTORCYCLE),  # another group: never compared with cars
        (300, 10, 320, 40, 0.5, BICYCLE),
        (300, 10, 320, 41, 0.6, MOTORCYCLE),
    ])  # fmt: skip
    kept = drop_class_duplicates(found)
    np.testing.assert_array_equal(kept.class_id, [CAR, TRUCK, CAR, MOTORCYCLE, MOTORCYCLE])
    np.testing.assert_allclose(kept.confidence, [0.8, 0.7, 0.5, 0.9, 0.6])
    assert len(drop_class_duplicates(Detections.empty())) == 0
    with pytest.raises(DetectorError):
        drop_class_duplicates(found, iou_threshold=0.0)
