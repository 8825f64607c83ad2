"""The shipped broker config and ACL (``deploy/mosquitto``) on a real Mosquitto, over TLS.

The broker runs ``deploy/mosquitto/mosquitto.conf`` as shipped except its listener port and
file paths (a throwaway CA and server certificate made by the suite, a password file made
with ``mosquitto_passwd``) and reads ``deploy/mosquitto/atcs.acl`` itself. The engine, a
signal controller, the operator console and a viewer connect with their own passwords.
"""

from __future__ import annotations

import re
import secrets
import ssl
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from atcs.bus import AckResult, MqttBus, Override, OverrideAction, PlanAck, Topics
from atcs.bus.override_state import OverrideState
from atcs.config.bus import MqttConfig
from atcs.types import IntersectionId, SiteId
from tests.support import samples as s
from tests.support.mosquitto import (
    MOSQUITTO_PASSWD,
    Collector,
    Mosquitto,
    MosquittoFactory,
    TlsFiles,
)
from tests.support.signing import make_keys
from tests.support.wait import poll

pytestmark = pytest.mark.integration

TOPICS = Topics()
IX = IntersectionId("ix-1")
KEYS = make_keys()
ROLES = ("atcs-engine", "tsc-ix-1", "atcs-console", "atcs-viewer", "atcs-room")


def shipped_template(repo_dir: Path, tls: TlsFiles) -> str:
    """The shipped config with ``{port}``/``{folder}`` and the suite's TLS files."""
    text = (repo_dir / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    paths = {
        "listener": "{port} 127.0.0.1",
        "password_file": "{folder}/passwords",
        "acl_file": str(repo_dir / "deploy" / "mosquitto" / "atcs.acl"),
        "cafile": str(tls.ca_file),
        "certfile": str(tls.server_cert),
        "keyfile": str(tls.server_key),
        "persistence_location": "{folder}/",
    }
    for key, value in paths.items():
        text, n = re.subn(rf"(?m)^{key} .*$", f"{key} {value}", text)
        assert n == 1, f"{key} not found once in the shipped mosquitto.conf"
    return text


@pytest.fixture
def broker(
    repo_dir: Path, tls_files: TlsFiles, mosquitto_factory: MosquittoFactory, tmp_path: Path
) -> tuple[Mosquitto, dict[str, str]]:
    passwords = {role: secrets.token_urlsafe(12) for role in ROLES}
    folder = tmp_path / "mosquitto-0"
    folder.mkdir()
    pwfile = folder / "passwords"
    for i, (role, password) in enumerate(passwords.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run(
            [MOSQUITTO_PASSWD, *create, "-b", str(pwfile), role, password],
            check=True,
            capture_output=True,
        )
    return mosquitto_factory(template=shipped_template(repo_dir, tls_files)), passwords


@pytest.fixture
def engine(
    broker: tuple[Mosquitto, dict[str, str]], tls_files: TlsFiles, tmp_path: Path
) -> Iterator[tuple[MqttBus, list[Override], list[PlanAck]]]:
    server, passwords = broker
    cfg = MqttConfig(
        host="localhost",
        port=server.port,
        username="atcs-engine",
        password_env="ENGINE_MQTT_PASSWORD",
        tls=True,
        ca_file=str(tls_files.ca_file),
        reconnect_max_s=1,
        control_auth=KEYS.control_auth,
    )
    environ = {**KEYS.environ, "ENGINE_MQTT_PASSWORD": passwords["atcs-engine"]}
    bus = MqttBus(cfg, site_id=SiteId("demo"), state_dir=tmp_path / "state", environ=environ)
    overrides: list[Override] = []
    acks: list[PlanAck] = []
    bus.on_override(overrides.append)
    bus.on_ack(acks.append)
    bus.start()
    yield bus, overrides, acks
    bus.close(timeout_s=1)


def _client(
    server: Mosquitto, tls: TlsFiles, role: str, passwords: dict[str, str], topic: str
) -> Collector:
    return Collector(
        server, topic, username=role, password=passwords[role], tls=tls, client_id=role
    )


def _refused(server: Mosquitto, tls: TlsFiles | None, user: str | None, pw: str | None) -> bool:
    """True when a connection with these credentials is not accepted."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    if tls is not None:
        client.tls_set(ca_certs=str(tls.ca_file))
    if user is not None:
        client.username_pw_set(user, pw)
    try:
        client.connect("localhost", server.port, keepalive=5)
        client.loop_start()
        accepted = poll(client.is_connected, 3)
        client.disconnect()
        client.loop_stop()
    except (OSError, ssl.SSLError):
        return True
    return not accepted


def test_each_role_gets_only_its_topics_over_tls(
    broker: tuple[Mosquitto, dict[str, str]],
    tls_files: TlsFiles,
    engine: tuple[MqttBus, list[Override], list[PlanAck]],
    collectors: list[Collector],
) -> None:
    server, passwords = broker
    bus, overrides, acks = engine
    assert poll(lambda: bus.health()["connected"] is True, 30), bus.health()
    assert poll(lambda: int(bus.health()["subscriptions_granted"]) >= 1, 30), bus.health()
    assert bus.health()["subscriptions_refused"] == 0  # the engine's role may read its topics
    viewer = _client(server, tls_files, "atcs-viewer", passwords, "atcs/v1/#")
    console = _client(server, tls_files, "atcs-console", passwords, "atcs/v1/#")
    tsc = _client(server, tls_files, "tsc-ix-1", passwords, TOPICS.plan(IX))
    room = _client(server, tls_files, "atcs-room", passwords, "atcs/v1/#")
    collectors += [viewer, console, tsc, room]
    bus.on_metrics([s.metrics(0)])
    zone = s.frame_zone()
    assert bus.send_zone(zone)  # a control node elsewhere reads the per-frame zones
    assert console.wait_for(
        lambda ms: any(m.topic == TOPICS.segment_zone(zone.segment_id) for m in ms), 10
    )
    bus.on_plan(s.plan())
    bus.on_override_state(OverrideState(IX, datetime.now(UTC)))
    assert viewer.wait_for(lambda ms: {m.topic for m in ms} >= {
        TOPICS.segment_metrics(s.metrics(0).segment_id), TOPICS.plan(IX),
        TOPICS.override_state(IX)}, 10)  # fmt: skip
    assert tsc.wait_for(lambda ms: any(m.topic == TOPICS.plan(IX) for m in ms), 10)

    def publish(who: Collector, topic: str, payload: bytes) -> None:
        who.client.publish(topic, payload, qos=1).wait_for_publish(10)

    hold = Override(IX, OverrideAction.HOLD, "Kompol Sari", "convoy")
    # with a stolen console key, still no override from a viewer or a signal controller
    publish(viewer, TOPICS.override(IX), KEYS.override(hold))
    publish(tsc, TOPICS.override(IX), KEYS.override(hold))
    other = PlanAck(IntersectionId("ix-2"), "p-9", AckResult.APPLIED, "", "tsc-1")
    publish(tsc, TOPICS.plan_ack(other.intersection_id), KEYS.ack(other))  # not its own
    publish(viewer, TOPICS.plan_ack(IX), KEYS.ack(PlanAck(IX, "p-9", AckResult.APPLIED)))
    publish(viewer, TOPICS.segment_metrics(s.metrics(0).segment_id), b"{}")
    publish(viewer, TOPICS.segment_zone(zone.segment_id), b"{}")
    publish(room, TOPICS.plan_ack(IX), KEYS.ack(PlanAck(IX, "p-8", AckResult.APPLIED)))
    for who in (room, console, viewer):  # only the engine says whether an override holds
        publish(who, TOPICS.override_state(IX), b"forged")
    # what each role may do arrives
    ack = PlanAck(IX, "p-1", AckResult.APPLIED, "", "tsc-1")
    publish(tsc, TOPICS.plan_ack(IX), KEYS.ack(ack))
    publish(console, TOPICS.override(IX), KEYS.override(hold))
    from_room = Override(IX, OverrideAction.RELEASE, "Kompol Sari", "convoy passed")
    publish(room, TOPICS.override(IX), KEYS.override(from_room))
    assert poll(lambda: len(overrides) == 2 and len(acks) == 1, 30), bus.health()
    assert overrides == [hold, from_room]
    assert acks == [ack]
    assert bus.health()["control_received"] == 3  # the broker dropped the rest
    # a viewer does not read acks or overrides; a controller does not read others' plans
    viewed = {TOPICS.parse(m.topic).kind.value for m in viewer.snapshot()}
    assert viewed == {"segment_metrics", "timing_plan", "engine_status", "override_state"}
    assert all(m.payload != b"forged" for m in room.snapshot())
    assert all(m.topic == TOPICS.plan(IX) for m in tsc.snapshot())
    assert any(m.topic == TOPICS.override(IX) for m in console.snapshot())
    assert all(m.payload != b"{}" for m in console.snapshot())  # the viewer's metrics
    assert any(m.topic == TOPICS.plan_ack(IX) for m in room.snapshot())  # the room reads acks


def test_anonymous_plain_and_wrong_password_connections_are_refused(
    broker: tuple[Mosquitto, dict[str, str]], tls_files: TlsFiles
) -> None:
    server, passwords = broker
    assert _refused(server, tls_files, None, None)  # anonymous
    assert _refused(server, tls_files, "atcs-console", "not-the-password")
    assert _refused(server, None, "atcs-console", passwords["atcs-console"])  # no TLS
    assert not _refused(server, tls_files, "atcs-console", passwords["atcs-console"])
