"""The alarm payload of ``{p}/alarms/{kind}.{subject}/state``: encode and decode.

One retained message per alarm kind and subject holds the state after the latest change
(raised, ended, acknowledged); see ``atcs/contract/alarm.schema.json``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from atcs.alarms.model import (
    Alarm,
    AlarmChange,
    AlarmEvent,
    AlarmKind,
    Severity,
    SubjectType,
)
from atcs.bus.codec import Received, build, dump, iso_utc, load, meta_of, opt_time, with_meta
from atcs.bus.messages import MessageMeta
from atcs.bus.schemas import SCHEMA_IDS
from atcs.bus.topics import TopicKind


def alarm_key(event: AlarmEvent) -> str:
    """Return the topic level of an alarm: kind and subject joined by a dot."""
    return f"{event.alarm.kind.value}.{event.alarm.subject}"


def encode_alarm(event: AlarmEvent, meta: MessageMeta) -> bytes:
    """One :class:`AlarmEvent` as the payload of ``{p}/alarms/{key}/state``."""
    a = event.alarm
    doc: dict[str, Any] = {
        "schema": SCHEMA_IDS[TopicKind.ALARM],
        "site": event.site_id,
        "alarm_id": a.alarm_id,
        "kind": a.kind.value,
        "subject_type": a.subject_type.value,
        "subject": a.subject,
        "severity": a.severity.value,
        "code": a.code,
        "params": dict(list(a.params.items())[:32]),
        "change": event.change.value,
        "at": iso_utc(event.at),
        "started_at": iso_utc(a.started_at),
        "ended_at": None if a.ended_at is None else iso_utc(a.ended_at),
        "active": a.active,
        "acknowledged": a.acknowledged,
        "acked_at": None if a.acked_at is None else iso_utc(a.acked_at),
        "acked_by": a.acked_by[:100],
        "ack_comment": a.ack_comment[:2000],
    }
    return dump(with_meta(doc, meta))


def decode_alarm(payload: bytes | str) -> Received[AlarmEvent]:
    """Validate and read an alarm payload; raise :class:`~atcs.errors.PayloadError`."""
    doc = load(TopicKind.ALARM, payload)
    return build(TopicKind.ALARM, lambda: _record(doc))


def _record(doc: dict[str, Any]) -> Received[AlarmEvent]:
    at = opt_time(doc["at"]) or datetime.now(UTC)
    alarm = Alarm(
        alarm_id=str(doc["alarm_id"]),
        kind=AlarmKind(doc["kind"]),
        subject_type=SubjectType(doc["subject_type"]),
        subject=str(doc["subject"]),
        severity=Severity(doc["severity"]),
        code=str(doc["code"]),
        params=dict(doc["params"]),
        started_at=opt_time(doc["started_at"]) or at,
        ended_at=opt_time(doc["ended_at"]),
        acked_at=opt_time(doc["acked_at"]),
        acked_by=str(doc["acked_by"]),
        ack_comment=str(doc["ack_comment"]),
    )
    event = AlarmEvent(AlarmChange(doc["change"]), at, alarm, str(doc["site"]))
    return Received(event, meta_of(doc))
