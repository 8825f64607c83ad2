"""The AsyncAPI 3.0 document of the bus (``atcs/contract/asyncapi.yaml``), generated.

Each topic kind's channel, operation and message come from one :class:`Channel` entry
here (its address from :class:`~atcs.bus.topics.Topics`, its payload from the message's
schema file, its direction and MQTT binding) and the message declarations of
:data:`~atcs.bus.catalog.MESSAGES` (their descriptions). ``python -m atcs.bus.catalog``
writes the file with the schema files; ``--check`` reports drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from atcs.bus.schemas import schema_file_name
from atcs.bus.topics import TopicKind, Topics
from atcs.types import CameraId, IntersectionId, SegmentId

FILE_NAME = "asyncapi.yaml"

_T = Topics()  # the default prefix: the document's addresses use it
_IX = IntersectionId("{intersection}")
_SEG = SegmentId("{segment}")


@dataclass(frozen=True, slots=True)
class Channel:
    """One topic kind in the document.

    ``name`` is the channel's and message's id (camelCase); ``params`` maps each address
    parameter to its entry under ``components/parameters``; ``send`` is True for what the
    engine publishes (False: what it receives); ``summary`` adds to the message.
    """

    name: str
    address: str
    description: str
    title: str
    params: Mapping[str, str]
    send: bool = True
    retain: bool = True
    qos: int = 1
    summary: str = ""
    content_type: str = "application/json"
    channel_id: str = ""
    """The channel's id when it differs from ``name``."""


_INTERSECTION = {"intersection": "intersection"}
_SEGMENT = {"segment": "segment"}

CHANNELS: dict[TopicKind, Channel] = {
    TopicKind.ENGINE_STATUS: Channel(
        "engineStatus",
        _T.engine_status(),
        "Availability of the engine; the last will sets it offline.",
        "Engine status",
        {},
    ),
    TopicKind.CAMERA_STATUS: Channel(
        "cameraStatus",
        _T.camera_status(CameraId("{camera}")),
        "Health of one camera.",
        "Camera status",
        {"camera": "camera"},
    ),
    TopicKind.SEGMENT_METRICS: Channel(
        "segmentMetrics",
        _T.segment_metrics(_SEG),
        "One window of traffic measures of one road segment.",
        "Segment metrics",
        _SEGMENT,
        summary="One window of one segment. Flows are per hour of the window's observed time "
        "(observed_s; partial when below the configured share); flow_veh_h is the approach "
        "flow (each line's approach direction, toward the stop line), flows lists both "
        "directions with an approach flag.",
    ),
    TopicKind.SEGMENT_ZONE: Channel(
        "segmentZone",
        _T.segment_zone(_SEG),
        "The vehicles of the newest frame in a segment with a stop line that feeds a "
        "phase-mode intersection (distance from the stop line, speed, PCU), at most once a "
        "second per segment, from the node that measures it to the control node.",
        "Segment zone (one frame's vehicles)",
        _SEGMENT,
        retain=False,
        qos=0,
        summary="Only for phase-mode segments with a stop line; stale after "
        "frame_stale_s (2 s by default), when the control node falls back to the windows.",
    ),
    TopicKind.TIMING_PLAN: Channel(
        "timingPlan",
        _T.plan(_IX),
        "The plan the engine wants the signal controller of an intersection to run.",
        "Timing plan",
        _INTERSECTION,
    ),
    TopicKind.PLAN_ACK: Channel(
        "planAck",
        _T.plan_ack(_IX),
        "A signal controller's answer to a plan, signed by the controller (auth).",
        "Plan acknowledgement",
        _INTERSECTION,
        send=False,
        retain=False,
    ),
    TopicKind.OVERRIDE: Channel(
        "override",
        _T.override(_IX),
        "An operator's override of an intersection (outranks every controller), signed by an "
        "operator console (auth).",
        "Operator override",
        _INTERSECTION,
        send=False,
        retain=False,
    ),
    TopicKind.OVERRIDE_STATE: Channel(
        "overrideState",
        _T.override_state(_IX),
        "Whether an operator override is in force at an intersection, from its control node "
        "(retained; published at start and on every change), for rooms and viewers.",
        "Override in force",
        _INTERSECTION,
    ),
    TopicKind.PHASE_COMMAND: Channel(
        "phaseCommand",
        _T.command(_IX),
        "A phase-by-phase command to the signal controller of an intersection (serve a phase "
        "next, or extend the green in force), each with a deadline, signed by the engine "
        "(auth; the controller's adapter checks it with the engine's key).",
        "Phase command",
        _INTERSECTION,
        retain=False,
    ),
    TopicKind.SIGNAL_STATE: Channel(
        "signalState",
        _T.state(_IX),
        "The signal controller's state at least once a second (SPaT-like): phase, interval, "
        "time in interval, command or local mode; signed by the controller (auth), not "
        "retained (a retained copy would be a replay).",
        "Signal controller state",
        _INTERSECTION,
        send=False,
        retain=False,
        qos=0,
    ),
    TopicKind.MOVEMENT_COUNTS: Channel(
        "movementCounts",
        _T.movements(_IX),
        "The turning-movement (origin-destination) matrix of one intersection over one "
        "window: vehicles per start zone, end zone and class.",
        "Turning movement counts",
        {"intersection": "zoneIntersection"},
        summary="Every start/end zone pair of the intersection for every class, zeros "
        "included; a track counts once, when it reaches an end zone after leaving a start "
        "zone.",
    ),
    TopicKind.INCIDENT_EVENT: Channel(
        "incidentEvent",
        _T.incident_events(_SEG),
        "Starts and ends of a segment's incidents (stopped vehicle, wrong way, spillback, "
        "density jump), one message each, in order; the state message follows each one.",
        "Incident start or end",
        _SEGMENT,
        retain=False,
        channel_id="incidentEvents",
    ),
    TopicKind.INCIDENT_STATE: Channel(
        "incidentState",
        _T.incident_state(_SEG),
        "The segment's open incidents after its latest incident event (retained: a new "
        "subscriber gets every open incident at once; an empty list when none is open).",
        "Open incidents of a segment",
        _SEGMENT,
    ),
    TopicKind.TRAFFIC_FLOW_OBSERVED: Channel(
        "trafficFlowObserved",
        _T.traffic_flow_observed(_SEG),
        "Optional (fiware.enabled): each segment window as a FIWARE Smart Data Models "
        "TrafficFlowObserved entity, NGSI-LD key-values, for a city data platform.",
        "FIWARE TrafficFlowObserved",
        _SEGMENT,
        summary="The external model unchanged: no schema, stream or seq field. The mapping "
        "from the engine's measures is in docs/measures.md.",
        content_type="application/ld+json",
    ),
    TopicKind.ALARM: Channel(
        "alarm",
        _T.alarm("{alarm}"),
        "The state of one alarm (congestion, camera down, stale data, node down, intersection "
        "in fallback or manual, plan rejected, incident) after its latest change; one "
        "retained topic per alarm kind and subject ({alarm} is kind.subject, e.g. "
        "congestion.jl-merdeka).",
        "Alarm",
        {"alarm": "alarm"},
        summary="Raised, ended or acknowledged (by a logged-in user, with a comment). Texts "
        "are a code with parameters, translated by whoever shows them.",
    ),
    TopicKind.NODE_STATUS: Channel(
        "nodeStatus",
        _T.node_status("{node}"),
        "Availability of one node of a multi-node city (edge, control, room or all), with "
        "the cameras it reads and the intersections it controls; its last will sets it "
        "offline.",
        "Node status",
        {"node": "node"},
    ),
}
"""The channel of each topic kind (every kind has one)."""

_HEAD = """\
# The atcs MQTT contract (AsyncAPI 3.0), generated by `python -m atcs.bus.catalog` from
# atcs/bus/asyncapi.py, atcs/bus/topics.py and the message declarations: do not edit.
# Payload schemas are the JSON Schema (draft-07) files beside this one. The topic prefix
# is configurable (mqtt.prefix); the addresses below use the default "atcs/v1". Ids are
# single topic levels (no '/', '+', '#').
"""

_DESCRIPTION = """\
Live traffic measures, turning movements, incidents, camera health and signal timing
plans from the atcs engine, and the answers of signal controllers and operators.

Delivery: every message the engine publishes goes out with QoS 1 from an on-disk
queue, in order, at least once; copies carry the same `stream` and `seq`, so a
subscriber that keeps only increasing `seq` per stream and topic sees each message
exactly once. Engine messages are retained (incident events excepted: their state
message is): a new subscriber gets the latest state at once (a retained copy arrives
again on every subscribe). The FIWARE TrafficFlowObserved rendering follows its
external model and carries no `schema`, `stream` or `seq`.

Security (docs/security.md): control messages (plan acks, overrides, signal-controller
states, and the engine's phase commands) carry an `auth` object: sender, algorithm
(hmac-sha256 or ed25519), issued_at, expires_at, nonce and a signature over the topic,
a newline and the RFC 8785 canonical form of the payload without `auth.sig`. The engine
refuses (and audits) unsigned, badly signed, expired and replayed ones unless its lab
setting allows unsigned control; a signal controller checks the engine's commands the
same way. Inbound payloads are bounded: 256 KiB (16 KiB for control messages) and 16
levels of nesting. Brokers should run with TLS and the per-role ACL in deploy/mosquitto.
"""

_SERVERS = {
    "local": {
        "host": "127.0.0.1:1883",
        "protocol": "mqtt",
        "protocolVersion": "3.1.1",
        "description": 'A local Mosquitto; MQTT 5 is supported as well (mqtt.protocol = "5").',
    },
    "production": {
        "host": "broker.example:8883",
        "protocol": "secure-mqtt",
        "protocolVersion": "3.1.1",
        "description": "TLS only, a user and password per role, the ACL in deploy/mosquitto.",
        "security": [{"$ref": "#/components/securitySchemes/userPassword"}],
    },
}

_PARAMETERS = {
    "alarm": "Alarm kind and subject id joined by a dot (congestion.segment-id).",
    "camera": "Camera id from the configuration.",
    "node": "Node id (node.id in the node's configuration).",
    "segment": "Segment id from the configuration.",
    "intersection": "Intersection id from the configuration.",
    "zoneIntersection": "Intersection id of turning-movement zones (zones.intersection; the "
    "camera id when not set).",
}


def document(descriptions: Mapping[TopicKind, str]) -> dict[str, Any]:
    """Return the AsyncAPI document; ``descriptions``: each message's (from its declaration)."""
    missing = [k.value for k in TopicKind if k not in CHANNELS]
    if missing:
        raise ValueError(f"no AsyncAPI channel declared for {', '.join(missing)}")
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for kind in TopicKind:
        ch = CHANNELS[kind]
        cid = ch.channel_id or ch.name
        channel: dict[str, Any] = {"address": ch.address, "description": ch.description}
        if ch.params:
            channel["parameters"] = {
                p: {"$ref": f"#/components/parameters/{ref}"} for p, ref in ch.params.items()
            }
        channel["messages"] = {ch.name: {"$ref": f"#/components/messages/{ch.name}"}}
        channels[cid] = channel
        verb = "publish" if ch.send else "receive"
        operations[verb + ch.name[0].upper() + ch.name[1:]] = {
            "action": "send" if ch.send else "receive",
            "channel": {"$ref": f"#/channels/{cid}"},
            "bindings": {"mqtt": {"qos": ch.qos, "retain": ch.retain}},
        }
        message: dict[str, Any] = {"name": ch.name, "title": ch.title}
        if ch.summary:
            message["summary"] = ch.summary
        message["description"] = descriptions[kind]
        message["contentType"] = ch.content_type
        message["payload"] = {
            "schemaFormat": "application/schema+json;version=draft-07",
            "schema": {"$ref": f"./{schema_file_name(kind)}"},
        }
        messages[ch.name] = message
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "atcs engine bus",
            "version": "1.0.0",
            "description": _DESCRIPTION,
            "license": {"name": "AGPL-3.0-or-later"},
        },
        "defaultContentType": "application/json",
        "servers": _SERVERS,
        "channels": channels,
        "operations": operations,
        "components": {
            "securitySchemes": {
                "userPassword": {
                    "type": "userPassword",
                    "description": "One MQTT user per role (engine, signal controller, "
                    "console, room, viewer).",
                }
            },
            "parameters": {name: {"description": text} for name, text in _PARAMETERS.items()},
            "messages": messages,
        },
    }


class _Dumper(yaml.SafeDumper):
    """Block-style YAML with multi-line texts as literal blocks."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def render(descriptions: Mapping[TopicKind, str]) -> str:
    """Return the text of ``asyncapi.yaml`` (a comment header, then block-style YAML)."""
    body = yaml.dump(
        document(descriptions),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=92,
        indent=2,
    )
    return _HEAD + body
