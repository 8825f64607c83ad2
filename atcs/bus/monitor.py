"""A read-only subscriber of the bus: the latest metrics per segment and status per camera.

Used by ``atcs watch``; works against any broker that carries the contract. The client uses
a clean session (it wants the current state, which retained messages give on subscribe)
and subscribes in ``on_connect`` so that it survives broker restarts. Every callback is
guarded and the network thread watched (:mod:`atcs.bus.guard`): a poisoned retained
message is counted as malformed and the table goes on.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import paho.mqtt.client as mqtt

from atcs.bus.client import BusClient
from atcs.bus.connection import default_client_id
from atcs.bus.payloads import decode_camera_status, decode_segment_metrics
from atcs.bus.topics import TopicKind, Topics
from atcs.config.bus import MqttConfig
from atcs.errors import PayloadError
from atcs.logthrottle import ThrottledLog
from atcs.text import printable
from atcs.types import CameraId, CameraStatus, SegmentId, SegmentMetrics

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class SegmentRow:
    """The newest metrics of one segment and when they were received (UTC)."""

    metrics: SegmentMetrics
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the monitor knows now: rows by segment, camera statuses, connection, counters."""

    segments: dict[SegmentId, SegmentRow]
    cameras: dict[CameraId, CameraStatus]
    connected: bool
    received: int
    malformed: int
    last_error: str


class LiveState:
    """Latest metrics per segment and status per camera; bounded, thread-safe."""

    def __init__(self, topics: Topics, max_items: int = 10_000) -> None:
        self.topics = topics
        self.max_items = max_items
        self._lock = threading.Lock()
        self._segments: dict[SegmentId, SegmentRow] = {}
        self._cameras: dict[CameraId, CameraStatus] = {}
        self.received = 0
        self.malformed = 0
        self.log = ThrottledLog(log, burst=10)

    def handle(self, topic: str, payload: bytes, now: datetime | None = None) -> None:
        """Take one message; malformed or foreign ones are logged and counted."""
        when = now or datetime.now(UTC)
        with self._lock:
            self.received += 1
        if not payload:
            return
        try:
            parsed = self.topics.parse(topic)
            if parsed.kind is TopicKind.SEGMENT_METRICS:
                m = decode_segment_metrics(payload, parsed.ident).record
                with self._lock:
                    if self._keep(m):
                        self._segments[m.segment_id] = SegmentRow(m, when)
                        self._bound(self._segments)
            elif parsed.kind is TopicKind.CAMERA_STATUS:
                cam = decode_camera_status(payload, parsed.ident).record
                with self._lock:
                    self._cameras[cam.camera_id] = cam
                    self._bound(self._cameras)
        except PayloadError as exc:
            with self._lock:
                self.malformed += 1
            self.log.warning_for(
                "malformed", "dropped malformed message on %s: %s", printable(topic, 200), exc
            )

    def _keep(self, m: SegmentMetrics) -> bool:
        old = self._segments.get(m.segment_id)
        return old is None or m.window_end >= old.metrics.window_end

    def _bound(self, table: dict[K, V]) -> None:
        while len(table) > self.max_items:
            del table[next(iter(table))]

    def snapshot(self, connected: bool = True, last_error: str = "") -> Snapshot:
        """Return a copy of the current state."""
        with self._lock:
            return Snapshot(
                dict(self._segments),
                dict(self._cameras),
                connected,
                self.received,
                self.malformed,
                last_error,
            )


class BusMonitor(BusClient):
    """Subscribes to every segment's metrics and every camera's status under the prefix."""

    def __init__(self, config: MqttConfig, *, client_id: str | None = None) -> None:
        super().__init__(
            config,
            client_id or f"{default_client_id('any', 'watch')}-{os.getpid()}",
            "atcs watch",
        )
        self.topics = Topics(config.prefix)
        self.state = LiveState(self.topics)

    def housekeeping(self) -> None:
        """Flush the throttled logs."""
        super().housekeeping()
        self.state.log.flush()

    def snapshot(self) -> Snapshot:
        """Return the current state (see :class:`Snapshot`)."""
        alive = self.alive()
        error = self.last_error if alive else "the MQTT network thread is not running"
        return self.state.snapshot(self.connected.is_set() and alive, error)

    def on_up(self, client: mqtt.Client) -> None:
        """Subscribe to every segment's metrics and camera's status."""
        client.subscribe(
            [(self.topics.all_segment_metrics(), 1), (self.topics.all_camera_status(), 1)]
        )

    def on_message(self, topic: str, payload: bytes) -> None:
        """Take one message into the live state."""
        self.state.handle(topic, payload)
