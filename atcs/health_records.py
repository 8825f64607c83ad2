"""Typed health records of the alarms, the audit trail, the dashboard and the probe server.

Each part's ``status()`` returns one of these; its ``health()`` (what ``/api/health``,
``/metrics`` and the node probes show) is ``status().as_map()``: the same keys, in the
same order, as the maps these records replaced (``tests/unit/test_health_records.py``
pins them). The bus's and the store's records are in :mod:`atcs.bus.health` and
:mod:`atcs.storage.health`. Every value is a count unless its docstring says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

HealthMap = dict[str, float | int | str | bool]

LOGIN_REFUSALS = ("login_wrong_password", "login_delayed", "login_busy")
"""Dashboard counts of refused logins, by the refusal's code (0 from the start)."""


@dataclass(frozen=True, slots=True)
class AuditCounters:
    """An audit log's counters."""

    records: int = 0
    """Records appended to the file."""
    points_written: int = 0
    """Records written to InfluxDB."""
    points_dropped: int = 0
    """Records InfluxDB refused or that waited past the queue's bound (the file keeps them)."""
    write_failures: int = 0
    """Failed InfluxDB writes."""

    def as_map(self, prefix: str = "") -> dict[str, int]:
        """Return the counters as a map, each key after ``prefix``."""
        return {
            f"{prefix}records": self.records,
            f"{prefix}points_written": self.points_written,
            f"{prefix}points_dropped": self.points_dropped,
            f"{prefix}write_failures": self.write_failures,
        }


@dataclass(frozen=True, slots=True)
class AuditTrailHealth:
    """The control audit trail (a sink): its log's counters and records waiting for InfluxDB."""

    counters: AuditCounters
    pending: int
    """Records waiting to be written to InfluxDB."""

    def as_map(self) -> HealthMap:
        """Return ``connected``, ``state``, the counters and ``pending``."""
        out: HealthMap = {"connected": True, "state": "writing"}
        out.update(self.counters.as_map())
        out["pending"] = self.pending
        return out


@dataclass(frozen=True, slots=True)
class AlarmCounters:
    """Alarm changes since start."""

    raised: int = 0
    ended: int = 0
    acknowledged: int = 0
    expired: int = 0
    """Ended, unacknowledged alarms forgotten past the bound of the current list."""
    output_failures: int = 0
    """Alarm changes an output (bus, store) failed to take."""

    def as_map(self) -> dict[str, int]:
        """Return the counters as a map."""
        return {
            "raised": self.raised,
            "ended": self.ended,
            "acknowledged": self.acknowledged,
            "expired": self.expired,
            "output_failures": self.output_failures,
        }


@dataclass(frozen=True, slots=True)
class AlarmHealth:
    """The alarm service: its counters and how many alarms are current."""

    counters: AlarmCounters
    current: int
    """Alarms active or not yet acknowledged."""

    def as_map(self) -> HealthMap:
        """Return the counters, ``current`` and ``connected`` (always true)."""
        out: HealthMap = dict(self.counters.as_map())
        out["current"] = self.current
        out["connected"] = True
        return out


@dataclass(frozen=True, slots=True)
class DashboardCounters:
    """The dashboard's logins and refused requests since start."""

    login_ok: int = 0
    actions_unauthenticated: int = 0
    """Operator actions asked for without a login (401)."""
    actions_forbidden: int = 0
    """Operator actions asked for by a viewer (403)."""
    metrics_refused: int = 0
    """``/metrics`` requests without a login or the metrics token."""
    by_name: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(LOGIN_REFUSALS, 0))
    """Other named counts: refused logins by code (``login_<code>``)."""

    @classmethod
    def of(cls, counts: Mapping[str, int]) -> DashboardCounters:
        """Build the record from the dashboard's tallies by name."""
        fixed = ("login_ok", "actions_unauthenticated", "actions_forbidden", "metrics_refused")
        by_name = dict.fromkeys(LOGIN_REFUSALS, 0)
        by_name.update({k: n for k, n in counts.items() if k not in fixed})
        c = counts.get
        return cls(
            c("login_ok", 0), c("actions_unauthenticated", 0), c("actions_forbidden", 0),
            c("metrics_refused", 0), by_name,
        )  # fmt: skip

    def as_map(self) -> dict[str, int]:
        """Return the counters (the named ones last)."""
        out = {
            "login_ok": self.login_ok,
            "actions_unauthenticated": self.actions_unauthenticated,
            "actions_forbidden": self.actions_forbidden,
            "metrics_refused": self.metrics_refused,
        }
        out.update(self.by_name)
        return out


@dataclass(frozen=True, slots=True)
class DashboardHealth:
    """The dashboard's server, logins, windows, snapshots and operator-audit counters."""

    connected: bool
    """The web server runs."""
    sessions: int
    """Live logins."""
    windows: int
    """Segment windows received."""
    snapshots: int
    """Camera images encoded."""
    snapshot_failures: int
    audit_pending: int
    """Operator-audit records waiting for InfluxDB."""
    audit: AuditCounters
    """The operator audit log's counters (``audit_*`` in the map)."""

    def as_map(self) -> HealthMap:
        """Return the flat map (the audit counters with the ``audit_`` prefix)."""
        out: HealthMap = {
            "connected": self.connected,
            "sessions": self.sessions,
            "windows": self.windows,
            "snapshots": self.snapshots,
            "snapshot_failures": self.snapshot_failures,
            "audit_pending": self.audit_pending,
        }
        out.update(self.audit.as_map("audit_"))
        return out


@dataclass(frozen=True, slots=True)
class ProbeServerHealth:
    """A node's ``/healthz`` and ``/readyz`` server."""

    connected: bool
    """It serves."""
    requests: int
    """Requests answered."""

    def as_map(self) -> HealthMap:
        """Return ``connected`` and ``requests``."""
        return {"connected": self.connected, "requests": self.requests}
