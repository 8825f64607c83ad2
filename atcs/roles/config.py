"""The configuration a node runs with, from the city's file and the node's role."""

from __future__ import annotations

from atcs.bus.nodes import NodeRole
from atcs.config import AtcsConfig
from atcs.errors import ConfigError


def role_config(cfg: AtcsConfig, role: NodeRole) -> AtcsConfig:
    """Return ``cfg`` as the node of ``role`` runs it.

    An edge node keeps its camera share only (:func:`edge_config`). Every role but ``all``
    needs ``[mqtt]`` (the bus is how nodes meet) and gets an MQTT client id of its own,
    ``atcs-<site>-<role>-<node>``, unless the file names one.
    """
    if role is NodeRole.ALL:
        return cfg
    if cfg.mqtt is None:
        raise ConfigError(f"atcs run --role {role.value}: the configuration has no [mqtt] table")
    out = edge_config(cfg) if role is NodeRole.EDGE else cfg
    if out.mqtt is not None and out.mqtt.client_id is None:
        client_id = f"atcs-{cfg.site.id}-{role.value}-{cfg.node.id}"[:128]
        out = out.model_copy(update={"mqtt": out.mqtt.model_copy(update={"client_id": client_id})})
    return out


def edge_config(cfg: AtcsConfig) -> AtcsConfig:
    """Return ``cfg`` restricted to this edge node's cameras, their geometry and no control.

    The share is ``node.cameras``, or the enabled cameras whose position modulo
    ``node.shard_count`` is ``node.shard_index``; an empty share is a :class:`ConfigError`.
    """
    enabled = [c.id for c in cfg.cameras if c.enabled]
    share = set(cfg.node.share(enabled))
    if not share:
        raise ConfigError(
            f"node {cfg.node.id}: no enabled camera in its share (node.cameras, or "
            f"shard {cfg.node.shard_index} of {cfg.node.shard_count} of {len(enabled)} cameras)"
        )
    return cfg.model_copy(
        update={
            "cameras": [c for c in cfg.cameras if c.id in share],
            "segments": [s for s in cfg.segments if s.camera in share],
            "lines": [ln for ln in cfg.lines if ln.camera in share],
            "zones": [z for z in cfg.zones if z.camera in share],
            "calibrations": [c for c in cfg.calibrations if c.camera in share],
            "intersections": [],
        }
    )
