"""The worker that moves messages from the disk queue to paho (and from memory to disk).

:class:`Sender` journals messages on the caller's thread (:meth:`Sender.journal`), owns the
in-memory inbox for what the disk refused (bounded; the oldest metrics go first when it is
full), the :class:`~atcs.bus.outbox.Outbox` and the map of messages handed to paho and not
yet acknowledged (at most ``inflight_max``). It deletes a message from disk only when its
PUBACK arrives. After a reconnect, paho resends what it still holds before anything newer
is handed over (the barrier), so the order on the wire is the queue order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import paho.mqtt.client as mqtt

from atcs.bus.health import SenderCounters
from atcs.bus.outbox import DROP_ORDER, AppendResult, NewMessage, Outbox
from atcs.bus.topics import TopicKind
from atcs.errors import BusError

log = logging.getLogger(__name__)

_BATCH = 500
_IDLE_WAIT_S = 0.5
_DISK_RETRY_S = 1.0
_DROP_LOG_EVERY_S = 60.0


class Sender:
    """Inbox → disk queue → paho, in order, deleting on acknowledgement (one thread)."""

    def __init__(
        self, outbox: Outbox, client: mqtt.Client, *, inflight_max: int, memory_max: int
    ) -> None:
        self.outbox = outbox
        self._client = client
        self._inflight_max = inflight_max
        self._memory_max = memory_max
        self._lock = threading.Lock()  # inbox, acks, counters
        self._conn_lock = threading.Lock()  # connected, barrier, in-flight map
        self._wake = threading.Event()
        self._inbox: deque[NewMessage] = deque()
        self._acks: deque[tuple[int, bool]] = deque()
        self._inflight: dict[int, int] = {}  # paho mid -> queue seq
        self._last_handed = 0
        self._connected = False
        self._barrier = False
        self._stopping = False
        self._deadline = 0.0
        self.queue_error = ""
        self._last_drop_log = 0.0
        self._counters: dict[str, int] = {"published": 0, "dropped_memory": 0}
        self._counters["rejected_by_broker"] = 0
        self._counters["bad_messages"] = 0
        self._dropped: dict[TopicKind, int] = dict.fromkeys(DROP_ORDER, 0)
        self._thread = threading.Thread(target=self._run, name="mqtt-bus", daemon=True)
        outbox.protect_with(lambda: tuple(self._inflight.copy().values()))
        outbox.on_commit(self._count_append)

    # Called from other threads -----------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def journal(self, batch: list[NewMessage]) -> None:
        """Write ``batch`` to the disk queue on the caller's thread (in its journal group).

        When the disk refuses it, the batch waits in the inbox and is retried.
        """
        try:
            self.outbox.append(batch, on_failed=lambda exc: self.enqueue(batch))
        except BusError as exc:
            if not self.queue_error:
                log.error("%s; the messages wait in memory and are retried", exc)
            self.enqueue(batch)
            return
        self._wake.set()

    def enqueue(self, batch: list[NewMessage]) -> None:
        """Add ``batch`` to the inbox (never blocks on I/O); drop the oldest when full."""
        dropped = 0
        with self._lock:
            for msg in batch:
                if len(self._inbox) >= self._memory_max:
                    self._drop_one_in_memory()
                    dropped += 1
                self._inbox.append(msg)
            self._counters["dropped_memory"] += dropped
        if dropped:
            self._log_drop(f"memory queue full ({self._memory_max}): dropped {dropped} oldest")
        self._wake.set()

    def connected(self) -> None:
        """Mark the connection up; hand over again once paho's resends are acknowledged."""
        with self._conn_lock:
            self._connected = True
            self._barrier = bool(self._inflight)
        self._wake.set()

    def disconnected(self) -> bool:
        """Mark the connection down; return whether it was up."""
        with self._conn_lock:
            was = self._connected
            self._connected = False
        return was

    def acknowledged(self, mid: int, ok: bool) -> None:
        """Paho reported the PUBACK of ``mid`` (``ok`` False: the broker refused it)."""
        with self._lock:
            self._acks.append((mid, ok))
        self._wake.set()

    def stop(self, deadline: float, join_timeout_s: float) -> bool:
        """Flush memory to disk, send until ``deadline`` (monotonic) while connected, stop.

        Return True when the thread ended.
        """
        self._deadline = deadline
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(join_timeout_s)
        return not self._thread.is_alive()

    def in_memory(self) -> int:
        """Messages waiting in memory."""
        with self._lock:
            return len(self._inbox)

    def counters(self, bad_topics: int = 0) -> SenderCounters:
        """Counters, queue sizes and the disk queue's last error (plus ``bad_topics``)."""
        with self._lock:
            c = dict(self._counters)
            dropped = dict(self._dropped)
            memory = len(self._inbox)
        return SenderCounters(
            published=c["published"],
            dropped_memory=c["dropped_memory"],
            rejected_by_broker=c["rejected_by_broker"],
            bad_messages=c["bad_messages"] + bad_topics,
            dropped=dropped,
            memory_queue=memory,
            disk_queue=len(self.outbox),
            inflight=len(self._inflight),
            queue_error=self.queue_error,
        )

    # Worker thread ------------------------------------------------------------------------

    def _drop_one_in_memory(self) -> None:
        for i, msg in enumerate(self._inbox):
            if msg.kind is TopicKind.SEGMENT_METRICS:
                del self._inbox[i]
                return
        self._inbox.popleft()

    def _log_drop(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_EVERY_S:
            self._last_drop_log = now
            log.warning("MQTT bus: %s (counters in health())", text)

    def _run(self) -> None:
        while True:
            self._wake.wait(_DISK_RETRY_S if self.queue_error else _IDLE_WAIT_S)
            self._wake.clear()
            try:
                self._store()
                self._apply_acks()
                self._hand_over()
            except Exception:  # the worker's loop boundary: log and go on
                log.exception("MQTT bus worker step failed")
                time.sleep(_DISK_RETRY_S)
            if self._stopping and self._may_stop():
                return

    def _may_stop(self) -> bool:
        now = time.monotonic()
        if self.in_memory() and not self.queue_error and now < self._deadline + 5:
            return False
        if not self._connected or now >= self._deadline:
            return True
        return len(self.outbox) == 0 and not self._inflight

    def _store(self) -> None:
        while True:
            with self._lock:
                batch = [self._inbox.popleft() for _ in range(min(len(self._inbox), _BATCH))]
            if not batch:
                return
            try:
                self.outbox.append(batch)
            except BusError as exc:
                with self._lock:
                    self._inbox.extendleft(reversed(batch))
                if not self.queue_error:
                    log.error(
                        "%s; %d message(s) wait in memory (bound %d) and are retried",
                        exc,
                        self.in_memory(),
                        self._memory_max,
                    )
                self.queue_error = str(exc)
                return
            if self.queue_error:
                log.info("MQTT disk queue writable again")
                self.queue_error = ""

    def _count_append(self, result: AppendResult) -> None:
        """Count what a committed append did and wake the worker to hand it over."""
        self._wake.set()
        bad, dropped = result.bad, result.dropped
        with self._lock:
            self._counters["bad_messages"] += bad
            for kind, n in dropped.items():
                self._dropped[kind] = self._dropped.get(kind, 0) + n
        if dropped:
            what = ", ".join(f"{n} {kind.value}" for kind, n in dropped.items())
            bound = self.outbox.max_messages
            self._log_drop(f"disk queue at its bound ({bound}): dropped oldest {what}")

    def _apply_acks(self) -> None:
        with self._lock:
            acks = list(self._acks)
            self._acks.clear()
        done: list[int] = []
        rejected = 0
        with self._conn_lock:
            for mid, ok in acks:
                seq = self._inflight.pop(mid, None)
                if seq is not None:
                    done.append(seq)
                    rejected += 0 if ok else 1
            if self._barrier and not self._inflight:
                self._barrier = False
        if done:
            self.outbox.delete(done)
            with self._lock:
                self._counters["published"] += len(done) - rejected
                self._counters["rejected_by_broker"] += rejected

    def _hand_over(self) -> None:
        # Holding _conn_lock while publishing: paho's on_connect/on_disconnect wait for a
        # batch to be handed over, so nothing new goes out between a reconnect and the
        # resends (paho never calls them while holding the lock publish() takes).
        with self._conn_lock:
            if not self._connected or self._barrier:
                return
            room = self._inflight_max - len(self._inflight)
            if room <= 0:
                return
            for msg in self.outbox.pending(self._last_handed, room):
                info = self._client.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    log.error("paho refused to publish on %s: %s", msg.topic, info.rc)
                    return
                self._inflight[info.mid] = msg.seq
                self._last_handed = msg.seq
