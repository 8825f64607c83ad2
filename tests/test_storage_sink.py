"""The InfluxDB sink's batching, retry, spool and replay logic with a scripted writer.

The writer here is an in-memory stand-in for the server that fails when told to; the same
paths run against real InfluxDB and nginx in ``test_storage_influxdb.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from atcs.config.storage import InfluxConfig, Precision
from atcs.errors import ConfigError, StorageError
from atcs.sinks import Sink
from atcs.storage import (
    AuthenticationError,
    InfluxSink,
    PointsRejectedError,
    ServerUnavailableError,
    V1Writer,
    V2Writer,
    make_writer,
)
from atcs.types import CameraId, CameraState, CameraStatus, PlanMode, SiteId
from tests.support.samples import sample_metrics, timing_plan
from tests.support.wait import wait_for

FAST = {
    "flush_interval_s": 0.02,
    "retry_initial_s": 0.02,
    "retry_max_s": 0.1,
    "batch_size": 7,
    "timeout_s": 2.0,
}


class ScriptedWriter:
    """Stores bodies in memory; raises ``failure`` instead while it is set."""

    target = "memory://test"

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.requests = 0
        self.failure: StorageError | None = None
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()

    def write(self, body: bytes, precision: Precision) -> None:
        self.gate.wait()
        with self.lock:
            self.requests += 1
            if self.failure is not None:
                raise self.failure
            assert precision == "ms"
            assert body.endswith(b"\n")
            self.lines.extend(body.decode().splitlines())

    def close(self) -> None:
        pass


def num(sink: InfluxSink) -> dict[str, int]:
    """The counters, sizes and flags of ``sink.health()`` as integers."""
    return {k: int(v) for k, v in sink.health().items() if not isinstance(v, str)}


def make_sink(tmp_path: Path, writer: ScriptedWriter, **overrides: object) -> InfluxSink:
    cfg = InfluxConfig.model_validate({**FAST, **overrides})
    return InfluxSink(cfg, SiteId("bandung"), tmp_path / "state", writer=writer)


def window_ids(lines: list[str]) -> list[int]:
    """Window index of each segment_metrics line (the vehicles field is 12.5 + i)."""
    out = []
    for line in lines:
        vehicles = next(f for f in line.split(" ")[1].split(",") if f.startswith("vehicles="))
        out.append(int(float(vehicles.split("=")[1]) - 12.5))
    return out


def test_points_arrive_once_in_order_through_failures_and_replay(tmp_path: Path) -> None:
    writer = ScriptedWriter()
    sink = make_sink(tmp_path, writer)
    sink.start()
    i = 0
    for phase_failure in (None, ServerUnavailableError("down"), None, AuthenticationError("401")):
        writer.failure = phase_failure
        for _ in range(40):
            sink.on_metrics([sample_metrics(i), sample_metrics(i + 1)])
            i += 2
            time.sleep(0.002)
        if phase_failure is not None:
            wait_for(lambda: num(sink)["spool_points"] > 0)
            expected = (
                "auth_failed" if isinstance(phase_failure, AuthenticationError) else "unreachable"
            )
            wait_for(lambda: sink.health()["state"] == expected)  # noqa: B023
    writer.failure = None
    wait_for(lambda: num(sink)["spool_points"] == 0 and num(sink)["queue_points"] == 0)
    sink.close()
    assert window_ids(writer.lines) == list(range(i))
    assert sink.health()["state"] == "closed"
    health = num(sink)
    assert health["points_accepted"] == i
    assert health["points_written"] + health["points_replayed"] == i
    assert health["points_replayed"] > 0
    assert health["points_spooled"] == health["points_replayed"]
    assert health["write_failures"] > 0
    for lost in ("rejected", "invalid", "refused_queue_full", "refused_spool_full"):
        assert health[f"points_{lost}"] == 0


def test_close_with_server_down_spools_and_next_start_replays(tmp_path: Path) -> None:
    writer = ScriptedWriter()
    writer.failure = ServerUnavailableError("connection refused")
    first = make_sink(tmp_path, writer, flush_interval_s=30.0)  # nothing flushes before close
    first.start()
    first.on_metrics([sample_metrics(i) for i in range(5)])
    first.close(timeout_s=2.0)
    assert num(first)["spool_points"] == 5
    assert writer.lines == []

    writer.failure = None
    second = make_sink(tmp_path, writer)
    second.on_metrics([sample_metrics(5)])  # accepted before start: waits behind the spool
    second.start()
    second.on_metrics([sample_metrics(6)])
    wait_for(lambda: len(writer.lines) == 7)
    second.close()
    assert window_ids(writer.lines) == list(range(7))
    assert num(second)["points_replayed"] == 5


def test_spool_bound_refuses_new_points_loudly_and_keeps_old_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = ScriptedWriter()
    writer.failure = ServerUnavailableError("down")
    sink = make_sink(tmp_path, writer, spool_max_bytes=8192, batch_size=2)
    sink.start()
    with caplog.at_level(logging.INFO, logger="atcs.storage"):
        for i in range(40):
            sink.on_metrics([sample_metrics(i)])
            time.sleep(0.005)
        wait_for(lambda: num(sink)["spool_full"] == 1)
        wait_for(lambda: num(sink)["queue_points"] == 0)
        health = num(sink)
        assert health["points_refused_spool_full"] > 0
        assert health["spool_bytes"] <= 8192
        full_lines = [r for r in caplog.records if "is full" in r.getMessage()]
        assert len(full_lines) == 1
        assert full_lines[0].levelno == logging.ERROR
        assert "new points are refused" in full_lines[0].getMessage()
        spooled = health["spool_points"]
        writer.failure = None
        wait_for(lambda: num(sink)["spool_points"] == 0)
        sink.on_metrics([sample_metrics(99)])
        wait_for(lambda: num(sink)["points_written"] == 1)
    sink.close()
    health = num(sink)
    assert health["spool_full"] == 0
    assert any("spool full is over" in r.getMessage() for r in caplog.records)
    # the oldest points were kept: the replayed windows are 0, 1, 2, ... then 99
    ids = window_ids(writer.lines)
    assert ids == [*range(spooled), 99]
    assert health["points_accepted"] == 41
    assert (
        health["points_replayed"] + health["points_written"] + health["points_refused_spool_full"]
        == 41
    )


def test_rejected_points_are_counted_and_kept_for_inspection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = ScriptedWriter()
    writer.failure = PointsRejectedError("HTTP 400: field type conflict")
    sink = make_sink(tmp_path, writer)
    sink.start()
    sink.on_metrics([sample_metrics(0), sample_metrics(1)])
    wait_for(lambda: num(sink)["points_rejected"] == 2)
    writer.failure = None
    sink.on_metrics([sample_metrics(2)])
    sink.close()
    assert window_ids(writer.lines) == [2]
    kept = (tmp_path / "state" / "influx" / "rejected.lp").read_text().splitlines()
    assert window_ids(kept) == [0, 1]
    assert any("refused 2 points as invalid" in r.getMessage() for r in caplog.records)


def test_the_callers_thread_never_blocks_nor_raises(tmp_path: Path) -> None:
    writer = ScriptedWriter()
    writer.gate.clear()  # the server hangs: the writer thread is stuck in a request
    sink = make_sink(tmp_path, writer, queue_max_points=50)
    sink.start()
    started = time.monotonic()
    for i in range(100):
        sink.on_metrics([sample_metrics(i)])
        sink.on_camera_status(
            CameraStatus(CameraId("cam-1"), CameraState.STREAMING, 2.0, datetime.now(UTC))
        )
    assert time.monotonic() - started < 1.0
    health = num(sink)  # every point journaled on disk, none refused, none in memory
    assert (health["points_accepted"], health["spool_points"]) == (200, 200)
    assert (health["points_refused_queue_full"], health["queue_points"]) == (0, 0)
    # a record that cannot be encoded is counted, not raised into the service
    naive = CameraStatus(CameraId("cam-1"), CameraState.STALLED, 0.0, datetime(2026, 1, 1))
    sink.on_camera_status(naive)
    sink.on_metrics([replace(sample_metrics(0), window_end=datetime(2026, 1, 1))])
    assert num(sink)["points_invalid"] == 2
    writer.gate.set()
    sink.close()


def test_secrets_come_from_the_environment_and_never_show(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = InfluxConfig(username="atcs", password_env="MY_INFLUX_PW", url="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="MY_INFLUX_PW"):
        make_writer(cfg, environ={})
    writer = make_writer(cfg, environ={"MY_INFLUX_PW": "s3cret-pw"})
    assert isinstance(writer, V1Writer)
    v2 = make_writer(InfluxConfig(api="v2", token_env="TOK"), environ={"TOK": "t0ken-xyz"})
    assert isinstance(v2, V2Writer)
    v2.close()
    sink = InfluxSink(
        cfg.model_copy(update=FAST),
        SiteId("s"),
        tmp_path,
        environ={"MY_INFLUX_PW": "s3cret-pw"},
    )
    with caplog.at_level(logging.DEBUG):
        sink.start()
        sink.on_metrics([sample_metrics(0)])
        wait_for(lambda: sink.health()["state"] == "unreachable")
        sink.close(timeout_s=1.0)
    health = sink.health()
    assert "s3cret-pw" not in repr(health)
    assert "s3cret-pw" not in caplog.text
    assert "unreachable" in str(health["last_error"])


def test_camera_points_are_stamped_when_handed_over(tmp_path: Path) -> None:
    writer = ScriptedWriter()
    sink = make_sink(tmp_path, writer)
    sink.start()
    before = datetime.now(UTC)
    sink.on_camera_status(
        CameraStatus(CameraId("cam-1"), CameraState.STREAMING, 2.0, before - timedelta(seconds=1))
    )
    sink.close()
    (line,) = writer.lines
    stamp_ms = int(line.rsplit(" ", 1)[1])
    assert abs(stamp_ms - before.timestamp() * 1000) < 1000
    assert line.startswith("camera_health,camera=cam-1,site=bandung ")


def test_influx_sink_is_a_sink(tmp_path: Path) -> None:
    writer = ScriptedWriter()
    sink: Sink = make_sink(tmp_path, writer)  # the protocol is checked by mypy --strict
    sink.start()
    plan = timing_plan(
        "simpang-dago",
        'plan 1, "trial"',
        {"p1": 26.0, "p2": 26.0},
        cycle_s=60.0,
        all_red_s=1.0,
        controller="fixed",
        mode=PlanMode.FALLBACK,
        valid_from=datetime(2026, 3, 1, 6, 0, tzinfo=UTC),
        reason="time of day: morning",
    )
    sink.on_plan(plan)
    sink.close()
    assert sink.health()["state"] == "closed"
    (line,) = writer.lines
    assert line.startswith(
        "signal_plan,controller=fixed,intersection=simpang-dago,mode=fallback,site=bandung "
    )
    assert 'plan_id="plan 1, \\"trial\\""' in line
    assert line.endswith(f" {int(plan.valid_from.timestamp()) * 1000}")
