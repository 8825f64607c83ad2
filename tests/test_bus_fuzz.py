"""Fuzzing every inbound MQTT decoder and callback with hostile payloads (hypothesis).

Decoders may raise only :class:`~atcs.errors.PayloadError` (the documented error); paho
callbacks (the engine's control inbox, ``atcs watch``) may raise nothing at all. The
payload families are in ``tests/support/fuzz.py``; ``benchmarks/fuzz_inbound.py`` runs
more examples and prints the counts.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atcs.bus.auth import ControlAuthenticator
from atcs.bus.control import ControlInbox
from atcs.bus.keys import sign_payload
from atcs.bus.monitor import LiveState
from atcs.bus.payloads import load_override, load_plan_ack
from atcs.bus.topics import TopicKind, Topics
from atcs.config.control_auth import ControlAuthConfig
from atcs.errors import PayloadError
from atcs.types import IntersectionId, SegmentId
from tests.support.fuzz import INBOUND, PATHOLOGICAL, Inbound, hostile_payloads, mutated
from tests.support.signing import make_keys

TOPICS = Topics()
FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
KEYS = make_keys()
IX = IntersectionId("ix-1")
NOW = datetime(2025, 3, 1, 1, 0, 10, tzinfo=UTC)


def _message(topic: str, payload: bytes, retain: bool = False) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(mid=1, topic=topic.encode())
    msg.payload = payload
    msg.qos = 1
    msg.retain = retain
    return msg


@pytest.mark.parametrize("inbound", INBOUND, ids=[i.name for i in INBOUND])
def test_pathological_payloads_raise_only_payload_error(inbound: Inbound) -> None:
    for payload in PATHOLOGICAL:
        with pytest.raises(PayloadError):
            inbound.decode(payload)
    inbound.decode(inbound.valid)  # the valid one still decodes


@pytest.mark.parametrize("inbound", INBOUND, ids=[i.name for i in INBOUND])
def test_fuzzed_payloads_raise_only_payload_error(inbound: Inbound) -> None:
    @FUZZ
    @given(hostile_payloads(inbound.valid))
    def decode(payload: bytes) -> None:
        with contextlib.suppress(PayloadError):
            inbound.decode(payload)

    decode()


def _inbox() -> tuple[ControlInbox, list[object]]:
    auth = ControlAuthenticator.from_config(
        ControlAuthConfig.model_validate(KEYS.control_auth), KEYS.environ
    )
    inbox = ControlInbox(TOPICS, auth)
    got: list[object] = []
    inbox.add_override_handler(got.append)
    inbox.add_ack_handler(got.append)
    return inbox, got


def test_fuzzed_messages_never_raise_in_the_engine_or_watch_callbacks() -> None:
    inbox, _ = _inbox()
    state = LiveState(TOPICS)
    by_name = {i.name: i for i in INBOUND}
    topics = st.sampled_from(
        [
            TOPICS.override("ix-1"),  # type: ignore[arg-type]
            TOPICS.plan_ack("ix-1"),  # type: ignore[arg-type]
            TOPICS.segment_metrics(SegmentId("seg-a")),
            "atcs/v1/intersections/" + "x" * 5000 + "/override",
            "elsewhere/#",
        ]
    )
    payloads = st.one_of(
        hostile_payloads(by_name["override"].valid),
        hostile_payloads(by_name["plan_ack"].valid),
        hostile_payloads(by_name["segment_metrics"].valid),
    )

    @FUZZ
    @given(topics, payloads, st.booleans())
    def deliver(topic: str, payload: bytes, retain: bool) -> None:
        inbox.handle(None, None, _message(topic, payload, retain))  # type: ignore[arg-type]
        state.handle(topic, payload)

    deliver()
    counts = inbox.counters()
    assert counts.received > 0
    assert counts.accepted == 0  # nothing unsigned gets in


def test_fuzzed_signed_messages_raise_only_documented_errors() -> None:
    """Mutating a validly signed override or ack: refused as malformed or unauthenticated."""
    auth = ControlAuthenticator.from_config(
        ControlAuthConfig.model_validate(KEYS.control_auth), KEYS.environ
    )
    by_name = {i.name: i for i in INBOUND}
    override_topic = TOPICS.override(IX)
    ack_topic = TOPICS.plan_ack(IX)
    signed_override = sign_payload(by_name["override"].valid, override_topic, KEYS.console, now=NOW)
    signed_ack = sign_payload(by_name["plan_ack"].valid, ack_topic, KEYS.controller, now=NOW)

    @FUZZ
    @given(st.one_of(mutated(signed_override), mutated(signed_ack)))
    def check(payload: bytes) -> None:
        is_ack = b"plan_ack" in payload
        kind = TopicKind.PLAN_ACK if is_ack else TopicKind.OVERRIDE
        with contextlib.suppress(PayloadError):
            doc = load_plan_ack(payload, IX) if is_ack else load_override(payload, IX)
            auth.check(kind, ack_topic if is_ack else override_topic, IX, doc, NOW)

    check()
    # the unmutated messages pass (once: their nonces are remembered)
    for payload, topic, kind in (
        (signed_override, override_topic, TopicKind.OVERRIDE),
        (signed_ack, ack_topic, TopicKind.PLAN_ACK),
    ):
        fresh = ControlAuthenticator.from_config(
            ControlAuthConfig.model_validate(KEYS.control_auth), KEYS.environ
        )
        loader = load_plan_ack if kind is TopicKind.PLAN_ACK else load_override
        doc = loader(payload, IX)
        assert fresh.check(kind, topic, IX, doc, NOW).sender in ("console-1", "tsc-1")
        assert json.loads(payload)["auth"]["sig"]
