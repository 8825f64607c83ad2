"""The engine on real clips, publishing to a real Mosquitto and storing in a real InfluxDB.

What the engine measured (its metrics listener) is compared with what a real paho
subscriber received (validated against the JSON Schemas in ``atcs/contract``) and with the
rows read back from InfluxDB 1.6 (v1 API directly, v2 API through nginx). Then the servers
go down mid-run and the engine itself is restarted while both are down: every window must
arrive exactly once in each place, in order.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from atcs.bus import Deduplicator, MqttBus, TopicKind, Topics
from atcs.bus.payloads import decode_segment_metrics
from atcs.bus.schemas import load_schema
from atcs.config import AtcsConfig, InfluxConfig, MqttConfig, load_config
from atcs.outputs import build_outputs
from atcs.service import Engine, EngineTiming
from atcs.storage import InfluxSink, InfluxWriter, V1Writer, V2Writer
from atcs.storage.lineprotocol import timestamp
from atcs.types import Direction, SegmentMetrics, SiteId, VehicleClass
from tests.support.influxdb import InfluxServer, NginxProxy, new_db
from tests.support.mosquitto import Collector, Mosquitto, MosquittoFactory, Received
from tests.support.sites import two_clip_site_toml
from tests.support.wait import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SITE = SiteId("test")
TOPICS = Topics()
SEGMENTS = ("inbound", "carriageway")
INFLUX_FAST: dict[str, Any] = {
    "flush_interval_s": 0.2,
    "retry_initial_s": 0.2,
    "retry_max_s": 0.5,
    "batch_size": 200,
    "timeout_s": 3.0,
}


def site_toml(media_dir: Path, model_path: str, state_dir: Path, extra: str = "") -> str:
    """Two live cameras (clips played at their own rate), 2 s windows, ~3 frames/s each."""
    counting_line = """
[[lines]]
id = "inbound-count"
camera = "pontianak"
segment = "inbound"
points = [[0.50, 0.60], [1.00, 0.60]]
"""
    return two_clip_site_toml(
        media_dir,
        model_path,
        state_dir,
        site_id=SITE,
        sample_fps=3.0,
        stop_line=True,
        extra=counting_line + extra,
    )


def make_config(tmp_path: Path, media_dir: Path, model_path: str, extra: str = "") -> AtcsConfig:
    path = tmp_path / "site.toml"
    path.write_text(site_toml(media_dir, model_path, tmp_path / "state", extra))
    return load_config(path)


def mqtt_config(broker: Mosquitto) -> MqttConfig:
    return MqttConfig(host=broker.host, port=broker.port, reconnect_min_s=1, reconnect_max_s=1)


def v1_config(server: InfluxServer, db: str) -> InfluxConfig:
    return InfluxConfig.model_validate(
        {"api": "v1", "url": server.url, "database": db, **INFLUX_FAST}
    )


def v2_config(proxy: NginxProxy, db: str) -> InfluxConfig:
    return InfluxConfig.model_validate({"api": "v2", "url": proxy.url, "bucket": db, **INFLUX_FAST})


# What arrived where ------------------------------------------------------------------------


def validate_by_schema(msg: Received) -> dict[str, Any]:
    """The payload as JSON, checked against the contract's schema of its topic."""
    doc = json.loads(msg.payload)
    schema = load_schema(TOPICS.parse(msg.topic).kind)
    errors = list(Draft7Validator(schema).iter_errors(doc))
    assert not errors, f"{msg.topic}: {errors[0].message}"
    assert isinstance(doc, dict)
    return doc


def mqtt_windows(messages: Sequence[Received]) -> list[SegmentMetrics]:
    """Segment metrics received, after the documented de-duplication, in arrival order."""
    dedup = Deduplicator()
    out = []
    for msg in messages:
        parsed = TOPICS.parse(msg.topic)
        if parsed.kind is not TopicKind.SEGMENT_METRICS:
            continue
        validate_by_schema(msg)
        got = decode_segment_metrics(msg.payload, parsed.ident)
        if dedup.accept(msg.topic, got.meta):
            out.append(got.record)
    return out


def of_segment(windows: Sequence[SegmentMetrics], segment: str) -> list[SegmentMetrics]:
    return [w for w in windows if w.segment_id == segment]


def assert_mqtt_matches(received: list[SegmentMetrics], produced: list[SegmentMetrics]) -> None:
    """Per segment (one topic each): the same records, each once, in the engine's order."""
    for seg in SEGMENTS:
        got, want = of_segment(received, seg), of_segment(produced, seg)
        assert [w.window_end for w in got] == [w.window_end for w in want], seg
        assert got == want, f"{seg}: MQTT payloads differ from the engine's measures"


def influx_rows(server: InfluxServer, db: str) -> list[dict[str, Any]]:
    rows = server.rows("SELECT * FROM segment_metrics GROUP BY * ORDER BY time", db, epoch="ms")
    return sorted(rows, key=lambda r: (r["segment"], r["time"]))


def assert_row_matches(row: dict[str, Any], m: SegmentMetrics) -> None:
    """One InfluxDB row against the engine's measures, field by field (docs/influxdb.md)."""
    assert row["time"] == timestamp(m.window_end, "ms")
    assert (row["site"], row["camera"], row["segment"]) == (m.site_id, m.camera_id, m.segment_id)
    assert row["frames"] == m.frames
    assert row["window_s"] == m.window_s
    for key in ("vehicles", "pcu", "density_pcu_km_lane", "occupancy", "flow_veh_h"):
        assert row[key] == getattr(m, key), key
    for vc in VehicleClass:
        assert row[f"vehicles_{vc.label}"] == m.vehicles_by_class.get(vc, 0.0)
        for d in Direction:
            flows = [f for f in m.flows if f.vehicle_class is vc and f.direction is d]
            assert row[f"flow_{vc.label}_{d.value}_veh_h"] == sum(f.flow_veh_h for f in flows)
            assert row[f"crossings_{vc.label}_{d.value}"] == sum(f.count for f in flows)
    assert row["queue_m"] == m.queue_m
    assert row["queue_max_m"] == m.queue_max_m
    assert row["los"] == m.los.value
    assert row["congested"] is m.congested
    assert row["stale"] is m.stale


def assert_influx_matches(rows: list[dict[str, Any]], produced: list[SegmentMetrics]) -> None:
    """Exactly one row per window (identity: tags + time), equal to the engine's measures."""
    want = sorted(produced, key=lambda m: (m.segment_id, m.window_end))
    keys = [(m.segment_id, timestamp(m.window_end, "ms")) for m in want]
    assert len(set(keys)) == len(keys), "two windows of a segment end in the same millisecond"
    assert [(r["segment"], r["time"]) for r in rows] == keys
    for row, m in zip(rows, want, strict=True):
        assert_row_matches(row, m)


class RecordingWriter:
    """A real writer that also records every body the server acknowledged, in order."""

    def __init__(self, inner: InfluxWriter) -> None:
        self.inner = inner
        self.bodies: list[bytes] = []

    @property
    def target(self) -> str:
        return self.inner.target

    def write(self, body: bytes, precision: Any) -> None:
        self.inner.write(body, precision)
        self.bodies.append(body)

    def close(self) -> None:
        self.inner.close()


_METRICS_LINE = re.compile(rb"^segment_metrics,.*?segment=([^, ]+).* (\d+)$")


def written_windows(writers: Sequence[RecordingWriter]) -> list[tuple[str, int]]:
    """(segment, time in ms) of every segment_metrics line the servers acknowledged, in order."""
    out = []
    for writer in writers:
        for body in writer.bodies:
            for line in body.splitlines():
                found = _METRICS_LINE.match(line)
                if found:
                    out.append((found.group(1).decode(), int(found.group(2))))
    return out


def no_loss(health: dict[str, Any]) -> dict[str, Any]:
    """The loss counters of a sink's health that are not zero."""
    lossy = ("dropped_", "points_refused", "points_lost", "points_rejected", "points_invalid")
    return {k: v for k, v in health.items() if k.startswith(lossy) and v}


# Round trip --------------------------------------------------------------------------------


def test_engine_round_trip_to_mqtt_and_influxdb_v1_and_v2(
    tmp_path: Path,
    media_dir: Path,
    model_path: str,
    mosquitto: Mosquitto,
    influxdb: InfluxServer,
    influx_v2_proxy: NginxProxy,
    collectors: list[Collector],
) -> None:
    db_v1, db_v2 = new_db("engine_v1"), new_db("engine_v2")
    influxdb.query(f'CREATE DATABASE "{db_v2}"', method="POST")  # v2 never creates buckets
    extra = f"""
[mqtt]
host = "{mosquitto.host}"
port = {mosquitto.port}

[influx]
api = "v1"
url = "{influxdb.url}"
database = "{db_v1}"
flush_interval_s = 0.2
"""
    cfg = make_config(tmp_path, media_dir, model_path, extra)
    sub = Collector(mosquitto, "atcs/v1/#")
    collectors.append(sub)
    outputs = build_outputs(cfg)  # what `atcs run` builds: MqttBus and the v1 InfluxSink
    assert isinstance(outputs.bus, MqttBus)
    v2_sink = InfluxSink(v2_config(influx_v2_proxy, db_v2), SITE, tmp_path / "state-v2")
    produced: list[SegmentMetrics] = []
    engine = Engine(cfg, sinks=[*outputs.sinks, v2_sink], listeners=[produced.extend])
    engine.run(duration_s=9.0)  # closing the sinks flushes them

    for seg in SEGMENTS:
        live = [w for w in of_segment(produced, seg) if w.frames > 0]
        assert len(live) >= 3, f"{seg}: the engine measured too few windows"
    assert any(w.vehicles > 0 for w in of_segment(produced, "inbound"))
    assert any(w.queue_m is not None for w in of_segment(produced, "carriageway"))
    assert all(w.queue_m is None for w in of_segment(produced, "inbound"))

    def all_arrived(ms: list[Received]) -> bool:
        said_offline = any(
            TOPICS.parse(m.topic).kind is TopicKind.ENGINE_STATUS
            and json.loads(m.payload)["state"] == "offline"
            for m in ms
        )
        return said_offline and len(mqtt_windows(ms)) >= len(produced)

    assert sub.wait_for(all_arrived, 10), "not every window (or the offline status) arrived"
    messages = sub.snapshot()
    kinds = {TOPICS.parse(m.topic).kind for m in messages}
    assert {TopicKind.ENGINE_STATUS, TopicKind.CAMERA_STATUS, TopicKind.SEGMENT_METRICS} <= kinds
    for msg in messages:
        validate_by_schema(msg)  # every message of every kind keeps the contract
    assert_mqtt_matches(mqtt_windows(messages), produced)
    offline = [m for m in messages if TOPICS.parse(m.topic).kind is TopicKind.ENGINE_STATUS]
    assert json.loads(offline[-1].payload)["state"] == "offline", "clean shutdown says offline"

    assert_influx_matches(influx_rows(influxdb, db_v1), produced)
    assert_influx_matches(influx_rows(influxdb, db_v2), produced)
    cams = influxdb.rows("SELECT last(state) FROM camera_health GROUP BY camera", db_v1)
    assert {r["camera"] for r in cams} == {"pontianak", "motorway"}
    for sink in engine.sinks:
        assert not no_loss(dict(sink.health()))


# Outages -----------------------------------------------------------------------------------


class EngineRun:
    """An :class:`Engine` with its own sinks, run on a background thread."""

    def __init__(
        self,
        cfg: AtcsConfig,
        broker: Mosquitto,
        v1: tuple[InfluxServer, str],
        v2: tuple[NginxProxy, str],
        state_dir: Path,
    ) -> None:
        self.bus = MqttBus(mqtt_config(broker), site_id=SITE, state_dir=state_dir)
        v1_cfg, v2_cfg = v1_config(*v1), v2_config(*v2)
        self.v1_writer = RecordingWriter(V1Writer(v1_cfg))
        self.v2_writer = RecordingWriter(V2Writer(v2_cfg))
        self.v1 = InfluxSink(v1_cfg, SITE, state_dir, writer=self.v1_writer)
        self.v2 = InfluxSink(v2_cfg, SITE, state_dir / "v2", writer=self.v2_writer)
        self.produced: list[SegmentMetrics] = []
        self.engine = Engine(
            cfg,
            sinks=[self.bus, self.v1, self.v2],
            listeners=[self.produced.extend],
            timing=EngineTiming(join_timeout_s=5.0),
        )
        self.failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name="engine-under-test")
        self._thread.start()

    def _run(self) -> None:
        try:
            self.engine.run()
        except BaseException as exc:  # handed to the test thread in stop()
            self.failure.append(exc)

    def wait_windows(self, n: int, timeout_s: float = 30.0) -> None:
        """Wait until the engine has produced ``n`` more windows (all segments)."""
        target = len(self.produced) + n
        wait_for(lambda: len(self.produced) >= target, timeout_s, f"{n} more windows")

    def stop(self) -> None:
        self.engine.stop()
        self._thread.join(60)
        assert not self._thread.is_alive(), "the engine did not stop"
        if self.failure:
            raise self.failure[0]


def kill_between_messages(broker: Mosquitto, sub: Collector, run: EngineRun) -> None:
    """SIGKILL the broker just after a window reached the subscriber with nothing in flight.

    A broker killed without saving loses what it acknowledged and had not yet delivered
    (docs/mqtt.md): that is Mosquitto's durability, not the engine's, so the kill comes when
    the engine has nothing unacknowledged and the next window is about 2 s away.
    """
    seen = len(sub.snapshot())

    def quiet() -> bool:
        h = run.bus.health()
        return len(sub.snapshot()) > seen and h["inflight"] == 0 and h["disk_queue"] == 0

    wait_for(quiet, 15, "a quiet moment on the bus")
    broker.kill()


def test_outages_and_engine_restart_every_window_arrives_once_in_order(
    tmp_path: Path,
    media_dir: Path,
    model_path: str,
    mosquitto_factory: MosquittoFactory,
    make_influxdb: Callable[..., InfluxServer],
    make_nginx_proxy: Callable[[InfluxServer], NginxProxy],
    collectors: list[Collector],
) -> None:
    broker = mosquitto_factory(persistence=True)
    sub = Collector(broker, "atcs/v1/segments/#", persistent=True, client_id="engine-outage-sub")
    collectors.append(sub)
    broker.save()  # the subscriber's session survives the kills below
    server = make_influxdb()
    proxy = make_nginx_proxy(server)
    db_v1, db_v2 = new_db("outage_v1"), new_db("outage_v2")
    server.query(f'CREATE DATABASE "{db_v2}"', method="POST")
    cfg = make_config(tmp_path, media_dir, model_path)
    state = tmp_path / "state"

    first = EngineRun(cfg, broker, (server, db_v1), (proxy, db_v2), state)
    first.wait_windows(4)

    # the broker crashes for a few seconds mid-run
    kill_between_messages(broker, sub, first)
    first.wait_windows(2)
    assert first.bus.health()["connected"] is False
    broker.restart()
    wait_for(lambda: first.bus.health()["connected"] is True, 10, "the bus reconnected")

    # InfluxDB stops for a few seconds mid-run (nginx answers 502 meanwhile)
    server.stop()
    first.wait_windows(4)
    server.start()
    first.wait_windows(2)

    # both go down, and the engine is restarted while they are down
    broker.save()
    kill_between_messages(broker, sub, first)
    server.stop()
    first.wait_windows(2)
    first.stop()
    assert int(first.bus.health()["disk_queue"]) > 0, "the windows produced meanwhile wait on disk"
    assert int(first.v1.health()["spool_points"]) > 0
    second = EngineRun(cfg, broker, (server, db_v1), (proxy, db_v2), state)
    second.wait_windows(4)
    assert second.bus.health()["connected"] is False
    broker.restart()
    server.start()
    second.wait_windows(4)
    second.stop()

    produced = first.produced + second.produced
    assert len({(w.segment_id, w.window_end) for w in produced}) == len(produced)
    for seg in SEGMENTS:
        ends = [w.window_end for w in of_segment(produced, seg)]
        assert ends == sorted(ends), f"{seg}: the engine's own windows are in order"

    def all_arrived(ms: list[Received]) -> bool:
        return len(mqtt_windows(ms)) >= len(produced)

    assert sub.wait_for(all_arrived, 20), "not every window reached the subscriber"
    time.sleep(1.0)  # late duplicates, if any, would arrive now
    messages = sub.snapshot()
    assert_mqtt_matches(mqtt_windows(messages), produced)
    streams = {json.loads(m.payload)["stream"] for m in messages}
    assert len(streams) == 1, "one message stream across the engine restart"
    copies: dict[tuple[str, int], bytes] = {}
    for msg in messages:  # a copy (a resend) is byte-identical to the first delivery
        doc = json.loads(msg.payload)
        assert copies.setdefault((doc["stream"], doc["seq"]), msg.payload) == msg.payload

    expected_order = [(str(w.segment_id), timestamp(w.window_end, "ms")) for w in produced]
    for rows_db, writers in (
        (db_v1, [first.v1_writer, second.v1_writer]),
        (db_v2, [first.v2_writer, second.v2_writer]),
    ):
        assert_influx_matches(influx_rows(server, rows_db), produced)
        assert written_windows(writers) == expected_order, f"{rows_db}: write order"

    assert int(first.bus.health()["disconnects"]) >= 1
    assert int(first.v1.health()["points_spooled"]) > 0
    assert int(first.v2.health()["points_spooled"]) > 0
    assert int(second.v1.health()["points_replayed"]) > 0
    for run in (first, second):
        for sink in run.engine.sinks:
            assert not no_loss(dict(sink.health())), sink
