"""SIGKILL of the engine right after windows close: each window reaches bus and store once.

``atcs run`` on two real clips with the real model, a real Mosquitto and a real InfluxDB.
The store's writer sends every 5 s, so when the engine is killed (kill -9, just after a
window close) the last windows are on the bus but not yet in InfluxDB: they wait in the
durable outbox, in the same transaction as their MQTT messages. After a restart every
window closed before the kill is in InfluxDB and on the bus exactly once (after the
subscriber's de-duplication by ``stream`` and ``seq``), and nowhere only once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from atcs.bus.dedup import Deduplicator
from atcs.bus.payloads import decode_segment_metrics
from atcs.bus.topics import TopicKind, Topics
from tests.support.influxdb import InfluxServer, new_db
from tests.support.mosquitto import Collector, Mosquitto
from tests.support.process import stop_process
from tests.support.sites import two_clip_site_toml
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

TOPICS = Topics()
SEGMENTS = {"inbound", "carriageway"}


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "atcs.cli", "run", "--config", str(config)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip


def _bus_windows(bus: Collector) -> tuple[dict[str, list[int]], int]:
    """Per segment, the window ends (ms) on the bus after de-duplication; and the copies."""
    dedup = Deduplicator()
    ends: dict[str, list[int]] = defaultdict(list)
    copies = 0
    for m in bus.snapshot():
        if TOPICS.parse(m.topic).kind is not TopicKind.SEGMENT_METRICS:
            continue
        got = decode_segment_metrics(m.payload)
        assert got.meta is not None
        if not dedup.accept(m.topic, got.meta):
            copies += 1
            continue
        ends[got.record.segment_id].append(int(got.record.window_end.timestamp() * 1000))
    return ends, copies


def _stored(influxdb: InfluxServer, db: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for segment in SEGMENTS:
        rows = influxdb.rows(f"SELECT frames FROM segment_metrics WHERE segment = '{segment}'", db)
        out[segment] = [int(r["time"]) for r in rows]
    return out


def test_kill_9_right_after_windows_close_loses_and_doubles_nothing(
    tmp_path: Path,
    media_dir: Path,
    model_path: str,
    mosquitto: Mosquitto,
    influxdb: InfluxServer,
) -> None:
    db = new_db("atcs_kill")
    influxdb.query(f'CREATE DATABASE "{db}"')
    extra = f"""
[mqtt]
host = "{mosquitto.host}"
port = {mosquitto.port}
reconnect_min_s = 1
reconnect_max_s = 2

[influx]
url = "{influxdb.url}"
database = "{db}"
flush_interval_s = 5.0
"""
    config = tmp_path / "site.toml"
    config.write_text(
        two_clip_site_toml(media_dir, model_path, tmp_path / "var", sample_fps=2.0, extra=extra)
    )
    log = tmp_path / "engine.log"
    bus = Collector(mosquitto, "atcs/#")
    proc = _start(config, log)
    try:
        wait_for(
            lambda: all(len(_bus_windows(bus)[0][s]) >= 4 for s in SEGMENTS),
            120, "four windows of each segment on the bus", interval_s=0.5,
        )  # fmt: skip
        wait_for(lambda: all(_stored(influxdb, db).values()), 30, "windows in InfluxDB")
        before = sum(map(len, _stored(influxdb, db).values()))
        wait_for(  # the store's writer just sent; its next send is 5 s away
            lambda: sum(map(len, _stored(influxdb, db).values())) > before,
            15, "a send of the store", interval_s=0.1,
        )  # fmt: skip
        time.sleep(2.0 - time.time() % 2.0 + 1.3)  # windows of 2 s close 1 s after their end
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        time.sleep(0.5)
        on_bus_at_kill, _ = _bus_windows(bus)
        stored_at_kill = _stored(influxdb, db)
        waiting = {s: set(on_bus_at_kill[s]) - set(stored_at_kill[s]) for s in SEGMENTS}
        # the kill caught windows on their way: on the bus, not yet in the store
        assert any(waiting.values()), (on_bus_at_kill, stored_at_kill)

        proc = _start(config, log)
        last = max(max(v) for v in on_bus_at_kill.values())
        wait_for(
            lambda: all(max(_bus_windows(bus)[0][s]) > last + 4000 for s in SEGMENTS),
            120, "windows after the restart on the bus", interval_s=0.5,
        )  # fmt: skip
        stop_process(proc, timeout_s=30)
    finally:
        stop_process(proc, timeout_s=30)
        bus.close()
    time.sleep(1.0)
    on_bus, copies = _bus_windows(bus)
    stored = _stored(influxdb, db)
    print(f"windows waiting at the kill: {waiting}; copies the de-duplication dropped: {copies}")
    for segment in SEGMENTS:
        assert waiting[segment] <= set(stored[segment]), f"{segment}: a window lost at the kill"
        assert len(on_bus[segment]) == len(set(on_bus[segment])), f"{segment}: twice on the bus"
        assert len(stored[segment]) == len(set(stored[segment])), f"{segment}: twice stored"
        assert sorted(on_bus[segment]) == sorted(stored[segment]), f"{segment}: only on one"
    text = log.read_text(errors="replace")
    assert "Traceback" not in text
