"""Counts at the live sampling rate: the real model on the shared clips at 5 frames/s.

Each clip is surveyed as the live service samples it (``--sample-fps 5``) and its counts
are held to the hand counts in ``tests/data/groundtruth`` with tight bounds: a broken
tracker (lost motorcycles), a wrong direction or a class flip counted twice moves them out.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import pytest

from atcs.config import AtcsConfig, load_config
from atcs.survey import run_survey
from detectors.base import Detector
from tests.test_survey_e2e import demo_config, detector, read_csv

__all__ = ["demo_config", "detector"]  # module fixtures shared with the survey tests

pytestmark = pytest.mark.e2e

GROUND_TRUTH = Path(__file__).parent / "data" / "groundtruth"


@pytest.fixture(scope="module")
def survey_config(repo_dir: Path) -> AtcsConfig:
    return load_config(repo_dir / "survey.toml")


def truth(clip: str) -> Counter[tuple[str, str]]:
    rows = read_csv(GROUND_TRUTH / f"{clip}.csv")
    return Counter((r["line"], r["direction"]) for r in rows)


def survey_at_5fps(
    cfg: AtcsConfig, detector: Detector, out: Path, camera: str
) -> list[dict[str, str]]:
    run_survey(cfg, out, camera_ids=[camera], progress=False, detector=detector, sample_fps=5.0)
    return read_csv(out / "crossings.csv")


@pytest.fixture(scope="module")
def pontianak(
    survey_config: AtcsConfig, detector: Detector, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("pontianak5")
    survey_at_5fps(survey_config, detector, out, "pontianak")
    return out


def test_ground_truth_files_cover_every_shared_clip(media_dir: Path) -> None:
    clips = sorted(p.stem for p in media_dir.iterdir() if p.suffix in {".mp4", ".avi"})
    assert sorted(p.stem for p in GROUND_TRUTH.glob("*.csv")) == clips
    assert truth("pontianak_motorcycles")["pontianak-inbound-count", "forward"] == 21
    assert truth("motorway_overpass")["motorway-count", "forward"] == 11


@pytest.fixture(scope="module")
def pontianak_10fps(
    survey_config: AtcsConfig, detector: Detector, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, str]]:
    out = tmp_path_factory.mktemp("pontianak10")
    run_survey(
        survey_config, out, camera_ids=["pontianak"], progress=False, detector=detector,
        sample_fps=10.0,
    )  # fmt: skip
    return read_csv(out / "crossings.csv")


def _no_track_counted_twice(rows: list[dict[str, str]]) -> None:
    """One track counts once per line: no class flip or backward-then-forward double count."""
    keys = [(r["line"], r["track_id"]) for r in rows]
    assert len(keys) == len(set(keys))


def test_pontianak_motorcycles_at_5fps_near_the_hand_count(pontianak: Path) -> None:
    rows = read_csv(pontianak / "crossings.csv")
    got = Counter((r["line"], r["direction"]) for r in rows)
    assert 20 <= got["pontianak-inbound-count", "forward"] <= 22  # hand count 21
    assert got["pontianak-inbound-count", "backward"] <= 1  # nobody rides against it
    # Hand count 4. Two of them ride out of the image within three samples at 5 frames/s,
    # one box shrinking to a third between two samples; whether the model's boxes of them
    # hold depends on the CPU's INT8 kernels and whole-frame input (3 counted with the
    # 640x640 input of CPUs with AMX, 2 with the 640x384 input elsewhere;
    # docs/benchmarks-counts.md). At 10 frames/s all 4 are counted on both.
    assert 2 <= got["pontianak-outbound-count", "backward"] <= 5
    assert got["pontianak-outbound-count", "forward"] <= 1
    inbound = [r for r in rows if r["line"] == "pontianak-inbound-count"]
    assert Counter(r["class"] for r in inbound)["motorcycle"] >= 19  # hand count 20
    _no_track_counted_twice(rows)


def test_pontianak_motorcycles_at_10fps_within_one_of_the_hand_count(
    pontianak_10fps: list[dict[str, str]],
) -> None:
    got = Counter((r["line"], r["direction"]) for r in pontianak_10fps)
    assert 20 <= got["pontianak-inbound-count", "forward"] <= 22  # hand count 21
    assert 3 <= got["pontianak-outbound-count", "backward"] <= 5  # hand count 4
    assert (
        got["pontianak-inbound-count", "backward"] + got["pontianak-outbound-count", "forward"] <= 1
    )
    inbound = [r for r in pontianak_10fps if r["line"] == "pontianak-inbound-count"]
    assert Counter(r["class"] for r in inbound)["motorcycle"] >= 19  # hand count 20
    _no_track_counted_twice(pontianak_10fps)


def test_crossings_are_written_in_frame_order(pontianak: Path) -> None:
    frames = [int(r["frame"]) for r in read_csv(pontianak / "crossings.csv")]
    assert frames == sorted(frames)
    assert len(frames) >= 22  # hand count 25: 21 in, 4 out


def test_windows_carry_observed_time_and_the_approach_flow(pontianak: Path) -> None:
    windows = read_csv(pontianak / "windows.csv")
    inbound = [w for w in windows if w["segment"] == "pontianak-inbound"]
    outbound = [w for w in windows if w["segment"] == "pontianak-outbound"]
    (win,) = inbound  # the 7.5-s clip is one partial window
    assert float(win["observed_s"]) == pytest.approx(7.5, abs=0.2)
    assert win["partial"] == "0"  # seen from its first frame to its end
    # The approach flow is the direction toward the stop line only: forward inbound,
    # backward outbound.
    assert float(win["flow_veh_h"]) == pytest.approx(float(win["flow_forward_veh_h"]))
    assert float(win["flow_backward_veh_h"]) <= 3600 / 7.4
    (wout,) = outbound
    assert float(wout["flow_veh_h"]) == pytest.approx(float(wout["flow_backward_veh_h"]))
    assert float(wout["flow_veh_h"]) > 0


def test_calibration_picture_is_readable(pontianak: Path, tmp_path: Path) -> None:
    image = cv2.imread(str(pontianak / "pontianak.png"))
    assert image is not None
    assert image.shape == (720, 1280, 3)


@pytest.mark.parametrize(
    ("camera", "clip", "line", "direction", "low", "high"),
    [
        ("motorway", "motorway_overpass", "motorway-count", "forward", 10, 12),
        ("beijing", "intersection_beijing_overpass", "beijing-south-stopline", "backward", 4, 6),
        ("analog", "motorway_analog_cctv", "analog-count", "forward", 22, 24),
        ("tjunction-cyclist", "tjunction_pole_cars_cyclist", "tjunction-cyclist-count",
         "forward", 1, 1),
        ("tjunction-truck", "tjunction_pole_cars_truck", "tjunction-truck-count", "forward", 1, 1),
    ],
)  # fmt: skip
def test_every_other_clip_at_5fps_within_its_bounds(
    survey_config: AtcsConfig,
    detector: Detector,
    tmp_path: Path,
    camera: str,
    clip: str,
    line: str,
    direction: str,
    low: int,
    high: int,
) -> None:
    rows = survey_at_5fps(survey_config, detector, tmp_path, camera)
    got = Counter((r["line"], r["direction"]) for r in rows)
    assert low <= truth(clip)[line, direction] <= high
    assert low <= got[line, direction] <= high
    wrong_way = sum(n for (ln, d), n in got.items() if ln == line and d != direction)
    assert wrong_way <= 1
    keys = [(r["line"], r["track_id"]) for r in rows]
    assert len(keys) == len(set(keys))


def test_small_sources_are_drawn_enlarged(survey_config: AtcsConfig, detector: Detector,
                                           tmp_path: Path) -> None:  # fmt: skip
    run_survey(
        survey_config, tmp_path, camera_ids=["analog"], progress=False, detector=detector,
        sample_fps=2.0, max_frames=20,
    )  # fmt: skip
    image = cv2.imread(str(tmp_path / "analog.png"))
    assert image is not None
    assert image.shape == (720, 960, 3)  # 320 x 240 drawn three times as large


def test_cli_sample_fps_and_image_folder_fps(
    repo_dir: Path, media_dir: Path, tmp_path: Path
) -> None:
    # An image folder made of the first 20 frames of a 20-fps clip, read at 20 frames/s.
    folder = tmp_path / "frames"
    folder.mkdir()
    capture = cv2.VideoCapture(str(media_dir / "tjunction_pole_cars_truck.mp4"))
    for k in range(20):
        ok, frame = capture.read()
        assert ok
        cv2.imwrite(str(folder / f"{k:04d}.jpg"), frame)
    capture.release()
    cmd = [sys.executable, "-m", "atcs.cli", "analyze", "--config", str(repo_dir / "survey.toml"),
           "--camera", "tjunction-truck", "--no-progress"]  # fmt: skip
    every = subprocess.run(
        [*cmd, "--out", str(tmp_path / "every"), "--source", str(folder), "--fps", "20"],
        check=False, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert every.returncode == 0, every.stderr
    offsets = sorted({float(r["offset_s"]) for r in read_csv(tmp_path / "every" / "frames.csv")})
    assert len(offsets) == 20
    assert offsets[-1] == pytest.approx(19 / 20)  # not 19 s: the folder is 20 frames/s
    # --sample-fps with no value: the camera's configured 5 frames/s.
    sampled = subprocess.run(
        [*cmd, "--out", str(tmp_path / "sampled"), "--sample-fps"],
        check=False, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert sampled.returncode == 0, sampled.stderr
    frames = sorted({int(r["frame"]) for r in read_csv(tmp_path / "sampled" / "frames.csv")})
    assert frames == list(range(0, 60, 4))  # every 4th frame of the 20-fps clip
    bad = subprocess.run(
        [*cmd, "--out", str(tmp_path / "bad"), "--sample-fps", "fast"],
        check=False, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "--sample-fps" in bad.stderr
    assert "Traceback" not in bad.stderr
