"""Crop geometry (detectors/crop.py): windows of the whole frame's letterboxed input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atcs.config import AtcsConfig
from atcs.errors import DetectorError
from atcs.measured_region import MeasuredRegion, camera_regions
from detectors.crop import CropWindow, PixelBox, ShapeSet, fit_window, plan_window
from detectors.letterbox import LetterboxGeometry, letterbox_geometry, letterbox_into

SQUARE = (640, 640)


def _frame(height: int, width: int, *, square: bool = True) -> LetterboxGeometry:
    return letterbox_geometry(height, width, SQUARE, 32, minimum_rectangle=not square)


def _whole_input(image: np.ndarray, frame: LetterboxGeometry) -> np.ndarray:
    out = np.empty((*frame.input_shape, 3), np.uint8)
    letterbox_into(image, frame, out)
    return out


def test_window_holds_the_region_plus_margin_on_the_stride_grid() -> None:
    frame = _frame(540, 960)  # scale 2/3: the image is rows 90..450 of a 640x640 input
    assert (frame.top_px, frame.resized_height_px) == (140, 360)
    region = PixelBox(0.0, 0.22 * 540, 960.0, 540.0)  # a junction seen below 22 % height
    window = plan_window(frame, region, margin_px=32, step_px=32)
    assert window is not None
    # region top 140 + 79.2 = 219.2 px, minus 32 margin = 187.2, snapped down to 160
    assert (window.top_px, window.left_px) == (160, 0)
    assert window.input_shape == (352, 640)  # down to 500 (image bottom) snapped up to 512
    assert window.scale == pytest.approx(2 / 3)
    assert not window.holds_whole_image
    assert window.area_share == pytest.approx(352 / 640)
    source = window.source_box()
    assert source is not None
    assert source.y0 == pytest.approx(30.0)  # (160 - 140) * 1.5 image px
    assert (source.x0, source.x1, source.y1) == (0.0, 960.0, 540.0)


def test_a_region_covering_the_image_gives_a_window_holding_all_of_it() -> None:
    frame = _frame(720, 1280)
    window = plan_window(frame, PixelBox(0, 0, 1280, 720), margin_px=32, step_px=32)
    assert window is not None
    assert window.holds_whole_image
    assert window.input_shape == (384, 640)  # image rows 140..500 snapped to 128..512


def test_a_region_outside_the_image_gives_no_window() -> None:
    frame = _frame(240, 320)
    assert plan_window(frame, PixelBox(400, 10, 500, 20), margin_px=32, step_px=32) is None


def test_window_pixels_equal_the_whole_frame_input() -> None:
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (540, 960, 3), dtype=np.uint8)
    frame = _frame(540, 960)
    whole = _whole_input(image, frame)
    window = CropWindow(frame, 96, 64, 320, 448)  # reaches into the top padding
    out = np.zeros((320, 448, 3), np.uint8)
    window.fill(image, out)
    assert np.array_equal(out, whole[96:416, 64:512])


def test_window_past_the_input_is_padded_grey() -> None:
    image = np.full((240, 320, 3), 200, np.uint8)
    frame = _frame(240, 320, square=False)  # 640x480, no padding
    window = CropWindow(frame, -32, 0, 544, 640)
    out = np.zeros((544, 640, 3), np.uint8)
    window.fill(image, out)
    assert (out[:32] == 114).all()
    assert (out[512:] == 114).all()
    assert (out[32:512] == 200).all()


def test_fill_refuses_an_image_of_another_size() -> None:
    window = CropWindow(_frame(540, 960), 0, 0, 64, 64)
    with pytest.raises(DetectorError, match="planned for 960x540"):
        window.fill(np.zeros((600, 800, 3), np.uint8), np.zeros((64, 64, 3), np.uint8))


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(60, 900),
    width=st.integers(60, 1600),
    square=st.booleans(),
    corners=st.tuples(*(st.floats(0.0, 1.0) for _ in range(4))),
    margin=st.integers(0, 96),
)
def test_boxes_map_back_as_whole_frame_boxes_do(
    height: int,
    width: int,
    square: bool,
    corners: tuple[float, float, float, float],
    margin: int,
) -> None:
    frame = _frame(height, width, square=square)
    x0, x1 = sorted((corners[0] * width, corners[2] * width))
    y0, y1 = sorted((corners[1] * height, corners[3] * height))
    x0, y0 = min(x0, width - 1.0), min(y0, height - 1.0)  # at least 1 px inside the image
    window = plan_window(
        frame, PixelBox(x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)), margin_px=margin, step_px=32
    )
    assert window is not None
    assert window.top_px % 32 == 0
    assert window.left_px % 32 == 0
    assert window.height_px % 32 == 0
    assert window.width_px % 32 == 0
    assert window.top_px >= 0
    assert window.top_px + window.height_px <= frame.input_height_px
    assert window.left_px >= 0
    assert window.left_px + window.width_px <= frame.input_width_px
    # a box found in the window is the box found at the same place in the whole input
    in_window = np.array([[5.0, 7.0, 25.5, 30.25]], np.float32)
    in_whole = in_window + np.array(
        [window.left_px, window.top_px, window.left_px, window.top_px], np.float32
    )
    window.boxes_to_image(in_window)
    frame.boxes_to_image(in_whole)
    np.testing.assert_allclose(in_window, in_whole, atol=1e-3)


def test_a_box_wholly_outside_the_image_has_no_window() -> None:
    frame = _frame(60, 60, square=False)
    assert plan_window(frame, PixelBox(60.0, 0.0, 61.0, 1.0), margin_px=0, step_px=32) is None
    assert plan_window(frame, PixelBox(59.0, 0.0, 61.0, 1.0), margin_px=0, step_px=32)


def test_fit_window_grows_around_the_centre_and_stays_inside() -> None:
    frame = _frame(540, 960)
    window = CropWindow(frame, 160, 0, 352, 640)
    grown = fit_window(window, (448, 640), 32)
    assert grown.input_shape == (448, 640)
    assert grown.top_px == 128  # 96 px more: 32 above, 64 below (on the 32 px grid)
    edge = fit_window(CropWindow(frame, 576, 0, 64, 64), (256, 128), 32)
    assert edge.top_px + edge.height_px <= 640
    assert edge.top_px % 32 == 0
    bigger = fit_window(CropWindow(_frame(240, 320, square=False), 0, 0, 64, 64), (544, 64), 32)
    assert bigger.top_px == -32  # taller than the input: centred on it, padded
    with pytest.raises(DetectorError, match="smaller than the window"):
        fit_window(window, (320, 640), 32)


def test_shape_set_shares_shapes_once_full() -> None:
    frame = _frame(540, 960)
    shapes = ShapeSet(2, 32)
    first = CropWindow(frame, 160, 0, 352, 640)
    second = CropWindow(frame, 0, 0, 256, 320)
    assert shapes.fit(first) is first
    assert shapes.fit(second) is second
    third = shapes.fit(CropWindow(frame, 64, 64, 224, 288))
    assert third is not None
    assert third.input_shape == (256, 320)
    assert shapes.fit(CropWindow(frame, 0, 0, 384, 640)) is None  # none holds it
    assert shapes.shapes == [(352, 640), (256, 320)]


def test_pixel_boxes_refuse_bad_coordinates() -> None:
    with pytest.raises(DetectorError, match="x0 < x1"):
        PixelBox(10, 0, 5, 10)
    with pytest.raises(DetectorError, match="finite"):
        PixelBox(0, 0, float("nan"), 10)
    assert PixelBox.around([(3, 4)]) == PixelBox(3, 4, 4, 5)
    assert PixelBox(0, 0, 2, 2).union(PixelBox(1, -1, 5, 1)) == PixelBox(0, -1, 5, 2)
    assert PixelBox(-5, -5, 10, 10).clipped(8, 6) == PixelBox(0, 0, 8, 6)
    assert PixelBox(20, 20, 30, 30).clipped(8, 6) is None


def test_measured_region_spans_segments_stop_lines_and_lines() -> None:
    cfg = AtcsConfig.model_validate(
        {
            "site": {"id": "s"},
            "cameras": [
                {"id": "a", "source": "a.mp4"},
                {"id": "b", "source": "b.mp4"},
            ],
            "segments": [
                {
                    "id": "road",
                    "camera": "a",
                    "polygon": [[0.2, 0.5], [0.6, 0.5], [0.6, 0.9]],
                    "length_m": 30,
                    "lanes": 2,
                    "stop_line": [[0.2, 0.45], [0.6, 0.45]],
                }
            ],
            "lines": [
                {"id": "l", "camera": "a", "segment": "road", "points": [[0.1, 0.7], [0.3, 0.7]]}
            ],
        }
    )
    region = MeasuredRegion.of_camera(cfg, "a")
    assert region == MeasuredRegion(0.1, 0.45, 0.6, 0.9)
    assert region.pixels(1000, 500) == PixelBox(100.0, 225.0, 600.0, 450.0)
    assert MeasuredRegion.of_camera(cfg, "b") is None  # measures nothing: whole frames
    assert camera_regions(cfg) == {"a": region}
