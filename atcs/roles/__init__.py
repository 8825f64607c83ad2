"""Roles of a node in a multi-node city (``atcs run --role``); see ``docs/nodes.md``.

- ``all`` (the default): today's single process, cameras to signal control to dashboard;
- ``edge``: the node's share of the cameras, detection and measures, published and stored
  as in ``all``; no control, no alarms (the room raises them for the city);
- ``control``: signal control fed by the segment metrics and camera health on the bus,
  whichever node measured them; plans, acks, overrides and fallback as in ``all``;
- ``room``: the dashboard and HTTP API of the whole city, fed by the bus (live state)
  and InfluxDB (history), with the city's alarms.

Every role but ``all`` announces itself on ``{p}/nodes/{node}/status`` with a last will
(:mod:`atcs.bus.nodes`).
"""

from __future__ import annotations

from atcs.bus.nodes import NodeRole
from atcs.roles.config import edge_config, role_config

__all__ = ["NodeRole", "edge_config", "role_config"]
