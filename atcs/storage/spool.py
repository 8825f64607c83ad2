"""A bounded, ordered, crash-safe on-disk spool of line-protocol batches.

Each batch is one file ``<seq>-<points>-<precision>.lp`` in the spool folder, written to a
``.part`` file, flushed to disk and renamed, so a batch is either wholly in the spool or
not at all. Batches come back oldest first (by sequence number), across process restarts.
The spool's size (the sum of its files' bytes) never exceeds ``max_bytes``: a batch that
does not fit is refused with :class:`SpoolFullError` and what is already spooled is kept.
A lock file keeps a second process from using the same folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast, get_args

from atcs.config.storage import Precision
from atcs.errors import SpoolFullError, StorageError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(?P<seq>\d{16})-(?P<points>\d+)-(?P<precision>s|ms|us|ns)\.lp$")
_PRECISIONS: tuple[str, ...] = get_args(Precision)


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """One spooled batch: its sequence number, point count, timestamp precision and body."""

    seq: int
    points: int
    precision: Precision
    body: bytes


@dataclass(frozen=True, slots=True)
class _Entry:
    seq: int
    points: int
    precision: Precision
    size_bytes: int
    path: Path


class Spool:
    """FIFO of line-protocol batches on disk, bounded in bytes (not thread-safe)."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        """Open (creating it) the spool in ``directory``; raise StorageError if unusable."""
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock_file: IO[bytes] | None = None
        self._entries: list[_Entry] = []
        self._bytes = 0
        self._points = 0
        try:
            directory.mkdir(parents=True, exist_ok=True)
            lock = (directory / "lock").open("ab")
        except OSError as exc:
            raise StorageError(f"cannot open spool folder {directory}: {exc.strerror}") from None
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise StorageError(
                f"spool folder {directory} is in use by another process; give each engine "
                "its own service.state_dir"
            ) from None
        self._lock_file = lock
        self._scan()

    def _scan(self) -> None:
        for path in sorted(self.directory.iterdir()):
            if path.name.endswith(".part"):
                log.warning("spool: removing %s, a batch whose write never completed", path)
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            match = _NAME.match(path.name)
            if match is None:
                if path.name != "lock":
                    log.warning("spool: ignoring unexpected file %s", path)
                continue
            entry = _Entry(
                seq=int(match["seq"]),
                points=int(match["points"]),
                precision=cast(Precision, match["precision"]),
                size_bytes=path.stat().st_size,
                path=path,
            )
            self._entries.append(entry)
            self._bytes += entry.size_bytes
            self._points += entry.points
        self._entries.sort(key=lambda e: e.seq)
        if self._entries:
            log.info(
                "spool: %d batches (%d points, %d bytes) left from an earlier run in %s",
                len(self._entries),
                self._points,
                self._bytes,
                self.directory,
            )

    @property
    def points(self) -> int:
        """Points in the spool."""
        return self._points

    @property
    def size_bytes(self) -> int:
        """Bytes of the spool's batch files."""
        return self._bytes

    @property
    def batches(self) -> int:
        """Batch files in the spool."""
        return len(self._entries)

    def fits(self, size_bytes: int) -> bool:
        """Whether a batch of ``size_bytes`` bytes fits under the bound."""
        return self._bytes + size_bytes <= self.max_bytes

    def append(self, lines: Sequence[str], precision: Precision) -> None:
        """Add one batch at the tail.

        Raises :class:`SpoolFullError` when it would pass ``max_bytes`` and
        :class:`StorageError` when the disk refuses the write (full, read-only ...); in both
        cases the spool is unchanged.
        """
        if self._lock_file is None:
            raise StorageError("spool is closed")
        if precision not in _PRECISIONS or not lines:
            raise StorageError(f"spool: bad batch ({len(lines)} lines, precision {precision!r})")
        body = ("\n".join(lines) + "\n").encode("utf-8")
        if not self.fits(len(body)):
            raise SpoolFullError(
                f"spool {self.directory} is full: {self._bytes} of {self.max_bytes} bytes used, "
                f"a batch of {len(lines)} points ({len(body)} bytes) does not fit"
            )
        seq = self._entries[-1].seq + 1 if self._entries else 1
        path = self.directory / f"{seq:016d}-{len(lines)}-{precision}.lp"
        part = path.with_name(path.name + ".part")
        try:
            with part.open("wb") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            part.replace(path)
            self._sync_directory()
        except OSError as exc:
            with contextlib.suppress(OSError):
                part.unlink()
            raise StorageError(
                f"cannot write to spool {self.directory}: {exc.strerror or exc}"
            ) from None
        self._entries.append(_Entry(seq, len(lines), precision, len(body), path))
        self._bytes += len(body)
        self._points += len(lines)

    def peek(self) -> SpooledBatch | None:
        """Return the oldest batch, or None when the spool is empty; StorageError if unreadable."""
        if not self._entries:
            return None
        entry = self._entries[0]
        try:
            body = entry.path.read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read spooled batch {entry.path}: {exc.strerror}") from None
        return SpooledBatch(entry.seq, entry.points, entry.precision, body)

    def peek_run(self, max_points: int) -> list[SpooledBatch]:
        """Return the oldest batches of one precision, together at most ``max_points`` points.

        Always at least the oldest batch (when there is one), however many points it holds,
        so that small batches spooled during an outage are replayed in few requests.
        StorageError if the oldest batch is unreadable.
        """
        first = self.peek()
        if first is None:
            return []
        run, points = [first], first.points
        for entry in self._entries[1:]:
            if entry.precision != first.precision or points + entry.points > max_points:
                break
            try:
                body = entry.path.read_bytes()
            except OSError:
                break  # reported when it becomes the oldest
            run.append(SpooledBatch(entry.seq, entry.points, entry.precision, body))
            points += entry.points
        return run

    def pop(self, seq: int) -> None:
        """Remove the oldest batch, which must have sequence number ``seq``."""
        if not self._entries or self._entries[0].seq != seq:
            raise StorageError(f"spool: batch {seq} is not the oldest")
        entry = self._entries.pop(0)
        self._bytes -= entry.size_bytes
        self._points -= entry.points
        try:
            entry.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("spool: cannot remove sent batch %s: %s", entry.path, exc.strerror)

    def oldest_points(self) -> int:
        """Points in the oldest batch (0 when empty)."""
        return self._entries[0].points if self._entries else 0

    def drop_oldest(self) -> None:
        """Remove the oldest batch whatever its sequence number (an unreadable one)."""
        if self._entries:
            self.pop(self._entries[0].seq)

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Release the folder lock (the batches stay on disk for the next run)."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
