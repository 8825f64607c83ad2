"""Node health on the bus: who runs what, retained on ``{p}/nodes/{node}/status``.

Each node of a multi-node city (``atcs run --role edge|control|room|all``) announces itself
``online`` with its role, the cameras it reads and the intersections it controls, and
leaves a last will that says ``offline`` with the same lists, so that whoever watches the
bus (the control node, the room) knows which cameras and intersections went silent with
it. :class:`NodeAnnouncer` is that announcement on a connection of its own (see
:class:`NodeAnnouncer`); the codec reads and writes ``atcs.node_status/1``.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from atcs import __version__
from atcs.bus.codec import build, dump, iso_utc, load_for_topic, opt_time
from atcs.bus.connection import Will, connect_async, describe_refusal, make_client
from atcs.bus.guard import CallbackGuard, NetworkWatch
from atcs.bus.messages import EngineState
from atcs.bus.schemas import SCHEMA_IDS
from atcs.bus.topics import TopicKind, Topics
from atcs.config.bus import MqttConfig
from atcs.types import CameraId, IntersectionId, SiteId

log = logging.getLogger(__name__)


class NodeRole(enum.Enum):
    """What a node runs (``atcs run --role``)."""

    ALL = "all"
    """Everything in one process: cameras, control and the dashboard (the default)."""
    EDGE = "edge"
    """Cameras, detection and measures of the node's camera share."""
    CONTROL = "control"
    """Signal control fed by the bus."""
    ROOM = "room"
    """The dashboard and HTTP API of the whole city, fed by the bus and InfluxDB."""


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A node's announcement; ``at`` is None in the last will (written at connect time)."""

    node_id: str
    role: NodeRole
    state: EngineState
    version: str
    site_id: SiteId
    cameras: tuple[CameraId, ...] = ()
    intersections: tuple[IntersectionId, ...] = ()
    at: datetime | None = None

    @property
    def online(self) -> bool:
        """Whether the node says it runs."""
        return self.state is EngineState.ONLINE


def encode_node_status(status: NodeStatus) -> bytes:
    """Encode the payload of ``{p}/nodes/{node}/status``."""
    doc: dict[str, Any] = {
        "schema": SCHEMA_IDS[TopicKind.NODE_STATUS],
        "node": status.node_id,
        "role": status.role.value,
        "state": status.state.value,
        "version": status.version,
        "site": status.site_id,
        "cameras": list(status.cameras),
        "intersections": list(status.intersections),
    }
    if status.at is not None:
        doc["at"] = iso_utc(status.at)
    return dump(doc)


def decode_node_status(payload: bytes | str, topic_ident: str | None = None) -> NodeStatus:
    """Validate and read a node status (``topic_ident``: the node in the topic)."""
    doc = load_for_topic(TopicKind.NODE_STATUS, payload, "node", topic_ident)
    return build(
        TopicKind.NODE_STATUS,
        lambda: NodeStatus(
            node_id=str(doc["node"]),
            role=NodeRole(doc["role"]),
            state=EngineState(doc["state"]),
            version=str(doc["version"]),
            site_id=SiteId(doc["site"]),
            cameras=tuple(CameraId(c) for c in doc["cameras"]),
            intersections=tuple(IntersectionId(i) for i in doc["intersections"]),
            at=opt_time(doc.get("at")),
        ),
    )


class NodeAnnouncer:
    """Announces this node on a connection of its own; a :class:`~atcs.sinks.Sink`.

    The connection carries nothing but the node's status, with a short keepalive
    (``keepalive_s``), so the broker publishes the last will within 1.5 keepalives of the
    node vanishing, however long the engine's own connection waits. ``online`` is
    published retained on every (re)connect, ``offline`` on :meth:`close`.
    """

    def __init__(
        self,
        config: MqttConfig,
        status: NodeStatus,
        *,
        keepalive_s: int,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config.model_copy(update={"keepalive_s": keepalive_s, "clean_session": True})
        self.status = status
        self.topic = Topics(config.prefix).node_status(status.node_id)
        base = config.client_id or f"atcs-{status.site_id}"
        self.client_id = f"{base}-node-{status.node_id}"[:128]
        self._environ = environ
        self._client: mqtt.Client | None = None
        self._watch: NetworkWatch | None = None
        self._guard = CallbackGuard("node status")
        self.connected = threading.Event()
        self.announced = 0
        self.last_error = ""

    def _payload(self, state: EngineState, at: datetime | None) -> bytes:
        s = self.status
        return encode_node_status(
            NodeStatus(
                s.node_id, s.role, state, s.version, s.site_id, s.cameras, s.intersections, at
            )
        )

    def start(self) -> None:
        """Connect in the background; announce ``online`` on every connect."""
        will = Will(self.topic, self._payload(EngineState.OFFLINE, None))
        client = make_client(self.config, self.client_id, will=will, environ=self._environ)
        client.on_connect = self._guard.wrap("on_connect", self._on_connect)
        client.on_disconnect = self._guard.wrap("on_disconnect", self._on_disconnect)
        self._client = client
        connect_async(client, self.config)
        self._watch = NetworkWatch(client, "node status", housekeeping=self._guard.flush)
        self._watch.start()
        log.info(
            "node %s (%s) announces itself on %s: %d camera(s), %d intersection(s)",
            self.status.node_id,
            self.status.role.value,
            self.topic,
            len(self.status.cameras),
            len(self.status.intersections),
        )

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
            log.error("node status: %s", self.last_error)
            return
        self.last_error = ""
        client.publish(self.topic, self._payload(EngineState.ONLINE, datetime.now(UTC)), 1, True)
        self.announced += 1
        self.connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        self.connected.clear()

    # Sink: the announcement takes no measures ----------------------------------------

    def on_metrics(self, metrics: Sequence[object]) -> None:
        """Measures do not go through the node's health connection."""

    def on_camera_status(self, status: object) -> None:
        """Camera health goes on the engine's bus, not here."""

    def on_plan(self, plan: object) -> None:
        """Plans go on the engine's bus, not here."""

    def health(self) -> Mapping[str, float | int | str | bool]:
        """Whether the node's status connection is up, and how often it announced."""
        return {
            "connected": self.connected.is_set(),
            "announced": self.announced,
            "last_error": self.last_error,
        }

    def close(self, timeout_s: float = 10.0) -> None:
        """Publish ``offline`` (retained) and disconnect, waiting at most ``timeout_s``."""
        client = self._client
        if client is None:
            return
        self._client = None
        if self._watch is not None:
            self._watch.stop()
        if self.connected.is_set():
            info = client.publish(
                self.topic, self._payload(EngineState.OFFLINE, datetime.now(UTC)), 1, True
            )
            info.wait_for_publish(timeout=min(max(timeout_s, 0.5), 2.0))
        client.disconnect()
        client.loop_stop()


def node_status_of(
    node_id: str,
    role: NodeRole,
    site_id: str,
    cameras: Sequence[str] = (),
    intersections: Sequence[str] = (),
) -> NodeStatus:
    """Return a node's ``online`` record with this engine's version (``at`` set when sent)."""
    return NodeStatus(
        node_id,
        role,
        EngineState.ONLINE,
        __version__,
        SiteId(site_id),
        tuple(CameraId(c) for c in cameras),
        tuple(IntersectionId(i) for i in intersections),
    )
