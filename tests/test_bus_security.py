"""Authenticated control messages through the engine's own wiring, on a real Mosquitto.

:func:`atcs.service.build_engine` builds the bus, the control loop and the audit trail from
a config (no dashboard: the audit log is the engine's own file); the test starts the sinks,
ticks the control loop, and plays an attacker and a real operator console on the broker.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from atcs.audit_trail import DEFAULT_AUDIT_FILE, AuditTrail
from atcs.bus import MqttBus, Override, OverrideAction, PlanAck, Topics
from atcs.bus.keys import Algorithm, Signer, new_key, sign_payload
from atcs.bus.messages import AckResult
from atcs.bus.payloads import encode_override, encode_plan_ack
from atcs.config import AtcsConfig, parse_config
from atcs.service import Engine, build_engine
from atcs.types import IntersectionId
from tests.support.mosquitto import Mosquitto
from tests.support.signing import CONSOLE, make_keys
from tests.support.wait import poll
from tests.test_bus_hostile import Publisher
from tests.unit.test_control_loop import config as control_config

pytestmark = pytest.mark.integration

TOPICS = Topics()
IX = IntersectionId("ix-1")
KEYS = make_keys()


def engine_config(tmp_path: Path, broker: Mosquitto) -> AtcsConfig:
    raw: dict[str, Any] = control_config(tmp_path).model_dump(mode="json")
    raw["intersections"] = raw["intersections"][:1]
    raw["service"] = {"state_dir": str(tmp_path / "state")}
    raw["mqtt"] = {
        "host": broker.host,
        "port": broker.port,
        "reconnect_max_s": 1,
        "control_auth": KEYS.control_auth,
    }
    return parse_config(raw, tmp_path, environ={})


class Running:
    """The engine's sinks started and its control loop ticking (no cameras, no detector)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.stop = threading.Event()
        for sink in engine.sinks:
            sink.start()
        self.thread = threading.Thread(target=self._tick, daemon=True)
        self.thread.start()

    def _tick(self) -> None:
        assert self.engine.control is not None
        while not self.stop.is_set():
            self.engine.control.tick()
            self.stop.wait(0.1)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for sink in reversed(self.engine.sinks):
            sink.close(1.0)


@pytest.fixture
def running(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Running]:
    for name, value in KEYS.environ.items():
        monkeypatch.setenv(name, value)
    run = Running(build_engine(engine_config(tmp_path, mosquitto)))
    yield run
    run.close()


def _audit(run: Running) -> list[dict[str, Any]]:
    path = Path(run.engine.cfg.service.state_dir) / DEFAULT_AUDIT_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _bus(run: Running) -> MqttBus:
    return next(s for s in run.engine.sinks if isinstance(s, MqttBus))


def test_forged_and_replayed_overrides_are_refused_and_audited_a_signed_one_applied(
    running: Running, mosquitto: Mosquitto
) -> None:
    control = running.engine.control
    assert control is not None
    assert isinstance(running.engine.sinks[0], AuditTrail)  # the engine's own audit log
    bus = _bus(running)
    assert poll(lambda: bus.health()["connects"] == 1, 30)
    assert poll(lambda: int(bus.health()["subscriptions_granted"]) >= 1, 30)  # before sending
    assert poll(lambda: control.state()[IX].running is not None, 30)
    attacker = Publisher(mosquitto)
    topic = TOPICS.override(IX)
    fixed = Override(IX, OverrideAction.FIXED, "Brigadir Made", "parade", plan_name="night")
    forger_secret, _ = new_key(Algorithm.HMAC_SHA256)
    forger = Signer.from_key(CONSOLE, Algorithm.HMAC_SHA256, forger_secret)
    tampered = json.loads(KEYS.override(fixed))
    tampered["plan_name"] = "day"  # changed after signing
    late = datetime.now(UTC) - timedelta(minutes=10)
    attacks = {
        "unsigned": encode_override(fixed),
        "forged": sign_payload(encode_override(fixed), topic, forger),
        "tampered": json.dumps(tampered).encode(),
        "wrong role": sign_payload(encode_override(fixed), topic, KEYS.controller),
        "expired": KEYS.override(fixed, now=late),
        "signed for another topic": sign_payload(
            encode_override(fixed), TOPICS.override(IntersectionId("ix-2")), KEYS.console
        ),
    }
    for payload in attacks.values():
        attacker.send(topic, payload)
    # the real console: applied
    signed = KEYS.override(fixed)
    attacker.send(topic, signed)

    def applied() -> bool:
        active = control.state()[IX].override
        return active is not None and active.plan_name == "night"

    assert poll(applied, 30), bus.health()
    release = Override(IX, OverrideAction.RELEASE, "Brigadir Made", "parade over")
    attacker.send(topic, KEYS.override(release))
    assert poll(lambda: control.state()[IX].override is None, 30)
    attacker.send(topic, signed)  # replayed: refused, the release stands
    assert poll(lambda: bus.health().get("control_refused_replayed") == 1, 30)
    assert control.state()[IX].override is None
    attacker.close()

    health = bus.health()
    assert health["control_refused"] == len(attacks) + 1
    assert health["control_refused_unsigned"] == 1
    assert health["control_refused_bad_signature"] == 3  # forged, tampered, other topic
    assert health["control_refused_not_allowed"] == 1
    assert health["control_refused_expired"] == 1
    assert poll(lambda: len(_audit(running)) == len(attacks) + 3, 5), _audit(running)
    records = _audit(running)
    refused = [r for r in records if r["outcome"] == "refused"]
    accepted = [r for r in records if r["outcome"] == "accepted"]
    assert len(refused) == len(attacks) + 1
    reasons = sorted(r["detail"].split("; ")[-1].split(":")[0] for r in refused)
    assert reasons == sorted(
        ["unsigned", "bad_signature", "bad_signature", "not_allowed", "expired",
         "bad_signature", "replayed"]
    )  # fmt: skip
    assert all(r["remote"] == f"mqtt {topic}" for r in records)
    assert all(r["intersection_id"] == IX for r in records)
    assert [(r["action"], r["user"], r["role"]) for r in accepted] == [
        ("fixed", "Brigadir Made", "mqtt operator_console"),
        ("release", "Brigadir Made", "mqtt operator_console"),
    ]
    assert accepted[0]["plan_name"] == "night"
    assert f"sender {CONSOLE}" in accepted[0]["detail"]


def test_acks_must_be_signed_by_a_signal_controller(running: Running, mosquitto: Mosquitto) -> None:
    control = running.engine.control
    assert control is not None
    bus = _bus(running)
    assert poll(lambda: int(bus.health()["subscriptions_granted"]) >= 1, 30)  # before sending
    assert poll(lambda: control.state()[IX].running is not None, 30)
    plan_id = control.state()[IX].running.plan.plan_id  # type: ignore[union-attr]
    forged = PlanAck(IX, plan_id, AckResult.REJECTED, "forged: signal refuses", "tsc-1")
    device = Publisher(mosquitto)
    topic = TOPICS.plan_ack(IX)
    device.send(topic, encode_plan_ack(forged))  # unsigned
    device.send(topic, sign_payload(encode_plan_ack(forged), topic, KEYS.console))  # wrong role
    applied = PlanAck(IX, plan_id, AckResult.APPLIED, "", "tsc-1")
    device.send(topic, KEYS.ack(applied))
    assert poll(lambda: control.counters().acks == 1, 30), bus.health()
    device.close()
    running_status = control.state()[IX].running
    assert running_status is not None
    assert running_status.acked_by == "tsc-1"
    health = bus.health()
    assert health["control_refused_unsigned"] == 1
    assert health["control_refused_not_allowed"] == 1
    records = _audit(running)
    assert [r["outcome"] for r in records] == ["refused", "refused"]  # applied acks: no line
    assert all(r["action"].startswith("ack rejected") for r in records)
