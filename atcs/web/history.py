"""History and reports from InfluxDB: segment series, plan history, the daily class report.

Read with InfluxQL over ``/query`` (:func:`atcs.storage.make_query_client`) from what the
engine itself writes (``segment_metrics``, ``signal_plan``). Ranges: ``hours`` (the last
3 h in 1-minute buckets), ``day`` (24 h in 15-minute buckets), ``week`` (7 days in 1-hour
buckets). Flow by class counts the crossings of the segment's counting lines in both
directions per hour of observed time; speed is the mean ``speed_kmh`` where the engine
measures it. Days of the daily report are the site's local days.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from atcs.types import Direction, VehicleClass

RANGES: dict[str, tuple[timedelta, int]] = {
    "hours": (timedelta(hours=3), 60),
    "day": (timedelta(days=1), 900),
    "week": (timedelta(days=7), 3600),
}
"""Range name: (span, bucket in seconds)."""

CLASSES = [vc.label for vc in VehicleClass]

STORED_YEARS = (1970, 2200)
"""Days outside these years hold nothing (InfluxDB keeps 1677..2262): no query is made."""


class QueryClient(Protocol):
    """What history needs from InfluxDB: one InfluxQL statement, its ``results`` list."""

    def query(self, influxql: str, method: str = "GET") -> list[dict[str, Any]]:
        """Run ``influxql``; return the ``results`` list."""
        ...


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _time(at: datetime) -> str:
    return _literal(at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def _rows(results: list[dict[str, Any]]) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """Flatten InfluxQL results into (tags, row) pairs."""
    out = []
    for result in results:
        for series in result.get("series", []) or []:
            columns = series.get("columns", [])
            tags = series.get("tags", {}) or {}
            for values in series.get("values", []):
                out.append((tags, dict(zip(columns, values, strict=False))))
    return out


def _crossing_fields() -> list[str]:
    return [f"crossings_{c}_{d.value}" for c in CLASSES for d in Direction]


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One bucket of a segment: start (UTC), means, flow by class (veh/h), speed (km/h)."""

    time: datetime
    density_pcu_km_lane: float | None
    vehicles: float | None
    flow_veh_h: float | None
    queue_max_m: float | None
    speed_kmh: float | None
    flow_by_class_veh_h: Mapping[str, float]


def segment_series(
    client: QueryClient, site: str, segment: str, range_name: str, now: datetime
) -> list[SeriesPoint]:
    """Return the buckets of ``range_name`` up to ``now`` for one segment (oldest first)."""
    span, bucket_s = RANGES[range_name]
    crossings = _crossing_fields()
    select = ", ".join(
        [
            'MEAN("density_pcu_km_lane") AS "density"',
            'MEAN("vehicles") AS "vehicles"',
            'MEAN("flow_veh_h") AS "flow"',
            'MAX("queue_m") AS "queue"',
            'MEAN("speed_kmh") AS "speed"',
            'SUM("observed_s") AS "observed"',
        ]
        + [f'SUM("{f}") AS "{f}"' for f in crossings]
    )
    q = (
        f'SELECT {select} FROM "segment_metrics" WHERE "site" = {_literal(site)} AND '  # noqa: S608 - quoted literals
        f'"segment" = {_literal(segment)} AND time > {_time(now - span)} AND '
        f"time <= {_time(now)} GROUP BY time({bucket_s}s) fill(none)"
    )
    out = []
    for _tags, row in _rows(client.query(q)):
        observed_h = (row.get("observed") or 0.0) / 3600.0
        by_class = {}
        for c in CLASSES:
            n = sum(row.get(f"crossings_{c}_{d.value}") or 0 for d in Direction)
            by_class[c] = round(n / observed_h, 1) if observed_h > 0 else 0.0
        out.append(
            SeriesPoint(
                time=datetime.fromisoformat(str(row["time"]).replace("Z", "+00:00")),
                density_pcu_km_lane=_round(row.get("density")),
                vehicles=_round(row.get("vehicles")),
                flow_veh_h=_round(row.get("flow")),
                queue_max_m=_round(row.get("queue")),
                speed_kmh=_round(row.get("speed")),
                flow_by_class_veh_h=by_class,
            )
        )
    return out


def _round(value: Any, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


@dataclass(frozen=True, slots=True)
class PlanRecord:
    """One plan the engine published: when it started, mode, controller, cycle, greens."""

    valid_from: datetime
    plan_id: str
    mode: str
    controller: str
    cycle_s: float
    greens_s: Mapping[str, float]


def plan_history(
    client: QueryClient, site: str, intersection: str, range_name: str, now: datetime
) -> list[PlanRecord]:
    """Return the plans of ``intersection`` that started in the range, newest first."""
    span, _ = RANGES[range_name]
    q = (
        f'SELECT * FROM "signal_plan" WHERE "site" = {_literal(site)} AND '  # noqa: S608 - quoted literals
        f'"intersection" = {_literal(intersection)} AND time > {_time(now - span)} AND '
        f"time <= {_time(now + timedelta(hours=1))} ORDER BY time DESC LIMIT 500"
    )
    out = []
    for _tags, row in _rows(client.query(q)):
        greens = {
            k[len("green_") : -len("_s")]: float(v)
            for k, v in row.items()
            if k.startswith("green_") and k.endswith("_s") and v is not None
        }
        out.append(
            PlanRecord(
                valid_from=datetime.fromisoformat(str(row["time"]).replace("Z", "+00:00")),
                plan_id=str(row.get("plan_id") or ""),
                mode=str(row.get("mode") or ""),
                controller=str(row.get("controller") or ""),
                cycle_s=float(row.get("cycle_s") or 0.0),
                greens_s=greens,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class ClassRow:
    """One segment and vehicle class of a day: vehicles counted on its lines, mean present."""

    segment: str
    vehicle_class: str
    counted: int
    mean_present: float


@dataclass(frozen=True, slots=True)
class SegmentDay:
    """One segment's day: windows, observed hours, mean and peak density (PCU/km/lane)."""

    segment: str
    windows: int
    observed_h: float
    density_mean: float | None
    density_peak: float | None


@dataclass(frozen=True, slots=True)
class DailyReport:
    """The daily report by vehicle class of one local day (``start``/``end`` in UTC)."""

    day: date
    timezone: str
    start: datetime
    end: datetime
    segments: list[SegmentDay]
    rows: list[ClassRow]


def local_day(day: date, timezone: str) -> tuple[datetime, datetime]:
    """Return the UTC start and end of the local ``day`` in ``timezone``."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time(0, 0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def daily_report(
    client: QueryClient, site: str, segments: Sequence[str], day: date, timezone: str
) -> DailyReport:
    """Return the report of ``day`` (site local time) for ``segments`` in their order."""
    start, end = (
        local_day(day, timezone)
        if 1 < day.year < 9999
        else (datetime.min.replace(tzinfo=UTC), datetime.min.replace(tzinfo=UTC))
    )
    crossings = _crossing_fields()
    select = ", ".join(
        [
            'COUNT("vehicles") AS "windows"',
            'SUM("observed_s") AS "observed"',
            'MEAN("density_pcu_km_lane") AS "density_mean"',
            'MAX("density_pcu_km_lane") AS "density_peak"',
        ]
        + [f'SUM("{f}") AS "{f}"' for f in crossings]
        + [f'MEAN("vehicles_{c}") AS "present_{c}"' for c in CLASSES]
    )
    if not STORED_YEARS[0] <= day.year <= STORED_YEARS[1]:  # nothing stored: an empty day
        empty = [SegmentDay(s, 0, 0.0, None, None) for s in segments]
        rows = [ClassRow(s, c, 0, 0.0) for s in segments for c in CLASSES]
        return DailyReport(day, timezone, start, end, empty, rows)
    q = (
        f'SELECT {select} FROM "segment_metrics" WHERE "site" = {_literal(site)} AND '  # noqa: S608 - quoted literals
        f'time >= {_time(start)} AND time < {_time(end)} GROUP BY "segment"'
    )
    found = {tags.get("segment", ""): row for tags, row in _rows(client.query(q))}
    days, rows = [], []
    for seg in segments:
        row = found.get(seg, {})
        days.append(
            SegmentDay(
                segment=seg,
                windows=int(row.get("windows") or 0),
                observed_h=round((row.get("observed") or 0.0) / 3600.0, 3),
                density_mean=_round(row.get("density_mean")),
                density_peak=_round(row.get("density_peak")),
            )
        )
        for c in CLASSES:
            counted = sum(int(row.get(f"crossings_{c}_{d.value}") or 0) for d in Direction)
            present = _round(row.get(f"present_{c}")) or 0.0
            rows.append(ClassRow(seg, c, counted, present))
    return DailyReport(day, timezone, start, end, days, rows)
