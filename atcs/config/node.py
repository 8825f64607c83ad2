"""Configuration of one node of a multi-node city: its id and its share of the cameras.

``atcs run --role edge|control|room|all`` picks what a node runs (docs/nodes.md); this
table names the node on the bus and, for edge nodes, which cameras it reads. Validation
does no I/O.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from atcs.config._base import StrictModel
from atcs.config.core import Identifier

EdgeUrl = Annotated[str, Field(max_length=500, pattern=r"^https?://[^\s/]+\S*$")]
"""An edge node's health server, ``http(s)://host:port``."""


class NodeConfig(StrictModel):
    """A node's id, its camera share and the health connection's keepalive."""

    id: Identifier = Field(
        default="main",
        description=(
            "Node id, unique in the city: the level of {p}/nodes/{node}/status (for a "
            "Kubernetes StatefulSet, the pod name through ${POD_NAME})."
        ),
    )
    cameras: list[Identifier] = Field(
        default_factory=list,
        max_length=1000,
        description=(
            "Cameras this edge node reads; empty: the share given by shard_index and "
            "shard_count (all cameras with the defaults)."
        ),
    )
    shard_index: int = Field(
        default=0,
        ge=0,
        le=999,
        description=(
            "This edge node's share when cameras is empty: the enabled cameras whose position "
            "in the file modulo shard_count equals shard_index (a StatefulSet's ordinal)."
        ),
    )
    shard_count: int = Field(
        default=1, ge=1, le=1000, description="Number of edge nodes sharing the cameras."
    )
    status_keepalive_s: int = Field(
        default=5,
        ge=2,
        le=600,
        description=(
            "Keepalive of the node's health connection, s: the broker announces a node that "
            "vanished without a word (power, network) offline within 1.5 times this."
        ),
    )

    health_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description=("Port of the node's /healthz and /readyz (Kubernetes probes); 0: not served."),
    )
    health_host: str = Field(
        default="0.0.0.0",  # noqa: S104 - probes come from the kubelet, outside the pod
        max_length=253,
        description="Address the health endpoints listen on.",
    )

    edge_url: str = Field(
        default="",
        max_length=500,
        pattern=r"^(https?://[^\s/]+\S*)?$",
        description=(
            "Where the room reaches an edge node's health server for camera snapshots, "
            "{node} standing for the node id (Kubernetes: http://{node}.atcs-edge:8081); "
            "empty: only the nodes in edge_urls."
        ),
    )
    edge_urls: dict[Identifier, EdgeUrl] = Field(
        default_factory=dict,
        max_length=1000,
        description="Base URL of each named edge node's health server (before edge_url).",
    )
    snapshot_interval_s: float = Field(
        default=2.0,
        ge=0.5,
        le=3600.0,
        description=(
            "Per camera, at most one snapshot this often, s: an edge encodes at most one, "
            "the room fetches at most one."
        ),
    )
    snapshot_max_per_s: float = Field(
        default=10.0,
        gt=0.0,
        le=1000.0,
        description=(
            "All cameras together, at most this many snapshots a second: an edge answers "
            "no more (429), the room fetches no more."
        ),
    )
    snapshot_timeout_s: float = Field(
        default=2.0,
        gt=0.0,
        le=30.0,
        description="How long the room waits for an edge's snapshot, s.",
    )

    @model_validator(mode="after")
    def _share(self) -> NodeConfig:
        if self.shard_index >= self.shard_count:
            raise ValueError(
                f"shard_index: {self.shard_index} must be below shard_count {self.shard_count}"
            )
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError("cameras: a camera is listed twice")
        return self

    def share(self, enabled_cameras: list[str]) -> list[str]:
        """Return the ids of this node's cameras among ``enabled_cameras`` (file order)."""
        if self.cameras:
            wanted = set(self.cameras)
            return [c for c in enabled_cameras if c in wanted]
        return [
            c for i, c in enumerate(enabled_cameras) if i % self.shard_count == self.shard_index
        ]

    def url_of(self, node: str) -> str:
        """Return the base URL of edge ``node``'s health server (empty: not configured)."""
        url = self.edge_urls.get(node) or self.edge_url.replace("{node}", node)
        return url.rstrip("/")
