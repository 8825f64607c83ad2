"""Alarms of the ATCS room: congestion, cameras, stale data, nodes, control, incidents.

:class:`AlarmService` is the engine's part (a sink checked once a second),
:class:`AlarmManager` the list with acknowledgements, :class:`AlarmRules` the pure rules.
See ``docs/alarms.md``.
"""

from atcs.alarms.manager import AlarmManager
from atcs.alarms.model import (
    Alarm,
    AlarmChange,
    AlarmEvent,
    AlarmKind,
    AlarmOutput,
    Condition,
    IncidentReport,
    Severity,
    SubjectType,
)
from atcs.alarms.rules import AlarmRules
from atcs.alarms.service import AlarmService

__all__ = [
    "Alarm",
    "AlarmChange",
    "AlarmEvent",
    "AlarmKind",
    "AlarmManager",
    "AlarmOutput",
    "AlarmRules",
    "AlarmService",
    "Condition",
    "IncidentReport",
    "Severity",
    "SubjectType",
]
