"""What an edge node adds to the engine: its announcement, health server and snapshots."""

from __future__ import annotations

from typing import TYPE_CHECKING

from atcs.bus.nodes import NodeAnnouncer, NodeRole, node_status_of
from atcs.config import AtcsConfig
from atcs.roles.health import HealthServer, Route, node_health
from atcs.roles.snapshots import PREFIX, edge_snapshot_route
from atcs.snapshots import Snapshotter

if TYPE_CHECKING:
    from atcs.service import Engine


def attach_node_parts(engine: Engine, cfg: AtcsConfig, role: NodeRole) -> None:
    """Add the node's announcement (edge) and ``/healthz``/``/readyz`` (when configured).

    Both are sinks, appended last: they start after the outputs and the announcement's
    ``offline`` and the health server go first at shutdown. An edge's health server also
    serves its cameras' snapshots to the room (:mod:`atcs.roles.snapshots`), encoded on
    demand from the engine's frames.
    """
    if role is NodeRole.EDGE and cfg.mqtt is not None:
        status = node_status_of(cfg.node.id, role, cfg.site.id, [c.id for c in cfg.cameras])
        engine.sinks.append(
            NodeAnnouncer(cfg.mqtt, status, keepalive_s=cfg.node.status_keepalive_s)
        )
    if cfg.node.health_port:
        parts = list(engine.sinks)
        routes: dict[str, Route] = {}
        if role is NodeRole.EDGE:
            snapshots = Snapshotter(cfg, interval_s=cfg.node.snapshot_interval_s)
            snapshots.on_demand()
            engine.frame_observers.append(snapshots.observe)
            routes[PREFIX] = edge_snapshot_route(snapshots, cfg.node)
        engine.sinks.append(
            HealthServer(
                lambda: node_health(cfg.node.id, role.value, engine.loop_at, parts),
                cfg.node.health_host,
                cfg.node.health_port,
                routes,
            )
        )
