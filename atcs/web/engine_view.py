"""What the dashboard reads, behind one small protocol: the engine's or the city's view.

:class:`EngineView` is all the web side needs: the config, signal control (a
:class:`~atcs.control.ControlView`: the in-process loop, or the plans on the bus), live
camera statuses, the nodes of the city, counters and the health of the outputs.
:class:`LiveEngineView` reads a running :class:`atcs.service.Engine` (role ``all`` or
``edge``); :class:`atcs.roles.room.BusRoomView` reads the bus (role ``room``); tests may
give a fake. The web side never holds the engine object itself.
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
    from atcs.service import Engine
    from atcs.sinks import Sink

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


class LiveEngineView:
    """Reads a running :class:`atcs.service.Engine` (safe from the web server's threads)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._skip: set[int] = set()

    def skip(self, sink: Sink) -> None:
        """Leave ``sink`` (the dashboard itself) out of :meth:`outputs`."""
        self._skip.add(id(sink))

    @property
    def cfg(self) -> AtcsConfig:
        """The engine's configuration."""
        return self._engine.cfg

    @property
    def control(self) -> ControlView | None:
        """The engine's control loop."""
        return self._engine.control

    def nodes(self) -> Sequence[NodeStatus]:
        """One process: no node list."""
        return ()

    def camera_statuses(self) -> Sequence[CameraStatus]:
        """Live statuses from the camera readers (empty before start)."""
        cameras = self._engine.cameras
        return [] if cameras is None else cameras.statuses()

    def counters(self) -> EngineCounters:
        """Detector worker and analysis counters."""
        stats = self._engine.stats()
        return EngineCounters(
            started_at=stats.started_at,
            frames_detected=stats.frames_detected,
            frames_dropped=stats.frames_dropped,
            detector_failures=stats.detector_failures,
            analysis_failures=stats.analysis_failures,
            result_queue=stats.result_queue,
            windows_published=stats.windows_published,
        )

    def outputs(self) -> Sequence[OutputHealth]:
        """Health of the engine's sinks, the dashboard's own left out."""
        out = []
        for sink in list(self._engine.sinks):
            if id(sink) in self._skip:
                continue
            try:
                out.append(normalise_health(sink, sink.health()))
            except Exception as exc:  # a sink's health must not break the page
                name, error = type(sink).__name__, str(exc)
                failed: HealthMap = {"connected": False, "state": "error", "last_error": error}
                out.append(OutputHealth(name, name.lower(), False, "error", error, 0, 0, failed))
        return out
