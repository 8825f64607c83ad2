"""The InfluxDB sink's health as a typed record (the ``/api/health`` and ``/metrics`` source)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InfluxCounters:
    """What became of the points handed to the sink since it was made.

    All are counts of points, except ``write_failures`` (failed requests). Every accepted
    point is written, replayed, still spooled or counted in a loss counter.
    """

    points_accepted: int = 0
    """Points encoded and taken (journaled, or queued in memory before start)."""
    points_written: int = 0
    """Points the server stored at the first attempt."""
    points_spooled: int = 0
    """Points that waited in the outbox for a retry (a failed write, or a full spool)."""
    points_replayed: int = 0
    """Spooled points the server stored later."""
    points_rejected: int = 0
    """Points the server refused as invalid (kept in ``rejected.lp``)."""
    points_invalid: int = 0
    """Records that could not be encoded (never stored)."""
    points_refused_queue_full: int = 0
    """Points refused because the memory queue was full (or the sink closed)."""
    points_refused_spool_full: int = 0
    """Points refused because the outbox's InfluxDB lane was full."""
    points_lost_spool_error: int = 0
    """Points lost because the disk refused the outbox write."""
    write_failures: int = 0
    """Write requests that failed (unreachable, 5xx, 401/403, 404)."""


@dataclass(frozen=True, slots=True)
class InfluxHealth:
    """The InfluxDB sink's state, sizes and counters (no secret)."""

    counters: InfluxCounters
    state: str
    """``starting``, ``connected``, ``unreachable``, ``auth_failed``, ``not_found``, ``closed``."""
    last_error: str
    """The last write error ("" while writes succeed)."""
    since_last_write_s: float
    """Seconds since the last successful write; -1 before the first."""
    spool_full: bool
    """The outbox lane refuses new points (until replay brings it under 90 % of its bound)."""
    target: str
    """URL and database or bucket."""
    queue_points: int
    """Points waiting in memory (before start, or while the disk refuses the outbox)."""
    spool_points: int
    """Points journaled in the outbox and not yet stored."""
    spool_bytes: int
    """Bytes of those points' line protocol."""
    spool_batches: int
    """Batches (outbox entries) they are in."""
    spool_max_bytes: int
    """The lane's bound, bytes."""

    @property
    def connected(self) -> bool:
        """Whether the last write reached the server."""
        return self.state == "connected"

    def as_map(self) -> dict[str, float | int | str | bool]:
        """Return the flat map ``health()`` and the HTTP API show (counters first)."""
        c = self.counters
        return {
            "points_accepted": c.points_accepted,
            "points_written": c.points_written,
            "points_spooled": c.points_spooled,
            "points_replayed": c.points_replayed,
            "points_rejected": c.points_rejected,
            "points_invalid": c.points_invalid,
            "points_refused_queue_full": c.points_refused_queue_full,
            "points_refused_spool_full": c.points_refused_spool_full,
            "points_lost_spool_error": c.points_lost_spool_error,
            "write_failures": c.write_failures,
            "state": self.state,
            "connected": self.connected,
            "last_error": self.last_error,
            "since_last_write_s": self.since_last_write_s,
            "spool_full": self.spool_full,
            "target": self.target,
            "queue_points": self.queue_points,
            "spool_points": self.spool_points,
            "spool_bytes": self.spool_bytes,
            "spool_batches": self.spool_batches,
            "spool_max_bytes": self.spool_max_bytes,
        }
