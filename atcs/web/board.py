"""What the dashboard remembers of the measures: latest window and a short trend per segment.

:class:`BoardStore` is fed from the engine's analysis tick (through the dashboard sink)
and read by the web server's threads; every map is keyed by a configured id, so its size
is bounded by the configuration, and every trend is a bounded deque.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from atcs.types import CameraStatus, LevelOfService, SegmentMetrics


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One window of a segment's trend: its end (UTC), density, flow, vehicles and LOS."""

    window_end: datetime
    density_pcu_km_lane: float
    flow_veh_h: float
    vehicles: float
    los: LevelOfService
    stale: bool


@dataclass(frozen=True, slots=True)
class SegmentBoard:
    """A segment's latest window (None before the first) and its recent trend, oldest first."""

    segment_id: str
    latest: SegmentMetrics | None
    trend: tuple[TrendPoint, ...]
    windows: int


class BoardStore:
    """Latest metrics, trends and camera statuses; thread-safe, bounded by the config."""

    def __init__(self, segment_ids: Sequence[str], trend_windows: int) -> None:
        self._lock = threading.Lock()
        self._order = list(segment_ids)
        self._latest: dict[str, SegmentMetrics] = {}
        self._trend: dict[str, deque[TrendPoint]] = {
            s: deque(maxlen=trend_windows) for s in segment_ids
        }
        self._windows: dict[str, int] = dict.fromkeys(segment_ids, 0)
        self._statuses: dict[str, CameraStatus] = {}
        self._camera_ids: set[str] = set()
        self.windows_total = 0
        self.ignored_total = 0

    def allow_cameras(self, camera_ids: Sequence[str]) -> None:
        """Keep the statuses of these cameras only (the configured ones)."""
        with self._lock:
            self._camera_ids = set(camera_ids)

    def add_metrics(self, metrics: Sequence[SegmentMetrics]) -> None:
        """Take the windows that just closed (unknown segments are counted and ignored)."""
        with self._lock:
            for m in metrics:
                trend = self._trend.get(m.segment_id)
                if trend is None:
                    self.ignored_total += 1
                    continue
                previous = self._latest.get(m.segment_id)
                if previous is None or m.window_end >= previous.window_end:
                    self._latest[m.segment_id] = m
                trend.append(
                    TrendPoint(
                        m.window_end, m.density_pcu_km_lane, m.flow_veh_h, m.vehicles, m.los,
                        m.stale,
                    )
                )  # fmt: skip
                self._windows[m.segment_id] += 1
                self.windows_total += 1

    def add_status(self, status: CameraStatus) -> None:
        """Take a camera's status (kept for configured cameras only)."""
        with self._lock:
            if status.camera_id in self._camera_ids:
                self._statuses[status.camera_id] = status

    def segments(self) -> list[SegmentBoard]:
        """Every configured segment in configuration order."""
        with self._lock:
            return [
                SegmentBoard(s, self._latest.get(s), tuple(self._trend[s]), self._windows[s])
                for s in self._order
            ]

    def status(self, camera_id: str) -> CameraStatus | None:
        """Return the last status the engine reported for ``camera_id``."""
        with self._lock:
            return self._statuses.get(camera_id)
