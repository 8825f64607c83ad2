"""The ATCS room's routes: alarms and their acknowledgement, the city map, history, reports.

Reading follows the viewer rule (:mod:`atcs.web.deps`); acknowledging an alarm needs a
login (any role) and a comment, and is audited (``alarms.audit_file``) before the answer.
History and reports read InfluxDB (503 ``history_unavailable`` without ``[influx]`` or
while it cannot be reached).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response

from atcs.alarms import Alarm
from atcs.errors import AlarmError, StorageError
from atcs.storage import Point
from atcs.text import printable
from atcs.web.auth import Session
from atcs.web.context import DashboardContext
from atcs.web.deps import Caller, Ctx, Viewer
from atcs.web.history import (
    CLASSES,
    RANGES,
    QueryClient,
    daily_report,
    plan_history,
    segment_series,
)
from atcs.web.operator import ApiError
from atcs.web.room_models import (
    AckRequest,
    AlarmList,
    AlarmView,
    DailyReportView,
    MapPoint,
    MapSegment,
    MapView,
    PlanHistory,
    PlanRecordView,
    ReportSegment,
    SegmentHistory,
    SeriesPointView,
)
from atcs.web.routes import STATIC_DIR, errors

router = APIRouter()
RangeName = Literal["hours", "day", "week"]


def require_login(session: Caller) -> Session:
    """Let logged-in users (any role) through: 401 otherwise."""
    if session is None:
        raise ApiError(401, "login_required", "log in to acknowledge alarms")
    return session


LoggedIn = Annotated[Session, Depends(require_login)]


@dataclass(frozen=True, slots=True)
class AckAuditRecord:
    """One alarm acknowledgement in the audit file (InfluxDB gets it as an ``alarm`` point)."""

    at: datetime
    site_id: str
    user: str
    role: str
    alarm_id: str
    kind: str
    subject: str
    severity: str
    comment: str
    outcome: str
    detail: str = ""
    remote: str = ""

    def to_json(self) -> str:
        """Return one JSON line."""
        data = {
            "at": self.at.astimezone(UTC).isoformat(), "site_id": self.site_id,
            "user": self.user, "role": self.role, "alarm_id": self.alarm_id,
            "kind": self.kind, "subject": self.subject, "severity": self.severity,
            "comment": self.comment, "outcome": self.outcome, "detail": self.detail,
            "remote": self.remote,
        }  # fmt: skip
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    def to_point(self) -> Point | None:
        """Return None: the engine's store writes the acknowledgement as an alarm point."""
        return None


def _subject_name(ctx: DashboardContext, alarm: Alarm) -> str:
    subject = alarm.subject.split("~", 1)[0]
    cfg = ctx.cfg
    for items in (cfg.segments, cfg.cameras, cfg.intersections):
        for item in items:
            if item.id == subject:
                return item.name or item.id
    return subject


def alarm_view(ctx: DashboardContext, alarm: Alarm) -> AlarmView:
    """Return the API body of ``alarm``."""
    return AlarmView(
        alarm_id=alarm.alarm_id, kind=alarm.kind.value, subject_type=alarm.subject_type.value,
        subject=alarm.subject, subject_name=_subject_name(ctx, alarm),
        severity=alarm.severity.value, code=alarm.code, params=dict(alarm.params),
        started_at=alarm.started_at, ended_at=alarm.ended_at, active=alarm.active,
        acknowledged=alarm.acknowledged, acked_at=alarm.acked_at, acked_by=alarm.acked_by,
        ack_comment=alarm.ack_comment,
    )  # fmt: skip


def alarm_list(ctx: DashboardContext, history_max: int = 50) -> AlarmList:
    """Return the current alarms and the recent history."""
    manager = ctx.alarms
    if manager is None:
        return AlarmList(current=[], history=[], unacknowledged=0, sound=False)
    current = [alarm_view(ctx, a) for a in manager.current()]
    return AlarmList(
        current=current,
        history=[alarm_view(ctx, a) for a in manager.history(history_max)],
        unacknowledged=sum(1 for a in current if not a.acknowledged),
        sound=ctx.dash.alarm_sound,
    )


# --- alarms ------------------------------------------------------------------------------


@router.get("/api/alarms", response_model=AlarmList, responses=errors(401), tags=["alarms"])
def get_alarms(ctx: Ctx, _who: Viewer) -> AlarmList:
    """Return current alarms (active or not yet acknowledged) and the recent history."""
    return alarm_list(ctx)


@router.post(
    "/api/alarms/{alarm_id}/ack",
    response_model=AlarmView,
    responses=errors(401, 404, 409, 422, 503),
    tags=["alarms"],
)
def acknowledge(
    alarm_id: str, body: AckRequest, request: Request, ctx: Ctx, who: LoggedIn
) -> AlarmView:
    """Acknowledge an alarm with a comment (any logged-in user); audited before the answer."""
    manager = ctx.alarms
    if manager is None:
        raise ApiError(404, "unknown_alarm", "this engine has no alarms")
    alarm = manager.get(alarm_id)
    comment = printable(body.comment.strip(), 1000)
    record = AckAuditRecord(
        at=datetime.now(UTC), site_id=ctx.cfg.site.id, user=who.user, role=who.role,
        alarm_id=printable(alarm_id, 300), kind=alarm.kind.value if alarm else "",
        subject=alarm.subject if alarm else "", severity=alarm.severity.value if alarm else "",
        comment=comment, outcome="accepted", remote=ctx.clients.address(request),
    )  # fmt: skip
    problem: tuple[int, str, str] | None = None
    if alarm is None:
        problem = (404, "unknown_alarm", f"unknown alarm '{printable(alarm_id, 100)}'")
    elif not comment:
        problem = (422, "comment_required", "a comment is required")
    elif alarm.acknowledged:
        problem = (409, "already_acknowledged", f"acknowledged by {alarm.acked_by}")
    if problem is not None:
        _audit(ctx, _refused(record, problem[1]))
        raise ApiError(*problem)
    _audit(ctx, record)
    try:
        event = manager.acknowledge(alarm_id, who.user, comment, record.at)
    except AlarmError as exc:  # acknowledged by someone else in between
        raise ApiError(409, "already_acknowledged", str(exc)) from None
    return alarm_view(ctx, event.alarm)


def _refused(record: AckAuditRecord, detail: str) -> AckAuditRecord:
    return replace(record, outcome="refused", detail=detail)


def _audit(ctx: DashboardContext, record: AckAuditRecord) -> None:
    try:
        ctx.alarm_audit.record(record)
    except OSError as exc:
        raise ApiError(
            503, "audit_unavailable", f"the audit log cannot be written ({exc}); nothing done"
        ) from None


# --- the city map --------------------------------------------------------------------------


@router.get("/api/map", response_model=MapView, responses=errors(401), tags=["map"])
def get_map(ctx: Ctx, _who: Viewer) -> MapView:
    """Return the site's roads, cameras and intersections with their positions."""
    cfg, settings = ctx.cfg, ctx.dash.map
    unmapped = [s.id for s in cfg.segments if not s.geo_line]
    unmapped += [c.id for c in cfg.cameras if c.location is None]
    unmapped += [x.id for x in cfg.intersections if x.location is None]
    return MapView(
        tile_url=settings.tile_url, attribution=settings.attribution,
        max_zoom=settings.max_zoom, center=settings.center, zoom=settings.zoom,
        segments=[
            MapSegment(segment_id=s.id, name=s.name or s.id, camera_id=s.camera,
                       line=list(s.geo_line))
            for s in cfg.segments if s.geo_line
        ],
        cameras=[
            MapPoint(id=c.id, name=c.name or c.id, location=c.location)
            for c in cfg.cameras if c.location is not None
        ],
        intersections=[
            MapPoint(id=x.id, name=x.name or x.id, location=x.location)
            for x in cfg.intersections if x.location is not None
        ],
        unmapped=unmapped,
    )  # fmt: skip


# --- history and reports -------------------------------------------------------------------


def _client(ctx: DashboardContext) -> QueryClient:
    if ctx.history is None:
        raise ApiError(503, "history_unavailable", "history needs [influx] in the config")
    return ctx.history


def _segment_name(ctx: DashboardContext, segment_id: str) -> str:
    for seg in ctx.cfg.segments:
        if seg.id == segment_id:
            return seg.name or seg.id
    raise ApiError(404, "unknown_segment", f"unknown segment '{printable(segment_id, 100)}'")


def _history(ctx: DashboardContext, segment_id: str, range_name: str) -> SegmentHistory:
    name = _segment_name(ctx, segment_id)
    now = datetime.now(UTC)
    try:
        points = segment_series(_client(ctx), ctx.cfg.site.id, segment_id, range_name, now)
    except StorageError as exc:
        raise ApiError(503, "history_unavailable", f"InfluxDB: {exc}") from None
    span, bucket_s = RANGES[range_name]
    return SegmentHistory(
        segment_id=segment_id, name=name, range=range_name, bucket_s=bucket_s,
        start=now - span, end=now,
        points=[SeriesPointView(
            time=p.time, density_pcu_km_lane=p.density_pcu_km_lane, vehicles=p.vehicles,
            flow_veh_h=p.flow_veh_h, queue_max_m=p.queue_max_m, speed_kmh=p.speed_kmh,
            flow_by_class_veh_h=dict(p.flow_by_class_veh_h),
        ) for p in points],
    )  # fmt: skip


@router.get(
    "/api/history/segments/{segment_id}",
    response_model=SegmentHistory,
    responses=errors(401, 404, 503),
    tags=["history"],
)
def segment_history(
    segment_id: str, ctx: Ctx, _who: Viewer, range: RangeName = "hours"
) -> SegmentHistory:
    """Return density, flow by class, queue and speed of a segment over the last hours/day/week."""
    return _history(ctx, segment_id, range)


def _csv(rows: Sequence[Sequence[object]], filename: str) -> Response:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows(rows)
    return Response(
        buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/api/history/segments/{segment_id}/export.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, **errors(401, 404, 503)},
    tags=["history"],
)
def segment_history_csv(
    segment_id: str, ctx: Ctx, _who: Viewer, range: RangeName = "hours"
) -> Response:
    """Return the same history as CSV (one row per bucket, times in UTC)."""
    hist = _history(ctx, segment_id, range)
    head = ["time_utc", "density_pcu_km_lane", "vehicles", "flow_veh_h", "queue_max_m",
            "speed_kmh"] + [f"flow_{c}_veh_h" for c in CLASSES]  # fmt: skip
    rows: list[Sequence[object]] = [head]
    for p in hist.points:
        values = [p.density_pcu_km_lane, p.vehicles, p.flow_veh_h, p.queue_max_m, p.speed_kmh]
        rows.append(
            [p.time.astimezone(UTC).isoformat(), *("" if v is None else v for v in values)]
            + [p.flow_by_class_veh_h.get(c, 0.0) for c in CLASSES]
        )
    return _csv(rows, f"{segment_id}-{range}.csv")


@router.get(
    "/api/history/intersections/{intersection_id}/plans",
    response_model=PlanHistory,
    responses=errors(401, 404, 503),
    tags=["history"],
)
def intersection_plans(
    intersection_id: str, ctx: Ctx, _who: Viewer, range: RangeName = "day"
) -> PlanHistory:
    """Return the plans an intersection ran over the last hours/day/week, newest first."""
    found = next((x for x in ctx.cfg.intersections if x.id == intersection_id), None)
    if found is None:
        raise ApiError(
            404, "unknown_intersection",
            f"unknown intersection '{printable(intersection_id, 100)}'",
        )  # fmt: skip
    try:
        plans = plan_history(
            _client(ctx), ctx.cfg.site.id, intersection_id, range, datetime.now(UTC)
        )
    except StorageError as exc:
        raise ApiError(503, "history_unavailable", f"InfluxDB: {exc}") from None
    return PlanHistory(
        intersection_id=intersection_id, name=found.name or found.id, range=range,
        plans=[PlanRecordView(
            valid_from=p.valid_from, plan_id=p.plan_id, mode=p.mode, controller=p.controller,
            cycle_s=p.cycle_s, greens_s=dict(p.greens_s),
        ) for p in plans],
    )  # fmt: skip


def _report(ctx: DashboardContext, day: date | None) -> DailyReportView:
    cfg = ctx.cfg
    zone = cfg.site.timezone
    if day is None:
        from zoneinfo import ZoneInfo

        day = datetime.now(ZoneInfo(zone)).date()
    try:
        rep = daily_report(_client(ctx), cfg.site.id, [s.id for s in cfg.segments], day, zone)
    except StorageError as exc:
        raise ApiError(503, "history_unavailable", f"InfluxDB: {exc}") from None
    names = {s.id: s.name or s.id for s in cfg.segments}
    segments = []
    for seg in rep.segments:
        rows = [r for r in rep.rows if r.segment == seg.segment]
        segments.append(
            ReportSegment(
                segment_id=seg.segment, name=names[seg.segment], windows=seg.windows,
                observed_h=seg.observed_h, density_mean=seg.density_mean,
                density_peak=seg.density_peak,
                counted_by_class={r.vehicle_class: r.counted for r in rows},
                present_by_class={r.vehicle_class: r.mean_present for r in rows},
            )
        )  # fmt: skip
    return DailyReportView(
        site_id=cfg.site.id, site_name=cfg.site.name or cfg.site.id, day=rep.day,
        timezone=zone, start=rep.start, end=rep.end, classes=CLASSES, segments=segments,
    )  # fmt: skip


DayParam = Annotated[date | None, Query(description="Local day YYYY-MM-DD; default: today.")]


@router.get(
    "/api/reports/daily",
    response_model=DailyReportView,
    responses=errors(401, 422, 503),
    tags=["history"],
)
def report_daily(ctx: Ctx, _who: Viewer, day: DayParam = None) -> DailyReportView:
    """Return the daily report by vehicle class (site local day)."""
    return _report(ctx, day)


@router.get(
    "/api/reports/daily.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, **errors(401, 422, 503)},
    tags=["history"],
)
def report_daily_csv(ctx: Ctx, _who: Viewer, day: DayParam = None) -> Response:
    """Return the daily report as CSV: one row per segment and vehicle class."""
    rep = _report(ctx, day)
    rows: list[list[object]] = [[
        "day", "timezone", "segment", "segment_name", "class", "vehicles_counted",
        "mean_vehicles_present", "windows", "observed_h", "density_mean_pcu_km_lane",
        "density_peak_pcu_km_lane",
    ]]  # fmt: skip
    for seg in rep.segments:
        for c in rep.classes:
            rows.append([
                rep.day.isoformat(), rep.timezone, seg.segment_id, seg.name, c,
                seg.counted_by_class.get(c, 0), seg.present_by_class.get(c, 0.0), seg.windows,
                seg.observed_h, "" if seg.density_mean is None else seg.density_mean,
                "" if seg.density_peak is None else seg.density_peak,
            ])  # fmt: skip
    return _csv(rows, f"report-{rep.site_id}-{rep.day.isoformat()}.csv")


def _page(name: str) -> FileResponse:
    return FileResponse(str(STATIC_DIR / name), media_type="text/html")


@router.get("/history", include_in_schema=False)
def history_page() -> FileResponse:
    """Return the history page (charts per segment, plan history, CSV links)."""
    return _page("history.html")


@router.get("/report", include_in_schema=False)
def report_page() -> FileResponse:
    """Return the printable daily report page."""
    return _page("report.html")
