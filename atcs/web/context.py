"""Everything the web app reads and acts on, gathered in one object per dashboard."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from atcs.alarms import AlarmManager
from atcs.config import AtcsConfig
from atcs.config.dashboard import DashboardConfig
from atcs.health_records import DashboardCounters
from atcs.snapshots import SnapshotSource
from atcs.web.audit import AuditLog
from atcs.web.auth import Authenticator
from atcs.web.board import BoardStore
from atcs.web.clients import ClientResolver
from atcs.web.engine_view import EngineView
from atcs.web.history import QueryClient
from atcs.web.models import CameraView, HealthView, IntersectionView, SegmentView
from atcs.web.operator import OperatorDesk
from atcs.web.room_models import NodeView, RoomOverview
from atcs.web.views import (
    camera_views,
    health_view,
    intersection_views,
    segment_views,
)


@dataclass(slots=True)
class DashboardContext:
    """The engine view, the dashboard's own stores, logins, the audit log, the desk, clients."""

    dash: DashboardConfig
    engine: EngineView
    board: BoardStore
    snapshots: SnapshotSource
    auth: Authenticator
    audit: AuditLog
    desk: OperatorDesk
    clients: ClientResolver
    alarm_audit: AuditLog
    alarms: AlarmManager | None = None
    history: QueryClient | None = None
    counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def cfg(self) -> AtcsConfig:
        """The engine's configuration."""
        return self.engine.cfg

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the dashboard counter ``name`` (logins, refusals ...)."""
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + n

    def counters(self) -> DashboardCounters:
        """Return the dashboard counters (every one, 0 where nothing was counted)."""
        with self._lock:
            return DashboardCounters.of(self.counts)

    def segments(self, now: datetime | None = None) -> list[SegmentView]:
        """Every segment's latest window and trend."""
        at = now or datetime.now(UTC)
        return segment_views(self.cfg, self.board.segments(), at)

    def cameras(self) -> list[CameraView]:
        """Every camera's status and latest image, with the node that reads it."""
        snaps = {c: self.snapshots.snapshot(c) for c in self.snapshots.camera_ids}
        views = camera_views(
            self.cfg, self.engine.camera_statuses(), self.snapshots.counters(), snaps
        )
        by_camera = {str(c): n.node_id for n in self.engine.nodes() for c in n.cameras}
        return [
            v.model_copy(
                update={
                    "node": by_camera.get(v.camera_id, ""),
                    "snapshot_problem": self.snapshots.problem(v.camera_id),
                }
            )
            for v in views
        ]

    def intersections(self) -> list[IntersectionView]:
        """Every controlled intersection's state, with the node that controls it."""
        control = self.engine.control
        if control is None:
            return []
        by_ix = {str(i): n.node_id for n in self.engine.nodes() for i in n.intersections}
        views = intersection_views(self.cfg, control.state())
        return [v.model_copy(update={"node": by_ix.get(v.intersection_id, "")}) for v in views]

    def nodes(self) -> list[NodeView]:
        """Return the nodes of the city seen on the bus."""
        return [
            NodeView(
                node_id=n.node_id,
                role=n.role.value,
                state=n.state.value,
                version=n.version,
                since=n.at,
                cameras=list(n.cameras),
                intersections=list(n.intersections),
            )
            for n in self.engine.nodes()
        ]

    def health(self, cameras: list[CameraView] | None = None) -> HealthView:
        """Engine health with the problems an operator should see."""
        control = self.engine.control
        audit = self.audit.counters().as_map()
        audit["pending"] = self.audit.pending()
        audit.update({f"actions_{k}": v for k, v in self.desk.counts.items()})
        return health_view(
            self.cfg,
            counters=self.engine.counters(),
            outputs=self.engine.outputs(),
            cameras=self.cameras() if cameras is None else cameras,
            control=control.counters().as_map() if control is not None else {},
            audit=audit,
            now=datetime.now(UTC),
        )

    def overview(self) -> RoomOverview:
        """Everything the page shows."""
        from atcs.web.room import alarm_list

        now = datetime.now(UTC)
        cameras = self.cameras()
        return RoomOverview(
            zone=now.astimezone(ZoneInfo(self.cfg.site.timezone)).tzname() or "",
            alarms=alarm_list(self),
            wall_camera_tiles=self.dash.wall_camera_tiles,
            wall_page_s=self.dash.wall_page_s,
            site_id=self.cfg.site.id,
            site_name=self.cfg.site.name,
            timezone=self.cfg.site.timezone,
            title=self.dash.title or self.cfg.site.name or self.cfg.site.id,
            language=self.dash.language,
            refresh_s=self.dash.refresh_s,
            now=now,
            segments=self.segments(now),
            cameras=cameras,
            intersections=self.intersections(),
            health=self.health(cameras),
            nodes=self.nodes(),
        )
