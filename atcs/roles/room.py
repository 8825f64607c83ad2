"""The room role: the dashboard and HTTP API of the whole city, fed by the bus.

:class:`RoomNode` serves the same dashboard as the single process (``docs/room.md``), but
its live state comes from a :class:`~atcs.bus.feed.BusFeed`: every segment window, camera
status and plan on the bus, from every node, and every node's status; history and reports
come from InfluxDB, where the edge and control nodes store. :class:`BusRoomView` is the
:class:`~atcs.web.engine_view.EngineView` the web side reads (never an engine object).

The room raises the city's alarms (camera down, stale data, congestion, node down, plans
in fallback or rejected by their signal controller, operator overrides in force: it reads
the signed acks and phase-by-phase signal states on its own bus, checked as the control
node checks them, and the control node's override states) and publishes them on its own
MQTT bus and in InfluxDB; it stores no measure (the edge nodes did). Camera images come
from the edge nodes over HTTP (:class:`~atcs.roles.snapshots.RoomSnapshots`); operator
actions go to the control node as signed overrides on the bus
(:class:`~atcs.roles.overrides.BusOverrides`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from atcs.alarms import AlarmOutput, AlarmService
from atcs.bus import MqttBus
from atcs.bus.feed import BusFeed
from atcs.bus.nodes import NodeAnnouncer, NodeRole, NodeStatus, node_status_of
from atcs.config import AtcsConfig
from atcs.control import ControlView, PlanBook
from atcs.errors import ConfigError
from atcs.outputs import build_outputs
from atcs.roles.config import role_config
from atcs.roles.health import HealthServer, Reporting, node_health
from atcs.roles.overrides import BusOverrides
from atcs.roles.snapshots import RoomSnapshots
from atcs.sinks import Sink
from atcs.types import CameraStatus
from atcs.web.dashboard import Dashboard, build_context
from atcs.web.engine_view import EngineCounters, OutputHealth, normalise_health

log = logging.getLogger(__name__)


class BusRoomView:
    """The city as the room sees it on the bus (an :class:`EngineView`)."""

    def __init__(self, cfg: AtcsConfig, feed: BusFeed, plans: PlanBook | None) -> None:
        self._cfg = cfg
        self._feed = feed
        self._plans = plans
        self._started_at = datetime.now(UTC)
        self.outputs_of: list[Sink] = []
        """The room's own outputs (alarm bus, store), shown with the feed's health."""

    @property
    def cfg(self) -> AtcsConfig:
        """The city's configuration."""
        return self._cfg

    @property
    def control(self) -> ControlView | None:
        """The plans on the bus, per configured intersection."""
        return self._plans

    def camera_statuses(self) -> Sequence[CameraStatus]:
        """Every camera's latest status on the bus (offline where its node is)."""
        return self._feed.camera_statuses()

    def nodes(self) -> Sequence[NodeStatus]:
        """Every node seen on the bus."""
        return self._feed.nodes.nodes()

    def counters(self) -> EngineCounters:
        """Return zeros (the room detects nothing) and when it started."""
        return EngineCounters(self._started_at, 0, 0, 0, 0, 0, 0)

    def outputs(self) -> Sequence[OutputHealth]:
        """Return the bus feed's health, then the room's own outputs."""
        h = self._feed.health()
        connected = bool(h["connected"])
        feed = OutputHealth(
            "MQTT broker (city feed)",
            "mqtt",
            connected,
            "connected" if connected else "disconnected",
            str(h["last_error"]),
            0,
            0,
            h,
        )
        return [feed, *(normalise_health(s, s.health()) for s in self.outputs_of)]


class RoomNode:
    """Bus feed + dashboard + alarms of one room node; :meth:`run` blocks."""

    def __init__(self, cfg: AtcsConfig, *, environ: Mapping[str, str] | None = None) -> None:
        cfg = role_config(cfg, NodeRole.ROOM)
        if cfg.dashboard is None or cfg.mqtt is None:
            raise ConfigError("atcs run --role room: the configuration has no [dashboard] table")
        self.cfg = cfg
        self.stop_event = threading.Event()
        outputs = build_outputs(cfg)
        self.outputs: list[Sink] = list(outputs.sinks)
        self.feed = BusFeed(
            cfg.mqtt, client_id=f"{cfg.mqtt.client_id}-feed", environ=environ, plans=True
        )
        phase_mode = {
            ix.id: (ix.phase_mode.controller, ix.phase_mode.state_stale_s)
            for ix in cfg.intersections
            if ix.phase_mode is not None
        }
        ids = [ix.id for ix in cfg.intersections]
        plans = PlanBook(ids, phase_mode=phase_mode) if cfg.intersections else None
        self.view = BusRoomView(cfg, self.feed, plans)
        self.view.outputs_of = list(self.outputs)
        alarm_outputs = [s for s in self.outputs if isinstance(s, AlarmOutput)]
        self.alarms = AlarmService(cfg, alarm_outputs, control=plans)
        self.overrides: BusOverrides | None = None
        if plans is not None:
            if isinstance(outputs.bus, MqttBus):  # checked as the control node checks them
                outputs.bus.on_ack(plans.on_ack)
                if phase_mode:
                    outputs.bus.on_signal_state(plans.on_signal_state)
            self.overrides = BusOverrides(cfg, self.feed, plans, environ=environ)
        self.snapshots = RoomSnapshots(cfg, self.feed.nodes)
        self.dashboard = Dashboard(
            build_context(
                cfg.dashboard,
                self.view,
                environ=environ,
                alarms=self.alarms.manager,
                overrides=self.overrides,
                snapshots=self.snapshots,
            )
        )
        self.feed.on_metrics(self.dashboard.on_metrics)
        self.feed.on_metrics(self.alarms.on_metrics)
        self.feed.on_camera_status(self.dashboard.on_camera_status)
        self.feed.on_camera_status(self.alarms.on_camera_status)
        if plans is not None:
            self.feed.on_plan(plans.on_plan)
            self.feed.on_override_state(plans.on_override_state)
        self.feed.on_node(lambda n: self.alarms.on_node(n.node_id, n.online, n.at))
        status = node_status_of(cfg.node.id, NodeRole.ROOM, cfg.site.id)
        self.announcer = NodeAnnouncer(
            cfg.mqtt, status, keepalive_s=cfg.node.status_keepalive_s, environ=environ
        )
        self.loop_at: float | None = None
        """When the room's loop last turned (monotonic s)."""
        self.health_server: HealthServer | None = None
        if cfg.node.health_port:
            parts: list[Reporting] = [self.dashboard, *self.outputs, self.announcer, self.feed]
            self.health_server = HealthServer(
                lambda: node_health(cfg.node.id, "room", self.loop_at, parts),
                cfg.node.health_host,
                cfg.node.health_port,
            )

    @property
    def url(self) -> str:
        """Where the dashboard is served (after :meth:`start`)."""
        return self.dashboard.url

    def _parts(self) -> list[Sink]:
        extra: list[Sink] = [] if self.health_server is None else [self.health_server]
        return [self.dashboard, *self.outputs, self.alarms, self.announcer, *extra]

    def start(self) -> None:
        """Start the dashboard, the outputs and the alarms, then the feed."""
        for part in self._parts():
            part.start()
        self.feed.start()
        log.info("room node %s started: %s", self.cfg.node.id, self.dashboard.url)

    def stop(self) -> None:
        """Ask :meth:`run` to stop (safe from signal handlers)."""
        self.stop_event.set()

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop the feed, then everything else in reverse order."""
        self.feed.close()
        for part in reversed(self._parts()):
            try:
                part.close(timeout_s)
            except Exception:  # one part failing to close must not stop the others
                log.exception("room part failed to close")

    def run(self, duration_s: float | None = None) -> None:
        """Start, wait until stopped or ``duration_s``, shut down."""
        deadline = None if duration_s is None else time.monotonic() + duration_s
        try:
            self.start()
            while not self.stop_event.is_set():
                self.loop_at = time.monotonic()
                if deadline is not None and time.monotonic() >= deadline:
                    break
                self.stop_event.wait(0.5)
        finally:
            self.shutdown()
