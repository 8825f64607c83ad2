"""The alarm payload of ``{p}/alarms/{kind}.{subject}/state``: encode and decode.

One retained message per alarm kind and subject holds the state after the latest change
(raised, ended, acknowledged). Declared once (:data:`ALARM`); the schema
``atcs/contract/alarm.schema.json`` comes from the declaration.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from atcs.alarms.model import (
    Alarm,
    AlarmChange,
    AlarmEvent,
    AlarmKind,
    Severity,
    SubjectType,
)
from atcs.bus.codec import Received
from atcs.bus.messages import MessageMeta
from atcs.bus.model import Field, Message, Struct
from atcs.bus.topics import TopicKind
from atcs.bus.wire import Boolean, DateTime, Id, MapOf, Nullable, Scalar, Text, choice

MAX_PARAMS = 32
"""Parameters beyond the first 32 are left out on the bus."""


def alarm_key(event: AlarmEvent) -> str:
    """Return the topic level of an alarm: kind and subject joined by a dot."""
    return f"{event.alarm.kind.value}.{event.alarm.subject}"


def _alarm_event(*, site_id: str, change: AlarmChange, at: datetime, **alarm: Any) -> AlarmEvent:
    return AlarmEvent(change, at, Alarm(**alarm), site_id)


ALARM: Message[AlarmEvent] = Message(
    TopicKind.ALARM,
    "Alarm",
    "State of one alarm after its latest change (raised, ended, acknowledged), published "
    "retained (QoS 1) on {prefix}/alarms/{kind}.{subject}/state. Texts travel as a code with "
    "parameters, translated where they are shown.",
    Struct(
        (
            Field("site", Id(256), attr="site_id"),
            Field(
                "alarm_id",
                Text(1, 300),
                "Unique per occurrence: kind.subject.start-in-ms.",
                get=lambda e: e.alarm.alarm_id,
            ),
            Field("kind", choice(AlarmKind), get=lambda e: e.alarm.kind),
            Field("subject_type", choice(SubjectType), get=lambda e: e.alarm.subject_type),
            Field(
                "subject",
                Id(256),
                "Id of the segment, camera, intersection or node (incidents: segment~incident).",
                get=lambda e: e.alarm.subject,
            ),
            Field("severity", choice(Severity), get=lambda e: e.alarm.severity),
            Field(
                "code",
                Text(1, 100),
                "Message code (congestion, camera_down, incident.wrong_way ...).",
                get=lambda e: e.alarm.code,
            ),
            Field(
                "params",
                MapOf(Scalar(), max_properties=MAX_PARAMS),
                "Values the message shows (los, density, state, who, why ...).",
                get=lambda e: dict(list(e.alarm.params.items())[:MAX_PARAMS]),
            ),
            Field("change", choice(AlarmChange)),
            Field("at", DateTime(), "When the change happened."),
            Field("started_at", DateTime(), get=lambda e: e.alarm.started_at),
            Field("ended_at", Nullable(DateTime()), get=lambda e: e.alarm.ended_at),
            Field("active", Boolean(), attr=None, get=lambda e: e.alarm.active),
            Field("acknowledged", Boolean(), attr=None, get=lambda e: e.alarm.acknowledged),
            Field("acked_at", Nullable(DateTime()), get=lambda e: e.alarm.acked_at),
            Field("acked_by", Text(max_length=100, cut=True), get=lambda e: e.alarm.acked_by),
            Field(
                "ack_comment",
                Text(max_length=2000, cut=True),
                get=lambda e: e.alarm.ack_comment,
            ),
        ),
        _alarm_event,
    ),
    streamed=True,
)


def encode_alarm(event: AlarmEvent, meta: MessageMeta) -> bytes:
    """One :class:`AlarmEvent` as the payload of ``{p}/alarms/{key}/state``."""
    return ALARM.encode(event, meta)


def decode_alarm(payload: bytes | str) -> Received[AlarmEvent]:
    """Validate and read an alarm payload; raise :class:`~atcs.errors.PayloadError`."""
    return ALARM.decode(payload)
