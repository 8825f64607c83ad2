"""Movement, incident and FIWARE payloads: topics, exact round trips, schema checks."""

from __future__ import annotations

import dataclasses
import json

import pytest

from atcs.bus.codec import MAX_PAYLOAD_BYTES
from atcs.bus.fiware import CONTEXT, traffic_flow_observed
from atcs.bus.measure_payloads import (
    decode_incident_event,
    decode_incident_state,
    decode_movement_counts,
    decode_traffic_flow_observed,
    encode_incident_event,
    encode_incident_state,
    encode_movement_counts,
    encode_traffic_flow_observed,
)
from atcs.bus.messages import MessageMeta
from atcs.bus.schemas import validate
from atcs.bus.topics import TopicKind, Topics
from atcs.config import FiwareConfig
from atcs.errors import PayloadError
from atcs.incidents import IncidentKind, IncidentPhase
from atcs.types import IntersectionId, SegmentId
from tests.support import samples as s

META = MessageMeta("stream-1", 9)


@pytest.mark.parametrize(
    ("topic", "kind", "ident"),
    [
        ("p/movements/ix-1", TopicKind.MOVEMENT_COUNTS, "ix-1"),
        ("p/incidents/seg-a/events", TopicKind.INCIDENT_EVENT, "seg-a"),
        ("p/incidents/seg-a/state", TopicKind.INCIDENT_STATE, "seg-a"),
        ("p/segments/seg-a/traffic-flow-observed", TopicKind.TRAFFIC_FLOW_OBSERVED, "seg-a"),
    ],
)
def test_new_topics_are_built_and_parsed(topic: str, kind: TopicKind, ident: str) -> None:
    t = Topics("p")
    built = {
        TopicKind.MOVEMENT_COUNTS: t.movements(IntersectionId(ident)),
        TopicKind.INCIDENT_EVENT: t.incident_events(SegmentId(ident)),
        TopicKind.INCIDENT_STATE: t.incident_state(SegmentId(ident)),
        TopicKind.TRAFFIC_FLOW_OBSERVED: t.traffic_flow_observed(SegmentId(ident)),
    }[kind]
    assert built == topic
    parsed = t.parse(topic)
    assert (parsed.kind, parsed.ident) == (kind, ident)
    for foreign in ("p/movements", "p/incidents/seg-a", "p/incidents/seg-a/other"):
        with pytest.raises(PayloadError):
            t.parse(foreign)


def test_movement_counts_round_trip_is_exact() -> None:
    m = s.movements(2)
    payload = encode_movement_counts(m, META)
    doc = json.loads(payload)
    assert doc["schema"] == "atcs.movement_counts/1"
    assert doc["total"] == 5 + 5  # 5 cars a -> b, one of each class b -> a
    assert doc["movements"][0] == {"from_zone": "arm-a", "to_zone": "arm-b", "class": "car",
                                   "count": 5}  # fmt: skip
    got = decode_movement_counts(payload, "ix-1")
    assert got.record == m
    assert got.meta == META
    with pytest.raises(PayloadError, match="does not match the topic"):
        decode_movement_counts(payload, "ix-2")


def test_incident_event_and_state_round_trip() -> None:
    for phase in IncidentPhase:
        event = s.incident_event(phase)
        payload = encode_incident_event(event, META)
        doc = json.loads(payload)
        assert doc["event"] == phase.value
        assert doc["incident"]["track_id"] == 17
        got = decode_incident_event(payload, "seg-a").record
        assert (got.phase, got.incident, got.at) == (phase, event.incident, event.at)
        state = encode_incident_state(event, META)
        assert decode_incident_state(state, "seg-a").record == event.active
    end = json.loads(encode_incident_event(s.incident_event(IncidentPhase.END), META))
    assert end["incident"]["duration_s"] == 45.0
    assert end["incident"]["ended_at"] == "2025-03-01T01:00:45.000000Z"
    with pytest.raises(PayloadError, match="does not match"):
        decode_incident_event(encode_incident_event(s.incident_event(), META), "seg-b")


def test_segment_wide_incidents_have_no_vehicle() -> None:
    doc = json.loads(encode_incident_state(s.incident_event(), META))
    (first, second) = doc["active"]  # oldest first
    assert (first["kind"], first["track_id"], first["class"]) == ("spillback", None, None)
    assert (second["kind"], second["track_id"]) == ("stopped_vehicle", 17)
    assert IncidentKind(first["kind"]) is IncidentKind.SPILLBACK


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d["incident"].update(kind="fire"), "kind"),
        (lambda d: d["incident"].update(location=[0.1]), "location"),
        (lambda d: d.update(event="pause"), "event"),
        (lambda d: d["incident"].pop("slot"), "slot"),
    ],
)
def test_malformed_incident_events_are_refused(mutate: object, reason: str) -> None:
    doc = json.loads(encode_incident_event(s.incident_event(), META))
    assert callable(mutate)
    mutate(doc)
    with pytest.raises(PayloadError, match=reason):
        decode_incident_event(json.dumps(doc))


def test_fiware_rendering_follows_the_model() -> None:
    m = s.metrics(0)
    entity = traffic_flow_observed(m, FiwareConfig(enabled=True, data_provider="Dishub"), "Jl. A")
    assert entity == {
        "id": "urn:ngsi-ld:TrafficFlowObserved:demo:seg-a",
        "type": "TrafficFlowObserved",
        "dateObserved": "2025-03-01T01:00:00.000000Z/2025-03-01T01:00:10.000000Z",
        "dateObservedFrom": "2025-03-01T01:00:00.000000Z",
        "dateObservedTo": "2025-03-01T01:00:10.000000Z",
        "intensity": 2,
        "occupancy": 0.125,
        "averageVehicleSpeed": 41.5,
        "congested": False,
        "name": "Jl. A",
        "dataProvider": "Dishub",
        "@context": [CONTEXT],
    }
    payload = encode_traffic_flow_observed(entity, META)
    assert "seq" not in json.loads(payload)  # the external model, unchanged
    assert decode_traffic_flow_observed(payload) == entity
    # no speed without a calibration; a stale window is no observation
    odd = traffic_flow_observed(s.metrics(1), FiwareConfig(enabled=True))
    assert odd is not None
    assert "averageVehicleSpeed" not in odd
    assert "dataProvider" not in odd
    validate(TopicKind.TRAFFIC_FLOW_OBSERVED, odd)
    stale = dataclasses.replace(s.metrics(0), stale=True, frames=0)
    assert traffic_flow_observed(stale, FiwareConfig(enabled=True)) is None
    with pytest.raises(PayloadError):
        decode_traffic_flow_observed(json.dumps({**entity, "schema": "atcs.x/1"}))
    with pytest.raises(PayloadError, match="exceeds"):
        decode_traffic_flow_observed(b" " * (MAX_PAYLOAD_BYTES + 1))
