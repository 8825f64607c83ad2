"""Incoming control messages: plan acks and states from signal controllers, overrides.

:class:`ControlInbox` is paho's ``on_message``. For each message, in order:

1. the topic must be a control topic of the contract; retained or empty messages are
   ignored (acks and overrides must not be retained);
2. acks and phase-by-phase states (field traffic) pass a rate limit per topic and one for
   all of their kind *before* parsing; overrides are never dropped here, so a flood of
   field messages cannot push an operator's command out;
3. the payload is parsed within bounds and checked against its message declaration
   (:meth:`atcs.bus.model.Message.load`);
4. the authenticator checks sender, role, signature, times and nonce
   (:class:`~atcs.bus.auth.ControlAuthenticator`); then a rate limit per verified sender;
5. the record goes to the handlers (the control loop's own queues).

Malformed messages are counted and logged (rate-limited); refused ones are counted, logged
and audited (:class:`~atcs.bus.verdicts.VerdictGate`). Accepted states (one a second per
intersection) are counted, not audited. Nothing raises into paho.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt

from atcs.bus.auth import ControlAuthenticator, Verified, claimed_sender
from atcs.bus.health import ControlInboxCounters
from atcs.bus.messages import AckResult, Override, PlanAck
from atcs.bus.payloads import load_override, load_plan_ack, override_from_doc, plan_ack_from_doc
from atcs.bus.phase_payloads import POSIX, Clock, load_signal_state, signal_state_from_doc
from atcs.bus.topics import TopicKind, Topics
from atcs.bus.verdicts import ControlVerdict, VerdictGate, describe_doc, describe_record
from atcs.config.control_auth import ControlAuthConfig
from atcs.errors import MessageAuthError, PayloadError
from atcs.logthrottle import ThrottledLog
from atcs.ratelimit import RateLimiter
from atcs.text import printable
from atcs.types import IntersectionId
from controllers.phase.commands import SignalState

log = logging.getLogger(__name__)

ACK_RATE_PER_TOPIC_S, ACK_BURST_PER_TOPIC = 20.0, 50
"""Acks taken per second on one ack topic (before parsing), and the burst."""
ACK_RATE_ALL_S, ACK_BURST_ALL = 500.0, 1000
"""Acks taken per second on all ack topics together (before parsing), and the burst."""
FIELD_LIMITS: dict[TopicKind, tuple[tuple[float, int], tuple[float, int]]] = {
    TopicKind.PLAN_ACK: (
        (ACK_RATE_PER_TOPIC_S, ACK_BURST_PER_TOPIC),
        (ACK_RATE_ALL_S, ACK_BURST_ALL),
    ),
    TopicKind.SIGNAL_STATE: ((5.0, 10), (2000.0, 4000)),
}
"""Field messages taken before parsing: (rate/s, burst) per topic, then for all topics."""
SENDER_LIMITS: dict[TopicKind, tuple[float, int]] = {
    TopicKind.OVERRIDE: (5.0, 20),
    TopicKind.PLAN_ACK: (20.0, 50),
    TopicKind.SIGNAL_STATE: (50.0, 100),
}
"""Accepted messages per second per verified sender (and burst), by kind."""

LOG_BURST = 10
"""Log lines per minute for each kind of event; the rest are counted into a summary line."""

_PREVIEW_BYTES = 120


def _preview(payload: bytes) -> str:
    text = payload[:_PREVIEW_BYTES].decode("utf-8", errors="replace")
    return text + ("..." if len(payload) > _PREVIEW_BYTES else "")


@dataclass(frozen=True, slots=True)
class _Incoming:
    """A control message being admitted: kind, topic, intersection, arrival time (UTC)."""

    kind: TopicKind
    topic: str
    intersection: IntersectionId
    at: datetime

    def verdict(self, **fields: Any) -> ControlVerdict:
        return ControlVerdict(self.at, self.kind, self.topic, self.intersection, **fields)


_TAKEN = (TopicKind.PLAN_ACK, TopicKind.OVERRIDE, TopicKind.SIGNAL_STATE)
_LOADERS: dict[TopicKind, Callable[[bytes, IntersectionId], dict[str, Any]]] = {
    TopicKind.OVERRIDE: load_override,
    TopicKind.PLAN_ACK: load_plan_ack,
    TopicKind.SIGNAL_STATE: load_signal_state,
}


class ControlInbox:
    """Admits control messages and dispatches them to handlers (see the module docstring)."""

    def __init__(
        self,
        topics: Topics,
        authenticator: ControlAuthenticator | None = None,
        gate: VerdictGate | None = None,
        clock: Clock = POSIX,
    ) -> None:
        self._topics = topics
        self._clock = clock
        self._auth = authenticator or ControlAuthenticator(ControlAuthConfig(), {})
        self.gate = gate or VerdictGate()
        self._lock = threading.Lock()
        self._ack_handlers: list[Callable[[PlanAck], None]] = []
        self._override_handlers: list[Callable[[Override], None]] = []
        self._state_handlers: list[Callable[[SignalState], None]] = []
        self._counts: Counter[str] = Counter()
        self._field_limits = {
            kind: (RateLimiter(*per_topic), RateLimiter(*together))
            for kind, (per_topic, together) in FIELD_LIMITS.items()
        }
        self._sender_limits = {
            kind: RateLimiter(rate, burst) for kind, (rate, burst) in SENDER_LIMITS.items()
        }
        self.log = ThrottledLog(log, burst=LOG_BURST)

    def set_authenticator(self, authenticator: ControlAuthenticator) -> None:
        """Check control messages with ``authenticator`` from now on (keys read at start)."""
        self._auth = authenticator

    def add_ack_handler(self, callback: Callable[[PlanAck], None]) -> None:
        """Register ``callback`` for plan acks."""
        with self._lock:
            self._ack_handlers.append(callback)

    def add_override_handler(self, callback: Callable[[Override], None]) -> None:
        """Register ``callback`` for operator overrides."""
        with self._lock:
            self._override_handlers.append(callback)

    def add_state_handler(self, callback: Callable[[SignalState], None]) -> None:
        """Register ``callback`` for phase-by-phase signal-controller states."""
        with self._lock:
            self._state_handlers.append(callback)

    def filters(self) -> list[str]:
        """Topic filters to subscribe to (only kinds that have a handler)."""
        out = []
        with self._lock:
            if self._ack_handlers:
                out.append(self._topics.all_plan_acks())
            if self._override_handlers:
                out.append(self._topics.all_overrides())
            if self._state_handlers:
                out.append(self._topics.all_states())
        return out

    def counters(self) -> ControlInboxCounters:
        """Messages received, accepted, malformed, refused (by reason), rate-limited ..."""
        with self._lock:
            c = Counter(self._counts)
        return ControlInboxCounters(
            received=c["received"],
            accepted=c["accepted"],
            malformed=c["malformed"],
            refused=c["refused"],
            refused_by_reason={
                k.removeprefix("refused_"): n for k, n in c.items() if k.startswith("refused_")
            },
            rate_limited=c["rate_limited"],
            retained_ignored=c["retained_ignored"],
            states=c["states"],
            handler_errors=c["handler_errors"],
            log_suppressed=self.log.suppressed_total,
            audit_recorded=self.gate.counts["recorded"],
            audit_suppressed=self.gate.counts["suppressed"],
            replay_entries=self._auth.replay_entries(),
        )

    def housekeeping(self) -> None:
        """Write due log and audit summaries (call about once a second)."""
        self.log.flush()
        self.gate.flush()

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    # paho's on_message ---------------------------------------------------------------------

    def handle(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        """Take one message (paho ``on_message`` callback, VERSION2 signature)."""
        self._count("received")
        try:
            topic = message.topic
        except UnicodeDecodeError:
            self._malformed("(not UTF-8)", "topic is not UTF-8", bytes(message.payload))
            return
        payload = bytes(message.payload)
        if not payload:
            log.debug("ignored empty message on %s (a retained message being cleared)", topic)
            return
        try:
            parsed = self._topics.parse(topic)
        except PayloadError as exc:
            self._malformed(topic, str(exc), payload)
            return
        kind, ident = parsed.kind, parsed.ident
        if kind not in _TAKEN or ident is None:
            self._malformed(topic, f"the engine does not take {kind.value} messages", payload)
            return
        if message.retain:
            self._count("retained_ignored")
            self.log.warning_for(
                f"retained {kind.value}",
                "ignored retained message on %s: acks, states and overrides must not be "
                "retained (clear it by publishing an empty retained message)",
                topic,
            )
            return
        if kind in self._field_limits and not self._field_within_limits(kind, topic):
            return
        self._admit(kind, topic, IntersectionId(ident), payload)

    def _field_within_limits(self, kind: TopicKind, topic: str) -> bool:
        per_topic, together = self._field_limits[kind]
        if per_topic.allow(topic) and together.allow("all"):
            return True
        self._count("rate_limited")
        self.log.warning_for(
            f"{kind.value} rate limit",
            "%s messages over the rate limit dropped (last on %s)",
            kind.value,
            topic,
        )
        return False

    def _admit(self, kind: TopicKind, topic: str, ix: IntersectionId, payload: bytes) -> None:
        try:
            doc = _LOADERS[kind](payload, ix)
        except PayloadError as exc:
            self._malformed(topic, str(exc), payload, kind)
            return
        msg = _Incoming(kind, topic, ix, datetime.now(UTC))
        try:
            verified = self._auth.check(kind, topic, ix, doc, msg.at)
            self._sender_within_limits(kind, verified)
            record: Override | PlanAck | SignalState
            if kind is TopicKind.OVERRIDE:
                record = override_from_doc(doc, ix)
            elif kind is TopicKind.PLAN_ACK:
                record = plan_ack_from_doc(doc, ix)
            else:
                record = signal_state_from_doc(doc, ix, self._clock)
        except MessageAuthError as exc:
            self._refused(msg, doc, exc)
            return
        except PayloadError as exc:
            self._malformed(topic, str(exc), payload, kind)
            return
        self._accepted(msg, record, verified)

    def _sender_within_limits(self, kind: TopicKind, verified: Verified) -> None:
        if not self._sender_limits[kind].allow(verified.sender or "(unsigned)"):
            raise MessageAuthError(
                "rate_limited", f"sender {verified.label} over its {kind.value} rate limit"
            )

    def _malformed(
        self, topic: str, reason: str, payload: bytes, kind: TopicKind | None = None
    ) -> None:
        self._count("malformed")
        self.log.warning_for(
            f"malformed {kind.value if kind is not None else 'control'} messages",
            "dropped malformed message on %s: %s; payload: %r",
            printable(topic, 200),
            reason,
            _preview(payload),
        )

    def _refused(self, msg: _Incoming, doc: dict[str, Any], exc: MessageAuthError) -> None:
        self._count("refused")
        self._count(f"refused_{exc.reason}")
        sender = claimed_sender(doc)
        self.log.warning_for(
            f"refused {msg.kind.value} {exc.reason}",
            "REFUSED %s on %s (claimed sender %r): %s",
            msg.kind.value,
            printable(msg.topic, 200),
            sender,
            exc,
        )
        verdict = msg.verdict(accepted=False, reason=exc.reason, detail=str(exc), sender=sender)
        self.gate.offer(describe_doc(verdict, doc))

    def _accepted(
        self, msg: _Incoming, record: Override | PlanAck | SignalState, verified: Verified
    ) -> None:
        self._count("accepted")
        if isinstance(record, SignalState):
            self._count("states")
            with self._lock:
                state_handlers = list(self._state_handlers)
            for on_state in state_handlers:
                self._call(on_state, record, msg.topic)
            return
        role = verified.role.value if verified.role is not None else "unauthenticated"
        verdict = msg.verdict(
            accepted=True,
            detail=f"signed by {verified.label}",
            sender=verified.sender or "",
            role=role,
        )
        verdict = describe_record(verdict, record)
        ix = msg.intersection
        if isinstance(record, Override):
            self.log.info_for(
                f"override {ix}", "override for %s: %s (%s)", ix, verdict.action, verdict.detail
            )
            self.gate.offer(verdict)
            with self._lock:
                handlers: list[Callable[[Any], None]] = list(self._override_handlers)
        else:
            self.log.info_for(
                f"ack {ix}", "plan ack for %s: %s (%s)", ix, verdict.action, verdict.detail
            )
            if record.result is AckResult.REJECTED:
                self.gate.offer(verdict)
            with self._lock:
                handlers = list(self._ack_handlers)
        for callback in handlers:
            self._call(callback, record, msg.topic)

    def _call(self, callback: Callable[[Any], None], arg: object, topic: str) -> None:
        try:
            callback(arg)
        except Exception:  # a handler's failure must not stop the network thread
            self._count("handler_errors")
            log.exception("handler %r failed on a message from %s", callback, printable(topic, 200))
