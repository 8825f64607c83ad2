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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import paho.mqtt.client as mqtt

from atcs import __version__
from atcs.bus.client import BusClient
from atcs.bus.connection import Will
from atcs.bus.health import AnnouncerHealth
from atcs.bus.messages import EngineState
from atcs.bus.model import Field, Message, Struct
from atcs.bus.topics import TopicKind, Topics
from atcs.bus.wire import ArrayOf, DateTime, Id, Text, choice
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


NODE_STATUS: Message[NodeStatus] = Message(
    TopicKind.NODE_STATUS,
    "NodeStatus",
    "Availability of one node of a multi-node city, retained (QoS 1) on "
    "{prefix}/nodes/{node}/status. The node's last will carries state offline without 'at'; "
    "the cameras an edge node reads and the intersections a control node runs are in both.",
    Struct(
        (
            Field("node", Id(), attr="node_id"),
            Field("role", choice(NodeRole)),
            Field("state", choice(EngineState)),
            Field("version", Text(1, 64), "Engine version."),
            Field("site", Id(), attr="site_id"),
            Field(
                "cameras",
                ArrayOf(Id(), max_items=1000),
                "Cameras this node reads (edge and all).",
            ),
            Field(
                "intersections",
                ArrayOf(Id(), max_items=1000),
                "Intersections this node controls (control and all).",
            ),
            Field(
                "at",
                DateTime(),
                "When the state began, ISO-8601 UTC; absent in the last will.",
                required=False,
            ),
        ),
        NodeStatus,
    ),
    topic_key="node",
)


def encode_node_status(status: NodeStatus) -> bytes:
    """Encode the payload of ``{p}/nodes/{node}/status``."""
    return NODE_STATUS.encode(status)


def decode_node_status(payload: bytes | str, topic_ident: str | None = None) -> NodeStatus:
    """Validate and read a node status (``topic_ident``: the node in the topic)."""
    return NODE_STATUS.decode(payload, topic_ident).record


class NodeAnnouncer(BusClient):
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
        base = config.client_id or f"atcs-{status.site_id}"
        super().__init__(
            config.model_copy(update={"keepalive_s": keepalive_s, "clean_session": True}),
            f"{base}-node-{status.node_id}"[:128],
            "node status",
            environ=environ,
        )
        self.status = status
        self.topic = Topics(config.prefix).node_status(status.node_id)
        self.announced = 0

    def _payload(self, state: EngineState, at: datetime | None) -> bytes:
        s = self.status
        return encode_node_status(
            NodeStatus(
                s.node_id, s.role, state, s.version, s.site_id, s.cameras, s.intersections, at
            )
        )

    def will(self) -> Will:
        """``offline``, with the node's cameras and intersections, without ``at``."""
        return Will(self.topic, self._payload(EngineState.OFFLINE, None))

    def start(self) -> None:
        """Connect in the background; announce ``online`` on every connect."""
        super().start()
        log.info(
            "node %s (%s) announces itself on %s: %d camera(s), %d intersection(s)",
            self.status.node_id,
            self.status.role.value,
            self.topic,
            len(self.status.cameras),
            len(self.status.intersections),
        )

    def on_up(self, client: mqtt.Client) -> None:
        """Publish ``online``, retained."""
        client.publish(self.topic, self._payload(EngineState.ONLINE, datetime.now(UTC)), 1, True)
        self.announced += 1

    # Sink: the announcement takes no measures ----------------------------------------

    def on_metrics(self, metrics: Sequence[object]) -> None:
        """Measures do not go through the node's health connection."""

    def on_camera_status(self, status: object) -> None:
        """Camera health goes on the engine's bus, not here."""

    def on_plan(self, plan: object) -> None:
        """Plans go on the engine's bus, not here."""

    def connection(self) -> AnnouncerHealth:
        """Whether the node's status connection is up, and how often it announced."""
        return AnnouncerHealth(self.connected.is_set(), self.announced, self.last_error)

    def health(self) -> Mapping[str, float | int | str | bool]:
        """:meth:`connection` as a flat map."""
        return self.connection().as_map()

    def close(self, timeout_s: float = 10.0) -> None:
        """Publish ``offline`` (retained) and disconnect, waiting at most ``timeout_s``."""
        client = self.stop_client()
        if client is None:
            return
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
