"""``atcs analyze`` on real clips with the real model: what a person sees in the footage."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from atcs.config import AtcsConfig, load_config
from atcs.detection import build_detector
from atcs.survey import CROSSING_COLUMNS, FRAME_COLUMNS, WINDOW_COLUMNS, run_survey
from detectors.base import Detector

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo_config(repo_dir: Path) -> AtcsConfig:
    return load_config(repo_dir / "config.toml")


@pytest.fixture(scope="module")
def detector(demo_config: AtcsConfig) -> Iterator[Detector]:
    det = build_detector(demo_config.detector)
    yield det
    det.close()


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def survey(cfg: AtcsConfig, detector: Detector, out: Path, camera: str) -> Path:
    run_survey(cfg, out, camera_ids=[camera], progress=False, detector=detector)
    return out


@pytest.fixture(scope="module")
def pontianak(
    demo_config: AtcsConfig, detector: Detector, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return survey(demo_config, detector, tmp_path_factory.mktemp("pontianak"), "pontianak")


def test_csv_files_have_the_documented_columns(pontianak: Path) -> None:
    for name, columns in (
        ("frames.csv", FRAME_COLUMNS),
        ("windows.csv", WINDOW_COLUMNS),
        ("crossings.csv", CROSSING_COLUMNS),
    ):
        with (pontianak / name).open() as handle:
            assert next(csv.reader(handle)) == columns


def test_pontianak_is_mostly_motorcycles(pontianak: Path) -> None:
    rows = read_csv(pontianak / "frames.csv")
    frames = {int(r["frame"]) for r in rows}
    assert len(frames) == 226, "every frame of the clip is processed"
    totals = Counter[str]()
    for r in rows:
        for cls in ("car", "motorcycle", "bus", "truck", "bicycle"):
            totals[cls] += int(r[cls])
    assert totals["motorcycle"] > 0.75 * sum(totals.values())
    assert totals["motorcycle"] > 300
    # PCU of a protected motorcycle is 0.15: pcu per row follows the classes
    for r in rows:
        expected = (
            int(r["car"]) + 1.3 * (int(r["bus"]) + int(r["truck"])) + 0.15 * int(r["motorcycle"])
        )
        assert float(r["pcu"]) == pytest.approx(expected, abs=1e-3)


def test_pontianak_windows_and_crossings(pontianak: Path) -> None:
    windows = read_csv(pontianak / "windows.csv")
    assert {w["segment"] for w in windows} == {"pontianak-inbound", "pontianak-outbound"}
    inbound = [w for w in windows if w["segment"] == "pontianak-inbound"]
    assert sum(int(w["frames"]) for w in inbound) == 226
    assert float(inbound[0]["vehicles_motorcycle"]) > 1.0
    assert float(inbound[0]["flow_veh_h"]) > 0
    crossings = read_csv(pontianak / "crossings.csv")
    toward = [c for c in crossings if c["line"] == "pontianak-inbound-count"]
    assert len(toward) >= 5
    directions = Counter(c["direction_label"] for c in toward)
    assert directions["toward camera"] > 0.7 * len(toward)
    assert Counter(c["class"] for c in toward)["motorcycle"] > 0.7 * len(toward)


def test_annotated_png_written(pontianak: Path) -> None:
    image = cv2.imread(str(pontianak / "pontianak.png"))
    assert image is not None
    assert image.shape == (720, 1280, 3)


def test_beijing_has_cars_buses_and_motorcycles(
    demo_config: AtcsConfig, detector: Detector, tmp_path: Path
) -> None:
    report = run_survey(
        demo_config, tmp_path, camera_ids=["beijing"], progress=False, detector=detector
    )
    seen = report.cameras[0].detections_by_class
    assert seen.get("car", 0) > 1000
    assert seen.get("bus", 0) > 10
    assert seen.get("motorcycle", 0) > 15  # small and far away: YOLO11n finds few
    windows = read_csv(tmp_path / "windows.csv")
    approach = [w for w in windows if w["segment"] == "beijing-south-approach"]
    assert approach, "the approach with a stop line has windows"
    assert all(w["queue_m"] != "" for w in approach), "queue is measured where a stop line is set"


def test_motorway_crossings_follow_the_direction_of_travel(
    demo_config: AtcsConfig, detector: Detector, tmp_path: Path
) -> None:
    run_survey(demo_config, tmp_path, camera_ids=["motorway"], progress=False, detector=detector)
    crossings = read_csv(tmp_path / "crossings.csv")
    directions = Counter(c["direction"] for c in crossings)
    assert directions["forward"] >= 6
    assert directions["backward"] <= 1
    track_ids = [c["track_id"] for c in crossings]
    assert len(track_ids) == len(set(track_ids)), "a track counts once"


def test_cli_source_override_and_missing_file(
    repo_dir: Path, media_dir: Path, tmp_path: Path
) -> None:
    clip = media_dir / "tjunction_pole_cars_cyclist.mp4"
    cmd = [sys.executable, "-m", "atcs.cli", "analyze", "--config", str(repo_dir / "config.toml")]
    ok = subprocess.run(
        [*cmd, "--out", str(tmp_path / "ok"), "--camera", "beijing", "--source", str(clip),
         "--no-progress"],
        check=False, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    rows = read_csv(tmp_path / "ok" / "frames.csv")
    assert len({r["frame"] for r in rows}) == 60, "the 60 frames of the replacement clip"
    assert "car" in ok.stdout
    missing = subprocess.run(
        [*cmd, "--out", str(tmp_path / "bad"), "--camera", "beijing", "--source",
         str(tmp_path / "absent.mp4"), "--no-progress"],
        check=False, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "absent.mp4" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_repeat_plays_the_recording_on_one_timeline_with_bounded_tracks(
    demo_config: AtcsConfig, detector: Detector, media_dir: Path, tmp_path: Path
) -> None:
    live_tracks: list[int] = []
    report = run_survey(
        demo_config, tmp_path, camera_ids=["beijing"], progress=False, detector=detector,
        source=str(media_dir / "tjunction_pole_cars_cyclist.mp4"), repeat=3,
        on_frame=lambda _survey, analyzer: live_tracks.append(analyzer.live_tracks),
    )  # fmt: skip
    assert report.cameras[0].frames == 180
    rows = read_csv(tmp_path / "frames.csv")
    frames = [int(r["frame"]) for r in rows]
    assert sorted(set(frames)) == list(range(180)), "frame numbers keep increasing"
    offsets = [float(r["offset_s"]) for r in rows]
    assert offsets == sorted(offsets)
    assert max(offsets) > 8.9, "three 3-s passes on one timeline"
    # tracks expire: the same point of each pass holds about as many live tracks
    assert len(live_tracks) == 180
    assert max(live_tracks) <= 3 * max(1, live_tracks[59])
