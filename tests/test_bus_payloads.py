"""Topics, payload encoding/decoding against the JSON Schemas, and MqttConfig validation."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

import pytest
from pydantic import ValidationError

from atcs.bus.messages import (
    AckResult,
    EngineState,
    EngineStatus,
    MessageMeta,
    Override,
    OverrideAction,
    PlanAck,
)
from atcs.bus.payloads import (
    decode_camera_status,
    decode_engine_status,
    decode_override,
    decode_plan_ack,
    decode_segment_metrics,
    decode_timing_plan,
    encode_camera_status,
    encode_engine_status,
    encode_override,
    encode_plan_ack,
    encode_segment_metrics,
    encode_timing_plan,
)
from atcs.bus.schemas import validate
from atcs.bus.topics import TopicKind, Topics
from atcs.config.bus import MqttConfig
from atcs.errors import DataError, PayloadError
from atcs.types import CameraId, IntersectionId, PhaseId, SegmentId, SiteId
from tests.support import samples as s

META = MessageMeta("stream-1", 7)
IX = IntersectionId("ix-1")


# Topics ---------------------------------------------------------------------------------


def test_topics_follow_the_contract() -> None:
    t = Topics()
    assert t.engine_status() == "atcs/v1/status"
    assert t.camera_status(CameraId("cam-1")) == "atcs/v1/cameras/cam-1/status"
    assert t.segment_metrics(SegmentId("seg-a")) == "atcs/v1/segments/seg-a/metrics"
    assert t.plan(IX) == "atcs/v1/intersections/ix-1/plan"
    assert t.plan_ack(IX) == "atcs/v1/intersections/ix-1/plan/ack"
    assert t.override(IX) == "atcs/v1/intersections/ix-1/override"
    assert Topics("city/bdg").segment_metrics(SegmentId("x")) == "city/bdg/segments/x/metrics"


@pytest.mark.parametrize(
    ("topic", "kind", "ident"),
    [
        ("p/q/status", TopicKind.ENGINE_STATUS, None),
        ("p/q/cameras/c1/status", TopicKind.CAMERA_STATUS, "c1"),
        ("p/q/segments/s1/metrics", TopicKind.SEGMENT_METRICS, "s1"),
        ("p/q/intersections/i1/plan", TopicKind.TIMING_PLAN, "i1"),
        ("p/q/intersections/i1/plan/ack", TopicKind.PLAN_ACK, "i1"),
        ("p/q/intersections/i1/override", TopicKind.OVERRIDE, "i1"),
    ],
)
def test_topics_parse_back(topic: str, kind: TopicKind, ident: str | None) -> None:
    parsed = Topics("p/q").parse(topic)
    assert (parsed.kind, parsed.ident) == (kind, ident)


@pytest.mark.parametrize(
    "topic",
    ["other/segments/s/metrics", "p/q/segments/s", "p/q/segments//metrics", "p/q/x/s/metrics",
     "p/q/intersections/i/plan/nack", "p/q"],
)  # fmt: skip
def test_foreign_topics_are_refused(topic: str) -> None:
    with pytest.raises(PayloadError):
        Topics("p/q").parse(topic)


@pytest.mark.parametrize("bad", ["a/b", "a+", "#", ""])
def test_ids_that_are_not_one_topic_level_are_refused(bad: str) -> None:
    with pytest.raises(DataError):
        Topics().segment_metrics(SegmentId(bad))


def test_bad_prefix_is_refused() -> None:
    for prefix in ("", "/a", "a/", "a/+/b", "a//b"):
        with pytest.raises(DataError):
            Topics(prefix)


# Round trips ----------------------------------------------------------------------------


def test_segment_metrics_round_trip_is_exact() -> None:
    for i in (0, 1):
        m = s.metrics(i, congested=bool(i))
        payload = encode_segment_metrics(m, META)
        doc = json.loads(payload)
        assert doc["schema"] == "atcs.segment_metrics/1"
        assert doc["window_end"].endswith("Z")
        assert doc["vehicles_by_class"] == {"car": 1.0 + i, "motorcycle": 2.25}
        validate(TopicKind.SEGMENT_METRICS, doc)
        got = decode_segment_metrics(payload, "seg-a")
        assert got.record == m
        assert got.meta == META


def test_camera_status_plan_and_engine_status_round_trip() -> None:
    cam = s.camera_status()
    got_cam = decode_camera_status(encode_camera_status(SiteId("demo"), cam, META), "cam-1")
    assert got_cam.record == cam
    assert "decode_mode" not in json.loads(encode_camera_status(SiteId("demo"), cam, META))
    decoding = dataclasses.replace(cam, decode_mode="keyframes", gop_s=1.001)
    payload = encode_camera_status(SiteId("demo"), decoding, META)
    assert json.loads(payload)["decode_mode"] == "keyframes"
    assert decode_camera_status(payload, "cam-1").record == decoding
    plan = s.plan()
    got_plan = decode_timing_plan(encode_timing_plan(SiteId("demo"), plan, META), "ix-1")
    assert got_plan.record == plan
    assert got_plan.meta == META
    will = EngineStatus(EngineState.OFFLINE, "0.1.0", SiteId("demo"), "atcs-demo")
    payload = encode_engine_status(will)
    assert "at" not in json.loads(payload)
    assert decode_engine_status(payload) == will
    online = EngineStatus(EngineState.ONLINE, "0.1.0", SiteId("demo"), "c", s.T0)
    assert decode_engine_status(encode_engine_status(online)) == online


def test_ack_and_override_round_trip() -> None:
    ack = PlanAck(IX, "p-1", AckResult.REJECTED, "min green violated", "ctl-7", s.T0)
    assert decode_plan_ack(encode_plan_ack(ack), IX) == ack
    ov = Override(IX, OverrideAction.FIXED, "Brigadir Made", "parade", s.T0, None,
                  {PhaseId("north-south"): 40.0})  # fmt: skip
    assert decode_override(encode_override(ov), IX) == ov
    hold = Override(IX, OverrideAction.HOLD, "op", "accident")
    assert decode_override(encode_override(hold), IX) == hold


def test_minimal_foreign_ack_is_accepted_and_times_are_read_in_utc() -> None:
    raw = b'{"schema":"atcs.plan_ack/1","plan_id":"p-9","result":"applied",' \
          b'"at":"2025-03-01T08:00:00+07:00"}'  # fmt: skip
    ack = decode_plan_ack(raw, IX)
    assert ack.result is AckResult.APPLIED
    assert ack.at == s.T0


# Malformed and foreign ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (b"\xff\xfe", "not UTF-8"),
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON list"),
        (b'{"plan_id": "p", "result": "applied"}', "no 'schema' field"),
        (b'{"schema": "atcs.override/1", "action": "hold"}', "foreign message: schema"),
        (b'{"schema": "atcs.plan_ack/1", "plan_id": "p", "result": "maybe"}', "result"),
        (b'{"schema": "atcs.plan_ack/1", "plan_id": "p", "result": "rejected"}', "reason"),
        (b'{"schema": "atcs.plan_ack/1", "plan_id": "p", "result": "applied", "x": 1}', "x"),
        (b'{"schema": "atcs.plan_ack/1", "plan_id": "p", "result": "applied", '
         b'"at": "yesterday"}', "at"),
        (b'{"schema": "atcs.plan_ack/1", "plan_id": "p", "result": "applied", '
         b'"intersection": "ix-2"}', "does not match"),
        (b"{" + b" " * 300_000 + b"}", "exceeds"),
    ],
)  # fmt: skip
def test_malformed_acks_raise_payload_error_with_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        decode_plan_ack(payload, IX)


def test_override_rules() -> None:
    base = {"schema": "atcs.override/1", "who": "op", "why": "test"}
    with pytest.raises(PayloadError, match="needs plan_name or greens_s"):
        decode_override(json.dumps({**base, "action": "fixed"}), IX)
    with pytest.raises(PayloadError, match="takes no plan"):
        decode_override(json.dumps({**base, "action": "release", "plan_name": "am"}), IX)
    with pytest.raises(PayloadError):  # who is required
        decode_override(json.dumps({"schema": "atcs.override/1", "action": "hold", "why": "x"}), IX)
    ov = decode_override(json.dumps({**base, "action": "fixed", "plan_name": "am-peak"}), IX)
    assert ov.plan_name == "am-peak"


def test_metrics_with_wrong_types_are_refused() -> None:
    doc = json.loads(encode_segment_metrics(s.metrics(), META))
    for key, value in (("occupancy", 1.5), ("los", "G"), ("frames", 2.5), ("segment", "a/b")):
        bad = {**doc, key: value}
        with pytest.raises(PayloadError, match=key):
            decode_segment_metrics(json.dumps(bad))
    with pytest.raises(PayloadError, match="does not match"):
        decode_segment_metrics(json.dumps(doc), "seg-b")


def test_encoding_refuses_nan_and_naive_times() -> None:
    with pytest.raises(DataError):
        encode_segment_metrics(dataclasses.replace(s.metrics(), pcu=float("nan")), META)
    naive = dataclasses.replace(s.metrics(), window_end=datetime(2025, 1, 1))
    with pytest.raises(DataError):
        encode_segment_metrics(naive, META)


# Config ---------------------------------------------------------------------------------


def test_mqtt_config_defaults_and_rules() -> None:
    cfg = MqttConfig()
    assert (cfg.host, cfg.port, cfg.prefix, cfg.protocol) == ("127.0.0.1", 1883, "atcs/v1", "3.1.1")
    assert not cfg.tls
    assert not cfg.tls_insecure
    for bad in (
        {"prefix": "a/#"},
        {"prefix": "/a"},
        {"cert_file": "c.pem"},
        {"tls": True, "cert_file": "c.pem"},
        {"ca_file": "ca.pem"},
        {"password_env": "PW"},
        {"username": "u", "password_env": "hunter2!"},
        {"reconnect_min_s": 10, "reconnect_max_s": 5},
        {"pasword_env": "X"},
    ):
        with pytest.raises(ValidationError):
            MqttConfig.model_validate(bad)
    ok = MqttConfig(username="u", password_env="ATCS_MQTT_PASSWORD", tls=True, ca_file="ca.pem")
    assert ok.password_env == "ATCS_MQTT_PASSWORD"
