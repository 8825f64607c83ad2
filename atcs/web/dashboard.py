"""The dashboard as a part of the engine: a :class:`~atcs.sinks.Sink` that serves the web UI.

:func:`atcs.live_view.attach_dashboard` adds one :class:`Dashboard` to a built engine: as a
sink it receives every closed window, camera status and plan (and its
:meth:`Dashboard.start` and :meth:`Dashboard.close` start and stop the web server, the
snapshot thread and the audit writer with the engine's other sinks), and as a frame
observer it keeps the latest frame of each camera for the camera wall. Nothing here
blocks the engine's tick.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from atcs.alarms import AlarmManager
from atcs.config.dashboard import DashboardConfig
from atcs.control import ControlLoop
from atcs.health_records import DashboardHealth
from atcs.snapshots import SnapshotSource, Snapshotter
from atcs.storage import make_query_client
from atcs.types import CameraStatus, SegmentMetrics, TimingPlan
from atcs.web.app import create_app
from atcs.web.audit import AuditLog
from atcs.web.auth import Authenticator
from atcs.web.board import BoardStore
from atcs.web.clients import ClientResolver
from atcs.web.context import DashboardContext
from atcs.web.engine_view import EngineView
from atcs.web.history import QueryClient
from atcs.web.operator import LoopTarget, OperatorDesk, OverrideTarget
from atcs.web.server import WebServer

log = logging.getLogger(__name__)


def build_context(
    dash: DashboardConfig,
    engine: EngineView,
    *,
    environ: Mapping[str, str] | None = None,
    audit: AuditLog | None = None,
    alarms: AlarmManager | None = None,
    history: QueryClient | None = None,
    overrides: OverrideTarget | None = None,
    snapshots: SnapshotSource | None = None,
) -> DashboardContext:
    """Make the dashboard's stores, logins, audit logs and operator desk for ``engine``.

    ``alarms`` is the engine's alarm list (None: no alarms); ``history`` reads InfluxDB
    (default: a client built from ``[influx]``, none without it); ``overrides`` is where
    operator actions go (default: the engine's control loop, if it has one); ``snapshots``
    the camera images (default: encoded here from the engine's frames).
    """
    cfg = engine.cfg
    board = BoardStore([s.id for s in cfg.segments], dash.trend_windows)
    board.allow_cameras([c.id for c in cfg.cameras])
    if snapshots is None:
        snapshots = Snapshotter(
            cfg,
            interval_s=dash.snapshot_interval_s,
            width_px=dash.snapshot_width_px,
            jpeg_quality=dash.snapshot_jpeg_quality,
        )
    if audit is None:
        path = Path(cfg.service.state_dir) / dash.audit_file
        audit = AuditLog(path, cfg.influx, environ=environ)
    if overrides is None and isinstance(engine.control, ControlLoop):
        overrides = LoopTarget(engine.control)
    desk = OperatorDesk(cfg.site.id, overrides, audit)
    if history is None and cfg.influx is not None:
        history = make_query_client(cfg.influx, environ)
    return DashboardContext(
        dash=dash,
        engine=engine,
        board=board,
        snapshots=snapshots,
        auth=Authenticator(dash, environ),
        audit=audit,
        desk=desk,
        clients=ClientResolver(dash.trusted_proxies),
        alarm_audit=AuditLog(Path(cfg.service.state_dir) / cfg.alarms.audit_file),
        alarms=alarms,
        history=history,
    )


class Dashboard:
    """The web dashboard of one engine (a Sink; see the module docstring)."""

    def __init__(self, ctx: DashboardContext) -> None:
        self.ctx = ctx
        dash = ctx.dash
        tls = (dash.cert_file, dash.key_file) if dash.cert_file and dash.key_file else None
        self.server = WebServer(create_app(ctx), dash.host, dash.port, tls=tls)
        self._started = False

    @property
    def url(self) -> str:
        """Where the dashboard is served (valid after :meth:`start`)."""
        return self.server.url

    # Sink ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the audit writer, the snapshot thread and the web server."""
        if self._started:
            return
        self.ctx.audit.start()
        self.ctx.alarm_audit.start()
        self.ctx.snapshots.start()
        try:
            self.server.start()
        except Exception:
            self.ctx.snapshots.stop()
            self.ctx.audit.close()
            self.ctx.auth.close()
            raise
        self._started = True
        dash = self.ctx.dash
        if not len(self.ctx.auth.directory) and not self.ctx.auth.anonymous_viewers:
            log.warning("dashboard: no user can log in and anonymous viewers are off")
        if not _loopback(dash.host) and dash.cert_file is None and not dash.trusted_proxies:
            log.warning(
                "dashboard: serving plain HTTP on %s without trusted_proxies: passwords and "
                "session cookies cross the network in clear; put a TLS proxy in front or set "
                "cert_file",
                dash.host,
            )

    def on_metrics(self, metrics: Sequence[SegmentMetrics]) -> None:
        """Keep the latest window and trend of each segment."""
        self.ctx.board.add_metrics(metrics)

    def on_camera_status(self, status: CameraStatus) -> None:
        """Keep the camera's status."""
        self.ctx.board.add_status(status)

    def on_plan(self, plan: TimingPlan) -> None:
        """Nothing to keep: the plans shown come from the control loop's state."""

    def status(self) -> DashboardHealth:
        """Live logins, windows received, snapshots encoded and audit counters."""
        return DashboardHealth(
            connected=self._started,
            sessions=len(self.ctx.auth.sessions),
            windows=self.ctx.board.windows_total,
            snapshots=self.ctx.snapshots.encoded_total,
            snapshot_failures=self.ctx.snapshots.failures_total,
            audit_pending=self.ctx.audit.pending(),
            audit=self.ctx.audit.counters(),
        )

    def health(self) -> Mapping[str, float | int | str | bool]:
        """:meth:`status` as a flat map."""
        return self.status().as_map()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the web server, the snapshot thread and the audit writer."""
        if not self._started:
            return
        self._started = False
        share = max(timeout_s / 3, 1.0)
        self.server.stop(share)
        self.ctx.auth.close()
        self.ctx.snapshots.stop(share)
        self.ctx.audit.close(share)
        self.ctx.alarm_audit.close(share)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
