"""Speed, turning movements and incidents on the shared clips with the real model.

The motorway clip is calibrated from its lane markings (seeds/demo-site.toml): its speeds
must be those of a motorway. The Beijing intersection's zones must give turning movements.
A car pasted still into the motorway clip must raise a stopped-vehicle incident, the clip
played backwards wrong-way incidents, and the clip as it is neither.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from atcs.bus import TopicKind, Topics
from atcs.bus.alarms import decode_alarm
from atcs.bus.measure_payloads import decode_incident_event, decode_movement_counts
from atcs.config import AtcsConfig, IncidentsConfig, load_config
from atcs.incidents import IncidentKind
from atcs.service import build_engine
from atcs.survey import WINDOW_COLUMNS, run_survey
from atcs.survey_events import INCIDENT_COLUMNS, MOVEMENT_COLUMNS
from detectors.base import Detector
from tests.support.clips import reversed_clip, with_parked_car
from tests.support.influxdb import InfluxServer, new_db
from tests.support.mosquitto import Collector, Mosquitto, Received
from tests.test_survey_e2e import demo_config, detector, read_csv

__all__ = ["demo_config", "detector"]  # module fixtures shared with the survey tests

pytestmark = pytest.mark.e2e

MOTORWAY = "motorway_overpass.mp4"
# A car of the motorway clip (frame 60, near the camera) pasted onto the hard shoulder.
PARKED_CAR = {"from_frame": 60, "car_xyxy": (535, 280, 635, 408), "to_xy": (150, 300)}


@pytest.fixture(scope="module")
def quick_incidents(demo_config: AtcsConfig) -> AtcsConfig:
    """The demo configuration with a 4 s stopped-vehicle hold (the clip lasts 11 s)."""
    return demo_config.model_copy(update={"incidents": IncidentsConfig(stopped_after_s=4.0)})


def survey_motorway(cfg: AtcsConfig, detector: Detector, out: Path, source: Path) -> Path:
    run_survey(
        cfg, out, camera_ids=["motorway"], source=str(source), progress=False,
        detector=detector, sample_fps=5.0,
    )  # fmt: skip
    return out


def test_motorway_speeds_are_those_of_a_motorway(
    demo_config: AtcsConfig, detector: Detector, media_dir: Path, tmp_path: Path
) -> None:
    # one-second windows: each holds a few vehicles, their median is the clip's median
    analysis = demo_config.analysis.model_copy(update={"window_s": 1.0})
    cfg = demo_config.model_copy(update={"analysis": analysis})
    survey_motorway(cfg, detector, tmp_path, media_dir / MOTORWAY)
    windows = [w for w in read_csv(tmp_path / "windows.csv") if w["speed_kmh"]]
    assert len(windows) >= 8
    speeds = [float(w["speed_kmh"]) for w in windows]
    # a Dutch motorway (limit 100 km/h by day): not 0, not 1,500 km/h
    assert 80.0 <= statistics.median(speeds) <= 125.0, speeds
    assert all(40.0 <= v <= 160.0 for v in speeds), speeds
    assert all(float(w["speed_p85_kmh"]) >= float(w["speed_kmh"]) - 1e-6 for w in windows)
    assert sum(int(w["speed_capped"]) for w in windows) == 0
    assert sum(int(w["speed_vehicles"]) for w in windows) >= 20


def test_beijing_gives_turning_movements(
    demo_config: AtcsConfig, detector: Detector, tmp_path: Path
) -> None:
    run_survey(
        demo_config, tmp_path, camera_ids=["beijing"], progress=False, detector=detector,
        sample_fps=5.0,
    )  # fmt: skip
    rows = read_csv(tmp_path / "movements.csv")
    assert list(rows[0]) == MOVEMENT_COLUMNS
    zones = {"beijing-south", "beijing-north", "beijing-east", "beijing-west"}
    # every start/end pair of the four zones (no zone to itself), for every class
    assert {(r["from_zone"], r["to_zone"]) for r in rows} == {
        (a, b) for a in zones for b in zones if a != b
    }
    made = Counter[tuple[str, str]]()
    for r in rows:
        made[r["from_zone"], r["to_zone"]] += int(r["count"])
    moved = {pair: n for pair, n in made.items() if n}
    assert len(moved) >= 2, made
    assert moved.get(("beijing-south", "beijing-north"), 0) >= 1  # through from the south
    assert moved.get(("beijing-north", "beijing-east"), 0) >= 1  # the stream turning east
    assert sum(moved.values()) <= 20  # about 30 vehicles in view, a track counts once


def test_a_car_stopped_on_the_shoulder_raises_a_stopped_vehicle_incident(
    quick_incidents: AtcsConfig, detector: Detector, media_dir: Path, tmp_path: Path
) -> None:
    clip = with_parked_car(media_dir / MOTORWAY, tmp_path / "parked.mp4", **PARKED_CAR)  # type: ignore[arg-type]
    out = survey_motorway(quick_incidents, detector, tmp_path / "out", clip)
    rows = read_csv(out / "incidents.csv")
    assert list(rows[0]) == INCIDENT_COLUMNS
    (stopped,) = [r for r in rows if r["kind"] == "stopped_vehicle"]
    # the pasted car's bottom centre: (200, 428) px of a 960 x 540 frame
    assert float(stopped["x"]) == pytest.approx(200 / 960, abs=0.02)
    assert float(stopped["y"]) == pytest.approx(428 / 540, abs=0.02)
    assert stopped["class"] == "car"
    assert float(stopped["start_s"]) < 2.0  # stopped from its first frames
    assert stopped["end_s"] == ""  # it never moved off
    assert float(stopped["value"]) == pytest.approx(4.0, abs=0.3)
    snapshot = cv2.imread(str(out / stopped["snapshot"]))
    assert snapshot is not None
    assert snapshot.shape == (540, 960, 3)
    # the incident's box is drawn in red around the pasted car
    ring = snapshot[297:300, 150:250].astype(int)
    assert np.mean(ring[..., 2] - ring[..., 1]) > 100


def test_the_clip_played_backwards_is_wrong_way_and_the_clip_itself_raises_nothing(
    quick_incidents: AtcsConfig, detector: Detector, media_dir: Path, tmp_path: Path
) -> None:
    clip = reversed_clip(media_dir / MOTORWAY, tmp_path / "reversed.mp4")
    rows = read_csv(
        survey_motorway(quick_incidents, detector, tmp_path / "rev", clip) / "incidents.csv"
    )
    kinds = Counter(r["kind"] for r in rows)
    assert 9 <= kinds["wrong_way"] <= 12, kinds  # 11 vehicles in the clip (hand count)
    assert len({r["track_id"] for r in rows}) == len(rows)  # one incident per track
    plain = survey_motorway(quick_incidents, detector, tmp_path / "plain", media_dir / MOTORWAY)
    assert read_csv(plain / "incidents.csv") == []


def test_analyze_and_calibrate_commands(repo_dir: Path, tmp_path: Path) -> None:
    config = str(repo_dir / "config.toml")
    analyze = subprocess.run(
        [sys.executable, "-m", "atcs.cli", "analyze", "--config", config, "--camera", "beijing",
         "--out", str(tmp_path / "out"), "--no-progress", "--sample-fps", "5"],
        check=False, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert analyze.returncode == 0, analyze.stderr
    out = tmp_path / "out"
    for name, columns in (
        ("windows.csv", WINDOW_COLUMNS),
        ("movements.csv", MOVEMENT_COLUMNS),
        ("incidents.csv", INCIDENT_COLUMNS),
    ):
        with (out / name).open() as handle:
            assert handle.readline().strip().split(",") == columns
    assert "speed_kmh" in WINDOW_COLUMNS
    assert any(int(r["count"]) for r in read_csv(out / "movements.csv"))

    picture = tmp_path / "grid.png"
    calibrate = subprocess.run(
        [sys.executable, "-m", "atcs.cli", "calibrate", "--config", config, "--camera",
         "motorway", "--out", str(picture)],
        check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert calibrate.returncode == 0, calibrate.stderr
    assert "reprojection error: rms 1.0" in calibrate.stdout  # about a pixel
    assert "segment motorway-southbound: polygon spans 53.8 m" in calibrate.stdout
    image = cv2.imread(str(picture))
    assert image is not None
    yellow = (image[..., 2] > 200) & (image[..., 1] > 200) & (image[..., 0] < 60)
    assert yellow.sum() > 2000  # the metre grid is drawn
    uncalibrated = subprocess.run(
        [sys.executable, "-m", "atcs.cli", "calibrate", "--config", config, "--camera",
         "beijing"],
        check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert uncalibrated.returncode == 2
    assert "has no [[calibrations]] entry" in uncalibrated.stderr


def test_demo_calibration_is_the_one_documented(repo_dir: Path) -> None:
    cfg = load_config(repo_dir / "config.toml")
    cal = cfg.calibration_of("motorway")
    assert cal is not None
    assert len(cal.image_points) == 10
    # the two dashed lane lines two 3.5-m lanes apart, dashes every 12 m
    assert sorted({x for x, _ in cal.ground_points_m}) == [0.0, 7.0]


def test_running_engine_publishes_and_stores_movements_and_incidents(
    tmp_path: Path,
    media_dir: Path,
    model_path: str,
    mosquitto: Mosquitto,
    influxdb: InfluxServer,
    collectors: list[Collector],
) -> None:
    """``atcs run`` wiring: live cameras, the bus and the store get movements and incidents."""
    backwards = reversed_clip(media_dir / MOTORWAY, tmp_path / "reversed.mp4")
    db = new_db("measures")
    site = (
        (Path(__file__).parents[1] / "seeds" / "demo-site.toml")
        .read_text(encoding="utf-8")
        .replace("${ATCS_MEDIA_DIR:-../shared/media}/motorway_overpass.mp4", str(backwards))
        .replace("${ATCS_MEDIA_DIR:-../shared/media}", str(media_dir))
    )
    (tmp_path / "site.toml").write_text(site, encoding="utf-8")
    (tmp_path / "run.toml").write_text(
        f"""
include = ["site.toml"]

[site]
id = "run"

[detector]
model = "{model_path}"

[analysis]
window_s = 2.0

[service]
state_dir = "{tmp_path / "state"}"

[mqtt]
host = "{mosquitto.host}"
port = {mosquitto.port}

[influx]
url = "{influxdb.url}"
database = "{db}"
flush_interval_s = 0.2
""",
        encoding="utf-8",
    )
    cfg = load_config(tmp_path / "run.toml")
    cfg = cfg.model_copy(
        update={"cameras": [c for c in cfg.cameras if c.id in ("motorway", "beijing")]}
    )
    sub = Collector(mosquitto, "atcs/v1/#")
    collectors.append(sub)
    engine = build_engine(cfg)
    engine.run(duration_s=10.0)

    def kinds(messages: list[Received]) -> Counter[TopicKind]:
        return Counter(Topics().parse(m.topic).kind for m in messages)

    def wrong_way_alarms(messages: list[Received]) -> set[str]:
        return {
            decode_alarm(m.payload).record.alarm.subject
            for m in messages
            if Topics().parse(m.topic).kind is TopicKind.ALARM
            and decode_alarm(m.payload).record.alarm.code == "incident.wrong_way"
        }

    assert sub.wait_for(lambda ms: kinds(ms)[TopicKind.INCIDENT_STATE] >= 3, 10)
    # the alarms follow the incidents through the room's alarm manager: wait for them too
    # (they may still be in flight on the broker when the third incident state arrives)
    assert sub.wait_for(lambda ms: len(wrong_way_alarms(ms)) >= 3, 10)
    got = sub.snapshot()
    events = [
        decode_incident_event(m.payload).record
        for m in got
        if Topics().parse(m.topic).kind is TopicKind.INCIDENT_EVENT
    ]
    wrong_way = [e for e in events if e.incident.kind is IncidentKind.WRONG_WAY]
    assert len({e.incident.incident_id for e in wrong_way}) >= 3
    assert all(e.incident.segment_id == "motorway-southbound" for e in wrong_way)
    matrices = [
        decode_movement_counts(m.payload).record
        for m in got
        if Topics().parse(m.topic).kind is TopicKind.MOVEMENT_COUNTS
    ]
    assert {m.intersection_id for m in matrices} == {"beijing"}
    assert sum(m.total for m in matrices) >= 1
    assert engine.incident_events >= len(events)

    # the room's alarms take the engine's incidents: on the bus and in the alarm list
    raised = wrong_way_alarms(got)
    assert len(raised) >= 3
    assert all(s.startswith("motorway-southbound~") for s in raised)
    assert engine.alarms is not None
    listed = engine.alarms.manager.history(1000) + engine.alarms.manager.current()
    assert raised <= {a.subject for a in listed}

    rows = influxdb.rows("SELECT * FROM incidents GROUP BY *", db)
    assert {r["incident_id"] for r in rows} >= {e.incident.incident_id for e in wrong_way}
    stored = influxdb.rows("SELECT sum(count) FROM movement_counts", db)
    assert stored[0]["sum"] == sum(m.total for m in matrices)
