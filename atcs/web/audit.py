"""The audit trail of operator actions: a JSON-lines file and an InfluxDB measurement.

Every operator action taken from the dashboard (accepted or refused) is appended to the
audit file (``state_dir/dashboard/operator-actions.jsonl`` by default, flushed and synced
before the API answers) and, where ``[influx]`` is set, written to InfluxDB as one
``operator_action`` point:

====================  ==========================================  ======================
measurement           tags                                        time
====================  ==========================================  ======================
``operator_action``   site, intersection, action, outcome         when it was requested
====================  ==========================================  ======================

Fields: ``user``, ``role``, ``reason``, ``plan_name`` (when given), ``detail`` (why it
was refused, or what it became) and ``greens`` (``phase=seconds`` list, when given). The
user is a field, not a tag (names are unbounded). Points go out from a background thread
through the same writer as the engine's store (v1 or v2); while InfluxDB is down they
wait in a bounded memory queue and are retried; the audit file is the durable record.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from atcs.config.storage import InfluxConfig
from atcs.errors import StorageError
from atcs.health_records import AuditCounters
from atcs.storage import InfluxWriter, Point, PointsRejectedError, encode, make_writer

log = logging.getLogger(__name__)

OPERATOR_ACTION = "operator_action"
QUEUE_MAX_POINTS = 1000
RETRY_S = 5.0


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One operator action: when (UTC), who, what, for which intersection, why, outcome.

    ``outcome`` is ``accepted`` (handed to signal control) or ``refused``; ``detail``
    says why it was refused or names the resulting override.
    """

    at: datetime
    site_id: str
    user: str
    role: str
    intersection_id: str
    action: str
    reason: str
    outcome: str
    detail: str = ""
    plan_name: str | None = None
    greens_s: Mapping[str, float] = field(default_factory=dict)
    remote: str = ""

    def to_json(self) -> str:
        """One JSON line (no trailing newline)."""
        data = asdict(self)
        data["at"] = self.at.astimezone(UTC).isoformat()
        data["greens_s"] = dict(self.greens_s)
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    def to_point(self) -> Point:
        """Return the ``operator_action`` point of this record."""
        fields: dict[str, str | float | int | bool] = {
            "user": self.user,
            "role": self.role,
            "reason": self.reason,
            "detail": self.detail,
        }
        if self.plan_name is not None:
            fields["plan_name"] = self.plan_name
        if self.greens_s:
            fields["greens"] = ",".join(f"{k}={v:g}" for k, v in self.greens_s.items())
        return Point(
            measurement=OPERATOR_ACTION,
            time=self.at,
            tags={
                "site": self.site_id,
                "intersection": self.intersection_id,
                "action": self.action,
                "outcome": self.outcome,
            },
            fields=fields,
        )


class Auditable(Protocol):
    """A record the audit log takes: one JSON line and, optionally, an InfluxDB point."""

    def to_json(self) -> str:
        """Return one JSON line (no trailing newline)."""
        ...

    def to_point(self) -> Point | None:
        """Return the InfluxDB point of the record (None: the file only)."""
        ...


class AuditLog:
    """Appends audit records to a file and sends them to InfluxDB in the background."""

    def __init__(
        self,
        path: Path,
        influx: InfluxConfig | None = None,
        *,
        writer: InfluxWriter | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.path = path
        self._writer = writer
        if influx is not None and writer is None:
            self._writer = make_writer(influx, environ)
        self._precision = influx.precision if influx is not None else "ms"
        self._lock = threading.Lock()
        self._queue: deque[str] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.counts = {"records": 0, "points_written": 0, "points_dropped": 0, "write_failures": 0}

    def start(self) -> None:
        """Create the audit folder and start the InfluxDB thread (when configured)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._writer is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="atcs-audit", daemon=True)
            self._thread.start()

    def record(self, rec: Auditable) -> None:
        """Append ``rec`` to the file (flushed and synced) and queue its point."""
        line = rec.to_json() + "\n"
        with self._lock:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            self.counts["records"] += 1
            point = rec.to_point()
            if self._writer is None or point is None:
                return
            encoded = encode(point, self._precision)
            if encoded is None:
                return
            if len(self._queue) >= QUEUE_MAX_POINTS:
                self._queue.popleft()
                self.counts["points_dropped"] += 1
            self._queue.append(encoded)
        self._wake.set()

    def counters(self) -> AuditCounters:
        """Return the log's counters."""
        with self._lock:
            return AuditCounters(**self.counts)

    def pending(self) -> int:
        """Points waiting for InfluxDB."""
        with self._lock:
            return len(self._queue)

    def close(self, timeout_s: float = 5.0) -> None:
        """Try to send what waits, then stop the thread and release the writer."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._writer is not None:
            self._writer.close()
        left = self.pending()
        if left:
            log.warning("audit: %d operator_action point(s) not written to InfluxDB", left)

    def _run(self) -> None:
        while True:
            self._wake.wait(RETRY_S)
            self._wake.clear()
            stopping = self._stop.is_set()
            self._flush()
            if stopping:
                return

    def _flush(self) -> None:
        writer = self._writer
        with self._lock:
            lines = list(self._queue)
        if not lines or writer is None:
            return
        try:
            writer.write(("\n".join(lines) + "\n").encode(), self._precision)
        except PointsRejectedError as exc:
            log.error("audit: InfluxDB refused %d operator_action point(s): %s", len(lines), exc)
            self._forget(len(lines), dropped=True)
            return
        except StorageError as exc:
            self._count("write_failures")
            log.warning("audit: InfluxDB write failed, retrying in %.0f s: %s", RETRY_S, exc)
            return
        except Exception:  # the thread's loop boundary: keep the points, retry later
            self._count("write_failures")
            log.exception("audit: InfluxDB write failed")
            return
        self._forget(len(lines), dropped=False)

    def _count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1

    def _forget(self, n: int, *, dropped: bool) -> None:
        with self._lock:
            for _ in range(min(n, len(self._queue))):
                self._queue.popleft()
            self.counts["points_dropped" if dropped else "points_written"] += n
