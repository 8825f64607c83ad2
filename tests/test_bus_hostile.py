"""Poisoned and flooding MQTT messages against a real Mosquitto started by the suite.

Each test replays a defect found on a running engine: a message that killed paho's network
thread (and with it every metric and plan) while health still said "connected"; the same
message queued in a persistent session killing the engine again after each restart;
``atcs watch`` dying on a poisoned retained metrics message; a flood of acks pushing a real
operator's ``hold`` out of the control queue and writing 40,000 log lines.
"""

from __future__ import annotations

import argparse
import io
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from atcs.bus import MqttBus, Override, OverrideAction, Topics
from atcs.bus.messages import MessageMeta
from atcs.bus.payloads import decode_segment_metrics, encode_segment_metrics
from atcs.control import ControlLoop, ControlSettings, Supervisor
from atcs.types import IntersectionId, SegmentId
from atcs.watch import run_watch
from atcs.web.engine_view import normalise_health
from tests.support import samples as s
from tests.support.buses import BusFactory
from tests.support.mosquitto import Collector, Mosquitto, MosquittoFactory
from tests.support.signing import TEST_KEYS
from tests.support.wait import poll
from tests.test_control_service import service_spec

pytestmark = pytest.mark.integration

TOPICS = Topics()
IX = IntersectionId("ix-1")
KEYS = TEST_KEYS
DEEP = b"[" * 100_000 + b"]" * 100_000  # 200 KB
HUGE_NUMBER = b'{"schema":"atcs.override/1","action":"hold","who":"x","why":' + b"9" * 5001 + b"}"
POISON = [
    (TOPICS.override(IX), DEEP),
    (TOPICS.plan_ack(IX), DEEP),
    (TOPICS.override(IX), HUGE_NUMBER),
    (TOPICS.plan_ack(IX), HUGE_NUMBER.replace(b"override", b"plan_ack")),
    (TOPICS.override(IX), b'{"schema":"atcs.override/1","greens_s":{"a":1e999}}'),
    (TOPICS.override(IX), b'{"schema":"atcs.override/1","who":"\\ud800"}'),
]


class Publisher:
    """A plain paho client that publishes anything (an attacker, a console, a controller)."""

    def __init__(self, broker: Mosquitto) -> None:
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if qos:
            info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[Publisher]:
    pub = Publisher(mosquitto)
    yield pub
    pub.close()


def _windows_seen(sub: Collector) -> list[int]:
    return [decode_segment_metrics(m.payload).record.frames for m in sub.snapshot()]


def _metrics_flow(bus: MqttBus, sub: Collector, marker: int) -> bool:
    """Publish a window whose ``frames`` is ``marker``; True when the subscriber gets it."""
    window = s.metrics(0)
    bus.on_metrics([type(window)(**{**_fields(window), "frames": marker})])
    return sub.wait_for(lambda _ms: marker in _windows_seen(sub), 10)


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


def _subscribed(bus: MqttBus, pub: Publisher, got: list[Override]) -> None:
    probe = Override(IX, OverrideAction.HOLD, "op", "probe")

    def arrived() -> bool:
        pub.send(TOPICS.override(IX), KEYS.override(probe))
        return poll(lambda: any(o.why == "probe" for o in got), 0.5)

    assert poll(arrived, 30), bus.health()


def test_poison_messages_leave_metrics_flowing_and_health_true(
    mosquitto: Mosquitto,
    make_bus: BusFactory,
    publisher: Publisher,
    collectors: list[Collector],
) -> None:
    bus = make_bus(mosquitto)
    got: list[Override] = []
    bus.on_override(got.append)
    bus.on_ack(lambda _ack: None)
    sub = Collector(mosquitto, TOPICS.all_segment_metrics())
    collectors.append(sub)
    _subscribed(bus, publisher, got)
    assert _metrics_flow(bus, sub, 101)
    for topic, payload in POISON:
        publisher.send(topic, payload)
    hold = Override(IX, OverrideAction.HOLD, "Kompol Sari", "after the poison")
    publisher.send(TOPICS.override(IX), KEYS.override(hold))
    assert poll(lambda: got[-1:] == [hold], 30)
    assert _metrics_flow(bus, sub, 102)
    health = bus.health()
    assert health["control_malformed"] == len(POISON)
    assert health["callback_errors"] == 0
    assert health["network_thread_alive"] is True
    assert health["connected"] is True
    assert normalise_health(bus, health).state == "connected"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_network_thread_is_reported_then_restarted(
    mosquitto: Mosquitto,
    make_bus: BusFactory,
    publisher: Publisher,
    collectors: list[Collector],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """An error paho itself cannot survive (simulated: SystemExit in a handler)."""
    sub = Collector(mosquitto, TOPICS.all_segment_metrics())
    collectors.append(sub)

    def fatal(override: Override) -> None:
        if override.why == "die":
            raise SystemExit("simulated failure inside paho's network loop")
        got.append(override)

    die = Override(IX, OverrideAction.HOLD, "o", "die")
    # checked once an hour: health must tell the truth while the thread is dead
    slow = make_bus(mosquitto, tmp_path / "slow", watch_every_s=3600.0, client_id="slow-watch")
    got: list[Override] = []
    slow.on_override(fatal)
    _subscribed(slow, publisher, got)
    publisher.send(TOPICS.override(IX), KEYS.override(die))
    assert poll(lambda: slow.health()["network_thread_alive"] is False, 30)
    health = slow.health()
    assert health["connected"] is False
    assert health["last_error"] == "the MQTT network thread is not running"
    view = normalise_health(slow, health)
    assert (view.connected, view.state) == (False, "network thread dead")

    # checked every second (the default): restarted, and metrics flow again
    caplog.set_level(logging.ERROR, logger="atcs.bus")
    bus = make_bus(mosquitto, tmp_path / "fast", client_id="fast-watch")
    got.clear()
    bus.on_override(fatal)
    _subscribed(bus, publisher, got)
    publisher.send(TOPICS.override(IX), KEYS.override(die))
    assert poll(lambda: bus.health()["network_thread_restarts"] == 1, 30)
    assert bus.health()["network_thread_deaths"] == 1
    assert "the MQTT network thread died" in caplog.text
    assert poll(lambda: bus.health()["connected"] is True, 30)
    assert _metrics_flow(bus, sub, 201)


def test_a_queued_poison_message_does_not_come_back_after_a_restart(
    mosquitto_factory: MosquittoFactory, make_bus: BusFactory, tmp_path: Path
) -> None:
    broker = mosquitto_factory()
    persistent = {"clean_session": False, "client_id": "atcs-engine-persistent"}
    first = make_bus(broker, tmp_path / "state", start=False, **persistent)
    seen: list[Override] = []
    first.on_override(seen.append)
    first.on_ack(lambda _a: None)
    first.start()
    attacker = Publisher(broker)
    _subscribed(first, attacker, seen)  # the session holds the subscriptions
    first.close(timeout_s=1)
    for topic, payload in POISON:  # queued by the broker for the engine's session
        attacker.send(topic, payload)
    hold = Override(IX, OverrideAction.HOLD, "Kompol Sari", "queued while away")
    attacker.send(TOPICS.override(IX), KEYS.override(hold, valid_s=120))
    attacker.close()

    got: list[Override] = []
    second = make_bus(broker, tmp_path / "state-2", start=False, **persistent)
    second.on_override(got.append)  # before connecting: the queued messages come at once
    second.on_ack(lambda _a: None)
    second.start()
    assert poll(lambda: [o for o in got if o.why != "probe"] == [hold], 30), second.health()
    assert second.health()["control_malformed"] == len(POISON)
    assert second.health()["network_thread_alive"] is True
    second.close(timeout_s=1)

    third = make_bus(broker, tmp_path / "state-3", start=False, **persistent)
    third.on_override(got.append)
    third.on_ack(lambda _a: None)
    third.start()
    assert poll(lambda: third.health()["connects"] == 1, 30)
    time.sleep(1.0)
    assert third.health()["control_received"] == 0  # every message was acknowledged once


def test_watch_survives_a_poisoned_retained_metrics_message(
    mosquitto: Mosquitto, publisher: Publisher
) -> None:
    publisher.send(TOPICS.segment_metrics(SegmentId("seg-x")), DEEP, retain=True)
    publisher.send(
        TOPICS.segment_metrics(SegmentId("seg-y")),
        b'{"schema":"atcs.segment_metrics/1","frames":' + b"9" * 5001 + b"}",
        retain=True,
    )
    good = encode_segment_metrics(s.metrics(0, "seg-a"), MessageMeta("x", 1))
    publisher.send(TOPICS.segment_metrics(SegmentId("seg-a")), good, retain=True)
    out = io.StringIO()
    args = argparse.Namespace(config=None, host=mosquitto.host, port=mosquitto.port,
                              prefix=None, once=True, wait=1.0)  # fmt: skip
    assert run_watch(args, out) == 0
    head, *rows = out.getvalue().splitlines()
    assert "connected" in head
    assert "NOT CONNECTED" not in head
    assert "malformed 2" in head
    assert any(row.startswith("seg-a") for row in rows)


@pytest.mark.parametrize("insecure", [False, True], ids=["signed-required", "insecure-lab"])
def test_an_ack_flood_does_not_push_out_an_operator_hold_nor_flood_the_log(
    mosquitto: Mosquitto,
    make_bus: BusFactory,
    publisher: Publisher,
    caplog: pytest.LogCaptureFixture,
    insecure: bool,
) -> None:
    """20,000 bogus acks in about a second, a signed ``hold`` in the middle.

    With the lab setting the unsigned acks are accepted (up to the rate limits) and reach
    the control loop, which rejects them (unknown plans).
    """
    auth = {**KEYS.control_auth, "insecure_allow_unsigned": insecure}
    bus = make_bus(mosquitto, control_auth=auth)
    loop = ControlLoop(
        [Supervisor(service_spec(), settings=ControlSettings(decision_lead_s=1.0))], bus.on_plan
    )
    bus.on_ack(loop.on_ack)
    bus.on_override(loop.on_override)
    stop = threading.Event()

    def ticking() -> None:
        while not stop.is_set():
            loop.tick()
            stop.wait(0.1)

    ticker = threading.Thread(target=ticking, daemon=True)
    ticker.start()
    try:
        assert poll(lambda: loop.state()[IX].running is not None, 30)
        probe = Override(IX, OverrideAction.RELEASE, "op", "probe")

        def probed() -> bool:
            publisher.send(TOPICS.override(IX), KEYS.override(probe))
            return poll(lambda: loop.counters().overrides > 0, 0.5)

        assert poll(probed, 30)
        caplog.clear()
        caplog.set_level(logging.INFO)
        bogus = b'{"schema":"atcs.plan_ack/1","plan_id":"p-%d","result":"rejected","reason":"x"}'
        hold = Override(IX, OverrideAction.HOLD, "Kompol Sari", "accident on the bridge")
        start = time.monotonic()
        for i in range(20_000):
            publisher.client.publish(TOPICS.plan_ack(IX), bogus % i, qos=0)
            if i == 10_000:
                publisher.client.publish(TOPICS.override(IX), KEYS.override(hold), qos=1)
        sent_s = time.monotonic() - start

        def held() -> bool:
            active = loop.state()[IX].override
            return active is not None and active.why == hold.why

        assert poll(held, 20), (sent_s, bus.health(), loop.counters())
        time.sleep(1.0)  # let the rest of the flood arrive
    finally:
        stop.set()
        ticker.join(5)
    health = bus.health()
    kept_out = int(health["control_rate_limited"]) + int(health["control_refused"])
    assert kept_out >= 10_000
    assert health["connected"] is True
    if insecure:
        assert 0 < loop.counters().rejected["planack"] < 2_000
    lines = [r for r in caplog.records if r.name.startswith("atcs")]
    assert len(lines) < 100, [r.getMessage() for r in lines[:20]]
