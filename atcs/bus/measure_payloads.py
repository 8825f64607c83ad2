"""Codecs of turning movements, incidents and the FIWARE rendering (engine → all).

``{p}/movements/{ix}`` carries ``atcs.movement_counts/1`` (retained, QoS 1);
``{p}/incidents/{segment}/events`` ``atcs.incident_event/1`` (QoS 1, not retained) and
``{p}/incidents/{segment}/state`` ``atcs.incident_state/1`` (retained, QoS 1);
``{p}/segments/{segment}/traffic-flow-observed`` a FIWARE ``TrafficFlowObserved`` entity
(retained, QoS 1) that follows the external model unchanged: no ``schema``, ``stream`` or
``seq`` field. Schemas: ``atcs/contract``. Decoders raise only
:class:`~atcs.errors.PayloadError`.
"""

from __future__ import annotations

from typing import Any

from atcs.bus.codec import (
    MAX_PAYLOAD_BYTES,
    Received,
    build,
    dump,
    iso_utc,
    load,
    load_for_topic,
    meta_of,
    opt_float,
    opt_time,
    parse_time,
    with_meta,
)
from atcs.bus.jsontext import parse_object
from atcs.bus.messages import MessageMeta
from atcs.bus.schemas import SCHEMA_IDS, validate
from atcs.bus.topics import TopicKind
from atcs.errors import PayloadError
from atcs.incidents import Incident, IncidentEvent, IncidentKind, IncidentPhase
from atcs.types import (
    CameraId,
    IntersectionId,
    MovementCount,
    MovementCounts,
    SegmentId,
    SiteId,
    TrackId,
    VehicleClass,
    ZoneId,
)

MAX_DETAIL_CHARS = 1000
"""Longer incident details are cut on the bus."""


# Movement counts -----------------------------------------------------------------------


def encode_movement_counts(counts: MovementCounts, meta: MessageMeta) -> bytes:
    """One :class:`MovementCounts` as the payload of ``{p}/movements/{ix}``."""
    doc: dict[str, Any] = {
        "schema": SCHEMA_IDS[TopicKind.MOVEMENT_COUNTS],
        "site": counts.site_id,
        "camera": counts.camera_id,
        "intersection": counts.intersection_id,
        "window_start": iso_utc(counts.window_start),
        "window_end": iso_utc(counts.window_end),
        "window_s": counts.window_s,
        "observed_s": counts.observed_s,
        "partial": counts.partial,
        "frames": counts.frames,
        "stale": counts.stale,
        "total": counts.total,
        "movements": [
            {
                "from_zone": c.from_zone,
                "to_zone": c.to_zone,
                "class": c.vehicle_class.label,
                "count": c.count,
            }
            for c in counts.counts
        ],
    }
    return dump(with_meta(doc, meta))


def decode_movement_counts(
    payload: bytes | str, topic_ident: str | None = None
) -> Received[MovementCounts]:
    """Validate and read a movement counts payload (``topic_ident``: the topic's intersection)."""
    kind = TopicKind.MOVEMENT_COUNTS
    doc = load_for_topic(kind, payload, "intersection", topic_ident)
    record = build(
        kind,
        lambda: MovementCounts(
            site_id=SiteId(doc["site"]),
            camera_id=CameraId(doc["camera"]),
            intersection_id=IntersectionId(doc["intersection"]),
            window_start=parse_time(doc["window_start"]),
            window_end=parse_time(doc["window_end"]),
            frames=int(doc["frames"]),
            observed_s=float(doc["observed_s"]),
            partial=bool(doc["partial"]),
            stale=bool(doc["stale"]),
            counts=tuple(
                MovementCount(
                    ZoneId(m["from_zone"]),
                    ZoneId(m["to_zone"]),
                    VehicleClass.from_label(m["class"]),
                    int(m["count"]),
                )
                for m in doc["movements"]
            ),
        ),
    )
    return Received(record, meta_of(doc))


# Incidents -----------------------------------------------------------------------------


def incident_doc(incident: Incident) -> dict[str, Any]:
    """Return one :class:`Incident` as the JSON object both incident payloads carry."""
    return {
        "id": incident.incident_id,
        "kind": incident.kind.value,
        "site": incident.site_id,
        "camera": incident.camera_id,
        "segment": incident.segment_id,
        "started_at": iso_utc(incident.started_at),
        "ended_at": None if incident.ended_at is None else iso_utc(incident.ended_at),
        "duration_s": incident.duration_s,
        "track_id": None if incident.track_id is None else int(incident.track_id),
        "class": None if incident.vehicle_class is None else incident.vehicle_class.label,
        "location": None if incident.location is None else list(incident.location),
        "value": incident.value,
        "detail": incident.detail[:MAX_DETAIL_CHARS],
        "slot": incident.slot,
    }


def _incident(doc: dict[str, Any]) -> Incident:
    location = doc["location"]
    return Incident(
        incident_id=str(doc["id"]),
        kind=IncidentKind(doc["kind"]),
        site_id=SiteId(doc["site"]),
        camera_id=CameraId(doc["camera"]),
        segment_id=SegmentId(doc["segment"]),
        started_at=parse_time(doc["started_at"]),
        ended_at=opt_time(doc["ended_at"]),
        track_id=None if doc["track_id"] is None else TrackId(int(doc["track_id"])),
        vehicle_class=None if doc["class"] is None else VehicleClass.from_label(doc["class"]),
        location=None if location is None else (float(location[0]), float(location[1])),
        value=opt_float(doc["value"]),
        detail=str(doc["detail"]),
        slot=int(doc["slot"]),
    )


def encode_incident_event(event: IncidentEvent, meta: MessageMeta) -> bytes:
    """Encode an incident's start or end: the payload of ``{p}/incidents/{segment}/events``."""
    doc: dict[str, Any] = {
        "schema": SCHEMA_IDS[TopicKind.INCIDENT_EVENT],
        "event": event.phase.value,
        "at": iso_utc(event.at),
        "incident": incident_doc(event.incident),
    }
    return dump(with_meta(doc, meta))


def decode_incident_event(
    payload: bytes | str, topic_ident: str | None = None
) -> Received[IncidentEvent]:
    """Validate and read an incident event (``topic_ident``: the topic's segment).

    The record's ``active`` is empty: the state topic carries the open incidents.
    """
    kind = TopicKind.INCIDENT_EVENT
    doc = load(kind, payload)
    if topic_ident is not None and doc["incident"]["segment"] != topic_ident:
        raise PayloadError(f"incident segment does not match the topic's {topic_ident[:64]!r}")
    record = build(
        kind,
        lambda: IncidentEvent(
            IncidentPhase(doc["event"]), _incident(doc["incident"]), parse_time(doc["at"]), ()
        ),
    )
    return Received(record, meta_of(doc))


def encode_incident_state(event: IncidentEvent, meta: MessageMeta) -> bytes:
    """Encode the segment's open incidents after ``event``: the payload of ``.../state``."""
    incident = event.incident
    doc: dict[str, Any] = {
        "schema": SCHEMA_IDS[TopicKind.INCIDENT_STATE],
        "site": incident.site_id,
        "camera": incident.camera_id,
        "segment": incident.segment_id,
        "at": iso_utc(event.at),
        "active": [incident_doc(i) for i in event.active],
    }
    return dump(with_meta(doc, meta))


def decode_incident_state(
    payload: bytes | str, topic_ident: str | None = None
) -> Received[tuple[Incident, ...]]:
    """Validate and read an incident state: the segment's open incidents, oldest first."""
    kind = TopicKind.INCIDENT_STATE
    doc = load_for_topic(kind, payload, "segment", topic_ident)
    record = build(kind, lambda: tuple(_incident(i) for i in doc["active"]))
    return Received(record, meta_of(doc))


# FIWARE --------------------------------------------------------------------------------


def encode_traffic_flow_observed(entity: dict[str, Any], meta: MessageMeta) -> bytes:
    """Encode a FIWARE entity as it is (``meta`` unused: the model has no such field)."""
    del meta
    return dump(entity)


def decode_traffic_flow_observed(payload: bytes | str) -> dict[str, Any]:
    """Validate a FIWARE TrafficFlowObserved entity against the contract's schema."""
    kind = TopicKind.TRAFFIC_FLOW_OBSERVED
    raw = payload.encode("utf-8", "replace") if isinstance(payload, str) else bytes(payload)
    doc = parse_object(raw, kind.value, max_bytes=MAX_PAYLOAD_BYTES)
    if not isinstance(doc, dict):
        raise PayloadError(f"{kind.value} payload is a JSON {type(doc).__name__}, not an object")
    validate(kind, doc)
    return doc
