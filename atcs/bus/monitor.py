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
from paho.mqtt.reasoncodes import ReasonCode

from atcs.bus.connection import connect_async, default_client_id, describe_refusal, make_client
from atcs.bus.guard import CallbackGuard, NetworkWatch
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


class BusMonitor:
    """Subscribes to every segment's metrics and every camera's status under the prefix."""

    def __init__(self, config: MqttConfig, *, client_id: str | None = None) -> None:
        self.config = config
        self.topics = Topics(config.prefix)
        self.state = LiveState(self.topics)
        self.client_id = client_id or f"{default_client_id('any', 'watch')}-{os.getpid()}"
        self.connected = threading.Event()
        self.last_error = ""
        self._client: mqtt.Client | None = None
        self.guard = CallbackGuard("atcs watch")
        self._watch: NetworkWatch | None = None

    def start(self) -> None:
        """Connect in the background (retrying with backoff); raises BusError on bad settings."""
        client = make_client(self.config, self.client_id)
        client.on_connect = self.guard.wrap("on_connect", self._on_connect)
        client.on_connect_fail = self.guard.wrap("on_connect_fail", self._on_connect_fail)
        client.on_disconnect = self.guard.wrap("on_disconnect", self._on_disconnect)
        client.on_message = self.guard.wrap("on_message", self._on_message)
        self._client = client
        connect_async(client, self.config)
        self._watch = NetworkWatch(client, "atcs watch", housekeeping=self._housekeeping)
        self._watch.start()

    def _housekeeping(self) -> None:
        self.guard.flush()
        self.state.log.flush()

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until subscribed or ``timeout_s`` seconds passed; True when subscribed."""
        return self.connected.wait(timeout_s)

    def snapshot(self) -> Snapshot:
        """Return the current state (see :class:`Snapshot`)."""
        alive = self._watch is not None and self._watch.alive()
        error = self.last_error if alive else "the MQTT network thread is not running"
        return self.state.snapshot(self.connected.is_set() and alive, error)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        if self._watch is not None:
            self._watch.stop()
        client = self._client
        if client is not None:
            client.disconnect()
            client.loop_stop()
            self._client = None

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        if reason_code.is_failure:
            self.last_error = describe_refusal(reason_code, self.config)
            log.error("%s", self.last_error)
            return
        self.last_error = ""
        client.subscribe(
            [(self.topics.all_segment_metrics(), 1), (self.topics.all_camera_status(), 1)]
        )
        self.connected.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self.last_error = f"cannot connect to {self.config.host}:{self.config.port}"
        log.debug("%s; retrying", self.last_error)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        self.connected.clear()
        if reason_code.is_failure:
            self.last_error = f"disconnected: {reason_code}"

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            return
        self.state.handle(topic, bytes(msg.payload))
