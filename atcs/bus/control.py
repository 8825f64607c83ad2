"""Incoming control messages: plan acks from signal controllers, overrides from operators.

:class:`ControlInbox` is paho's ``on_message``: it reads the topic, decodes and validates
the payload and calls the registered handlers. A malformed or foreign message is logged
with its reason and dropped; a handler that raises is logged; neither stops the client.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from atcs.bus.messages import Override, PlanAck
from atcs.bus.payloads import decode_override, decode_plan_ack
from atcs.bus.topics import TopicKind, Topics
from atcs.errors import PayloadError
from atcs.types import IntersectionId

log = logging.getLogger(__name__)

_PREVIEW_BYTES = 120


def _preview(payload: bytes) -> str:
    text = payload[:_PREVIEW_BYTES].decode("utf-8", errors="replace")
    return text + ("..." if len(payload) > _PREVIEW_BYTES else "")


class ControlInbox:
    """Decodes control messages and dispatches them to handlers (thread-safe registry)."""

    def __init__(self, topics: Topics) -> None:
        self._topics = topics
        self._lock = threading.Lock()
        self._ack_handlers: list[Callable[[PlanAck], None]] = []
        self._override_handlers: list[Callable[[Override], None]] = []
        self._received = 0
        self._malformed = 0
        self._handler_errors = 0

    def add_ack_handler(self, callback: Callable[[PlanAck], None]) -> None:
        """Register ``callback`` for plan acks."""
        with self._lock:
            self._ack_handlers.append(callback)

    def add_override_handler(self, callback: Callable[[Override], None]) -> None:
        """Register ``callback`` for operator overrides."""
        with self._lock:
            self._override_handlers.append(callback)

    def filters(self) -> list[str]:
        """Topic filters to subscribe to (only kinds that have a handler)."""
        out = []
        with self._lock:
            if self._ack_handlers:
                out.append(self._topics.all_plan_acks())
            if self._override_handlers:
                out.append(self._topics.all_overrides())
        return out

    def counters(self) -> dict[str, int]:
        """Messages received, dropped as malformed, and handler failures."""
        with self._lock:
            return {
                "control_received": self._received,
                "control_malformed": self._malformed,
                "control_handler_errors": self._handler_errors,
            }

    def handle(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        """Take one message (paho ``on_message`` callback, VERSION2 signature)."""
        try:
            topic = message.topic
        except UnicodeDecodeError:
            self._malformed_message("(not UTF-8)", "topic is not UTF-8", bytes(message.payload))
            return
        with self._lock:
            self._received += 1
        if not message.payload:
            log.debug("ignored empty message on %s (a retained message being cleared)", topic)
            return
        if message.retain:
            log.warning(
                "ignored retained message on %s: acks and overrides must not be retained "
                "(clear it by publishing an empty retained message)",
                topic,
            )
            return
        try:
            self._dispatch(topic, bytes(message.payload))
        except PayloadError as exc:
            self._malformed_message(topic, str(exc), bytes(message.payload))

    def _malformed_message(self, topic: str, reason: str, payload: bytes) -> None:
        with self._lock:
            self._malformed += 1
        log.warning(
            "dropped malformed message on %s: %s; payload: %r", topic, reason, _preview(payload)
        )

    def _dispatch(self, topic: str, payload: bytes) -> None:
        parsed = self._topics.parse(topic)
        if parsed.ident is None:
            raise PayloadError(f"unexpected message on {topic}")
        ix = IntersectionId(parsed.ident)
        if parsed.kind is TopicKind.PLAN_ACK:
            ack = decode_plan_ack(payload, ix)
            log.info(
                "plan ack for %s: plan %s %s%s",
                ix,
                ack.plan_id,
                ack.result.value,
                f" ({ack.reason})" if ack.reason else "",
            )
            with self._lock:
                ack_handlers = list(self._ack_handlers)
            for ack_cb in ack_handlers:
                self._call(ack_cb, ack, topic)
        elif parsed.kind is TopicKind.OVERRIDE:
            override = decode_override(payload, ix)
            log.info(
                "override for %s: %s by %s (%s)",
                ix,
                override.action.value,
                override.who,
                override.why,
            )
            with self._lock:
                ov_handlers = list(self._override_handlers)
            for ov_cb in ov_handlers:
                self._call(ov_cb, override, topic)
        else:
            raise PayloadError(f"the engine does not take {parsed.kind.value} messages on {topic}")

    def _call(self, callback: Callable[[Any], None], arg: object, topic: str) -> None:
        try:
            callback(arg)
        except Exception:  # a handler's failure must not stop the network thread
            with self._lock:
                self._handler_errors += 1
            log.exception("handler %r failed on a message from %s", callback, topic)
