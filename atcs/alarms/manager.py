"""The alarm list of one engine: raise, end and acknowledge; tell the outputs every change.

:class:`AlarmManager` turns the conditions of :class:`~atcs.alarms.rules.AlarmRules` into
alarms: a condition that appears raises an alarm, one that is gone ends it. An alarm stays
in :meth:`AlarmManager.current` while it is active or not yet acknowledged; ended and
acknowledged alarms move to a bounded history (so do the oldest ended, unacknowledged
ones beyond that bound, counted as ``expired``). Acknowledging needs a user and a comment
and is done once. Every change is handed to the outputs (bus, InfluxDB) and to the
listeners (the dashboard's audit) as an :class:`~atcs.alarms.model.AlarmEvent`.
Thread-safe: the engine's tick feeds it, the web server's threads read and acknowledge.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime

from atcs.alarms.model import (
    Alarm,
    AlarmChange,
    AlarmEvent,
    AlarmKind,
    AlarmOutput,
    Condition,
    alarm_id,
)
from atcs.errors import AlarmError
from atcs.health_records import AlarmCounters
from atcs.text import printable

log = logging.getLogger(__name__)

COMMENT_MAX_CHARS = 1000
"""Longest acknowledgement comment kept."""

Listener = Callable[[AlarmEvent], None]


class AlarmManager:
    """Current alarms, a bounded history, acknowledgements; see the module docstring."""

    def __init__(
        self, site_id: str, outputs: Sequence[AlarmOutput] = (), history_max: int = 500
    ) -> None:
        self.site_id = site_id
        self.outputs = list(outputs)
        self.listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._by_key: dict[tuple[AlarmKind, str], str] = {}
        self._current: dict[str, Alarm] = {}
        self._history: deque[Alarm] = deque(maxlen=history_max)
        self._ended_max = history_max
        self.counts = {
            "raised": 0, "ended": 0, "acknowledged": 0, "expired": 0, "output_failures": 0,
        }  # fmt: skip

    def update(self, conditions: Sequence[Condition], now: datetime) -> list[AlarmEvent]:
        """Raise alarms for new conditions and end those whose condition is gone."""
        events: list[AlarmEvent] = []
        with self._lock:
            holding = {c.key: c for c in conditions}
            for key, ident in list(self._by_key.items()):
                if key in holding:
                    continue
                del self._by_key[key]
                alarm = self._current[ident].ended(now)
                events.append(self._change(AlarmChange.ENDED, now, alarm))
            for key, cond in holding.items():
                if key in self._by_key:
                    continue
                alarm = Alarm(
                    alarm_id=alarm_id(cond), kind=cond.kind, subject_type=cond.subject_type,
                    subject=cond.subject, severity=cond.severity, code=cond.code,
                    params=dict(cond.params), started_at=cond.since,
                )  # fmt: skip
                if alarm.alarm_id in self._current:  # the same start again: a new occurrence
                    continue
                self._by_key[key] = alarm.alarm_id
                events.append(self._change(AlarmChange.RAISED, now, alarm))
        self._tell(events)
        return events

    def acknowledge(self, ident: str, user: str, comment: str, now: datetime) -> AlarmEvent:
        """Acknowledge alarm ``ident`` as ``user`` with ``comment``.

        Raises :class:`AlarmError` for an unknown or already acknowledged alarm, or a blank
        comment.
        """
        text = comment.strip()
        if not text:
            raise AlarmError("a comment is required")
        with self._lock:
            alarm = self._current.get(ident)
            if alarm is None:
                if any(a.alarm_id == ident for a in self._history):
                    raise AlarmError(f"alarm {printable(ident, 100)} is already acknowledged")
                raise AlarmError(f"unknown alarm {printable(ident, 100)}")
            if alarm.acknowledged:
                raise AlarmError(f"alarm {printable(ident, 100)} is already acknowledged")
            acked = alarm.acked(now, user, printable(text, COMMENT_MAX_CHARS))
            event = self._change(AlarmChange.ACKNOWLEDGED, now, acked)
        self._tell([event])
        return event

    def _change(self, change: AlarmChange, now: datetime, alarm: Alarm) -> AlarmEvent:
        """Record ``alarm`` after ``change`` (lock held)."""
        self.counts[change.value] += 1
        if alarm.acknowledged and not alarm.active:
            self._current.pop(alarm.alarm_id, None)
            self._history.append(alarm)
        else:
            self._current[alarm.alarm_id] = alarm
            if not alarm.active:
                self._trim()
        level = logging.WARNING if change is AlarmChange.RAISED else logging.INFO
        log.log(
            level, "alarm %s %s: %s %s (%s)%s", alarm.alarm_id, change.value,
            alarm.severity.value, alarm.code, alarm.subject,
            f" by {alarm.acked_by}" if change is AlarmChange.ACKNOWLEDGED else "",
        )  # fmt: skip
        return AlarmEvent(change, now, alarm, self.site_id)

    def _trim(self) -> None:
        """Move the oldest ended, unacknowledged alarms to the history beyond the bound."""
        ended = [a for a in self._current.values() if not a.active]
        for alarm in sorted(ended, key=lambda a: a.ended_at or a.started_at)[
            : max(0, len(ended) - self._ended_max)
        ]:
            del self._current[alarm.alarm_id]
            self._history.append(alarm)
            self.counts["expired"] += 1

    def _tell(self, events: Sequence[AlarmEvent]) -> None:
        calls: list[Listener] = [o.on_alarm for o in self.outputs] + self.listeners
        for event in events:
            for call in calls:
                try:
                    call(event)
                except Exception:  # an output failing must not stop the others
                    self.counts["output_failures"] += 1
                    log.exception("alarm output failed")

    def counters(self) -> AlarmCounters:
        """Return the changes counted since start."""
        with self._lock:
            return AlarmCounters(**self.counts)

    def current(self) -> list[Alarm]:
        """Active or unacknowledged alarms: unacknowledged first, then by severity, newest first."""
        with self._lock:
            alarms = list(self._current.values())
        return sorted(
            alarms,
            key=lambda a: (
                a.acknowledged,
                not a.active,
                a.severity.rank,
                -a.started_at.timestamp(),
            ),
        )

    def history(self, limit: int = 100) -> list[Alarm]:
        """Return ended and acknowledged alarms, newest first."""
        with self._lock:
            return list(reversed(self._history))[:limit]

    def get(self, ident: str) -> Alarm | None:
        """Return alarm ``ident`` (current or in the history)."""
        with self._lock:
            found = self._current.get(ident)
            if found is not None:
                return found
            return next((a for a in self._history if a.alarm_id == ident), None)
