"""Static false positives on a real clip: Pontianak's kerb stones are flagged, no vehicle is.

The Pontianak camera is detected with tiles of the upper half of its measured region at
scale 2 (where the model takes the pavement's black-and-white kerb stones for cars). The
clip is 7.5 s long, so the rule's time constants are scaled down (2 s unmoved, 8 s of
background) and the labelled frames (every 15th) are played three times in a row on one
timeline. A segment drawn over the pavement shows what the flag is for: without the rule
its "cars" would be counted there. Every flagged detection must be no labelled vehicle.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from atcs.camera_tiles import CameraTiles
from atcs.config import AtcsConfig, SegmentConfig, load_config
from atcs.config.detection import CameraDetectionConfig
from atcs.detection import build_detector
from atcs.measured_region import MeasuredRegion
from atcs.metrics import CameraAnalyzer, FrameAnalysis
from atcs.sources.recorded import iter_recorded_frames
from atcs.types import Detections, Frame
from benchmarks.accuracy import iou_matrix
from benchmarks.labelled_frames import load_labels

pytestmark = pytest.mark.e2e

LOOPS = 3
PAVEMENT = SegmentConfig(
    id="pontianak-pavement",
    camera="pontianak",
    polygon=[(0.0, 0.0), (0.27, 0.0), (0.27, 0.3), (0.0, 0.3)],
    length_m=10.0,
    lanes=1,
)


def _config(repo_dir: Path, static_after_s: float) -> AtcsConfig:
    cfg = load_config(repo_dir / "config.toml")
    region = MeasuredRegion.of_camera(cfg, "pontianak")
    assert region is not None
    far = (region.x0, region.y0, region.x1, (region.y0 + region.y1) / 2)
    detection = CameraDetectionConfig(mode="tiles", tile_scale=2.0, far_field=far)
    cameras = [
        c.model_copy(update={"detection": detection}) for c in cfg.cameras if c.id == "pontianak"
    ]
    analysis = cfg.analysis.model_copy(
        update={"static_after_s": static_after_s, "static_history_s": 8.0}
    )
    return cfg.model_copy(
        update={
            "cameras": cameras,
            "analysis": analysis,
            "segments": [*cfg.segments_of("pontianak"), PAVEMENT],
            "lines": cfg.lines_of("pontianak"),
            "zones": [],
            "intersections": [],
        }
    )


@pytest.fixture(scope="module")
def detected(repo_dir: Path) -> list[tuple[Frame, Detections]]:
    cfg = _config(repo_dir, 2.0)
    detector = build_detector(cfg.detector)
    try:
        tiles = CameraTiles(cfg, detector)
        frames = iter_recorded_frames("pontianak", cfg.camera("pontianak").source, stride=15)
        return [(f, tiles.detect(f)) for f in frames]
    finally:
        detector.close()


Played = list[tuple[int, FrameAnalysis]]


def _play(cfg: AtcsConfig, detected: list[tuple[Frame, Detections]]) -> Played:
    first = detected[0][0]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    analyzer = CameraAnalyzer.from_config(cfg, "pontianak", first.width_px, first.height_px, t0)
    out = []
    for loop in range(LOOPS):
        for frame, found in detected:
            at = t0 + timedelta(seconds=loop * 8.0 + (frame.offset_s or 0.0))
            out.append(
                (frame.seq, analyzer.update(loop * 1000 + frame.seq, at, None, found, frame.image))
            )
    return out


def test_kerb_stones_are_flagged_and_no_labelled_vehicle_is(
    repo_dir: Path, detected: list[tuple[Frame, Detections]]
) -> None:
    labels = {f.frame_index: f for f in load_labels().frames if f.clip.startswith("pontianak")}
    assert set(labels) == {f.seq for f, _ in detected}
    played = _play(_config(repo_dir, 2.0), detected)
    flagged = 0
    for seq, result in played:
        static = result.static
        dets = result.detections
        assert static is not None
        if not static.any():
            continue
        flagged += int(static.sum())
        truth = np.asarray(
            [(b.x0, b.y0, b.x1, b.y1) for b in labels[seq].boxes if not b.ignore], np.float64
        ).reshape(-1, 4)
        ious = iou_matrix(dets.xyxy[static].astype(np.float64), truth)
        assert (ious < 0.5).all(), f"frame {seq}: a labelled vehicle was flagged static"
    assert flagged >= LOOPS * 2  # two kerb stones at least, in every pass


def test_flagged_scenery_is_kept_out_of_the_segment_but_counted_without_the_rule(
    repo_dir: Path, detected: list[tuple[Frame, Detections]]
) -> None:
    def pavement(after_s: float) -> list[int]:
        played = _play(_config(repo_dir, after_s), detected)
        return [s.vehicles for _, r in played for s in r.segments if s.segment_id == PAVEMENT.id]

    with_rule, without = pavement(2.0), pavement(0.0)
    assert sum(without) >= LOOPS * 2  # the model's kerb-stone "cars" stand on the pavement
    assert sum(with_rule) < sum(without)
    assert sum(without) - sum(with_rule) >= LOOPS * 3  # 4 per pass as built
    assert with_rule[-1] < without[-1]  # the last frame: the matured stones are flagged
