"""The InfluxDB sink: journals points, then writes them from a background thread.

The caller's thread encodes records to line protocol and journals them at once in the
``influx`` lane of the engine's durable outbox (:mod:`atcs.storage.spool`, in
``<state_dir>/outbox.sqlite3``; in the engine's journal group, in the same transaction as
the window's MQTT messages). The writer thread sends the journaled batches oldest first
(merged up to ``batch_size`` points) when ``batch_size`` points wait or
``flush_interval_s`` passed, and deletes each batch once the server stored it. While a
write fails, the batches stay and are retried with backoff; what is journaled at shutdown
or at a crash is sent on the next start. Records handed over before :meth:`InfluxSink.start`
(or while the disk refuses the journal) wait in a bounded memory queue.

Nothing is dropped silently: each way a point can be lost is a counter in :meth:`health`
and a log line when it starts (``points_refused_queue_full``, ``points_refused_spool_full``,
``points_lost_spool_error``, ``points_rejected``, ``points_invalid``). When the spool is
full, NEW points are refused and what is spooled is kept (it was accepted first). Points
the server refuses as invalid (HTTP 400) are appended to ``state_dir/influx/rejected.lp``
(up to 16 MiB) for inspection.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atcs.config.storage import InfluxConfig, Precision
from atcs.errors import SpoolFullError, StorageError
from atcs.incidents import IncidentEvent
from atcs.journal import JOURNAL_FILE
from atcs.storage.base import (
    AuthenticationError,
    DatabaseNotFoundError,
    InfluxWriter,
    PointsRejectedError,
    ServerUnavailableError,
)
from atcs.storage.factory import make_writer
from atcs.storage.health import InfluxCounters, InfluxHealth
from atcs.storage.lineprotocol import Point, encode
from atcs.storage.measure_points import incident_point, movement_points
from atcs.storage.points import alarm_point, camera_point, metrics_point, plan_point
from atcs.storage.queue import LineQueue
from atcs.storage.spool import Spool, import_legacy_spool
from atcs.types import CameraStatus, MovementCounts, SegmentMetrics, SiteId, TimingPlan

if TYPE_CHECKING:
    from atcs.alarms.model import AlarmEvent

log = logging.getLogger(__name__)

REJECTED_MAX_BYTES = 16 * 1024 * 1024
_COUNTERS = tuple(f.name for f in fields(InfluxCounters))


class InfluxSink:
    """Stores metrics, camera health, plans, movements and incidents in InfluxDB (a ``Sink``)."""

    def __init__(
        self,
        config: InfluxConfig,
        site_id: SiteId,
        state_dir: str | Path,
        *,
        writer: InfluxWriter | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Prepare the sink; :meth:`start` opens the spool and starts the writer thread.

        ``writer`` replaces the one built from ``config`` (the v1 or v2 API); the secret is
        read from ``environ`` (default ``os.environ``). Raises ConfigError for a user name
        without a password.
        """
        self._config = config
        self._site_id = site_id
        self._precision: Precision = config.precision
        self._dir = Path(state_dir) / "influx"
        self._writer = writer if writer is not None else make_writer(config, environ)
        self._queue = LineQueue(config.queue_max_points)
        self._spool: Spool | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._deadline = float("inf")
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._state = "starting"
        self._last_error = ""
        self._failures = 0
        self._retry_at = 0.0
        self._last_write_at: float | None = None
        self._alarms: set[str] = set()
        self._closed = False
        self._spooled_upto = 0  # batches up to this seq waited for a retry

    # -- the service's side (never blocks, never raises) ---------------------------------

    def start(self) -> None:
        """Open the spool (replaying what an earlier run left) and start the writer thread.

        Raises StorageError when the spool folder cannot be used (e.g. another engine holds it).
        """
        if self._thread is not None:
            return
        spool = Spool(self._dir.parent / JOURNAL_FILE, self._config.spool_max_bytes)
        import_legacy_spool(self._dir / "spool", spool)
        self._spooled_upto = spool.tail(0)[1]
        self._spool = spool
        self._thread = threading.Thread(target=self._run, name="influx-writer", daemon=True)
        self._thread.start()
        log.info("InfluxDB sink started: %s, spool %s", self._writer.target, spool.path)

    def on_metrics(self, metrics: Sequence[SegmentMetrics]) -> None:
        """Enqueue one ``segment_metrics`` point per record."""
        self._enqueue([(metrics_point, (m,)) for m in metrics], "segment metrics")

    def on_camera_status(self, status: CameraStatus) -> None:
        """Enqueue a ``camera_health`` point stamped now."""
        at = datetime.now(UTC)
        self._enqueue([(camera_point, (self._site_id, status, at))], "camera status")

    def on_plan(self, plan: TimingPlan) -> None:
        """Enqueue a ``signal_plan`` point stamped with the plan's ``valid_from``."""
        self._enqueue([(plan_point, (self._site_id, plan))], "timing plan")

    def on_movements(self, counts: Sequence[MovementCounts]) -> None:
        """Enqueue the ``movement_counts`` points of each matrix (one per zone pair)."""
        points = [p for c in counts for p in movement_points(c)]
        self._enqueue([(_built, (p,)) for p in points], "movement counts")

    def on_incident(self, event: IncidentEvent) -> None:
        """Enqueue the ``incidents`` point of an incident's start or end."""
        self._enqueue([(incident_point, (event,))], "incident")

    def on_alarm(self, event: AlarmEvent) -> None:
        """Enqueue an ``alarm`` point stamped with the time of the change."""
        self._enqueue([(alarm_point, (event,))], "alarm")

    def _enqueue(
        self, builders: Sequence[tuple[Callable[..., Point], tuple[Any, ...]]], what: str
    ) -> None:
        lines: list[str] = []
        for build, args in builders:
            try:
                line = encode(build(*args), self._precision)
            except Exception:
                log.exception("InfluxDB: cannot encode a %s point; it is not stored", what)
                self._count("points_invalid", 1)
                continue
            if line is None:
                self._count("points_invalid", 1)
                continue
            lines.append(line)
        if self._closed:
            self._count("points_refused_queue_full", len(lines))
            self._alarm("closed", True, "InfluxDB sink is closed; %d points refused", len(lines))
            return
        if lines and self._spool is not None:
            self._count("points_accepted", len(lines))
            self._journal(self._spool, lines)
            return
        self._to_memory(lines)

    def _journal(self, spool: Spool, lines: list[str]) -> None:
        """Journal ``lines`` on the caller's thread; the memory queue if the disk refuses."""
        try:
            written = spool.append(
                lines, self._precision, lambda exc: self._to_memory(lines, accepted=True)
            )
        except SpoolFullError as exc:
            self._count("points_refused_spool_full", len(lines))
            self._alarm("spool_full", True, "InfluxDB: %s; new points are refused", exc)
            return
        except StorageError as exc:
            self._alarm("spool_error", True, "InfluxDB: %s; points wait in memory", exc)
            self._to_memory(lines, accepted=True)
            return
        if written and spool.points >= self._config.batch_size:
            self._queue.wake()

    def _to_memory(self, lines: list[str], *, accepted: bool = False) -> None:
        """Queue ``lines`` in memory (``accepted``: already counted as accepted)."""
        refused = self._queue.put(lines)
        self._count("points_accepted", (0 if accepted else len(lines)) - refused)
        if refused:
            self._count("points_refused_queue_full", refused)
            self._alarm(
                "queue_full",
                True,
                "InfluxDB: memory queue full (%d points); new points are refused and counted",
                self._config.queue_max_points,
            )
        elif len(self._queue) < self._config.queue_max_points // 2:
            self._alarm("queue_full", False, "")

    def status(self) -> InfluxHealth:
        """State, target, queue and spool sizes, counters and the last error (no secrets)."""
        spool = self._spool
        with self._lock:
            counters = InfluxCounters(**self._counts)
            state, error = self._state, self._last_error
            since = -1.0 if self._last_write_at is None else time.monotonic() - self._last_write_at
            full = "spool_full" in self._alarms
        return InfluxHealth(
            counters=counters,
            state=state,
            last_error=error,
            since_last_write_s=since,
            spool_full=full,
            target=self._writer.target,
            queue_points=len(self._queue),
            spool_points=spool.points if spool else 0,
            spool_bytes=spool.size_bytes if spool else 0,
            spool_batches=spool.batches if spool else 0,
            spool_max_bytes=self._config.spool_max_bytes,
        )

    def health(self) -> Mapping[str, float | int | str | bool]:
        """:meth:`status` as the flat map of the Sink protocol (``docs/influxdb.md``)."""
        return self.status().as_map()

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what can be sent within ``timeout_s`` seconds and spool the rest to disk."""
        if self._closed:
            return
        if self._thread is None:
            try:
                self.start()
            except StorageError as exc:
                log.error("InfluxDB: cannot persist %d points at close: %s", len(self._queue), exc)
        self._closed = True
        self._deadline = time.monotonic() + timeout_s
        self._stop.set()
        self._queue.wake()
        if self._thread is not None:
            self._thread.join(timeout_s + self._config.timeout_s + 1.0)
            if self._thread.is_alive():
                log.error(
                    "InfluxDB writer did not stop within %.1f s; %d points in memory are lost",
                    timeout_s,
                    len(self._queue),
                )
                return
        spool = self._spool
        log.info(
            "InfluxDB sink closed: %d points written, %d spooled on disk for the next run",
            self._counts["points_written"] + self._counts["points_replayed"],
            spool.points if spool else 0,
        )
        if spool is not None:
            spool.close()
        self._writer.close()
        with self._lock:
            self._state = "closed"

    # -- bookkeeping -------------------------------------------------------------------

    def _count(self, name: str, n: int) -> None:
        if n:
            with self._lock:
                self._counts[name] += n

    def _alarm(self, name: str, on: bool, message: str, *args: object) -> None:
        """Log ``message`` at ERROR when alarm ``name`` starts and at INFO when it ends."""
        with self._lock:
            was = name in self._alarms
            if on:
                self._alarms.add(name)
            else:
                self._alarms.discard(name)
        if on and not was:
            log.error(message, *args)
        elif was and not on:
            log.info("InfluxDB: %s is over", name.replace("_", " "))

    def _set_state(self, state: str, error: str) -> str:
        with self._lock:
            previous, self._state, self._last_error = self._state, state, error
        return previous

    # -- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        cfg = self._config
        next_flush = time.monotonic() + cfg.flush_interval_s
        while True:
            stopping = self._stop.is_set()
            try:
                self._drain_queue()
                now = time.monotonic()
                spooled = self._spool.points if self._spool is not None else 0
                retry_due = 0.0 < self._retry_at <= now
                if stopping or spooled >= cfg.batch_size or now >= next_flush or retry_due:
                    next_flush = now + cfg.flush_interval_s
                    self._replay()
            except Exception:
                log.exception("InfluxDB writer: unexpected error; carrying on")
                self._stop.wait(cfg.retry_initial_s)
            if stopping:
                if len(self._queue) == 0:
                    return
                continue
            now = time.monotonic()
            timeout = next_flush - now
            if self._retry_at > now:
                timeout = min(timeout, self._retry_at - now)
            self._queue.wait(cfg.batch_size, timeout)

    def _drain_queue(self) -> None:
        """Journal what waits in memory (handed over before start, or a refused disk)."""
        while True:
            batch = self._queue.take(self._config.batch_size)
            if not batch:
                return
            self._to_spool(batch)

    def _may_send(self) -> bool:
        now = time.monotonic()
        return now >= self._retry_at and now < self._deadline

    def _to_spool(self, lines: list[str]) -> None:
        spool = self._spool
        if spool is None:
            self._count("points_lost_spool_error", len(lines))
            log.error("InfluxDB: no spool; %d points lost", len(lines))
            return
        try:
            spool.append(lines, self._precision)
        except SpoolFullError as exc:
            self._count("points_refused_spool_full", len(lines))
            self._alarm("spool_full", True, "InfluxDB: %s; new points are refused", exc)
            return
        except StorageError as exc:
            self._count("points_lost_spool_error", len(lines))
            self._alarm("spool_error", True, "InfluxDB: %s; points are lost", exc)
            return
        self._alarm("spool_error", False, "")

    def _mark_spooled(self) -> None:
        """Count the journaled points that now wait for a retry as spooled."""
        if self._spool is None:
            return
        points, last = self._spool.tail(self._spooled_upto)
        if last:
            self._count("points_spooled", points)
            self._spooled_upto = last

    def _replay(self) -> None:
        """Send the journaled batches oldest first, deleting each once the server took it."""
        spool = self._spool
        while spool is not None and spool.points and self._may_send():
            run = spool.peek_run(self._config.batch_size)
            if not run:
                return
            body = b"".join(batch.body for batch in run)
            try:
                self._send(body, run[0].precision)
            except PointsRejectedError as exc:
                for batch in run:
                    spool.pop(batch.seq)
                self._rejected(body.decode("utf-8").splitlines(), exc)
                continue
            except StorageError as exc:
                self._failed(exc, spool.points)
                self._mark_spooled()
                return
            was_spooled = False
            for batch in run:
                spool.pop(batch.seq)
                retried = batch.seq <= self._spooled_upto
                was_spooled |= retried
                self._count("points_replayed" if retried else "points_written", batch.points)
            oldest = spool.peek()
            if was_spooled and (oldest is None or oldest.seq > self._spooled_upto):
                log.info("InfluxDB: spool replayed; writing directly again")
            if not spool.full:
                self._alarm("spool_full", False, "")

    def _send(self, body: bytes, precision: Precision) -> None:
        try:
            self._writer.write(body, precision)
        except StorageError:
            raise
        except Exception as exc:
            log.exception("InfluxDB writer failed unexpectedly")
            raise ServerUnavailableError(f"unexpected {type(exc).__name__}: {exc}") from None
        with self._lock:
            self._last_write_at = time.monotonic()
        self._failures = 0
        self._retry_at = 0.0
        previous = self._set_state("connected", "")
        if previous != "connected":
            spooled = self._spool.points if self._spool else 0
            log.info(
                "InfluxDB at %s: writing (%d points spooled to replay)",
                self._writer.target,
                spooled,
            )

    def _failed(self, exc: StorageError, points: int) -> None:
        cfg = self._config
        self._count("write_failures", 1)
        delay = min(cfg.retry_max_s, cfg.retry_initial_s * 2.0 ** min(self._failures, 30))
        self._failures += 1
        self._retry_at = time.monotonic() + delay * random.uniform(0.9, 1.0)
        if isinstance(exc, AuthenticationError):
            state, level = "auth_failed", logging.ERROR
        elif isinstance(exc, DatabaseNotFoundError):
            state, level = "not_found", logging.ERROR
        else:
            state, level = "unreachable", logging.WARNING
        previous = self._set_state(state, str(exc))
        if previous != state:
            log.log(
                level,
                "%s; %d points and later ones stay journaled in %s, retried with backoff",
                exc,
                points,
                self._dir.parent / JOURNAL_FILE,
            )

    def _rejected(self, lines: Sequence[str], exc: StorageError) -> None:
        self._count("points_rejected", len(lines))
        path = self._dir / "rejected.lp"
        body = ("\n".join(lines) + "\n").encode("utf-8")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            size = path.stat().st_size if path.exists() else 0
            if size + len(body) <= REJECTED_MAX_BYTES:
                with path.open("ab") as out:
                    out.write(body)
                where = f"kept in {path}"
            else:
                where = f"not kept: {path} reached {REJECTED_MAX_BYTES} bytes"
        except OSError as exc2:
            where = f"not kept: {path}: {exc2.strerror}"
        log.error("InfluxDB refused %d points as invalid (%s): %s", len(lines), where, exc)


def _built(point: Point) -> Point:
    """Return ``point`` (for points built before they are queued)."""
    return point
