"""The HTTP API's bodies for the ATCS room: alarms, the city map, history and reports.

Times are ISO 8601 UTC; texts travel as codes with parameters, translated by the page.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import Field

from atcs.web.models import ApiModel, Overview

ParamValue = str | float | int | bool


class AlarmView(ApiModel):
    """One alarm: kind, subject, severity, message code and parameters, its life."""

    alarm_id: str
    kind: str
    subject_type: str
    subject: str
    subject_name: str = Field(description="Human name of the subject from the config.")
    severity: str = Field(description="critical, major, minor or info.")
    code: str = Field(description="Message code the page translates (congestion, ...).")
    params: dict[str, ParamValue]
    started_at: datetime
    ended_at: datetime | None
    active: bool
    acknowledged: bool
    acked_at: datetime | None
    acked_by: str
    ack_comment: str


class AlarmList(ApiModel):
    """Current alarms (active or not yet acknowledged) and the recent history."""

    current: list[AlarmView]
    history: list[AlarmView]
    unacknowledged: int
    sound: bool = Field(description="The wall beeps for unacknowledged major alarms.")


class AckRequest(ApiModel):
    """An acknowledgement: a comment is required."""

    comment: str = Field(max_length=1000, description="What was done or seen; not blank.")


class MapSegment(ApiModel):
    """A segment on the city map: its road line ([lat, lon] points) and camera."""

    segment_id: str
    name: str
    camera_id: str
    line: list[tuple[float, float]]


class MapPoint(ApiModel):
    """A camera or an intersection on the city map."""

    id: str
    name: str
    location: tuple[float, float]


class MapView(ApiModel):
    """The site's geometry and basemap settings (no live values: see /api/overview)."""

    tile_url: str = Field(description="Basemap tile URL ({z}/{x}/{y}); empty: no basemap.")
    attribution: str
    max_zoom: int
    center: tuple[float, float] | None
    zoom: int
    segments: list[MapSegment]
    cameras: list[MapPoint]
    intersections: list[MapPoint]
    unmapped: list[str] = Field(
        description="Ids of segments, cameras, intersections without a position."
    )


class SeriesPointView(ApiModel):
    """One bucket of a segment's history."""

    time: datetime
    density_pcu_km_lane: float | None
    vehicles: float | None
    flow_veh_h: float | None
    queue_max_m: float | None
    speed_kmh: float | None
    flow_by_class_veh_h: dict[str, float]


class SegmentHistory(ApiModel):
    """A segment's history over a range (hours, day, week) from InfluxDB."""

    segment_id: str
    name: str
    range: str
    bucket_s: int
    start: datetime
    end: datetime
    points: list[SeriesPointView]


class PlanRecordView(ApiModel):
    """A plan the engine published (from InfluxDB)."""

    valid_from: datetime
    plan_id: str
    mode: str
    controller: str
    cycle_s: float
    greens_s: dict[str, float]


class PlanHistory(ApiModel):
    """An intersection's plans over a range, newest first."""

    intersection_id: str
    name: str
    range: str
    plans: list[PlanRecordView]


class ReportSegment(ApiModel):
    """One segment's day: windows, observed hours, density, vehicles by class."""

    segment_id: str
    name: str
    windows: int
    observed_h: float
    density_mean: float | None
    density_peak: float | None
    counted_by_class: dict[str, int] = Field(description="Vehicles counted on its lines.")
    present_by_class: dict[str, float] = Field(description="Mean vehicles on the segment.")


class DailyReportView(ApiModel):
    """The daily report by vehicle class of one local day."""

    site_id: str
    site_name: str
    day: date
    timezone: str
    start: datetime
    end: datetime
    classes: list[str]
    segments: list[ReportSegment]


class RoomOverview(Overview):
    """Everything the page shows, with the alarms and the site's zone abbreviation."""

    zone: str = Field(description="Abbreviation of the site's time zone now (WIB, WITA, WIT).")
    alarms: AlarmList
    wall_camera_tiles: int = Field(description="Camera tiles per page of the wall's grid.")
    wall_page_s: float = Field(description="Seconds each page of the wall's grid is shown.")
