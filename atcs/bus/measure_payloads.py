"""Codecs of turning movements, incidents and the FIWARE rendering (engine → all).

``{p}/movements/{ix}`` carries ``atcs.movement_counts/1`` (retained, QoS 1);
``{p}/incidents/{segment}/events`` ``atcs.incident_event/1`` (QoS 1, not retained) and
``{p}/incidents/{segment}/state`` ``atcs.incident_state/1`` (retained, QoS 1);
``{p}/segments/{segment}/traffic-flow-observed`` a FIWARE ``TrafficFlowObserved`` entity
(retained, QoS 1) that follows the external model unchanged: no ``schema``, ``stream`` or
``seq`` field. Each is declared once (:class:`~atcs.bus.model.Message`); the schemas in
``atcs/contract`` and the codecs come from the declarations. Decoders raise only
:class:`~atcs.errors.PayloadError`.
"""

from __future__ import annotations

from typing import Any

from atcs.bus.codec import Received, dump
from atcs.bus.messages import MessageMeta
from atcs.bus.model import Field, Message, Struct
from atcs.bus.payloads import VEHICLE_CLASS, WINDOW
from atcs.bus.topics import TopicKind
from atcs.bus.wire import (
    ArrayOf,
    Boolean,
    Const,
    DateTime,
    Id,
    Integer,
    Nullable,
    Number,
    Text,
    choice,
)
from atcs.errors import PayloadError
from atcs.incidents import Incident, IncidentEvent, IncidentKind, IncidentPhase
from atcs.types import MovementCount, MovementCounts

# Movement counts -----------------------------------------------------------------------

MOVEMENT = Struct(
    (
        Field("from_zone", Id(), "Zone the vehicles left (origin)."),
        Field("to_zone", Id(), "Zone they reached (destination)."),
        Field("class", VEHICLE_CLASS, attr="vehicle_class"),
        Field(
            "count", Integer(), "Vehicles that made the movement in the window, each counted once."
        ),
    ),
    MovementCount,
)

MOVEMENT_COUNTS: Message[MovementCounts] = Message(
    TopicKind.MOVEMENT_COUNTS,
    "MovementCounts",
    "The origin-destination (turning movement) matrix of one intersection over one window, "
    "published retained (QoS 1) on {prefix}/movements/{intersection}.",
    Struct(
        (
            Field("site", Id(), "Site id.", attr="site_id"),
            Field("camera", Id(), "Camera that sees the intersection's zones.", attr="camera_id"),
            Field(
                "intersection",
                Id(),
                "Intersection id (also in the topic).",
                attr="intersection_id",
            ),
            *WINDOW,
            Field(
                "observed_s",
                Number(minimum=0),
                "Time of the window the camera was actually seen, s (as in segment metrics).",
            ),
            Field(
                "partial",
                Boolean(),
                "True when observed_s is less than the configured share of window_s.",
            ),
            Field("frames", Integer(), "Frames analysed in the window."),
            Field("stale", Boolean(), "True when the window saw no frame."),
            Field(
                "total",
                Integer(),
                "Sum of every count of the window.",
                attr=None,
                get=lambda c: c.total,
            ),
            Field(
                "movements",
                ArrayOf(MOVEMENT, max_items=20000),
                "Every pair of a zone where movements start and another zone where they end, "
                "for every class, zeros included, in a fixed order.",
                attr="counts",
            ),
        ),
        MovementCounts,
    ),
    streamed=True,
    topic_key="intersection",
)


def encode_movement_counts(counts: MovementCounts, meta: MessageMeta) -> bytes:
    """One :class:`MovementCounts` as the payload of ``{p}/movements/{ix}``."""
    return MOVEMENT_COUNTS.encode(counts, meta)


def decode_movement_counts(
    payload: bytes | str, topic_ident: str | None = None
) -> Received[MovementCounts]:
    """Validate and read a movement counts payload (``topic_ident``: the topic's intersection)."""
    return MOVEMENT_COUNTS.decode(payload, topic_ident)


# Incidents -----------------------------------------------------------------------------

INCIDENT = Struct(
    (
        Field(
            "id",
            Text(1, 200),
            "Incident id, unique: the same in its start and end events.",
            attr="incident_id",
        ),
        Field("kind", choice(IncidentKind), "What happened (docs/measures.md, Incidents)."),
        Field("site", Id(), attr="site_id"),
        Field("camera", Id(), attr="camera_id"),
        Field("segment", Id(), attr="segment_id"),
        Field(
            "started_at",
            DateTime(),
            "When the condition began (a stopped vehicle: when it stopped), ISO-8601 UTC.",
        ),
        Field("ended_at", Nullable(DateTime()), "When it was over; null while open."),
        Field(
            "duration_s",
            Nullable(Number(minimum=0)),
            "ended_at - started_at, s; null while open.",
            attr=None,
            get=lambda i: i.duration_s,
        ),
        Field(
            "track_id",
            Nullable(Integer()),
            "Track of the vehicle (stopped_vehicle, wrong_way); null otherwise.",
        ),
        Field(
            "class",
            Nullable(VEHICLE_CLASS),
            "Class of the vehicle; null for segment-wide kinds.",
            attr="vehicle_class",
        ),
        Field(
            "location",
            Nullable(ArrayOf(Number(), 2, 2)),
            "Where to look: normalised [x, y] image coordinates of the camera (the vehicle's "
            "bottom centre, the spillback point, the segment's centre).",
        ),
        Field(
            "value",
            Nullable(Number()),
            "stopped_vehicle: seconds stopped when raised; spillback: queue length, m; "
            "density_jump: density, pcu/km/lane; wrong_way: null.",
        ),
        Field("detail", Text(max_length=1000, cut=True), "A sentence for people."),
        Field(
            "slot",
            Integer(),
            "Lowest number not taken by another open incident of the same kind and segment "
            "(0 unless several overlap).",
        ),
    ),
    Incident,
    name="incident",
)

INCIDENT_EVENT: Message[IncidentEvent] = Message(
    TopicKind.INCIDENT_EVENT,
    "IncidentEvent",
    "The start or the end of an incident of one segment, published (QoS 1, not retained) on "
    "{prefix}/incidents/{segment}/events. The matching state message follows on "
    "{prefix}/incidents/{segment}/state.",
    Struct(
        (
            Field(
                "event", choice(IncidentPhase), "Whether the incident starts or ends.", attr="phase"
            ),
            Field(
                "at",
                DateTime(),
                "When the engine decided, ISO-8601 UTC (a start after a hold time is later "
                "than started_at).",
            ),
            Field("incident", INCIDENT),
        ),
        IncidentEvent,
    ),
    streamed=True,
)


def encode_incident_event(event: IncidentEvent, meta: MessageMeta) -> bytes:
    """Encode an incident's start or end: the payload of ``{p}/incidents/{segment}/events``."""
    return INCIDENT_EVENT.encode(event, meta)


def decode_incident_event(
    payload: bytes | str, topic_ident: str | None = None
) -> Received[IncidentEvent]:
    """Validate and read an incident event (``topic_ident``: the topic's segment).

    The record's ``active`` is empty: the state topic carries the open incidents.
    """
    doc = INCIDENT_EVENT.load(payload)
    if topic_ident is not None and doc["incident"]["segment"] != topic_ident:
        raise PayloadError(f"incident segment does not match the topic's {topic_ident[:64]!r}")
    return Received(INCIDENT_EVENT.read(doc, active=()), MessageMeta(doc["stream"], doc["seq"]))


INCIDENT_STATE: Message[tuple[Incident, ...]] = Message(
    TopicKind.INCIDENT_STATE,
    "IncidentState",
    "The open incidents of one segment after its latest incident event, published retained "
    "(QoS 1) on {prefix}/incidents/{segment}/state: a dashboard that subscribes gets every "
    "open incident at once.",
    Struct(
        (
            Field("site", Id(), attr=None, get=lambda e: e.incident.site_id),
            Field("camera", Id(), attr=None, get=lambda e: e.incident.camera_id),
            Field(
                "segment",
                Id(),
                "Segment id (also in the topic).",
                attr=None,
                get=lambda e: e.incident.segment_id,
            ),
            Field(
                "at",
                DateTime(),
                "Time of the event that changed the state, ISO-8601 UTC.",
                attr=None,
            ),
            Field(
                "active",
                ArrayOf(INCIDENT, max_items=1000),
                "Open incidents of the segment, oldest first; empty when none.",
            ),
        ),
        lambda active: active,
    ),
    streamed=True,
    topic_key="segment",
)


def encode_incident_state(event: IncidentEvent, meta: MessageMeta) -> bytes:
    """Encode the segment's open incidents after ``event``: the payload of ``.../state``."""
    return INCIDENT_STATE.encode(event, meta, at=event.at)


def decode_incident_state(
    payload: bytes | str, topic_ident: str | None = None
) -> Received[tuple[Incident, ...]]:
    """Validate and read an incident state: the segment's open incidents, oldest first."""
    return INCIDENT_STATE.decode(payload, topic_ident)


# FIWARE --------------------------------------------------------------------------------

TRAFFIC_FLOW_OBSERVED: Message[dict[str, Any]] = Message(
    TopicKind.TRAFFIC_FLOW_OBSERVED,
    "TrafficFlowObserved",
    "FIWARE Smart Data Models TrafficFlowObserved (NGSI-LD, key-values) rendering of one "
    "segment window, published retained (QoS 1) on "
    "{prefix}/segments/{segment}/traffic-flow-observed when fiware.enabled is set. The "
    "payload follows the external model unchanged: it has no schema, stream or seq field. "
    "The attributes the engine fills are listed here; the mapping is in docs/measures.md.",
    Struct(
        (
            Field(
                "id",
                Text(1, 512),
                "fiware.entity_prefix + site + ':' + segment: one entity per segment, updated "
                "every window.",
            ),
            Field("type", Const("TrafficFlowObserved")),
            Field(
                "dateObserved",
                Text(pattern=r"^\S+/\S+$"),
                "The window as an ISO-8601 interval, start/end (UTC).",
            ),
            Field("dateObservedFrom", DateTime(), "Window start."),
            Field("dateObservedTo", DateTime(), "Window end."),
            Field(
                "intensity",
                Integer(),
                "Vehicles that crossed the segment's counting lines in their approach "
                "direction in the window (left out without a counting line).",
                required=False,
            ),
            Field(
                "occupancy",
                Number(minimum=0, maximum=1),
                "The engine's occupancy: mean covered fraction of the segment polygon.",
            ),
            Field(
                "averageVehicleSpeed",
                Number(minimum=0),
                "Mean ground speed, km/h (left out without a calibration or a vehicle with a "
                "speed).",
                required=False,
            ),
            Field(
                "congested",
                Boolean(),
                "The engine's congested flag (level of service at or past "
                "analysis.congested_from_los).",
            ),
            Field("name", Text(), "The segment's name, else its id."),
            Field("dataProvider", Text(), "fiware.data_provider, when set.", required=False),
            Field(
                "@context",
                ArrayOf(Text(), min_items=1),
                "JSON-LD context of the Smart Data Models transportation domain.",
            ),
        ),
    ),
    external=True,
)


def encode_traffic_flow_observed(entity: dict[str, Any], meta: MessageMeta) -> bytes:
    """Encode a FIWARE entity as it is (``meta`` unused: the model has no such field)."""
    del meta
    return dump(entity)


def decode_traffic_flow_observed(payload: bytes | str) -> dict[str, Any]:
    """Validate a FIWARE TrafficFlowObserved entity against the contract's schema."""
    return TRAFFIC_FLOW_OBSERVED.load(payload)
