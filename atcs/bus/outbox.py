"""The engine's outgoing MQTT messages: the ``mqtt`` lane of the durable outbox.

Each message is journaled (:mod:`atcs.journal`, ``<state_dir>/outbox.sqlite3``), already
encoded with the outbox's ``stream`` and its own ``seq``, before it is sent; it is deleted
only when the broker acknowledged it. The file survives a restart of the engine; one
engine at a time. Inside :func:`atcs.journal.group` the message is written in the same
transaction as the InfluxDB points of the same window.

When more than ``max_messages`` wait, the oldest messages are dropped kind by kind in
:data:`DROP_ORDER` (FIWARE copies and segment metrics first, incident events, plans and
alarms last); messages currently in flight are never dropped.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from atcs.bus.messages import MessageMeta
from atcs.bus.topics import TopicKind
from atcs.errors import BusError, OutboxError
from atcs.journal import DropOldest, FailedHandler, Journal, LaneResult, NewEntry

log = logging.getLogger(__name__)

LANE = "mqtt"
"""The outbox lane of the MQTT messages."""

DROP_ORDER = (
    TopicKind.TRAFFIC_FLOW_OBSERVED,
    TopicKind.SEGMENT_METRICS,
    TopicKind.MOVEMENT_COUNTS,
    TopicKind.CAMERA_STATUS,
    TopicKind.INCIDENT_STATE,
    TopicKind.INCIDENT_EVENT,
    TopicKind.TIMING_PLAN,
    TopicKind.OVERRIDE_STATE,
    TopicKind.ALARM,
)
"""Which kinds of message are dropped first when the bound is reached (the FIWARE copy of
a window first; incident events, plans and alarms last)."""


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to queue: ``encode`` builds its payload once its identity is known."""

    kind: TopicKind
    topic: str
    encode: Callable[[MessageMeta], bytes]
    retain: bool = True


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A queued message as it goes to the broker (``payload`` is the exact bytes sent)."""

    seq: int
    kind: TopicKind
    topic: str
    payload: bytes
    retain: bool


@dataclass(slots=True)
class AppendResult:
    """What an append did: messages added, dropped by kind, encode failures.

    ``staged``: the messages wait for the end of the thread's journal group (the counts
    then reach the outbox's ``on_commit`` handler).
    """

    added: int = 0
    dropped: dict[TopicKind, int] = field(default_factory=dict)
    bad: int = 0
    staged: bool = False


def _result(lane: LaneResult) -> AppendResult:
    dropped = {TopicKind(k): n for k, n in lane.dropped.items()}
    return AppendResult(lane.added, dropped, lane.bad)


class Outbox:
    """The bounded on-disk FIFO of encoded MQTT messages (see the module docstring)."""

    def __init__(self, path: Path, max_messages: int) -> None:
        self.path = path
        self.max_messages = max_messages
        try:
            self.journal = Journal.open(path)
            self._lane = self.journal.lane(
                LANE, DropOldest(max_messages, tuple(k.value for k in DROP_ORDER))
            )
        except OutboxError as exc:
            raise BusError(f"MQTT disk queue: {exc}") from None
        self.stream = self.journal.stream
        if len(self._lane):
            log.info(
                "MQTT disk queue %s holds %d message(s) from before; they go out first",
                path,
                len(self._lane),
            )

    def __len__(self) -> int:
        return len(self._lane)

    def protect_with(self, in_flight: Callable[[], Collection[int]]) -> None:
        """Never drop the seqs ``in_flight()`` returns (called with the journal's lock)."""
        self._lane.protect = in_flight

    def on_commit(self, handler: Callable[[AppendResult], None]) -> None:
        """Call ``handler`` with the result of every committed append."""
        self._lane.on_commit = lambda result: handler(_result(result))

    def append(
        self,
        messages: Sequence[NewMessage],
        protect: Collection[int] = (),
        on_failed: FailedHandler | None = None,
    ) -> AppendResult:
        """Encode and journal ``messages`` in one transaction, then enforce the bound.

        ``protect`` lists more seqs that must not be dropped. A message whose encoding
        fails is logged and skipped. Raises :class:`BusError` when the file cannot be
        written (disk full): nothing of the batch is written and what was there stays.
        In a journal group the messages are staged (``on_failed`` gets the group's error).
        """
        entries = [
            NewEntry(m.kind.value, m.topic, _builder(self.stream, m.encode), flag=int(m.retain))
            for m in messages
        ]
        lane = self._lane
        with self.journal.lock:
            base = lane.protect
            if protect:
                lane.protect = lambda: {*protect, *base()}
            try:
                result = lane.append(entries, on_failed)
            except OutboxError as exc:
                raise BusError(f"cannot write the MQTT disk queue {self.path}: {exc}") from None
            finally:
                lane.protect = base
        return AppendResult(staged=True) if result is None else _result(result)

    def pending(self, after_seq: int, limit: int) -> list[StoredMessage]:
        """Up to ``limit`` queued messages with ``seq > after_seq``, oldest first."""
        return [
            StoredMessage(e.seq, TopicKind(e.kind), e.address, e.payload, bool(e.flag))
            for e in self._lane.pending(after_seq, limit)
        ]

    def delete(self, seqs: Iterable[int]) -> int:
        """Remove the messages ``seqs`` (acknowledged or dropped); return how many went."""
        try:
            return self._lane.delete(seqs)
        except OutboxError as exc:
            raise BusError(f"cannot update the MQTT disk queue: {exc}") from None

    def close(self) -> None:
        """Close the lane (what is queued stays for the next start)."""
        self._lane.close()


def _builder(stream: str, encode: Callable[[MessageMeta], bytes]) -> Callable[[int], bytes]:
    return lambda seq: encode(MessageMeta(stream, seq))


def import_legacy_queue(path: Path, outbox: Outbox) -> int:
    """Move the messages an earlier version queued in the SQLite file ``path`` into ``outbox``.

    Their payloads go as they were (with the old queue's ``stream`` and ``seq``, so a
    subscriber's de-duplication still holds); the old file is removed once they are in.
    Returns the messages moved; on an error the old file stays, with an ERROR line.
    """
    if not path.exists():
        return 0
    try:
        old = sqlite3.connect(str(path), timeout=1.0)
        try:
            rows = old.execute(
                "SELECT kind, topic, payload, retain FROM outbox ORDER BY seq"
            ).fetchall()
        finally:
            old.close()
        messages = [
            NewMessage(TopicKind(k), str(t), _fixed(bytes(p)), bool(r)) for k, t, p, r in rows
        ]
        for start in range(0, len(messages), 500):
            outbox.append(messages[start : start + 500])
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    except (sqlite3.Error, OSError, ValueError, BusError) as exc:
        log.error("cannot move the old MQTT queue %s into the outbox: %s; it stays", path, exc)
        return 0
    if messages:
        log.info(
            "%d MQTT message(s) queued by an earlier version moved into %s",
            len(messages),
            outbox.path,
        )
    return len(messages)


def _fixed(payload: bytes) -> Callable[[MessageMeta], bytes]:
    return lambda meta: payload
