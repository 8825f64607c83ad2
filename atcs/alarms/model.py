"""What an alarm is: kind, subject, severity, a message code with parameters, its life.

Plain frozen records (no I/O). An alarm is raised when its condition starts, ends when
the condition is gone and is acknowledged (once) by a logged-in user with a comment;
every change is an :class:`AlarmEvent` that goes to the bus, InfluxDB and the audit.
Texts travel as a ``code`` and ``params`` (``congestion`` with ``{"los": "F"}``) and are
translated where they are shown.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol, runtime_checkable

ParamValue = str | float | int | bool
Params = Mapping[str, ParamValue]


class AlarmKind(enum.Enum):
    """What an alarm is about (its ``code`` says the detail)."""

    CONGESTION = "congestion"
    CAMERA_DOWN = "camera_down"
    STALE_DATA = "stale_data"
    NODE_DOWN = "node_down"
    INTERSECTION_FALLBACK = "intersection_fallback"
    INTERSECTION_MANUAL = "intersection_manual"
    PLAN_REJECTED = "plan_rejected"
    INCIDENT = "incident"


class Severity(enum.Enum):
    """How urgent an alarm is; :attr:`rank` orders them (0 most urgent)."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for critical up to 3 for info."""
        return list(Severity).index(self)


class SubjectType(enum.Enum):
    """What kind of thing an alarm's subject id names."""

    SEGMENT = "segment"
    CAMERA = "camera"
    INTERSECTION = "intersection"
    NODE = "node"


class AlarmChange(enum.Enum):
    """What happened to an alarm."""

    RAISED = "raised"
    ENDED = "ended"
    ACKNOWLEDGED = "acknowledged"


@dataclass(frozen=True, slots=True)
class Condition:
    """A condition that holds now: it keeps (or raises) the alarm of its key.

    ``since`` (UTC) is when the condition began: the alarm's start.
    """

    kind: AlarmKind
    subject_type: SubjectType
    subject: str
    severity: Severity
    code: str
    since: datetime
    params: Params = field(default_factory=dict)

    @property
    def key(self) -> tuple[AlarmKind, str]:
        """One alarm at a time per kind and subject."""
        return (self.kind, self.subject)


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm: what, where, how urgent, since and until when (UTC), who acknowledged it."""

    alarm_id: str
    kind: AlarmKind
    subject_type: SubjectType
    subject: str
    severity: Severity
    code: str
    params: Params
    started_at: datetime
    ended_at: datetime | None = None
    acked_at: datetime | None = None
    acked_by: str = ""
    ack_comment: str = ""

    @property
    def active(self) -> bool:
        """True until the condition is gone."""
        return self.ended_at is None

    @property
    def acknowledged(self) -> bool:
        """True once a user acknowledged it."""
        return self.acked_at is not None

    def ended(self, at: datetime) -> Alarm:
        """Return this alarm ended at ``at``."""
        return replace(self, ended_at=at)

    def acked(self, at: datetime, user: str, comment: str) -> Alarm:
        """Return this alarm acknowledged at ``at`` by ``user`` with ``comment``."""
        return replace(self, acked_at=at, acked_by=user, ack_comment=comment)


def alarm_id(condition: Condition) -> str:
    """Return a unique, URL-safe id: kind, subject and start (ms since the epoch)."""
    ms = int(condition.since.timestamp() * 1000)
    return f"{condition.kind.value}.{condition.subject}.{ms}"


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One change of one alarm: what changed, when (UTC), the alarm after the change."""

    change: AlarmChange
    at: datetime
    alarm: Alarm
    site_id: str


@runtime_checkable
class AlarmOutput(Protocol):
    """Where alarm changes go (the MQTT bus, InfluxDB): enqueue and return at once."""

    def on_alarm(self, event: AlarmEvent) -> None:
        """Accept one alarm change."""
        ...


@dataclass(frozen=True, slots=True)
class IncidentReport:
    """An incident as a detector reports it: the input of incident alarms.

    ``incident_id`` is stable over the incident's life (its start and its end are two
    reports with the same id); ``kind`` names it (``stopped_vehicle``, ``wrong_way``,
    ``spillback``, ``density_jump`` ...); ``ended_at`` is None while it lasts; ``params``
    are numbers and words shown with it (speed, track, queue length ...).
    """

    incident_id: str
    kind: str
    camera_id: str
    segment_id: str | None
    started_at: datetime
    ended_at: datetime | None = None
    severity: Severity = Severity.MAJOR
    params: Params = field(default_factory=dict)
