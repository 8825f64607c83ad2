"""What the engine decided about each control message from the bus, for the audit log.

The bus does not write the audit log itself: it hands a :class:`ControlVerdict` to the
callback the service registers (:meth:`atcs.bus.MqttBus.on_verdict`), which turns it into
an audit record. :class:`VerdictGate` decides which verdicts go out: every accepted
override and every accepted ack that reports a *rejected* plan, and refusals within a
budget per (kind, reason) — a flood of forged messages becomes a few records and, once a
minute, one summary record counting the rest (``suppressed``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from atcs.bus.messages import Override, PlanAck
from atcs.bus.topics import TopicKind
from atcs.text import printable

log = logging.getLogger(__name__)

REFUSALS_PER_MINUTE = 10
"""Refused messages recorded one by one per (kind, reason) each minute; the rest summarised."""

_TEXT_MAX = 1000
_ID_MAX = 128


@dataclass(frozen=True, slots=True)
class ControlVerdict:
    """One control message and what became of it.

    ``reason`` is empty when accepted, else the refusal's code (``unsigned``,
    ``bad_signature``, ``replayed`` ...); ``detail`` says more. ``sender`` is the verified
    sender, or the one the message claimed when refused; ``role`` is the verified role or
    ``unauthenticated``. For an override, ``action``/``who``/``why`` are its own; for an
    ack, ``action`` is ``ack <result>``, ``who`` the controller id and ``why`` its reason.
    ``suppressed`` > 0 marks a summary of that many similar refusals not recorded one by one.
    """

    at: datetime
    kind: TopicKind
    topic: str
    intersection: str
    accepted: bool
    reason: str = ""
    detail: str = ""
    sender: str = ""
    role: str = "unauthenticated"
    action: str = ""
    who: str = ""
    why: str = ""
    plan_name: str | None = None
    greens_s: Mapping[str, float] = field(default_factory=dict)
    suppressed: int = 0

    def clipped(self) -> ControlVerdict:
        """Return a copy whose untrusted texts are printable and cut to audit-friendly lengths."""
        return replace(
            self,
            topic=printable(self.topic, 300),
            intersection=printable(self.intersection, _ID_MAX),
            detail=printable(self.detail, _TEXT_MAX),
            sender=printable(self.sender, _ID_MAX),
            action=printable(self.action, _ID_MAX),
            who=printable(self.who, _ID_MAX),
            why=printable(self.why, _TEXT_MAX),
            plan_name=None if self.plan_name is None else printable(self.plan_name, _ID_MAX),
            greens_s={printable(k, _ID_MAX): v for k, v in list(self.greens_s.items())[:32]},
        )


VerdictSink = Callable[[ControlVerdict], None]


@dataclass(slots=True)
class _Budget:
    started: float
    used: int = 0
    suppressed: int = 0
    last: ControlVerdict | None = None


class VerdictGate:
    """Passes verdicts to the sinks within the refusal budget (see the module docstring)."""

    def __init__(
        self,
        per_minute: int = REFUSALS_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._sinks: list[VerdictSink] = []
        self._budgets: dict[tuple[TopicKind, str], _Budget] = {}
        self.counts = {"recorded": 0, "suppressed": 0, "sink_errors": 0}

    def add_sink(self, sink: VerdictSink) -> None:
        """Send verdicts to ``sink`` too (called on paho's network thread)."""
        with self._lock:
            self._sinks.append(sink)

    def offer(self, verdict: ControlVerdict) -> None:
        """Record ``verdict`` now, or count it into the next summary of its (kind, reason)."""
        if verdict.accepted:
            self._emit(verdict)
            return
        with self._lock:
            now = self._clock()
            key = (verdict.kind, verdict.reason)  # both from fixed sets: bounded
            budget = self._budgets.setdefault(key, _Budget(now))
            summary = self._roll(key, budget, now)
            budget = self._budgets[key]
            keep = budget.used < self.per_minute
            if keep:
                budget.used += 1
            else:
                budget.suppressed += 1
                budget.last = verdict
                self.counts["suppressed"] += 1
        if summary is not None:
            self._emit(summary)
        if keep:
            self._emit(verdict)

    def flush(self) -> None:
        """Write the summaries of minutes that ended (call about once a second)."""
        now = self._clock()
        with self._lock:
            due = [self._roll(k, b, now) for k, b in list(self._budgets.items())]
        for summary in due:
            if summary is not None:
                self._emit(summary)

    def _roll(
        self, key: tuple[TopicKind, str], budget: _Budget, now: float
    ) -> ControlVerdict | None:
        if now - budget.started < 60.0:
            return None
        summary = None
        if budget.suppressed and budget.last is not None:
            summary = replace(
                budget.last,
                at=datetime.now(UTC),
                suppressed=budget.suppressed,
                detail=f"{budget.suppressed} more refused {key[0].value} message(s) "
                f"({key[1]}) in the last {now - budget.started:.0f} s; last: "
                f"{budget.last.detail}",
            )
        self._budgets[key] = _Budget(now)
        return summary

    def _emit(self, verdict: ControlVerdict) -> None:
        with self._lock:
            sinks = list(self._sinks)
            self.counts["recorded"] += 1
        clipped = verdict.clipped()
        for sink in sinks:
            try:
                sink(clipped)
            except Exception:  # the audit's failure must not stop the network thread
                with self._lock:
                    self.counts["sink_errors"] += 1
                log.exception("recording a control verdict failed")


def describe_record(verdict: ControlVerdict, record: object) -> ControlVerdict:
    """``verdict`` with the action, who, why and plan of ``record`` (an override or an ack)."""
    if isinstance(record, Override):
        return replace(
            verdict,
            action=record.action.value,
            who=record.who,
            why=record.why,
            plan_name=record.plan_name,
            greens_s={str(k): v for k, v in record.greens_s.items()},
        )
    if isinstance(record, PlanAck):
        return replace(
            verdict,
            action=f"ack {record.result.value} {record.plan_id}",
            who=record.controller_id,
            why=record.reason,
        )
    return verdict


def describe_doc(verdict: ControlVerdict, doc: Mapping[str, object]) -> ControlVerdict:
    """``verdict`` with what a refused message claimed (unverified texts, clipped later)."""

    def text(key: str) -> str:
        value = doc.get(key)
        return value if isinstance(value, str) else ""

    action = text("action")
    if not action and "result" in doc:
        action = f"ack {text('result')} {text('plan_id')}"
    who = text("who") or text("controller_id")
    return replace(verdict, action=action, who=who, why=text("why") or text("reason"))
