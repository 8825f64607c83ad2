"""The engine's outgoing MQTT messages on disk: a bounded, ordered queue in SQLite.

Each message gets the next ``seq`` of the queue's ``stream`` (a random id made when the
file is created) and is written, already encoded, before it is sent; it is deleted only
when the broker acknowledged it. The file survives a restart of the engine. One engine
at a time: the file is opened in SQLite's exclusive locking mode.

When more than ``max_messages`` wait, the oldest messages are dropped kind by kind in
:data:`DROP_ORDER` (FIWARE copies and segment metrics first, incident events and plans
last); messages currently in flight are never dropped. Not thread-safe: one thread (the
bus worker) uses it.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from atcs.bus.messages import MessageMeta
from atcs.bus.topics import TopicKind
from atcs.errors import BusError, DataError

log = logging.getLogger(__name__)

DROP_ORDER = (
    TopicKind.TRAFFIC_FLOW_OBSERVED,
    TopicKind.SEGMENT_METRICS,
    TopicKind.MOVEMENT_COUNTS,
    TopicKind.CAMERA_STATUS,
    TopicKind.INCIDENT_STATE,
    TopicKind.INCIDENT_EVENT,
    TopicKind.TIMING_PLAN,
    TopicKind.ALARM,
)
"""Which kinds of message are dropped first when the bound is reached (the FIWARE copy of
a window first; incident events, plans and alarms last)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_kind ON outbox (kind, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


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
    """What :meth:`Outbox.append` did: messages added, dropped by kind, encode failures."""

    added: int = 0
    dropped: dict[TopicKind, int] = field(default_factory=dict)
    bad: int = 0


class Outbox:
    """A bounded on-disk FIFO of encoded messages (see the module docstring)."""

    def __init__(self, path: Path, max_messages: int, *, fsync: bool = True) -> None:
        self.path = path
        self.max_messages = max_messages
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(path), timeout=1.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            self._db.executescript(_SCHEMA)
            self.stream = self._stream_id()
            self._next_seq = self._last_seq() + 1
            self._count = int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                raise BusError(
                    f"MQTT disk queue {path} is in use by another engine process"
                ) from None
            raise BusError(f"cannot open the MQTT disk queue {path}: {exc}") from None
        except (sqlite3.DatabaseError, OSError) as exc:
            raise BusError(f"cannot open the MQTT disk queue {path}: {exc}") from None
        if self._count:
            log.info(
                "MQTT disk queue %s holds %d message(s) from before; they go out first",
                path,
                self._count,
            )

    def _stream_id(self) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'stream'").fetchone()
        if row is not None:
            return str(row[0])
        stream = uuid.uuid4().hex
        self._db.execute("INSERT INTO meta (key, value) VALUES ('stream', ?)", (stream,))
        return stream

    def _last_seq(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return 0 if row is None else int(row[0])

    def __len__(self) -> int:
        return self._count

    def append(self, messages: Sequence[NewMessage], protect: Collection[int] = ()) -> AppendResult:
        """Encode and write ``messages`` in one transaction, then enforce the bound.

        ``protect`` lists in-flight seqs that must not be dropped. A message whose encoding
        fails is logged and skipped. Raises :class:`BusError` when the file cannot be
        written (disk full): nothing of the batch is written and what was there stays.
        """
        result = AppendResult()
        seq = self._next_seq
        rows: list[tuple[int, str, str, bytes, int]] = []
        for msg in messages:
            try:
                payload = msg.encode(MessageMeta(self.stream, seq))
            except DataError as exc:
                log.error("cannot encode a %s message for %s: %s", msg.kind.value, msg.topic, exc)
                result.bad += 1
                continue
            rows.append((seq, msg.kind.value, msg.topic, payload, int(msg.retain)))
            seq += 1
        if rows:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT INTO outbox (seq, kind, topic, payload, retain) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise BusError(f"cannot write the MQTT disk queue {self.path}: {exc}") from None
            self._next_seq = seq
            self._count += len(rows)
            result.added = len(rows)
        if self._count > self.max_messages:
            result.dropped = self._drop_oldest(self._count - self.max_messages, set(protect))
        return result

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            log.debug("rollback of the MQTT disk queue failed (no transaction open)")

    def _drop_oldest(self, excess: int, protect: set[int]) -> dict[TopicKind, int]:
        dropped: dict[TopicKind, int] = {}
        for kind in DROP_ORDER:
            if excess <= 0:
                break
            rows = self._db.execute(
                "SELECT seq FROM outbox WHERE kind = ? ORDER BY seq LIMIT ?",
                (kind.value, excess + len(protect)),
            ).fetchall()
            seqs = [int(r[0]) for r in rows if int(r[0]) not in protect][:excess]
            if seqs:
                self.delete(seqs)
                dropped[kind] = len(seqs)
                excess -= len(seqs)
        return dropped

    def pending(self, after_seq: int, limit: int) -> list[StoredMessage]:
        """Up to ``limit`` queued messages with ``seq > after_seq``, oldest first."""
        rows = self._db.execute(
            "SELECT seq, kind, topic, payload, retain FROM outbox WHERE seq > ? "
            "ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        return [
            StoredMessage(int(s), TopicKind(k), str(t), bytes(p), bool(r)) for s, k, t, p, r in rows
        ]

    def delete(self, seqs: Iterable[int]) -> int:
        """Remove the messages ``seqs`` (acknowledged or dropped); return how many went."""
        batch = [(s,) for s in seqs]
        if not batch:
            return 0
        try:
            self._db.execute("BEGIN IMMEDIATE")
            cur = self._db.executemany("DELETE FROM outbox WHERE seq = ?", batch)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise BusError(f"cannot update the MQTT disk queue {self.path}: {exc}") from None
        removed = max(cur.rowcount, 0)
        self._count = max(self._count - removed, 0)
        return removed

    def close(self) -> None:
        """Close the file (what is queued stays for the next start)."""
        try:
            self._db.close()
        except sqlite3.Error as exc:
            log.warning("closing the MQTT disk queue %s failed: %s", self.path, exc)
