"""Per-camera detection geometry: config errors, tiles of a camera, and the proposal rule."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from atcs.calibrate import draw_tiles
from atcs.camera_tiles import CameraTiles, far_field_of
from atcs.commands import describe_detection
from atcs.config import AtcsConfig, load_config
from atcs.detection_proposal import (
    Candidate,
    SeenVehicle,
    candidates,
    cheapest,
    far_band,
    recall_at,
)
from atcs.errors import ConfigError
from atcs.measured_region import MeasuredRegion
from detectors.tiles import TileSettings

BASE = """
[site]
id = "t"

[[cameras]]
id = "cam"
source = "clip.mp4"
{detection}

[[segments]]
id = "seg"
camera = "cam"
polygon = [[0.1, 0.2], [0.9, 0.2], [0.9, 0.9], [0.1, 0.9]]
length_m = 50.0
lanes = 2
"""


def _load(tmp_path: Path, detection: str) -> AtcsConfig:
    path = tmp_path / "c.toml"
    path.write_text(BASE.format(detection=detection))
    return load_config(path)


def _problems(tmp_path: Path, detection: str) -> str:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, detection)
    return str(info.value)


def test_default_is_the_crop_rule(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "")
    assert cfg.cameras[0].detection.mode == "crop"
    assert "cropped" in describe_detection(cfg, "cam")


def test_bad_detection_settings_are_clear_errors(tmp_path: Path) -> None:
    text = _problems(tmp_path, 'detection = { mode = "tile" }')
    assert "cameras[0].detection.mode" in text
    text = _problems(tmp_path, "detection = { far_field = [0.5, 0.2, 0.4, 0.9] }")
    assert "far_field: x1 must exceed x0" in text
    text = _problems(tmp_path, "detection = { tile_px = 640, tile_overlap_px = 400 }")
    assert "tile_overlap_px: must be at most half of tile_px (320)" in text
    text = _problems(tmp_path, "detection = { tile_scale = 9.0 }")
    assert "cameras[0].detection.tile_scale" in text
    text = _problems(tmp_path, "detection = { tile_px = 650 }")
    assert "multiple of 32" in text


def test_far_field_defaults_to_the_measured_region(tmp_path: Path) -> None:
    cfg = _load(tmp_path, 'detection = { mode = "tiles" }')
    assert far_field_of(cfg, "cam") == MeasuredRegion.of_camera(cfg, "cam")
    assert "tiles at scale 2" in describe_detection(cfg, "cam")
    cfg = _load(tmp_path, 'detection = { mode = "tiles", far_field = [0, 0.2, 1, 0.5] }')
    assert far_field_of(cfg, "cam") == MeasuredRegion(0.0, 0.2, 1.0, 0.5)


def test_calibration_picture_draws_the_tiles(tmp_path: Path) -> None:
    cfg = _load(tmp_path, 'detection = { mode = "tiles", far_field = [0, 0.2, 1, 0.5] }')
    picture = np.zeros((540, 960, 3), np.uint8)
    # 960x540 at scale 2 is a 1920x1088 input (4 px padding on top); rows 0.2-0.5 (220-544
    # model px) fit one 640 px tile row from 192 (on the stride grid), i.e. image rows
    # 94-414; 1920 px across need four tiles overlapping by at least 64 px
    assert draw_tiles(picture, cfg, "cam", 960, 540) == 4
    assert picture[94, 100].tolist() == [255, 255, 255]  # the tiles' top edge
    assert picture[413, 100].tolist() == [255, 255, 255]  # ... and bottom edge
    assert picture[300, 100].tolist() == [0, 0, 0]
    assert draw_tiles(picture, _load(tmp_path, ""), "cam", 960, 540) == 0


def test_tiles_without_the_openvino_engine_fall_back_to_whole_frames(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _load(tmp_path, 'detection = { mode = "tiles" }')
    with caplog.at_level(logging.ERROR):
        tiles = CameraTiles(cfg, object())
    assert "cam" not in tiles
    assert "tiles configured but tiling needs the OpenVINO engine" in caplog.text


def test_recall_curve_lookup() -> None:
    assert recall_at("whole", 10.0) == 0.0
    assert recall_at("whole", 20.0) == 0.43
    assert recall_at("tiles-2.0", 20.0) == 0.77
    assert recall_at("whole", 50.0) == 0.97


def test_far_band_ends_where_vehicles_grow_past_the_threshold() -> None:
    region = MeasuredRegion(0.0, 0.2, 1.0, 1.0)  # 8 bands of 0.1
    seen = [SeenVehicle(0.25, 18.0), SeenVehicle(0.35, 24.0), SeenVehicle(0.45, 40.0)]
    seen += [SeenVehicle(0.75, 90.0), SeenVehicle(0.95, 120.0)]
    band = far_band(region, seen, 32.0)
    assert band is not None
    assert band.y1 == pytest.approx(0.4)
    assert far_band(region, seen, 10.0) is None


def test_the_cheapest_setting_meeting_the_target_is_proposed() -> None:
    region = MeasuredRegion(0.0, 0.2, 1.0, 1.0)
    small = [SeenVehicle(0.3, 20.0)] * 10
    big = [SeenVehicle(0.9, 50.0)] * 10
    tile = TileSettings()
    found = candidates(
        small + big, region, (960, 540), image_size_px=640, far_below_px=32.0, tile=tile
    )
    names = [c.name for c in found]
    assert names[0] == "whole frame / crop"
    assert "tiles x2, far band" in names
    whole, far2 = found[0], found[names.index("tiles x2, far band")]
    far15 = found[names.index("tiles x1.5, far band")]
    assert whole.recall == pytest.approx((0.43 + 0.97) / 2)
    assert far2.recall == pytest.approx((0.77 + 0.97) / 2)  # the big ones: whole frame
    assert far15.recall == pytest.approx((0.77 + 0.97) / 2)
    assert whole.cost == 1.0
    assert 1.0 < far15.cost < far2.cost
    pick, met = cheapest(found, 0.85)
    assert met
    assert pick.name == "tiles x1.5, far band"
    assert 'mode = "tiles", tile_scale = 1.5' in pick.toml()
    pick, met = cheapest(found, 0.99)
    assert not met
    assert pick.recall == max(c.recall for c in found)
    pick, met = cheapest(found, 0.5)
    assert (pick.name, met) == ("whole frame / crop", True)
    assert pick.toml() == 'detection = { mode = "crop" }'


def test_candidate_is_a_frozen_record() -> None:
    c = Candidate("x", "crop", 0.0, None, 0, 1.0, 0.5)
    with pytest.raises(AttributeError):
        c.cost = 2.0  # type: ignore[misc]


def test_class_thresholds_are_checked_against_the_detector(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "detection = { class_confidence = { truck = 0.35 } }")
    assert cfg.cameras[0].detection.class_confidence == {"truck": 0.35}
    text = _problems(tmp_path, "detection = { class_confidence = { lorry = 0.35 } }")
    assert "class_confidence: unknown class 'lorry'" in text
    text = _problems(tmp_path, "detection = { class_confidence = { truck = 1.5 } }")
    assert "class_confidence.truck: must be in (0, 1)" in text
    text = _problems(tmp_path, "detection = { class_confidence = { motorcycle = 0.2 } }")
    assert "cameras[0].detection.class_confidence.motorcycle: 0.2 is below" in text
    assert "lower [detector] confidence" in text
