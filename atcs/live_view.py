"""The in-process engine as the dashboard sees it (roles ``all`` and ``edge``).

:class:`LiveEngineView` is the :class:`~atcs.web.engine_view.EngineView` of a running
:class:`~atcs.service.Engine`, and :func:`attach_dashboard` adds one
:class:`~atcs.web.Dashboard` to a built engine: as a sink it receives every closed window,
camera status and plan (and starts and stops with the engine's other sinks), and as a
frame observer it keeps the latest frame of each camera for the camera wall. This module
joins the engine and the web side, so that neither imports the other (the room role
gives the web side :class:`~atcs.roles.room.BusRoomView` instead).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from atcs.bus.nodes import NodeStatus
from atcs.config import AtcsConfig, DashboardConfig
from atcs.control import ControlView
from atcs.snapshots import Snapshotter
from atcs.types import CameraStatus
from atcs.web.dashboard import Dashboard, build_context
from atcs.web.engine_view import EngineCounters, HealthMap, OutputHealth, normalise_health

if TYPE_CHECKING:
    from atcs.service import Engine
    from atcs.sinks import Sink


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


def attach_dashboard(
    engine: Engine, dash: DashboardConfig, environ: Mapping[str, str] | None = None
) -> Dashboard:
    """Add a dashboard to ``engine``: a sink (started and closed with it) and a frame observer."""
    view = LiveEngineView(engine)
    manager = engine.alarms.manager if engine.alarms is not None else None
    dashboard = Dashboard(build_context(dash, view, environ=environ, alarms=manager))
    view.skip(dashboard)
    if engine.alarms is not None:
        view.skip(engine.alarms)
    # first: it starts before the bus and the store (a taken port stops the engine before
    # anything else started) and closes after them (the page shows the shutdown)
    engine.sinks.insert(0, dashboard)
    if isinstance(dashboard.ctx.snapshots, Snapshotter):
        engine.frame_observers.append(dashboard.ctx.snapshots.observe)
    return dashboard
