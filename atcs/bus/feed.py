"""What a control or room node reads from the bus: measures, camera and node health, plans.

:class:`BusFeed` subscribes (clean session: retained messages give the current state on
every connect) to every segment's metrics, every camera's and node's status and, when
asked, every plan and override state and (with an :meth:`~BusFeed.on_zone` handler) the
per-frame zones (QoS 0) of the segments the handlers name, or of every segment, and hands
each decoded record to the registered handlers on paho's network thread (handlers must
return at once). Copies of numbered messages (a resend, the retained copy replayed on
reconnect) are dropped (:class:`~atcs.bus.dedup.Deduplicator`), so a window reaches the
handlers once.

Node health: each node's status (:mod:`atcs.bus.nodes`) names its cameras. When a node goes
offline (its last will, or a clean stop), every camera it read is handed on as
``offline`` with the node in the detail, and a camera status arriving while its node is
offline (a retained ``streaming`` left behind) is handed on as ``offline`` too; when the
node comes back, its cameras' own statuses take over again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

import paho.mqtt.client as mqtt

from atcs.bus.client import BusClient
from atcs.bus.dedup import Deduplicator
from atcs.bus.health import FeedHealth
from atcs.bus.nodes import NodeStatus, decode_node_status
from atcs.bus.override_state import OverrideState, decode_override_state
from atcs.bus.payloads import decode_camera_status, decode_segment_metrics, decode_timing_plan
from atcs.bus.topics import TopicKind, Topics
from atcs.bus.zone_payloads import decode_segment_zone
from atcs.config.bus import MqttConfig
from atcs.errors import PayloadError
from atcs.logthrottle import ThrottledLog
from atcs.text import printable
from atcs.types import (
    CameraId,
    CameraState,
    CameraStatus,
    FrameZone,
    SegmentId,
    SegmentMetrics,
    TimingPlan,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_NODES = 1000
"""Nodes remembered (the oldest announcement is forgotten past this)."""

MetricsHandler = Callable[[Sequence[SegmentMetrics]], None]
CameraHandler = Callable[[CameraStatus], None]
NodeHandler = Callable[[NodeStatus], None]
PlanHandler = Callable[[TimingPlan], None]
OverrideStateHandler = Callable[[OverrideState], None]
ZoneHandler = Callable[[FrameZone], None]


class NodeBook:
    """The latest status of every node and which node reads each camera; thread-safe."""

    def __init__(self, max_nodes: int = MAX_NODES) -> None:
        self._lock = threading.Lock()
        self._nodes: dict[str, NodeStatus] = {}
        self._camera_node: dict[CameraId, str] = {}
        self._max = max_nodes

    def update(self, status: NodeStatus) -> None:
        """Take a node's announcement (its cameras now belong to it)."""
        with self._lock:
            self._nodes.pop(status.node_id, None)
            self._nodes[status.node_id] = status
            while len(self._nodes) > self._max:
                del self._nodes[next(iter(self._nodes))]
            for camera in status.cameras:
                self._camera_node[camera] = status.node_id
            live = {c for n in self._nodes.values() for c in n.cameras}
            for camera in [c for c in self._camera_node if c not in live]:
                del self._camera_node[camera]

    def nodes(self) -> list[NodeStatus]:
        """Every known node, in id order."""
        with self._lock:
            return sorted(self._nodes.values(), key=lambda n: n.node_id)

    def node_of_camera(self, camera: str) -> NodeStatus | None:
        """Return the node that reads ``camera`` (None when no node announced it)."""
        with self._lock:
            node = self._camera_node.get(CameraId(camera))
            return None if node is None else self._nodes.get(node)

    def node_offline(self, camera: str) -> NodeStatus | None:
        """Return the node of ``camera`` when that node is offline, else None."""
        node = self.node_of_camera(camera)
        return node if node is not None and not node.online else None


def offline_status(camera: CameraId, node: NodeStatus, last: CameraStatus | None) -> CameraStatus:
    """``camera`` reported offline because its node ``node`` is."""
    return CameraStatus(
        camera_id=camera,
        state=CameraState.OFFLINE,
        fps=0.0,
        last_frame_at=None if last is None else last.last_frame_at,
        detail=f"node {node.node_id} offline",
    )


class BusFeed(BusClient):
    """Subscriber for control and room nodes (see the module docstring)."""

    def __init__(
        self,
        config: MqttConfig,
        *,
        client_id: str,
        environ: Mapping[str, str] | None = None,
        plans: bool = False,
    ) -> None:
        super().__init__(
            config.model_copy(update={"clean_session": True}),
            client_id or f"atcs-feed-{os.getpid()}",
            "bus feed",
            environ=environ,
        )
        self.topics = Topics(config.prefix)
        self.nodes = NodeBook()
        self._want_plans = plans
        self._metrics: list[MetricsHandler] = []
        self._cameras: list[CameraHandler] = []
        self._node_handlers: list[NodeHandler] = []
        self._plans: list[PlanHandler] = []
        self._override_states: list[OverrideStateHandler] = []
        self._zones: list[tuple[ZoneHandler, frozenset[SegmentId] | None]] = []
        self._dedup = Deduplicator()
        self._last_camera: dict[CameraId, CameraStatus] = {}
        self._lock = threading.Lock()
        self._log = ThrottledLog(log, burst=10)
        self.received = 0
        self.malformed = 0
        self.zones_unwanted = 0
        """Zones that arrived for a segment no handler named (0 while only those are subscribed)."""

    # Handlers (register before start) ----------------------------------------------------

    def on_metrics(self, handler: MetricsHandler) -> None:
        """Call ``handler`` with every new segment window."""
        self._metrics.append(handler)

    def on_camera_status(self, handler: CameraHandler) -> None:
        """Call ``handler`` with every camera status (offline when the camera's node is)."""
        self._cameras.append(handler)

    def on_node(self, handler: NodeHandler) -> None:
        """Call ``handler`` with every node announcement and last will."""
        self._node_handlers.append(handler)

    def on_plan(self, handler: PlanHandler) -> None:
        """Call ``handler`` with every new timing plan (needs ``plans=True``)."""
        self._plans.append(handler)

    def on_override_state(self, handler: OverrideStateHandler) -> None:
        """Call ``handler`` with every new override state (needs ``plans=True``)."""
        self._override_states.append(handler)

    def on_zone(self, handler: ZoneHandler, segments: Iterable[SegmentId] | None = None) -> None:
        """Call ``handler`` with segment zones (one frame's vehicles each; subscribes to them).

        ``segments``: only the zones of these segments, and the feed subscribes to their
        topics alone, so a control node receives its own intersections' zones rather than
        every camera's of the site; None: every segment's.
        """
        self._zones.append((handler, None if segments is None else frozenset(segments)))

    def zone_filters(self) -> list[str]:
        """Return the zone topics to subscribe to: every segment's, or the named ones only."""
        if not self._zones:
            return []
        named: set[SegmentId] = set()
        for _, segments in self._zones:
            if segments is None:
                return [self.topics.all_segment_zones()]
            named |= segments
        return [self.topics.segment_zone(seg) for seg in sorted(named)]

    def camera_statuses(self) -> list[CameraStatus]:
        """Return the latest status of every camera seen, offline where its node is offline."""
        with self._lock:
            latest = list(self._last_camera.values())
        out = []
        for status in latest:
            node = self.nodes.node_offline(status.camera_id)
            out.append(status if node is None else offline_status(status.camera_id, node, status))
        return out

    # Connection ---------------------------------------------------------------------------

    def housekeeping(self) -> None:
        """Flush the throttled logs."""
        super().housekeeping()
        self._log.flush()

    def status(self) -> FeedHealth:
        """Return the connection state and message counters."""
        alive = self.alive()
        return FeedHealth(
            connected=self.connected.is_set() and alive,
            network_thread_alive=alive,
            received=self.received,
            malformed=self.malformed,
            duplicates=self._dedup.duplicates,
            nodes=len(self.nodes.nodes()),
            last_error=self.last_error,
            zones_unwanted=self.zones_unwanted,
        )

    def health(self) -> Mapping[str, float | int | str | bool]:
        """:meth:`status` as a flat map."""
        return self.status().as_map()

    def _filters(self) -> list[str]:
        t = self.topics
        out = [t.all_node_status(), t.all_camera_status(), t.all_segment_metrics()]
        return [*out, t.all_plans(), t.all_override_states()] if self._want_plans else out

    def on_up(self, client: mqtt.Client) -> None:
        """Subscribe to node and camera status, metrics and (when asked) plans, overrides, zones.

        Zones at QoS 0, as they are published: a lost one is replaced a second later.
        """
        zones = [(f, 0) for f in self.zone_filters()]
        client.subscribe([*((f, 1) for f in self._filters()), *zones])
        log.info("bus feed connected to %s:%d", self.config.host, self.config.port)

    def on_message(self, topic: str, payload: bytes) -> None:
        """Hand one message on (see :meth:`handle`)."""
        self.handle(topic, payload)

    # Messages (network thread) ------------------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> None:
        """Decode one message and hand it on; malformed ones are counted and logged."""
        self.received += 1
        if not payload:
            return
        try:
            parsed = self.topics.parse(topic)
            if parsed.kind is TopicKind.SEGMENT_METRICS:
                got = decode_segment_metrics(payload, parsed.ident)
                if self._dedup.accept(topic, got.meta):
                    self._call(self._metrics, [got.record])
            elif parsed.kind is TopicKind.SEGMENT_ZONE:
                if self._zones:
                    self._zone(decode_segment_zone(payload, parsed.ident))
            elif parsed.kind is TopicKind.CAMERA_STATUS:
                cam = decode_camera_status(payload, parsed.ident)
                if self._dedup.accept(topic, cam.meta):
                    self._camera(cam.record)
            elif parsed.kind is TopicKind.NODE_STATUS:
                self._node(decode_node_status(payload, parsed.ident))
            elif parsed.kind is TopicKind.TIMING_PLAN:
                plan = decode_timing_plan(payload, parsed.ident)
                if self._dedup.accept(topic, plan.meta):
                    self._call(self._plans, plan.record)
            elif parsed.kind is TopicKind.OVERRIDE_STATE:
                override = decode_override_state(payload, parsed.ident)
                if self._dedup.accept(topic, override.meta):
                    self._call(self._override_states, override.record)
        except PayloadError as exc:
            self.malformed += 1
            self._log.warning_for(
                "malformed", "bus feed dropped a message on %s: %s", printable(topic, 200), exc
            )

    def _zone(self, zone: FrameZone) -> None:
        wanted = [h for h, segs in self._zones if segs is None or zone.segment_id in segs]
        if not wanted:
            self.zones_unwanted += 1
        self._call(wanted, zone)

    def _camera(self, status: CameraStatus) -> None:
        with self._lock:
            self._last_camera[status.camera_id] = status
            while len(self._last_camera) > 10 * MAX_NODES:
                del self._last_camera[next(iter(self._last_camera))]
        node = self.nodes.node_offline(status.camera_id)
        self._call(
            self._cameras,
            status if node is None else offline_status(status.camera_id, node, status),
        )

    def _node(self, status: NodeStatus) -> None:
        self.nodes.update(status)
        log.info(
            "node %s (%s) is %s: %d camera(s)",
            status.node_id,
            status.role.value,
            status.state.value,
            len(status.cameras),
        )
        self._call(self._node_handlers, status)
        if status.online:
            return
        with self._lock:
            last = {c: self._last_camera.get(c) for c in status.cameras}
        for camera, before in last.items():
            down = offline_status(camera, status, before)
            with self._lock:
                self._last_camera[camera] = before or down
            self._call(self._cameras, down)

    def _call(self, handlers: Sequence[Callable[[T], None]], item: T) -> None:
        for handler in handlers:
            try:
                handler(item)
            except Exception:  # one consumer failing must not stop the others
                log.exception("bus feed handler failed")
