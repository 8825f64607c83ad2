"""The engine's one durable outbox: a journal of outgoing entries in one SQLite file.

Every output that must survive a crash (the MQTT messages, the InfluxDB points) is written
here, in *lanes* (``mqtt``, ``influx``), before it is sent anywhere; a lane's consumer reads
its entries oldest first (:meth:`Lane.pending`) and deletes each one once the server
acknowledged it (:meth:`Lane.delete`). The file is ``<state_dir>/outbox.sqlite3`` (WAL,
``synchronous=NORMAL``: a committed entry survives a SIGKILL of the engine; a power loss
can lose the last commits, of every lane alike). One process at a time: SQLite's exclusive
locking mode; in a process, each lane has one owner.

**Groups.** Inside ``with group():`` (on one thread) the lanes' appends are staged and
written at the end in ONE transaction, so the engine writes a closed window to the bus's
and the store's lanes together: after a SIGKILL, a window is in both lanes or in neither.

**Bounds**, one policy per lane:

- :class:`DropOldest` (the bus): past ``max_entries``, the oldest entries go, kind by kind
  in the policy's order (what matters least first), never one that is protected (in
  flight); the :class:`LaneResult` of the append says what went.
- :class:`RefuseWhenFull` (the store): an append that would pass ``max_bytes`` raises
  :class:`~atcs.errors.OutboxFullError` and what is there stays; once full, the lane
  refuses every append until deletes bring it under ``clears_at`` of its bound (one gap in
  the history, no alarm flapping).

Entry numbers (``seq``) grow across lanes and restarts and are never reused; they are
assigned at commit, in commit order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar

from atcs.errors import DataError, OutboxError, OutboxFullError
from atcs.journal_records import (
    CommitHandler,
    DropOldest,
    Entry,
    FailedHandler,
    LaneResult,
    NewEntry,
    Policy,
    RefuseWhenFull,
)

__all__ = [
    "JOURNAL_FILE",
    "CommitHandler",
    "DropOldest",
    "Entry",
    "FailedHandler",
    "Journal",
    "Lane",
    "LaneResult",
    "NewEntry",
    "Policy",
    "RefuseWhenFull",
    "group",
]

log = logging.getLogger(__name__)

JOURNAL_FILE = "outbox.sqlite3"
"""The journal's file name in the service's ``state_dir``."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    lane TEXT NOT NULL,
    kind TEXT NOT NULL,
    address TEXT NOT NULL,
    payload BLOB NOT NULL,
    weight INTEGER NOT NULL,
    flag INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_lane ON entries (lane, kind, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Journal:
    """One journal file shared by the lanes of a process (see the module docstring)."""

    _open: ClassVar[dict[Path, Journal]] = {}
    _open_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> Journal:
        """Return the process's journal at ``path``, opened on first use (OutboxError)."""
        key = Path(os.path.abspath(path))
        with cls._open_lock:
            journal = cls._open.get(key)
            if journal is None:
                journal = cls(path)
                cls._open[key] = journal
            return journal

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.lanes: dict[str, Lane] = {}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(
                str(path), timeout=1.0, isolation_level=None, check_same_thread=False
            )
            self.db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            self.stream = self._meta("stream", uuid.uuid4().hex)
            self._next_seq = int(self._meta("last_seq", "0")) + 1
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                raise OutboxError(f"outbox {path} is in use by another engine process") from None
            raise OutboxError(f"cannot open the outbox {path}: {exc}") from None
        except (sqlite3.DatabaseError, OSError) as exc:
            raise OutboxError(f"cannot open the outbox {path}: {exc}") from None

    def _meta(self, key: str, default: str) -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return str(row[0])
        self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, default))
        return default

    def lane(self, name: str, policy: Policy) -> Lane:
        """Open lane ``name`` with ``policy``; OutboxError when it is open already."""
        with self.lock:
            if name in self.lanes:
                raise OutboxError(f"outbox {self.path}: lane {name} is in use by another engine")
            lane = Lane(self, name, policy)
            self.lanes[name] = lane
            return lane

    def release(self, lane: Lane) -> None:
        """Close ``lane``; the file closes with the last lane (entries stay for next time)."""
        with self.lock:
            self.lanes.pop(lane.name, None)
            if self.lanes:
                return
            with Journal._open_lock:
                for key, journal in list(Journal._open.items()):
                    if journal is self:
                        del Journal._open[key]
            try:
                self.db.close()
            except sqlite3.Error as exc:
                log.warning("closing the outbox %s failed: %s", self.path, exc)

    def commit(self, staged: Sequence[tuple[Lane, Sequence[NewEntry]]]) -> list[LaneResult]:
        """Write every lane's entries in one transaction; OutboxError leaves all unchanged."""
        with self.lock:
            seq = self._next_seq
            rows: list[tuple[int, str, str, str, bytes, int, int]] = []
            results = []
            for lane, entries in staged:
                result = LaneResult()
                for entry in entries:
                    try:
                        payload = entry.build(seq)
                    except DataError as exc:
                        log.error(
                            "outbox %s: cannot encode a %s entry: %s", lane.name, entry.kind, exc
                        )
                        result.bad += 1
                        continue
                    row = (
                        seq,
                        lane.name,
                        entry.kind,
                        entry.address,
                        payload,
                        entry.weight,
                        entry.flag,
                    )
                    rows.append(row)
                    result.added += 1
                    seq += 1
                results.append(result)
            if rows:
                try:
                    self.db.execute("BEGIN IMMEDIATE")
                    self.db.executemany(
                        "INSERT INTO entries (seq, lane, kind, address, payload, weight, flag) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        rows,
                    )
                    self.db.execute(
                        "UPDATE meta SET value = ? WHERE key = 'last_seq'", (str(seq - 1),)
                    )
                    self.db.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._rollback()
                    raise OutboxError(f"cannot write the outbox {self.path}: {exc}") from None
                self._next_seq = seq
            by_lane: dict[str, list[tuple[int, int, int]]] = {}
            for s, name, _k, _a, payload, weight, _f in rows:
                by_lane.setdefault(name, []).append((s, weight, len(payload)))
            for (lane, _entries), result in zip(staged, results, strict=True):
                lane.added(by_lane.get(lane.name, []))
                result.dropped = lane.enforce()
            return results

    def _rollback(self) -> None:
        try:
            self.db.execute("ROLLBACK")
        except sqlite3.Error:
            log.debug("rollback of the outbox failed (no transaction open)")


class Lane:
    """One consumer's FIFO in the journal: append, read oldest first, delete when acked."""

    def __init__(self, journal: Journal, name: str, policy: Policy) -> None:
        self.journal = journal
        self.name = name
        self.policy = policy
        self.protect: Callable[[], Collection[int]] = tuple
        self.on_commit: CommitHandler | None = None
        self.full = False
        self._staged_bytes = 0
        row = journal.db.execute(
            "SELECT count(*), coalesce(sum(weight), 0), coalesce(sum(length(payload)), 0) "
            "FROM entries WHERE lane = ?",
            (name,),
        ).fetchone()
        self.count, self.weight, self.size_bytes = int(row[0]), int(row[1]), int(row[2])

    def __len__(self) -> int:
        return self.count

    def append(
        self, entries: Sequence[NewEntry], on_failed: FailedHandler | None = None
    ) -> LaneResult | None:
        """Journal ``entries`` now, or at the end of the thread's open :func:`group`.

        Returns the commit's result, or None when staged in a group (``on_commit`` gets
        the result then, ``on_failed`` the error if the group's write fails). Raises
        :class:`OutboxFullError` when a :class:`RefuseWhenFull` bound refuses them and
        :class:`OutboxError` when the file cannot be written (outside a group).
        """
        if not entries:
            return LaneResult()
        self._admit(entries)
        staged = _GROUP.stage(self, entries, on_failed)
        if staged:
            return None
        result = self.journal.commit([(self, entries)])[0]
        if self.on_commit is not None:
            self.on_commit(result)
        return result

    def _admit(self, entries: Sequence[NewEntry]) -> None:
        policy = self.policy
        if not isinstance(policy, RefuseWhenFull):
            return
        size = sum(e.size for e in entries)
        with self.journal.lock:
            used = self.size_bytes + self._staged_bytes
            if self.full or used + size > policy.max_bytes:
                self.full = True
                raise OutboxFullError(
                    f"outbox lane {self.name} is full: {used} of {policy.max_bytes} bytes "
                    f"used, {sum(e.weight for e in entries)} points ({size} bytes) do not fit"
                )
            self._staged_bytes += size

    def unstage(self, entries: Sequence[NewEntry]) -> None:
        """Forget the bytes of ``entries`` staged by :meth:`append` (written or failed)."""
        with self.journal.lock:
            self._staged_bytes = max(self._staged_bytes - sum(e.size for e in entries), 0)

    def added(self, rows: Sequence[tuple[int, int, int]]) -> None:
        """Account committed ``(seq, weight, bytes)`` rows (the journal's lock is held)."""
        self.count += len(rows)
        self.weight += sum(r[1] for r in rows)
        self.size_bytes += sum(r[2] for r in rows)

    def enforce(self) -> dict[str, int]:
        """Apply a :class:`DropOldest` bound; return the entries dropped by kind."""
        policy = self.policy
        dropped: dict[str, int] = {}
        if not isinstance(policy, DropOldest) or self.count <= policy.max_entries:
            return dropped
        excess = self.count - policy.max_entries
        protect = set(self.protect())
        for kind in policy.order:
            if excess <= 0:
                break
            rows = self.journal.db.execute(
                "SELECT seq FROM entries WHERE lane = ? AND kind = ? ORDER BY seq LIMIT ?",
                (self.name, kind, excess + len(protect)),
            ).fetchall()
            seqs = [int(r[0]) for r in rows if int(r[0]) not in protect][:excess]
            if seqs:
                self.delete(seqs)
                dropped[kind] = len(seqs)
                excess -= len(seqs)
        return dropped

    def pending(self, after_seq: int, limit: int) -> list[Entry]:
        """Up to ``limit`` entries with ``seq > after_seq``, oldest first."""
        with self.journal.lock:
            rows = self.journal.db.execute(
                "SELECT seq, kind, address, payload, weight, flag FROM entries "
                "WHERE lane = ? AND seq > ? ORDER BY seq LIMIT ?",
                (self.name, after_seq, limit),
            ).fetchall()
        return [
            Entry(int(s), str(k), str(a), bytes(p), int(w), int(f)) for s, k, a, p, w, f in rows
        ]

    def tail(self, after_seq: int) -> tuple[int, int]:
        """Return the summed weight of the entries after ``after_seq`` and the last seq (0)."""
        with self.journal.lock:
            row = self.journal.db.execute(
                "SELECT coalesce(sum(weight), 0), coalesce(max(seq), 0) FROM entries "
                "WHERE lane = ? AND seq > ?",
                (self.name, after_seq),
            ).fetchone()
        return int(row[0]), int(row[1])

    def delete(self, seqs: Iterable[int]) -> int:
        """Remove the entries ``seqs`` (acknowledged or dropped); return how many went."""
        batch = [(self.name, s) for s in seqs]
        if not batch:
            return 0
        db = self.journal.db
        with self.journal.lock:
            try:
                db.execute("BEGIN IMMEDIATE")
                gone = 0
                weight = size = 0
                for name, s in batch:
                    row = db.execute(
                        "DELETE FROM entries WHERE lane = ? AND seq = ? "
                        "RETURNING weight, length(payload)",
                        (name, s),
                    ).fetchone()
                    if row is not None:
                        gone, weight, size = gone + 1, weight + int(row[0]), size + int(row[1])
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self.journal._rollback()
                raise OutboxError(f"cannot update the outbox {self.journal.path}: {exc}") from None
            self.count -= gone
            self.weight -= weight
            self.size_bytes -= size
            policy = self.policy
            if isinstance(policy, RefuseWhenFull) and self.full:
                self.full = self.size_bytes > policy.max_bytes * policy.clears_at
        return gone

    def close(self) -> None:
        """Stop using the lane (its entries stay on disk for the next start)."""
        self.journal.release(self)


class _Group(threading.local):
    """The calling thread's open group: the entries staged per lane until it ends."""

    def __init__(self) -> None:
        self.depth = 0
        self.staged: list[tuple[Lane, Sequence[NewEntry], FailedHandler | None]] = []

    def stage(
        self, lane: Lane, entries: Sequence[NewEntry], on_failed: FailedHandler | None
    ) -> bool:
        if self.depth == 0:
            lane.unstage(entries)
            return False
        self.staged.append((lane, entries, on_failed))
        return True

    def flush(self) -> None:
        staged, self.staged = self.staged, []
        by_journal: dict[int, list[tuple[Lane, Sequence[NewEntry], FailedHandler | None]]] = {}
        for item in staged:
            item[0].unstage(item[1])
            by_journal.setdefault(id(item[0].journal), []).append(item)
        for items in by_journal.values():
            journal = items[0][0].journal
            try:
                results = journal.commit([(lane, entries) for lane, entries, _ in items])
            except OutboxError as exc:
                for _lane, _entries, on_failed in items:
                    if on_failed is not None:
                        on_failed(exc)
                    else:
                        log.error("%s; entries lost", exc)
                continue
            for (lane, _entries, _f), result in zip(items, results, strict=True):
                if lane.on_commit is not None:
                    lane.on_commit(result)


_GROUP = _Group()


@contextlib.contextmanager
def group() -> Iterator[None]:
    """Journal every lane append of this thread inside the block in one transaction."""
    _GROUP.depth += 1
    try:
        yield
    finally:
        _GROUP.depth -= 1
        if _GROUP.depth == 0:
            _GROUP.flush()
