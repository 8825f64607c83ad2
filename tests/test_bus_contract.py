"""The written contract (AsyncAPI + JSON Schemas) matches the topics and payloads in code."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import yaml
from jsonschema import Draft7Validator

from atcs.bus.schemas import SCHEMA_IDS, load_schema, schema_file_name
from atcs.bus.topics import TopicKind, Topics
from atcs.types import CameraId, IntersectionId, SegmentId

CONTRACT = resources.files("atcs").joinpath("contract")

ENGINE_SENDS = {
    TopicKind.ENGINE_STATUS,
    TopicKind.CAMERA_STATUS,
    TopicKind.SEGMENT_METRICS,
    TopicKind.SEGMENT_ZONE,
    TopicKind.TIMING_PLAN,
    TopicKind.PHASE_COMMAND,
    TopicKind.MOVEMENT_COUNTS,
    TopicKind.INCIDENT_EVENT,
    TopicKind.INCIDENT_STATE,
    TopicKind.TRAFFIC_FLOW_OBSERVED,
    TopicKind.ALARM,
    TopicKind.NODE_STATUS,
    TopicKind.OVERRIDE_STATE,
}

BINDINGS = {
    # Commands expire within seconds: a retained one would only be refused later.
    TopicKind.PHASE_COMMAND: {"qos": 1, "retain": False},
    # A state every second: a lost one is replaced at once; a signed state is used once,
    # so a retained copy would only be refused as a replay.
    TopicKind.SIGNAL_STATE: {"qos": 0, "retain": False},
    # One frame's vehicles a second per segment, stale in 2 s: a lost one is replaced at
    # once, and a retained one would be stale when a subscriber gets it.
    TopicKind.SEGMENT_ZONE: {"qos": 0, "retain": False},
}
NOT_RETAINED = {TopicKind.INCIDENT_EVENT}
EXTERNAL_MODEL = {TopicKind.TRAFFIC_FLOW_OBSERVED}
"""Payloads that follow an external standard unchanged: no ``schema`` field."""


def _asyncapi() -> dict[str, Any]:
    doc = yaml.safe_load(CONTRACT.joinpath("asyncapi.yaml").read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/")
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _address(kind: TopicKind) -> str:
    t = Topics()  # the default prefix, as in the document
    return {
        TopicKind.ENGINE_STATUS: t.engine_status(),
        TopicKind.CAMERA_STATUS: t.camera_status(CameraId("{camera}")),
        TopicKind.SEGMENT_METRICS: t.segment_metrics(SegmentId("{segment}")),
        TopicKind.SEGMENT_ZONE: t.segment_zone(SegmentId("{segment}")),
        TopicKind.TIMING_PLAN: t.plan(IntersectionId("{intersection}")),
        TopicKind.PLAN_ACK: t.plan_ack(IntersectionId("{intersection}")),
        TopicKind.OVERRIDE: t.override(IntersectionId("{intersection}")),
        TopicKind.OVERRIDE_STATE: t.override_state(IntersectionId("{intersection}")),
        TopicKind.PHASE_COMMAND: t.command(IntersectionId("{intersection}")),
        TopicKind.SIGNAL_STATE: t.state(IntersectionId("{intersection}")),
        TopicKind.MOVEMENT_COUNTS: t.movements(IntersectionId("{intersection}")),
        TopicKind.INCIDENT_EVENT: t.incident_events(SegmentId("{segment}")),
        TopicKind.INCIDENT_STATE: t.incident_state(SegmentId("{segment}")),
        TopicKind.TRAFFIC_FLOW_OBSERVED: t.traffic_flow_observed(SegmentId("{segment}")),
        TopicKind.ALARM: t.alarm("{alarm}"),
        TopicKind.NODE_STATUS: t.node_status("{node}"),
    }[kind]


def test_every_schema_is_valid_and_carries_its_schema_id() -> None:
    files = {p.name for p in CONTRACT.iterdir() if p.name.endswith(".schema.json")}
    assert files == {schema_file_name(k) for k in TopicKind}
    for kind in TopicKind:
        schema = load_schema(kind)
        Draft7Validator.check_schema(schema)
        assert schema["additionalProperties"] is False
        if kind in EXTERNAL_MODEL:
            assert "schema" not in schema["properties"]
            continue
        assert schema["properties"]["schema"]["const"] == SCHEMA_IDS[kind]
        assert "schema" in schema["required"]


def test_asyncapi_has_a_channel_per_topic_with_its_schema_and_binding() -> None:
    doc = _asyncapi()
    assert doc["asyncapi"].startswith("3.")
    by_address = {ch["address"]: ch for ch in doc["channels"].values()}
    assert len(by_address) == len(TopicKind)
    referenced: set[str] = set()
    for kind in TopicKind:
        address = _address(kind)
        assert address in by_address, f"no channel for {address}"
        channel = by_address[address]
        params = {p.strip("{}") for p in address.split("/") if p.startswith("{")}
        assert set(channel.get("parameters", {})) == params
        (message_ref,) = [m["$ref"] for m in channel["messages"].values()]
        message = _resolve(doc, message_ref)
        payload = message["payload"]
        assert payload["schemaFormat"] == "application/schema+json;version=draft-07"
        schema_ref = payload["schema"]["$ref"]
        assert schema_ref == f"./{schema_file_name(kind)}"
        assert json.loads(CONTRACT.joinpath(schema_ref[2:]).read_text(encoding="utf-8"))
        referenced.add(schema_ref[2:])
        ops = [
            op
            for op in doc["operations"].values()
            if _resolve(doc, op["channel"]["$ref"]) is channel
        ]
        assert len(ops) == 1, f"one operation for {address}"
        (op,) = ops
        assert op["action"] == ("send" if kind in ENGINE_SENDS else "receive")
        retained = kind in ENGINE_SENDS and kind not in NOT_RETAINED
        default = {"qos": 1, "retain": retained}
        assert op["bindings"]["mqtt"] == BINDINGS.get(kind, default)
    assert referenced == {schema_file_name(k) for k in TopicKind}
