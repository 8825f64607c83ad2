"""``atcs run``: the long-lived engine on real clips played as live cameras."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from atcs.config import load_config
from atcs.service import Engine, EngineTiming
from atcs.types import CameraState, CameraStatus, SegmentMetrics, TimingPlan, VehicleClass
from tests.support.sites import two_clip_site_toml
from tests.support.wait import poll

pytestmark = pytest.mark.e2e


class RecordingSink:
    """A sink that keeps what it receives (the real sinks have their own server tests)."""

    def __init__(self) -> None:
        self.metrics: list[SegmentMetrics] = []
        self.statuses: list[CameraStatus] = []
        self.started = False
        self.closed = False

    def start(self) -> None:
        self.started = True

    def on_metrics(self, metrics: Sequence[SegmentMetrics]) -> None:
        self.metrics.extend(metrics)

    def on_camera_status(self, status: CameraStatus) -> None:
        self.statuses.append(status)

    def on_plan(self, plan: TimingPlan) -> None:
        raise AssertionError("no intersection configured in this test")

    def health(self) -> Mapping[str, float | int | str | bool]:
        return {"metrics": len(self.metrics)}

    def close(self, timeout_s: float = 10.0) -> None:
        self.closed = True


def site_config(tmp_path: Path, media_dir: Path, model_path: str) -> Path:
    dead_camera = f"""
[[cameras]]
id = "dead"
source = "{tmp_path / "no-such-clip.mp4"}"
reconnect_initial_s = 0.5

[[segments]]
id = "dead-segment"
camera = "dead"
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]
length_m = 10.0
lanes = 1
"""
    text = two_clip_site_toml(
        media_dir, model_path, tmp_path / "var", sample_fps=4.0, extra=dead_camera
    )
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def test_engine_measures_live_cameras_while_one_is_dead(
    tmp_path: Path, media_dir: Path, model_path: str
) -> None:
    cfg = load_config(site_config(tmp_path, media_dir, model_path))
    sink = RecordingSink()
    heard: list[SegmentMetrics] = []
    engine = Engine(
        cfg, sinks=[sink], listeners=[heard.extend], timing=EngineTiming(window_grace_s=1.0)
    )
    engine.run(duration_s=12.0)
    assert sink.started
    assert sink.closed
    assert heard == sink.metrics, "listeners and sinks get the same windows"
    by_segment: dict[str, list[SegmentMetrics]] = {}
    for m in sink.metrics:
        by_segment.setdefault(m.segment_id, []).append(m)
    assert set(by_segment) == {"inbound", "carriageway"}, "the dead camera yields no measures"
    for seg, windows in by_segment.items():
        live = [w for w in windows if not w.stale and w.frames > 0]
        assert len(live) >= 3, f"{seg}: windows keep coming"
        starts = [w.window_start for w in windows]
        assert starts == sorted(starts)
        for w in windows:
            assert (
                w.window_start.timestamp() % 2.0 == pytest.approx(0.0, abs=1e-6) or w is windows[-1]
            )
    inbound = [w for w in by_segment["inbound"] if w.frames > 0]
    motorcycles = sum(w.vehicles_by_class[VehicleClass.MOTORCYCLE] for w in inbound)
    cars = sum(w.vehicles_by_class[VehicleClass.CAR] for w in inbound)
    assert motorcycles > cars
    carriageway = [w for w in by_segment["carriageway"] if w.frames > 0]
    assert sum(w.vehicles_by_class[VehicleClass.CAR] for w in carriageway) > 0
    frames = sum(w.frames for w in inbound)
    assert 20 <= frames <= 60, "about 4 frames per second are analysed, not the clip's 30"
    states = {(s.camera_id, s.state) for s in sink.statuses}
    assert ("pontianak", CameraState.STREAMING) in states
    assert ("motorway", CameraState.STREAMING) in states
    dead = [s for s in sink.statuses if s.camera_id == "dead"]
    assert dead
    assert all(s.state is not CameraState.STREAMING for s in dead)


class SlowStartSink(RecordingSink):
    """A sink whose start takes ``start_s`` seconds, like a slow disk or a slow network."""

    def __init__(self, start_s: float) -> None:
        super().__init__()
        self.start_s = start_s
        self.started_at = self.closed_at = 0.0

    def start(self) -> None:
        time.sleep(self.start_s)
        super().start()
        self.started_at = time.monotonic()

    def close(self, timeout_s: float = 10.0) -> None:
        self.closed_at = time.monotonic()
        super().close(timeout_s)


def test_run_duration_counts_from_the_end_of_start_up(
    tmp_path: Path, media_dir: Path, model_path: str
) -> None:
    cfg = load_config(site_config(tmp_path, media_dir, model_path))
    sink = SlowStartSink(start_s=3.0)
    t0 = time.monotonic()
    Engine(cfg, sinks=[sink]).run(duration_s=4.0)
    assert sink.started_at - t0 >= 3.0
    # the engine measured for the whole duration after its slow start, not 1 s of it
    assert 4.0 <= sink.closed_at - sink.started_at <= 4.0 + 10.0
    assert any(w.frames > 0 for w in sink.metrics), "windows were measured"


def test_run_command_stops_gracefully_on_sigterm(
    tmp_path: Path, media_dir: Path, model_path: str
) -> None:
    config = site_config(tmp_path, media_dir, model_path)
    log_path = tmp_path / "engine.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "atcs.cli", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=log_file, text=True,
        )  # fmt: skip
    try:
        # running: the live camera streams and the dead one is reported (however long the
        # imports and the model take on this machine)
        def running() -> bool:
            text = log_path.read_text()
            return "camera=pontianak state=streaming" in text and "no-such-clip.mp4" in text

        started = poll(running, 60)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = log_path.read_text()
    assert started, err
    assert proc.returncode == 0, err
    assert "signal SIGTERM received" in err
    assert "engine stopped" in err
    assert "camera=pontianak state=streaming" in err
    assert "no-such-clip.mp4" in err, "the dead camera is named in the log"
    assert "Traceback" not in err
