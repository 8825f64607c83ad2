"""The engine's MQTT bus against real Mosquitto brokers started by the suite."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from jsonschema import Draft7Validator
from paho.mqtt.enums import CallbackAPIVersion

from atcs.bus import Deduplicator, Override, OverrideAction, PlanAck, TopicKind, Topics
from atcs.bus.messages import AckResult, EngineState
from atcs.bus.payloads import (
    decode_camera_status,
    decode_engine_status,
    decode_segment_metrics,
    decode_timing_plan,
)
from atcs.bus.schemas import load_schema
from atcs.errors import BusError
from atcs.types import CameraState, IntersectionId
from tests.support import samples as s
from tests.support.buses import BusFactory
from tests.support.mosquitto import Collector, Mosquitto, MosquittoFactory, Received, TlsFiles
from tests.support.signing import TEST_KEYS
from tests.support.wait import poll

pytestmark = pytest.mark.integration

TOPICS = Topics()
IX = IntersectionId("ix-1")
KEYS = TEST_KEYS


def _kind(topic: str) -> TopicKind:
    return TOPICS.parse(topic).kind


def _validate_by_schema(msg: Received) -> dict[str, Any]:
    doc = json.loads(msg.payload)
    errors = list(Draft7Validator(load_schema(_kind(msg.topic))).iter_errors(doc))
    assert not errors, f"{msg.topic}: {errors[0].message}"
    return doc  # type: ignore[no-any-return]


def _windows(messages: list[Received], segment: str) -> list[int]:
    """Window numbers of ``segment`` after the documented dedup, in arrival order."""
    dedup = Deduplicator()
    out = []
    for msg in messages:
        if f"/segments/{segment}/" not in msg.topic:
            continue
        got = decode_segment_metrics(msg.payload, segment)
        if dedup.accept(msg.topic, got.meta):
            out.append(round(got.record.vehicles - 3.25))
    return out


def _raw_copies_are_exact(messages: list[Received]) -> int:
    """Every repeated (stream, seq) is a byte-identical copy; return how many copies."""
    seen: dict[tuple[str, int], bytes] = {}
    copies = 0
    for msg in messages:
        doc = json.loads(msg.payload)
        key = (doc["stream"], doc["seq"])
        if key in seen:
            assert seen[key] == msg.payload
            copies += 1
        seen[key] = msg.payload
    return copies


def _down_broker_with_subscriber(
    factory: MosquittoFactory, collectors: list[Collector], topic_filter: str
) -> tuple[Mosquitto, Collector]:
    """A broker that is down now but keeps a persistent subscriber's session for its restart."""
    broker = factory(persistence=True)
    sub = Collector(broker, topic_filter, persistent=True, client_id="atcs-test-subscriber")
    collectors.append(sub)
    broker.save()
    broker.kill()
    return broker, sub


# Round trip -----------------------------------------------------------------------------


@pytest.mark.parametrize(("protocol", "clean"), [("3.1.1", True), ("5", False)])
def test_round_trip_validated_by_schemas_and_retained_for_late_subscribers(
    mosquitto: Mosquitto,
    make_bus: BusFactory,
    collectors: list[Collector],
    protocol: str,
    clean: bool,
) -> None:
    sub = Collector(mosquitto, "atcs/v1/#")
    collectors.append(sub)
    bus = make_bus(mosquitto, protocol=protocol, clean_session=clean, client_id="engine-1")
    sent = [s.metrics(i, seg) for i in range(3) for seg in ("seg-a", "seg-b")]
    bus.on_metrics(sent[:2])
    bus.on_metrics(sent[2:])
    bus.on_camera_status(s.camera_status(CameraState.STALLED))
    bus.on_plan(s.plan())
    assert sub.wait_for(lambda ms: len(ms) >= 1 + 6 + 2, 10), sub.snapshot()

    got = sub.snapshot()
    docs = [_validate_by_schema(m) for m in got]
    assert all(d["schema"].startswith("atcs.") for d in docs)
    status = decode_engine_status(got[0].payload)
    assert got[0].topic == "atcs/v1/status"
    assert (status.state, status.client_id) == (EngineState.ONLINE, "engine-1")
    metrics = [
        decode_segment_metrics(m.payload, TOPICS.parse(m.topic).ident).record
        for m in got
        if _kind(m.topic) is TopicKind.SEGMENT_METRICS
    ]
    assert metrics == sent
    seqs = [d["seq"] for d in docs if "seq" in d]
    assert seqs == list(range(1, 9))
    cams = [m for m in got if _kind(m.topic) is TopicKind.CAMERA_STATUS]
    assert decode_camera_status(cams[0].payload).record == s.camera_status(CameraState.STALLED)
    plans = [m for m in got if _kind(m.topic) is TopicKind.TIMING_PLAN]
    assert plans[0].topic == "atcs/v1/intersections/ix-1/plan"
    assert decode_timing_plan(plans[0].payload).record == s.plan()
    assert poll(lambda: bus.health()["published"] == 8 and bus.health()["disk_queue"] == 0, 5)

    late = Collector(mosquitto, "atcs/v1/#")
    collectors.append(late)
    assert late.wait_for(lambda ms: len(ms) >= 5, 5)
    retained = {m.topic: m for m in late.snapshot()}
    assert all(m.retain for m in retained.values())
    assert set(retained) == {
        "atcs/v1/status",
        "atcs/v1/segments/seg-a/metrics",
        "atcs/v1/segments/seg-b/metrics",
        "atcs/v1/cameras/cam-1/status",
        "atcs/v1/intersections/ix-1/plan",
    }
    last_a = decode_segment_metrics(retained["atcs/v1/segments/seg-a/metrics"].payload)
    assert last_a.record == s.metrics(2, "seg-a")


def test_last_will_marks_a_killed_engine_offline(
    mosquitto: Mosquitto, collectors: list[Collector], tmp_path: Path
) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from atcs.bus import MqttBus
        from atcs.config.bus import MqttConfig
        from atcs.types import SiteId
        bus = MqttBus(MqttConfig(port={mosquitto.port}, client_id="doomed"),
                      site_id=SiteId("demo"), state_dir={str(tmp_path / "s")!r})
        bus.start()
        while not bus.health()["connected"]:
            time.sleep(0.05)
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready", proc.stderr.read() if proc.stderr else ""
        sub = Collector(mosquitto, "atcs/v1/status")
        collectors.append(sub)
        online = lambda ms: any(b'"online"' in m.payload for m in ms)  # noqa: E731
        assert sub.wait_for(online, 5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert sub.wait_for(lambda ms: b'"offline"' in ms[-1].payload, 10)
    finally:
        proc.kill()
        proc.wait(10)
    will = decode_engine_status(sub.snapshot()[-1].payload)
    assert (will.state, will.client_id, will.at) == (EngineState.OFFLINE, "doomed", None)
    later = Collector(mosquitto, "atcs/v1/status")  # the will is retained
    collectors.append(later)
    assert later.wait_for(lambda ms: bool(ms) and ms[0].retain, 5)
    assert decode_engine_status(later.snapshot()[0].payload).state is EngineState.OFFLINE


def test_clean_close_publishes_retained_offline(
    mosquitto: Mosquitto, make_bus: BusFactory, collectors: list[Collector]
) -> None:
    sub = Collector(mosquitto, "atcs/v1/status")
    collectors.append(sub)
    bus = make_bus(mosquitto)
    assert sub.wait_for(lambda ms: any(b'"online"' in m.payload for m in ms), 5)
    bus.close(timeout_s=2)
    assert sub.wait_for(lambda ms: b'"offline"' in ms[-1].payload, 5)
    assert decode_engine_status(sub.snapshot()[-1].payload).at is not None


def test_close_survives_a_link_that_dropped_just_before_the_offline_status(
    mosquitto: Mosquitto, make_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # CI saw close() raise paho's "not currently connected" when the connection dropped
    # between the link's check and the offline status's publish; here the link still says
    # connected while the client has no connection at all.
    bus = make_bus(mosquitto, start=False)
    bus._client = mqtt.Client(CallbackAPIVersion.VERSION2)  # never connected
    bus._link.connected = True
    with caplog.at_level(logging.WARNING, logger="atcs.bus.publisher"):
        bus.close(timeout_s=1)  # must not raise into the service's shutdown
    assert any("offline status was not sent" in r.getMessage() for r in caplog.records)


# Authentication and TLS -----------------------------------------------------------------


def test_password_from_environment_right_and_wrong(
    mosquitto_factory: MosquittoFactory,
    make_bus: BusFactory,
    collectors: list[Collector],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = mosquitto_factory(username="atcs", password="s3cret-right")
    sub = Collector(broker, "atcs/v1/segments/#", username="atcs", password="s3cret-right")
    collectors.append(sub)
    good = make_bus(broker, tmp_path / "good", {"MQTT_PW": "s3cret-right"},
                    username="atcs", password_env="MQTT_PW")  # fmt: skip
    good.on_metrics([s.metrics(0)])
    assert sub.wait_for(lambda ms: len(ms) == 1, 10)

    caplog.set_level(logging.INFO, logger="atcs.bus")
    bad = make_bus(broker, tmp_path / "bad", {"MQTT_PW": "wrong-pass-123"},
                   username="atcs", password_env="MQTT_PW", client_id="bad-one")  # fmt: skip
    bad.on_metrics([s.metrics(1)])
    assert poll(lambda: "refused" in str(bad.health()["last_error"]), 10)
    assert poll(lambda: bad.health()["disk_queue"] == 1, 5)  # kept, not lost
    health = bad.health()
    assert health["connected"] is False
    assert "not authori" in str(health["last_error"]).lower()
    assert "MQTT_PW" in str(health["last_error"])
    assert any("refused the connection" in r.getMessage() for r in caplog.records)
    assert "wrong-pass-123" not in caplog.text
    assert "s3cret-right" not in caplog.text
    assert len(sub.snapshot()) == 1

    with pytest.raises(BusError, match="MQTT_PW is not set"):
        make_bus(broker, tmp_path / "none", {}, username="atcs", password_env="MQTT_PW")


def test_tls_with_client_certificate(
    mosquitto_factory: MosquittoFactory,
    make_bus: BusFactory,
    collectors: list[Collector],
    tls_files: TlsFiles,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = mosquitto_factory(tls=tls_files, require_client_cert=True)
    sub = Collector(broker, "atcs/v1/segments/#", tls=tls_files)
    collectors.append(sub)
    tls = {
        "tls": True,
        "ca_file": str(tls_files.ca_file),
        "cert_file": str(tls_files.client_cert),
        "key_file": str(tls_files.client_key),
    }
    good = make_bus(broker, tmp_path / "good", **tls)
    good.on_metrics([s.metrics(0)])
    assert sub.wait_for(lambda ms: len(ms) == 1, 10)
    assert json.loads(sub.snapshot()[0].payload)["segment"] == "seg-a"

    caplog.set_level(logging.WARNING, logger="atcs.bus")
    other = {**tls, "ca_file": str(tls_files.other_ca_file)}
    wrong_ca = make_bus(broker, tmp_path / "wrong", client_id="wrong-ca", **other)
    no_cert = make_bus(broker, tmp_path / "nocert", tls=True, ca_file=str(tls_files.ca_file),
                       client_id="no-cert")  # fmt: skip
    wrong_ca.on_metrics([s.metrics(1)])
    for bus in (wrong_ca, no_cert):
        assert poll(lambda b=bus: int(b.health()["connect_failures"]) >= 1, 10)  # type: ignore[misc]
        assert bus.health()["connected"] is False
    assert poll(lambda: wrong_ca.health()["disk_queue"] == 1, 5)
    assert any("cannot connect to MQTT broker" in r.getMessage() for r in caplog.records)
    assert len(sub.snapshot()) == 1
    with pytest.raises(BusError, match="not found"):
        make_bus(broker, tmp_path / "x", tls=True, ca_file=str(tmp_path / "missing.pem"))


# Outages --------------------------------------------------------------------------------


def test_broker_killed_mid_stream_every_window_arrives_once_in_order(
    mosquitto_factory: MosquittoFactory, make_bus: BusFactory, collectors: list[Collector]
) -> None:
    broker = mosquitto_factory(persistence=True)
    sub = Collector(broker, "atcs/v1/segments/#", persistent=True, client_id="sub-kill")
    collectors.append(sub)
    broker.save()  # the subscriber's session survives the crash below
    bus = make_bus(broker, reconnect_min_s=1, reconnect_max_s=1)
    n = 300

    def produce() -> None:
        for i in range(n):
            bus.on_metrics([s.metrics(i, "seg-a"), s.metrics(i, "seg-b")])
            time.sleep(0.01)

    producer = threading.Thread(target=produce)
    producer.start()
    assert sub.wait_for(lambda ms: len(ms) > 100, 10)
    broker.kill()  # SIGKILL mid-stream
    time.sleep(1.5)
    broker.restart()
    producer.join()

    def done(ms: list[Received]) -> bool:
        return _windows(ms, "seg-a")[-1:] == [n - 1] and _windows(ms, "seg-b")[-1:] == [n - 1]

    assert sub.wait_for(done, 30)
    got = sub.snapshot()
    assert _windows(got, "seg-a") == list(range(n))
    assert _windows(got, "seg-b") == list(range(n))
    _raw_copies_are_exact(got)
    health = bus.health()
    assert int(health["disconnects"]) >= 1
    assert poll(lambda: bus.health()["disk_queue"] == 0, 5)
    assert bus.health()["published"] == 2 * n


def test_engine_restarted_while_broker_down_delivers_the_disk_queue_after(
    mosquitto_factory: MosquittoFactory,
    make_bus: BusFactory,
    collectors: list[Collector],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = mosquitto_factory(persistence=True)
    sub = Collector(broker, "atcs/v1/segments/#", persistent=True, client_id="sub-restart")
    collectors.append(sub)
    broker.save()
    state = tmp_path / "state"
    first = make_bus(broker, state, reconnect_min_s=1, reconnect_max_s=1)
    first.on_metrics([s.metrics(i) for i in range(20)])
    assert sub.wait_for(lambda ms: len(ms) == 20, 10)
    broker.kill()
    caplog.set_level(logging.INFO, logger="atcs.bus")
    for i in range(20, 40):
        first.on_metrics([s.metrics(i)])
    assert poll(lambda: first.health()["disk_queue"] == 20, 5)
    started = time.monotonic()
    first.close(timeout_s=5)
    assert time.monotonic() - started < 3  # does not wait for a broker that is down

    second = make_bus(broker, state, reconnect_min_s=1, reconnect_max_s=1)
    assert second.health()["disk_queue"] == 20
    second.on_metrics([s.metrics(i) for i in range(40, 60)])

    def unreachable_logged() -> bool:
        return any("cannot connect to MQTT broker" in r.getMessage() for r in caplog.records)

    assert poll(unreachable_logged, 5)
    assert second.health()["connected"] is False
    broker.restart()
    assert sub.wait_for(lambda ms: _windows(ms, "seg-a")[-1:] == [59], 20)
    got = sub.snapshot()
    assert _windows(got, "seg-a") == list(range(60))
    docs = [json.loads(m.payload) for m in got]
    assert len({d["stream"] for d in docs}) == 1  # one stream across the restart
    assert [d["seq"] for d in docs if d["seq"] > 20] == list(range(21, 61))
    assert poll(lambda: second.health()["disk_queue"] == 0, 5)


def test_bound_hit_drops_oldest_metrics_first_and_counts(
    mosquitto_factory: MosquittoFactory,
    make_bus: BusFactory,
    collectors: list[Collector],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, sub = _down_broker_with_subscriber(mosquitto_factory, collectors, "atcs/v1/#")
    caplog.set_level(logging.WARNING, logger="atcs.bus")
    bus = make_bus(broker, queue_max_messages=10, reconnect_min_s=1, reconnect_max_s=1)
    bus.on_plan(s.plan())
    bus.on_camera_status(s.camera_status())
    bus.on_metrics([s.metrics(i) for i in range(25)])
    assert poll(lambda: bus.health()["dropped_segment_metrics"] == 17, 5), bus.health()
    assert bus.health()["disk_queue"] == 10
    assert bus.health()["dropped_timing_plan"] == 0
    assert any("dropped oldest 17 segment_metrics" in r.getMessage() for r in caplog.records)
    broker.restart()
    assert sub.wait_for(lambda ms: sum(1 for m in ms if "/segments/" in m.topic) == 8, 20)
    time.sleep(0.3)
    got = [m for m in sub.snapshot() if m.topic != "atcs/v1/status"]
    kinds = [_kind(m.topic) for m in got]
    assert kinds[:2] == [TopicKind.TIMING_PLAN, TopicKind.CAMERA_STATUS]
    assert _windows(got, "seg-a") == list(range(17, 25))  # the newest 8 windows, in order


def test_full_disk_keeps_what_was_accepted_and_recovers(
    mosquitto_factory: MosquittoFactory,
    make_bus: BusFactory,
    collectors: list[Collector],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, sub = _down_broker_with_subscriber(mosquitto_factory, collectors, "atcs/v1/segments/#")
    bus = make_bus(broker, reconnect_min_s=1, reconnect_max_s=1)
    bus.on_metrics([s.metrics(i) for i in range(3)])
    assert poll(lambda: bus.health()["disk_queue"] == 3, 5)
    assert bus._sender is not None
    outbox = bus._sender.outbox
    pages = outbox.journal.db.execute("PRAGMA page_count").fetchone()[0]
    outbox.journal.db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full now
    caplog.set_level(logging.ERROR, logger="atcs.bus")
    bus.on_metrics([s.metrics(i) for i in range(3, 60)])
    assert poll(lambda: "full" in str(bus.health()["queue_error"]), 5), bus.health()
    assert bus.health()["disk_queue"] == 3
    assert bus.health()["memory_queue"] == 57
    assert any("cannot write the MQTT disk queue" in r.getMessage() for r in caplog.records)
    outbox.journal.db.execute("PRAGMA max_page_count = 1073741823")  # space again
    assert poll(lambda: bus.health()["disk_queue"] == 60, 5), bus.health()
    assert bus.health()["queue_error"] == ""
    broker.restart()
    assert sub.wait_for(lambda ms: _windows(ms, "seg-a")[-1:] == [59], 20)
    assert _windows(sub.snapshot(), "seg-a") == list(range(60))


# Incoming control -----------------------------------------------------------------------


def test_malformed_incoming_messages_are_logged_and_dropped(
    mosquitto: Mosquitto,
    make_bus: BusFactory,
    collectors: list[Collector],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="atcs.bus")
    bus = make_bus(mosquitto)
    acks: list[PlanAck] = []
    overrides: list[Override] = []
    bus.on_ack(acks.append)

    def picky(ov: Override) -> None:
        if ov.why == "explode":
            raise RuntimeError("handler bug")
        overrides.append(ov)

    bus.on_override(picky)
    sender = Collector(mosquitto, "unused/#")
    collectors.append(sender)
    probe = Override(IX, OverrideAction.HOLD, "op", "probe")
    assert poll(lambda: bool(sender.client.publish(TOPICS.override(IX), KEYS.override(probe), 1))
                 and any(o.why == "probe" for o in overrides), 10)  # fmt: skip
    bad = [
        (TOPICS.override(IX), b"\x00\xff garbage"),
        (TOPICS.override(IX), b'{"schema": "someone.else/3", "action": "hold"}'),
        (TOPICS.override(IX), b'{"schema": "atcs.override/1", "action": "fixed", "who": "x", '
                              b'"why": "no plan"}'),
        (TOPICS.plan_ack(IX), b'{"schema": "atcs.plan_ack/1", "plan_id": "p"}'),
        (TOPICS.plan_ack(IX), json.dumps([1, 2]).encode()),
    ]  # fmt: skip
    for topic, payload in bad:
        sender.client.publish(topic, payload, qos=1)
    boom = Override(IX, OverrideAction.HOLD, "op", "explode")
    sender.client.publish(TOPICS.override(IX), KEYS.override(boom), qos=1)
    release = Override(IX, OverrideAction.RELEASE, "Kompol Sari", "parade over")
    ack = PlanAck(IX, "p-1", AckResult.APPLIED)
    sender.client.publish(TOPICS.override(IX), KEYS.override(release), qos=1)
    sender.client.publish(TOPICS.plan_ack(IX), KEYS.ack(ack), qos=1)
    assert poll(lambda: bool(acks) and overrides[-1:] == [release], 10)
    assert acks == [ack]
    assert [o.why for o in overrides if o.why != "probe"] == ["parade over"]
    health = bus.health()
    assert health["control_malformed"] == len(bad)
    assert health["control_handler_errors"] == 1
    assert health["connected"] is True
    dropped = [r.getMessage() for r in caplog.records if "dropped malformed" in r.getMessage()]
    assert len(dropped) == len(bad)
    assert any("foreign message" in d for d in dropped)
    assert any("not JSON" in d or "not UTF-8" in d for d in dropped)
    assert any("'fixed' needs plan_name or greens_s" in d for d in dropped)
    # a retained override (against the contract) is ignored, not applied on every connect
    sender.client.publish(TOPICS.override(IX), KEYS.override(probe), qos=1, retain=True)
    bus2 = make_bus(mosquitto, Path(str(bus.queue_path.parent) + "-2"), client_id="second")
    seen: list[Override] = []
    bus2.on_override(seen.append)
    assert poll(lambda: any("ignored retained" in r.getMessage() for r in caplog.records), 10)
    assert seen == []


def test_second_engine_on_the_same_state_dir_is_refused(
    mosquitto: Mosquitto, make_bus: BusFactory, tmp_path: Path
) -> None:
    make_bus(mosquitto, tmp_path / "shared")
    with pytest.raises(BusError, match="in use"):
        make_bus(mosquitto, tmp_path / "shared", client_id="other")


def test_publisher_survives_being_closed_and_refuses_late_messages(
    mosquitto: Mosquitto, make_bus: BusFactory
) -> None:
    bus = make_bus(mosquitto)
    bus.close(timeout_s=1)
    bus.on_metrics([s.metrics(0)])  # must not raise into the service's tick
    assert bus.health()["refused_after_close"] == 1
    assert os.path.exists(bus.queue_path)
