"""What the dashboard reads, behind one small protocol: the engine's or the city's view.

:class:`EngineView` is all the web side needs: the config, signal control (a
:class:`~atcs.control.ControlView`: the in-process loop, or the plans on the bus), live
camera statuses, the nodes of the city, counters and the health of the outputs.
:class:`atcs.live_view.LiveEngineView` reads a running engine (role ``all`` or ``edge``);
:class:`atcs.roles.room.BusRoomView` reads the bus (role ``room``); tests may give a fake.
The web side never holds the engine object, nor imports the service module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from atcs.bus.nodes import NodeStatus
from atcs.config import AtcsConfig
from atcs.control import ControlView
from atcs.types import CameraStatus

if TYPE_CHECKING:
    pass

HealthMap = Mapping[str, float | int | str | bool]


@dataclass(frozen=True, slots=True)
class EngineCounters:
    """Counters of the engine loop since start (``started_at`` UTC, None before start)."""

    started_at: datetime | None
    frames_detected: int
    frames_dropped: int
    detector_failures: int
    analysis_failures: int
    result_queue: int
    windows_published: int


@dataclass(frozen=True, slots=True)
class OutputHealth:
    """One output's health, normalised: name, kind (mqtt, influxdb, ...) and its numbers."""

    name: str
    kind: str
    connected: bool
    state: str
    last_error: str
    queued: int
    spooled: int
    details: HealthMap


class EngineView(Protocol):
    """The engine as the dashboard sees it."""

    @property
    def cfg(self) -> AtcsConfig:
        """The engine's configuration."""
        ...

    @property
    def control(self) -> ControlView | None:
        """Signal control (None without intersections)."""
        ...

    def camera_statuses(self) -> Sequence[CameraStatus]:
        """Return every camera's status now."""
        ...

    def nodes(self) -> Sequence[NodeStatus]:
        """Return the nodes of the city seen on the bus (empty for a single node)."""
        ...

    def counters(self) -> EngineCounters:
        """Return the engine loop's counters."""
        ...

    def outputs(self) -> Sequence[OutputHealth]:
        """Return the health of every output (bus, store)."""
        ...


def normalise_health(sink: object, health: HealthMap) -> OutputHealth:
    """Name and summarise a sink's :meth:`health` (MQTT bus, InfluxDB store, others).

    The bus and the store are read from their typed ``status()``; ``health`` is their map.
    """
    from atcs.bus import MqttBus
    from atcs.storage import InfluxSink

    if isinstance(sink, MqttBus):
        bus = sink.status()
        queued = bus.sender.disk_queue + bus.sender.memory_queue
        state = "connected" if bus.connected else "disconnected"
        if not bus.network_thread_alive:  # nothing is sent or received
            state = "network thread dead"
        return OutputHealth(
            "MQTT broker", "mqtt", bus.connected, state, bus.last_error, queued,
            bus.sender.disk_queue, health,
        )  # fmt: skip
    if isinstance(sink, InfluxSink):
        store = sink.status()
        queued = store.spool_points + store.queue_points
        return OutputHealth(
            "InfluxDB", "influxdb", store.connected, store.state, store.last_error, queued,
            store.spool_points, health,
        )  # fmt: skip
    error = str(health.get("last_error", ""))
    kind = type(sink).__name__.lower()
    connected = bool(health.get("connected", True))
    state = str(health.get("state", "connected" if connected else "disconnected"))
    return OutputHealth(type(sink).__name__, kind, connected, state, error, 0, 0, health)
