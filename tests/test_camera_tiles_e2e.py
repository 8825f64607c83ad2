"""A camera configured with ``[cameras.detection] mode = "tiles"`` really runs tiles live.

The real model and the live detector worker read the Pontianak clip (tiles) beside the
Beijing clip (the default crop mode). Every Pontianak frame the worker hands on must carry
exactly the boxes of the whole frame plus its far-field tiles merged by cross-tile NMS, and
over the frames the tiles must find vehicles the whole frame alone does not; Beijing frames
must be the plain detector's.
"""

from __future__ import annotations

import csv
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from atcs.camera_tiles import CameraTiles
from atcs.config import AtcsConfig, load_config
from atcs.config.detection import CameraDetectionConfig
from atcs.crop_check import CameraCrops
from atcs.detection import build_detector
from atcs.detector_worker import DetectorWorker
from atcs.propose_detection import propose_detection
from atcs.sources import CameraGroup
from atcs.survey import run_survey
from atcs.types import Detections, Frame
from detectors.base import Detector

pytestmark = pytest.mark.e2e

FRAMES_PER_CAMERA = 6


def _tiled_config(repo_dir: Path) -> AtcsConfig:
    cfg = load_config(repo_dir / "config.toml")
    cameras = []
    for cam in cfg.cameras:
        update: dict[str, object] = {"realtime": False, "sample_fps": 2.0}
        if cam.id == "pontianak":
            update["detection"] = CameraDetectionConfig(mode="tiles", tile_scale=2.0)
        cameras.append(cam.model_copy(update=update))
    picked = [c for c in cameras if c.id in ("pontianak", "beijing")]
    return cfg.model_copy(update={"cameras": picked})


@pytest.fixture(scope="module")
def cfg(repo_dir: Path) -> AtcsConfig:
    return _tiled_config(repo_dir)


@pytest.fixture(scope="module")
def detector(cfg: AtcsConfig) -> Iterator[Detector]:
    det = build_detector(cfg.detector)
    yield det
    det.close()


@pytest.fixture(scope="module")
def worked(
    cfg: AtcsConfig, detector: Detector
) -> tuple[CameraTiles, list[tuple[Frame, Detections]]]:
    tiles = CameraTiles(cfg, detector)
    stop = threading.Event()
    group = CameraGroup(cfg.cameras, queue_size=2, stop_event=stop)
    out: queue.Queue[tuple[Frame, Detections]] = queue.Queue(maxsize=64)
    worker = DetectorWorker(
        group, detector, 4, out, stop, crops=CameraCrops(cfg, detector), tiles=tiles
    )
    got: list[tuple[Frame, Detections]] = []
    group.start()
    worker.start()
    try:
        while min(sum(f.camera_id == c for f, _ in got) for c in ("pontianak", "beijing")) < (
            FRAMES_PER_CAMERA
        ):
            got.append(out.get(timeout=60.0))
    finally:
        stop.set()
        worker.join(10.0)
        group.stop()
        group.join(5.0)
    assert worker.failures == 0
    return tiles, got


def _same(a: Detections, b: Detections) -> bool:
    return (
        a.xyxy.shape == b.xyxy.shape
        and np.allclose(a.xyxy, b.xyxy, atol=1e-3)
        and np.array_equal(a.class_id, b.class_id)
    )


def test_a_tiled_camera_gets_whole_frame_plus_tiles_merged(
    worked: tuple[CameraTiles, list[tuple[Frame, Detections]]], detector: Detector
) -> None:
    tiles, got = worked
    assert "pontianak" in tiles
    assert "beijing" not in tiles
    pontianak = [(f, d) for f, d in got if f.camera_id == "pontianak"]
    extra = 0
    for frame, found in pontianak:
        assert len(tiles.tiles(frame)) >= 2  # the far field at scale 2 needs several tiles
        assert _same(found, tiles.detect(frame))
        extra += len(found) - len(detector.detect([frame.image])[0])
    assert extra > 0  # the tiles found vehicles the whole frame missed


def test_other_cameras_keep_the_plain_detector(
    worked: tuple[CameraTiles, list[tuple[Frame, Detections]]], detector: Detector
) -> None:
    _, got = worked
    beijing = [(f, d) for f, d in got if f.camera_id == "beijing"]
    assert beijing
    for frame, found in beijing[:3]:  # the crop check's first frames: whole frames
        assert _same(found, detector.detect([frame.image])[0])


@pytest.mark.parametrize(
    ("camera", "mode"),
    [("beijing", "tiles"), ("pontianak", "crop")],
)
def test_the_proposal_tiles_only_where_vehicles_are_small(
    cfg: AtcsConfig, detector: Detector, camera: str, mode: str
) -> None:
    proposal = propose_detection(cfg, camera, detector, frames=4, step=50, target=0.75)
    heights = sorted(v.height_px for v in proposal.seen)
    assert len(heights) >= 10
    whole = proposal.candidates[0]
    assert whole.mode == "crop"
    assert proposal.met
    assert proposal.pick.mode == mode
    if mode == "tiles":  # Beijing: far riders and cars 20-35 px tall
        assert heights[len(heights) // 2] < 48
        assert proposal.pick.recall > whole.recall
        assert proposal.pick.far_field is not None
        assert proposal.pick.far_field.y1 < 1.0  # only the far band, not the whole region
    else:  # Pontianak: big, near motorcycles; the whole frame already meets the target
        assert heights[len(heights) // 2] > 64
        assert proposal.pick is whole
    assert "in the camera's [[cameras]] table: detection = " in "\n".join(proposal.lines())


def test_a_survey_of_a_tiled_camera_uses_its_tiles(
    cfg: AtcsConfig, detector: Detector, tmp_path: Path
) -> None:
    def vehicles(config: AtcsConfig, out: Path) -> int:
        run_survey(config, out, camera_ids=["pontianak"], max_frames=6, progress=False,
                   detector=detector)  # fmt: skip
        with (out / "frames.csv").open(newline="") as handle:
            return sum(int(row["vehicles"]) for row in csv.DictReader(handle))

    crop = [
        c.model_copy(update={"detection": CameraDetectionConfig()}) if c.id == "pontianak" else c
        for c in cfg.cameras
    ]
    tiled = vehicles(cfg, tmp_path / "tiles")
    plain = vehicles(cfg.model_copy(update={"cameras": crop}), tmp_path / "crop")
    assert tiled > plain  # the far field's small riders, found only by the tiles
