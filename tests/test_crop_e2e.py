"""Detect only where it is measured: the crop keeps the measures of the whole frame.

On every shared clip (the cameras of ``survey.toml``), the real model runs on whole frames
and on frames cropped to the camera's segments and lines (``[detector] crop``). YOLO11's
attention block sees the whole input, so cutting part of it moves confidences by a few
hundredths and boxes near the 0.25 threshold can come and go; confident boxes inside the
segments are the same. Each camera's first frames are detected both ways and the crop is
kept only where the vehicles per frame inside the segments agree (``atcs.crop_check``), so
the survey's counts are equal to the whole frame's.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from atcs.config import AtcsConfig, load_config
from atcs.crop_check import (
    CHECK_FRAMES,
    CHECK_PAYBACK,
    CHECK_PER_FRAME,
    CHECK_SHARE,
    CameraCrops,
    CropVerdict,
)
from atcs.measured_region import MeasuredRegion
from atcs.metrics.geometry import PreparedPolygon, to_pixels
from atcs.sources.status import utc_now
from atcs.survey import run_survey
from atcs.types import CameraId, Detections, Frame, VehicleClass
from benchmarks.common import read_frames
from detectors.base import Detector
from detectors.crop import CropWindow, PixelBox
from detectors.yolo import YoloDetector
from tests.test_survey_e2e import detector, read_csv

__all__ = ["detector"]

pytestmark = pytest.mark.e2e

CONFIDENT = 0.5
"""Boxes at least this confident must be found by both (the threshold is 0.25)."""


@pytest.fixture(scope="module")
def survey_config(repo_dir: Path) -> AtcsConfig:
    return load_config(repo_dir / "survey.toml")


@pytest.fixture(scope="module")
def demo_config(survey_config: AtcsConfig) -> AtcsConfig:
    return survey_config  # the survey tests' detector fixture builds from this config


def _whole(cfg: AtcsConfig) -> AtcsConfig:
    return cfg.model_copy(update={"detector": cfg.detector.model_copy(update={"crop": False})})


@dataclass(frozen=True, slots=True)
class Surveys:
    crop: Path
    whole: Path
    verdicts: dict[str, CropVerdict | None]


@pytest.fixture(scope="module")
def surveys(
    survey_config: AtcsConfig, detector: Detector, tmp_path_factory: pytest.TempPathFactory
) -> Surveys:
    """Every camera surveyed at 10 frames/s, cropped (where its check allows) and whole."""
    assert survey_config.detector.crop  # on by default
    crop, whole = tmp_path_factory.mktemp("crop"), tmp_path_factory.mktemp("whole")
    report = run_survey(survey_config, crop, progress=False, detector=detector, sample_fps=10.0)
    run_survey(_whole(survey_config), whole, progress=False, detector=detector, sample_fps=10.0)
    return Surveys(crop, whole, {c.camera_id: c.crop for c in report.cameras})


def _crossings(folder: Path, camera: str) -> Counter[tuple[str, str, str]]:
    rows = _rows(folder, "crossings.csv", camera)
    return Counter((r["line"], r["direction"], r["class"]) for r in rows)


CAMERAS = ["pontianak", "beijing", "motorway", "tjunction-cyclist", "tjunction-truck", "analog"]


def _crop_window(cfg: AtcsConfig, detector: Detector, camera: str) -> CropWindow | None:
    """The window a camera's frames are cropped to, or None where the crop would be no
    smaller than the whole-frame input (the whole frame is then detected)."""
    assert isinstance(detector, YoloDetector)
    region = MeasuredRegion.of_camera(cfg, camera)
    assert region is not None
    height, width = next(iter(read_frames(Path(cfg.camera(camera).source), 1))).shape[:2]
    placement = detector.placement(height, width, region.pixels(width, height))
    return placement if isinstance(placement, CropWindow) else None


def test_every_shared_clip_is_covered(
    survey_config: AtcsConfig, surveys: Surveys, detector: Detector
) -> None:
    assert sorted(c.id for c in survey_config.cameras) == sorted(CAMERAS)
    # the 3-s T-junction clips give 30 frames at 10 frames/s, and pontianak's 7.5 s give 76
    # in a window (the whole image, without padding) of 60 % of the input: too few frames
    # to repay a check
    for camera in ("tjunction-cyclist", "tjunction-truck", "pontianak"):
        assert surveys.verdicts[camera] is None
    # The longer clips are checked where their window is smaller than the whole-frame
    # input. Where the whole frame goes in as a square (INT8 on CPUs with AMX) all three
    # are; where it goes in as its smallest rectangle (640x384 for 16:9), Beijing's and the
    # motorway's segments span the image's height and their window would be no smaller:
    # no check, whole frames.
    checked = 0
    for camera in ("beijing", "motorway", "analog"):
        verdict = surveys.verdicts[camera]
        if _crop_window(survey_config, detector, camera) is None:
            assert verdict is None, camera
            continue
        assert verdict is not None, camera
        assert verdict.frames == CHECK_FRAMES, camera
        checked += verdict.use_crop
    assert checked, "some camera must be cropped"


def _rows(folder: Path, name: str, camera: str) -> list[dict[str, str]]:
    return [r for r in read_csv(folder / name) if r["camera"] == camera]


@pytest.mark.parametrize("camera", CAMERAS)
def test_crop_counts_equal_the_whole_frame(surveys: Surveys, camera: str) -> None:
    crop, whole = _crossings(surveys.crop, camera), _crossings(surveys.whole, camera)
    assert sum(whole.values()) > 0, "every clip has crossings"
    assert crop == whole
    verdict = surveys.verdicts[camera]
    if verdict is None or not verdict.use_crop:  # detected whole: the very same rows
        for name in ("frames.csv", "windows.csv"):
            assert _rows(surveys.crop, name, camera) == _rows(surveys.whole, name, camera)
        return
    assert verdict.crop_per_frame == pytest.approx(
        verdict.whole_per_frame, rel=CHECK_SHARE, abs=CHECK_PER_FRAME
    )
    windows = {}
    for name, folder in (("crop", surveys.crop), ("whole", surveys.whole)):
        rows = _rows(folder, "windows.csv", camera)
        windows[name] = {(r["segment"], r["window_start"]): float(r["vehicles"]) for r in rows}
    assert windows["crop"].keys() == windows["whole"].keys()
    for key, mean in windows["whole"].items():  # mean vehicles per frame in each window
        assert windows["crop"][key] == pytest.approx(mean, rel=0.1, abs=0.5), key


def _inside(found: Detections, polygons: list[PreparedPolygon]) -> Detections:
    anchors = np.stack([(found.xyxy[:, 0] + found.xyxy[:, 2]) / 2, found.xyxy[:, 3]], axis=1)
    keep = np.zeros(len(found), dtype=bool)
    for polygon in polygons:
        keep |= polygon.contains(anchors)
    return found[keep]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    out: np.ndarray = inter / (area_a[:, None] + area_b[None, :] - inter)
    return out


@pytest.mark.parametrize("camera", CAMERAS)
def test_crop_and_whole_frame_give_the_same_boxes_inside_the_segments(
    survey_config: AtcsConfig, detector: Detector, camera: str
) -> None:
    cam = survey_config.camera(camera)
    region = MeasuredRegion.of_camera(survey_config, camera)
    assert region is not None
    frames = list(itertools.islice(read_frames(Path(cam.source), None), 0, None, 4))
    height, width = frames[0].shape[:2]
    regions = [region.pixels(width, height)] * len(frames)
    whole = detector.detect(frames)
    cropped = detector.detect(frames, regions)
    placement = _crop_window(survey_config, detector, camera)
    if placement is None:  # no smaller window: the very same whole-frame detections
        for a, b in zip(whole, cropped, strict=True):
            np.testing.assert_array_equal(a.xyxy, b.xyxy)
            np.testing.assert_array_equal(a.class_id, b.class_id)
        assert camera != "analog", "the analog camera's segments leave a smaller window"
        return
    if camera == "pontianak":  # its segments span the whole image: only padding to drop
        assert placement.holds_whole_image
    else:
        assert placement.area_share < 1.0
    polygons = [
        PreparedPolygon(to_pixels(s.polygon, width, height))
        for s in survey_config.segments_of(camera)
    ]
    confident = matched = 0
    ious: list[float] = []
    for a_all, b_all in zip(whole, cropped, strict=True):
        # A confident box inside the segments in one is looked for among all boxes of the
        # other: its anchor may sit a pixel outside the polygon there.
        for one, other in ((_inside(a_all, polygons), b_all), (_inside(b_all, polygons), a_all)):
            sure = one[one.confidence >= CONFIDENT]
            if not len(sure):
                continue
            confident += len(sure)
            if not len(other):
                continue
            overlap = _iou(sure.xyxy, other.xyxy) * (sure.class_id[:, None] == other.class_id)
            best = overlap.max(axis=1)
            matched += int((best >= 0.7).sum())
            ious += best[best >= 0.7].tolist()
    assert confident > 20
    assert matched >= 0.99 * confident, f"{confident - matched} of {confident} unmatched"
    assert float(np.mean(ious)) > 0.95


def _vehicles_at(point: tuple[float, float], n: int) -> Detections:
    """``n`` cars standing on ``point`` (image px), as a detector would report them."""
    x, y = point
    xyxy = np.array([[x - 10, y - 20, x + 10, y]] * n, dtype=np.float32).reshape(-1, 4)
    return Detections(xyxy, np.full(n, 0.9, np.float32), np.full(n, VehicleClass.CAR, np.int64))


def _truck_frame(cfg: AtcsConfig) -> tuple[Frame, tuple[float, float]]:
    """An 800x600 frame of the T-junction truck camera, and its first segment's centre (px)."""
    frame = Frame(CameraId("tjunction-truck"), 0, utc_now(), np.zeros((600, 800, 3), np.uint8), 0.0)
    polygon = to_pixels(cfg.segments_of("tjunction-truck")[0].polygon, 800, 600)
    return frame, (
        sum(p[0] for p in polygon) / len(polygon),
        sum(p[1] for p in polygon) / len(polygon),
    )


def test_a_refused_crop_is_checked_again_on_the_whole_image(
    survey_config: AtcsConfig, detector: Detector
) -> None:
    """A camera whose crop is refused gets a second check with the whole image's window
    where that is still smaller than the whole-frame input (a square input); elsewhere the
    refusal stands and the camera is detected whole."""
    assert isinstance(detector, YoloDetector)
    camera = "tjunction-truck"
    frame, centre = _truck_frame(survey_config)
    crops = CameraCrops(survey_config, detector, frames=2)
    box = crops.to_check(frame)
    assert box is not None
    assert crops.checking
    for _ in range(2):  # the crop loses every vehicle: refused
        crops.check(frame, _vehicles_at(centre, 3), _vehicles_at(centre, 0), box)
    whole_image = detector.placement(600, 800, PixelBox(0, 0, 800, 600))
    if not isinstance(whole_image, CropWindow):
        verdict = crops.verdicts[camera]
        assert not verdict.use_crop
        assert crops.region(frame) is None
        assert crops.to_check(frame) is None
        return
    assert camera not in crops.verdicts
    assert crops.region(frame) is None
    second = crops.to_check(frame)
    assert second is not None
    assert (second.width_px, second.height_px) == (800, 600)
    for _ in range(2):  # late results of the refused window: not counted in the new check
        crops.check(frame, _vehicles_at(centre, 3), _vehicles_at(centre, 0), box)
    assert camera not in crops.verdicts
    assert crops.checking
    for _ in range(2):  # equal on the whole image's window: accepted
        crops.check(frame, _vehicles_at(centre, 3), _vehicles_at(centre, 3), second)
    verdict = crops.verdicts[camera]
    assert verdict.use_crop
    assert verdict.input_shape == whole_image.input_shape
    assert crops.region(frame) == second
    assert crops.to_check(frame) is None


def _left_to_repay(window: CropWindow, check_frames: int) -> int:
    """Frames a survey must still give for a check of ``window`` to start (CHECK_PAYBACK)."""
    share = window.area_share
    return check_frames + math.ceil(CHECK_PAYBACK * check_frames * share / (1 - share))


def test_a_recording_too_short_to_repay_the_check_is_detected_whole(
    survey_config: AtcsConfig, detector: Detector
) -> None:
    """A survey's camera is checked only when the frames after the check can repay it:
    one frame fewer than that and it is detected whole at once, with no check and no
    verdict; the second check after a refused crop is held to the same rule."""
    assert isinstance(detector, YoloDetector)
    camera = "tjunction-truck"
    frame, centre = _truck_frame(survey_config)
    probe = CameraCrops(survey_config, detector, frames=2)
    box = probe.to_check(frame)
    assert box is not None
    window = detector.placement(600, 800, box)
    assert isinstance(window, CropWindow)
    needed = _left_to_repay(window, 2)

    short = CameraCrops(survey_config, detector, frames=2, frames_expected=needed - 1)
    assert short.to_check(frame) is None
    assert not short.checking
    assert short.region(frame) is None
    assert short.to_check(frame) is None  # decided once: whole frames from here on
    assert short.verdicts == {}

    long_enough = CameraCrops(survey_config, detector, frames=2, frames_expected=needed)
    for _ in range(2):  # the crop loses every vehicle: refused
        assert long_enough.to_check(frame) == box
        long_enough.check(frame, _vehicles_at(centre, 3), _vehicles_at(centre, 0), box)
    # the whole image's window (if smaller than the input) would need more frames than
    # the few left: the refusal stands
    whole_image = detector.placement(600, 800, PixelBox(0, 0, 800, 600))
    if isinstance(whole_image, CropWindow):
        assert needed - 2 < _left_to_repay(whole_image, 2)
    verdict = long_enough.verdicts[camera]
    assert not verdict.use_crop
    assert long_enough.to_check(frame) is None
    assert long_enough.region(frame) is None


def _rechecked_every(cfg: AtcsConfig, seconds: float) -> AtcsConfig:
    return cfg.model_copy(
        update={"detector": cfg.detector.model_copy(update={"crop_recheck_s": seconds})}
    )


def _accept(crops: CameraCrops, cfg: AtcsConfig, box: PixelBox) -> None:
    """Two frames (0 and 1 s) with equal counts both ways: the truck camera's crop accepted."""
    _, centre = _truck_frame(cfg)
    for t in (0.0, 1.0):
        crops.check(_truck_frame_at(cfg, t), _vehicles_at(centre, 3), _vehicles_at(centre, 3), box)


def _truck_frame_at(cfg: AtcsConfig, at_s: float) -> Frame:
    """The truck camera's frame captured ``at_s`` seconds after a fixed start (live: no offset)."""
    frame, _ = _truck_frame(cfg)
    start = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    return Frame(frame.camera_id, frame.seq, start + timedelta(seconds=at_s), frame.image)


def test_a_verdict_is_taken_again_after_crop_recheck_s(
    survey_config: AtcsConfig, detector: Detector
) -> None:
    """An accepted crop is checked again once ``crop_recheck_s`` of footage has passed:
    the camera is detected whole while it is, and a crop that now loses vehicles is
    dropped."""
    assert isinstance(detector, YoloDetector)
    cfg = _rechecked_every(survey_config, 60.0)
    _, centre = _truck_frame(cfg)
    crops = CameraCrops(cfg, detector, frames=2)
    first = _truck_frame_at(cfg, 0.0)
    box = crops.to_check(first)
    assert box is not None
    _accept(crops, cfg, box)
    assert crops.verdicts["tjunction-truck"].use_crop
    later = _truck_frame_at(cfg, 60.5)  # 59.5 s after the verdict: not yet
    assert crops.to_check(later) is None
    assert crops.region(later) == box
    due = _truck_frame_at(cfg, 61.0)
    assert crops.to_check(due) == box  # checked again from the segments' window
    assert "tjunction-truck" not in crops.verdicts
    assert crops.region(due) is None  # detected whole meanwhile
    for t in (61.0, 62.0):  # the scene changed: the crop now loses every vehicle
        crops.check(_truck_frame_at(cfg, t), _vehicles_at(centre, 3), _vehicles_at(centre, 0), box)
    assert crops.region(_truck_frame_at(cfg, 63.0)) != box


def test_no_recheck_with_crop_recheck_s_zero(survey_config: AtcsConfig, detector: Detector) -> None:
    cfg = _rechecked_every(survey_config, 0.0)
    crops = CameraCrops(cfg, detector, frames=2)
    box = crops.to_check(_truck_frame_at(cfg, 0.0))
    assert box is not None
    _accept(crops, cfg, box)
    late = _truck_frame_at(cfg, 86_400.0)
    assert crops.to_check(late) is None
    assert crops.region(late) == box


def test_a_recording_too_short_to_repay_a_recheck_keeps_its_verdict(
    survey_config: AtcsConfig, detector: Detector
) -> None:
    assert isinstance(detector, YoloDetector)
    cfg = _rechecked_every(survey_config, 60.0)
    probe = CameraCrops(cfg, detector, frames=2)
    box = probe.to_check(_truck_frame_at(cfg, 0.0))
    assert box is not None
    window = detector.placement(600, 800, box)
    assert isinstance(window, CropWindow)
    crops = CameraCrops(cfg, detector, frames=2, frames_expected=_left_to_repay(window, 2))
    assert crops.to_check(_truck_frame_at(cfg, 0.0)) == box
    _accept(crops, cfg, box)
    due = _truck_frame_at(cfg, 61.0)  # one frame later, fewer left than a check needs
    assert crops.to_check(due) is None
    assert crops.verdicts["tjunction-truck"].use_crop
    assert crops.region(due) == box
