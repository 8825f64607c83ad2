"""What an edge node adds to the engine: its announcement on the bus and its health server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from atcs.bus.nodes import NodeAnnouncer, NodeRole, node_status_of
from atcs.config import AtcsConfig
from atcs.roles.health import HealthServer, node_health

if TYPE_CHECKING:
    from atcs.service import Engine


def attach_node_parts(engine: Engine, cfg: AtcsConfig, role: NodeRole) -> None:
    """Add the node's announcement (edge) and ``/healthz``/``/readyz`` (when configured).

    Both are sinks, appended last: they start after the outputs and the announcement's
    ``offline`` and the health server go first at shutdown.
    """
    if role is NodeRole.EDGE and cfg.mqtt is not None:
        status = node_status_of(cfg.node.id, role, cfg.site.id, [c.id for c in cfg.cameras])
        engine.sinks.append(
            NodeAnnouncer(cfg.mqtt, status, keepalive_s=cfg.node.status_keepalive_s)
        )
    if cfg.node.health_port:
        parts = list(engine.sinks)
        engine.sinks.append(
            HealthServer(
                lambda: node_health(cfg.node.id, role.value, engine.loop_at, parts),
                cfg.node.health_host,
                cfg.node.health_port,
            )
        )
