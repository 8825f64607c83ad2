"""The InfluxDB points on disk: the ``influx`` lane of the engine's durable outbox.

Each batch of line-protocol points is one entry of :mod:`atcs.journal`
(``<state_dir>/outbox.sqlite3``), whole or not at all, written before it is sent and
removed once the server stored it. Batches come back oldest first, across restarts. The
lane's size (the sum of its batches' bytes) never exceeds ``max_bytes``: a batch that does
not fit is refused with :class:`SpoolFullError`, what is spooled is kept, and the spool
refuses every batch until deletes bring it under ``clears_at`` of its bound.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast, get_args

from atcs.config.storage import Precision
from atcs.errors import OutboxError, OutboxFullError, SpoolFullError, StorageError
from atcs.journal import FailedHandler, Journal, NewEntry, RefuseWhenFull

log = logging.getLogger(__name__)

LANE = "influx"
"""The outbox lane of the InfluxDB points."""
SPOOL_FULL_CLEARS_AT = 0.9
"""A full spool takes points again once replay brings it under this share of its bound."""
_PRECISIONS: tuple[str, ...] = get_args(Precision)
_READ_AHEAD = 64
_LEGACY_NAME = re.compile(r"^\d{16}-(?P<points>\d+)-(?P<precision>s|ms|us|ns)\.lp$")


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """One spooled batch: its sequence number, point count, timestamp precision and body."""

    seq: int
    points: int
    precision: Precision
    body: bytes


class Spool:
    """FIFO of line-protocol batches in the outbox, bounded in bytes."""

    def __init__(
        self, path: Path, max_bytes: int, *, clears_at: float = SPOOL_FULL_CLEARS_AT
    ) -> None:
        """Open the ``influx`` lane of the outbox file ``path``; StorageError if unusable."""
        self.path = path
        self.max_bytes = max_bytes
        try:
            self._lane = Journal.open(path).lane(LANE, RefuseWhenFull(max_bytes, clears_at))
        except OutboxError as exc:
            raise StorageError(f"InfluxDB spool: {exc}") from None
        if self._lane.count:
            log.info(
                "spool: %d batches (%d points, %d bytes) left from an earlier run in %s",
                self.batches,
                self.points,
                self.size_bytes,
                path,
            )

    @property
    def points(self) -> int:
        """Points in the spool."""
        return self._lane.weight

    @property
    def size_bytes(self) -> int:
        """Bytes of the spooled batches."""
        return self._lane.size_bytes

    @property
    def batches(self) -> int:
        """Batches in the spool."""
        return self._lane.count

    @property
    def full(self) -> bool:
        """Whether the spool refuses batches (full, and not yet back under its mark)."""
        return self._lane.full

    def append(
        self, lines: Sequence[str], precision: Precision, on_failed: FailedHandler | None = None
    ) -> bool:
        """Add one batch at the tail; False when it is staged in the thread's journal group.

        Raises :class:`SpoolFullError` when the bound refuses it and :class:`StorageError`
        when the disk refuses the write (outside a group; inside, ``on_failed`` gets the
        error); in both cases the spool is unchanged.
        """
        if precision not in _PRECISIONS or not lines:
            raise StorageError(f"spool: bad batch ({len(lines)} lines, precision {precision!r})")
        body = ("\n".join(lines) + "\n").encode("utf-8")
        entry = NewEntry(precision, "", lambda _seq: body, weight=len(lines), size=len(body))
        try:
            return self._lane.append([entry], on_failed) is not None
        except OutboxFullError as exc:
            raise SpoolFullError(f"spool {self.path}: {exc}") from None
        except OutboxError as exc:
            raise StorageError(f"cannot write to spool: {exc}") from None

    def peek_run(self, max_points: int) -> list[SpooledBatch]:
        """Return the oldest batches of one precision, together at most ``max_points`` points.

        Always at least the oldest batch (when there is one), however many points it holds,
        so that small batches spooled during an outage are replayed in few requests.
        """
        run: list[SpooledBatch] = []
        points = 0
        for entry in self._lane.pending(0, _READ_AHEAD):
            if run and (entry.kind != run[0].precision or points + entry.weight > max_points):
                break
            run.append(
                SpooledBatch(entry.seq, entry.weight, cast(Precision, entry.kind), entry.payload)
            )
            points += entry.weight
        return run

    def peek(self) -> SpooledBatch | None:
        """Return the oldest batch, or None when the spool is empty."""
        run = self.peek_run(1)
        return run[0] if run else None

    def pop(self, seq: int) -> None:
        """Remove the oldest batch, which must have sequence number ``seq``."""
        oldest = self._lane.pending(0, 1)
        if not oldest or oldest[0].seq != seq:
            raise StorageError(f"spool: batch {seq} is not the oldest")
        try:
            self._lane.delete([seq])
        except OutboxError as exc:
            raise StorageError(f"spool: cannot remove sent batch {seq}: {exc}") from None

    def tail(self, after_seq: int) -> tuple[int, int]:
        """Points in the batches after ``after_seq`` and the newest batch's seq (0: none)."""
        return self._lane.tail(after_seq)

    def close(self) -> None:
        """Stop using the lane (the batches stay on disk for the next run)."""
        self._lane.close()


def import_legacy_spool(folder: Path, spool: Spool) -> int:
    """Move the batch files an earlier version spooled in ``folder`` into ``spool``.

    Oldest first; each file is removed once it is in the outbox (a crash in between sends
    it twice, which InfluxDB stores once). Returns the points moved; a file that does not
    fit or cannot be read stays where it is, with an ERROR line.
    """
    if not folder.is_dir():
        return 0
    moved = 0
    for path in sorted(folder.iterdir()):
        match = _LEGACY_NAME.match(path.name)
        if match is None:
            continue
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
            spool.append(lines, cast(Precision, match["precision"]))
            path.unlink()
        except (OSError, UnicodeDecodeError, StorageError) as exc:
            log.error("spool: cannot move %s into the outbox: %s; it stays", path, exc)
            break
        moved += len(lines)
    if moved:
        log.info("spool: %d points spooled by an earlier version moved into %s", moved, spool.path)
    return moved
