"""Phase-by-phase control messages on a real Mosquitto: signed states in, signed commands out.

The engine's bus takes a signal controller's state only when the controller signed it
(as plan acks), and signs every phase command with its own key, which a controller's
adapter checks with the engine's public key (:class:`~atcs.bus.auth.ControlAuthenticator`
configured with the engine as its one sender).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from atcs.bus import Topics
from atcs.bus.auth import ControlAuthenticator, SenderRole
from atcs.bus.keys import Algorithm, Signer, new_key, sign_payload
from atcs.bus.phase_payloads import decode_phase_command, encode_signal_state
from atcs.bus.topics import TopicKind
from atcs.config.control_auth import ControlAuthConfig
from atcs.errors import MessageAuthError
from atcs.types import IntersectionId, PhaseId
from controllers.phase.commands import CommandKind, ControlMode, PhaseCommand, SignalState
from controllers.phase.timing import Interval
from tests.support.buses import BusFactory
from tests.support.mosquitto import Collector, Mosquitto
from tests.support.signing import CONTROLLER, TEST_KEYS
from tests.support.wait import poll
from tests.test_bus_hostile import Publisher

pytestmark = pytest.mark.integration

TOPICS = Topics()
IX = IntersectionId("ix-1")
ENGINE_ENV = "ATCS_TEST_ENGINE_SIGNING_KEY"
ENGINE_PUBLIC_ENV = "ATCS_TEST_ENGINE_PUBLIC_KEY"
ENGINE_PRIVATE, ENGINE_PUBLIC = new_key(Algorithm.ED25519)


def control_auth(**settings: Any) -> dict[str, Any]:
    """The test keys' senders plus the engine's command signer."""
    signer = {"id": "atcs-engine", "algorithm": "ed25519", "key_env": ENGINE_ENV, "valid_s": 20}
    return {**TEST_KEYS.control_auth, "command_signer": signer, **settings}


def state(phase: str = "P1") -> SignalState:
    now = float(int(time.time()))  # whole seconds: the bus carries microseconds
    return SignalState(IX, now, PhaseId(phase), Interval.GREEN, now - 3.0, now - 3.0, None,
                       ControlMode.COMMAND, "extend P1", frozenset(), 7)  # fmt: skip


def test_states_must_be_signed_by_the_intersections_controller(
    make_bus: BusFactory, mosquitto: Mosquitto
) -> None:
    topic = TOPICS.state(IX)
    good = state()
    body = encode_signal_state(good, controller_id=CONTROLLER)
    device = Publisher(mosquitto)
    # A retained state waits on the broker: delivered on subscribe, it is ignored.
    device.send(topic, sign_payload(body, topic, TEST_KEYS.controller), retain=True)
    bus = make_bus(mosquitto, environ={ENGINE_ENV: ENGINE_PRIVATE}, start=False,
                   control_auth=control_auth())  # fmt: skip
    received: list[SignalState] = []
    bus.on_signal_state(received.append)
    bus.start()
    assert poll(lambda: bus.health().get("control_retained_ignored") == 1, 30), bus.health()
    device.send(topic, b"", retain=True)  # clear the retained copy
    forger_private, _ = new_key(Algorithm.ED25519)
    forger = Signer.from_key(CONTROLLER, Algorithm.ED25519, forger_private)
    signed = sign_payload(body, topic, TEST_KEYS.controller)
    tampered = json.loads(signed)
    tampered["phase"] = "P3"  # changed after signing
    elsewhere = TOPICS.state(IntersectionId("ix-2"))
    attacks = {
        "unsigned": body,
        "wrong role": sign_payload(body, topic, TEST_KEYS.console),
        "forged": sign_payload(body, topic, forger),
        "tampered": json.dumps(tampered).encode(),
        "other topic": sign_payload(body, elsewhere, TEST_KEYS.controller),
    }
    for payload in attacks.values():
        device.send(topic, payload)
    device.send(topic, signed)
    assert poll(lambda: len(received) == 1, 30), bus.health()
    device.send(topic, signed)  # replayed
    assert poll(lambda: bus.health().get("control_refused_replayed") == 1, 30), bus.health()
    device.close()
    assert received == [good]
    health = bus.health()
    assert health["control_states"] == 1
    assert health["control_refused_unsigned"] == 1
    assert health["control_refused_not_allowed"] == 1
    assert health["control_refused_bad_signature"] == 3  # forged, tampered, other topic


def test_commands_are_signed_by_the_engine_and_checked_by_the_controller(
    make_bus: BusFactory, mosquitto: Mosquitto
) -> None:
    collector = Collector(mosquitto, TOPICS.command(IX))
    assert collector.subscribed.wait(30)
    bus = make_bus(mosquitto, environ={ENGINE_ENV: ENGINE_PRIVATE},
                   control_auth=control_auth())  # fmt: skip
    assert poll(lambda: bus.health()["connected"], 30)
    now = float(int(time.time()))
    command = PhaseCommand(IX, CommandKind.SERVE_NEXT, PhaseId("P2"), now, now + 5.0, None, 42,
                           "12.0 pcu waiting")  # fmt: skip
    assert bus.send_phase_command(command)
    assert poll(lambda: len(collector.snapshot()) == 1, 30)
    message = collector.snapshot()[0]
    assert not message.retain
    # The controller's adapter: the engine is its one sender, checked with the public key.
    engine = {
        "id": "atcs-engine",
        "role": "engine",
        "algorithm": "ed25519",
        "key_env": ENGINE_PUBLIC_ENV,
    }
    adapter = ControlAuthenticator.from_config(
        ControlAuthConfig.model_validate({"senders": [engine]}), {ENGINE_PUBLIC_ENV: ENGINE_PUBLIC}
    )
    doc = json.loads(message.payload)
    verified = adapter.check(TopicKind.PHASE_COMMAND, message.topic, IX, doc)
    assert (verified.sender, verified.role) == ("atcs-engine", SenderRole.ENGINE)
    assert decode_phase_command(message.payload, IX) == command
    with pytest.raises(MessageAuthError, match="replayed"):
        adapter.check(TopicKind.PHASE_COMMAND, message.topic, IX, doc)
    altered = {**doc, "phase": "P4"}
    with pytest.raises(MessageAuthError) as refused:
        adapter.check(TopicKind.PHASE_COMMAND, message.topic, IX, altered)
    assert refused.value.reason == "bad_signature"
    # The engine's key may not sign a state, nor a controller's key a command.
    with pytest.raises(MessageAuthError) as wrong_kind:
        adapter.check(TopicKind.SIGNAL_STATE, TOPICS.state(IX), IX, doc)
    assert wrong_kind.value.reason == "not_allowed"
    assert bus.health()["phase_commands_sent"] == 1
    collector.close()


def test_no_command_leaves_without_the_engines_key(
    make_bus: BusFactory, mosquitto: Mosquitto
) -> None:
    bus = make_bus(mosquitto)
    assert poll(lambda: bus.health()["connected"], 30)
    now = time.time()
    command = PhaseCommand(IX, CommandKind.EXTEND, PhaseId("P1"), now, now + 5.0, now + 5.0, 1)
    assert not bus.send_phase_command(command)
    assert bus.health()["phase_commands_unsigned_refused"] == 1
    assert bus.health()["phase_commands_sent"] == 0
