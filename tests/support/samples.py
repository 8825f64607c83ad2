"""Sample records for the bus, storage and engine tests (segment metrics, camera status, plans).

``metrics``, ``camera_status`` and ``plan`` are the bus tests' records (from ``T0``);
``sample_metrics`` is the storage tests' window (from ``STORAGE_T0``), whose numbers their
expected line protocol and rows spell out; ``timing_plan`` builds any plan from its greens;
``movements`` and ``incident_event`` are a turning-movement matrix and an incident event;
``frame_zone`` one frame's vehicles of a segment (the per-frame zone message).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from atcs.incidents import Incident, IncidentEvent, IncidentKind, IncidentPhase
from atcs.types import (
    CameraId,
    CameraState,
    CameraStatus,
    Direction,
    FlowCount,
    FrameVehicle,
    FrameZone,
    IntersectionId,
    LevelOfService,
    LineId,
    MovementCount,
    MovementCounts,
    PhaseId,
    PhaseTiming,
    PlanMode,
    SegmentId,
    SegmentMetrics,
    SiteId,
    TimingPlan,
    TrackId,
    VehicleClass,
    ZoneId,
)

T0 = datetime(2025, 3, 1, 1, 0, 0, tzinfo=UTC)


def metrics(
    i: int = 0, segment: str = "seg-a", *, congested: bool = False, camera: str = "cam-1"
) -> SegmentMetrics:
    """The ``i``-th 10 s window of ``segment`` with numbers derived from ``i``."""
    start = T0 + timedelta(seconds=10 * i)
    return SegmentMetrics(
        site_id=SiteId("demo"),
        camera_id=CameraId(camera),
        segment_id=SegmentId(segment),
        window_start=start,
        window_end=start + timedelta(seconds=10),
        frames=20,
        vehicles=3.25 + i,
        vehicles_by_class={VehicleClass.CAR: 1.0 + i, VehicleClass.MOTORCYCLE: 2.25},
        pcu=1.3375 + i,
        density_pcu_km_lane=12.5 + i,
        occupancy=0.125,
        flow_veh_h=720.0,
        flows=(
            FlowCount(LineId("line-1"), VehicleClass.CAR, Direction.FORWARD, 1, 360.0),
            FlowCount(LineId("line-1"), VehicleClass.MOTORCYCLE, Direction.BACKWARD, 1, 360.0),
        ),
        queue_m=None if i % 2 else 17.5,
        queue_max_m=None if i % 2 else 30.0,
        los=LevelOfService.F if congested else LevelOfService.C,
        congested=congested,
        stale=False,
        speed_kmh=None if i % 2 else 41.5 + i,
        speed_p85_kmh=None if i % 2 else 48.25,
        speed_vehicles=0 if i % 2 else 6,
        speed_capped=0 if i % 2 else 1,
    )


def movements(i: int = 0, intersection: str = "ix-1") -> MovementCounts:
    """The ``i``-th 10 s movement matrix of ``intersection``: zones a and b, a few cars."""
    start = T0 + timedelta(seconds=10 * i)
    a, b = ZoneId("arm-a"), ZoneId("arm-b")
    return MovementCounts(
        site_id=SiteId("demo"),
        camera_id=CameraId("cam-1"),
        intersection_id=IntersectionId(intersection),
        window_start=start,
        window_end=start + timedelta(seconds=10),
        frames=50,
        observed_s=9.75,
        partial=False,
        stale=False,
        counts=tuple(
            MovementCount(x, y, vc, (3 + i if vc is VehicleClass.CAR else 0) if x == a else 1)
            for x, y in ((a, b), (b, a))
            for vc in VehicleClass
        ),
    )


def incident(
    kind: IncidentKind = IncidentKind.STOPPED_VEHICLE,
    *,
    segment: str = "seg-a",
    started_at: datetime = T0,
    ended_at: datetime | None = None,
    slot: int = 0,
    serial: int = 1,
) -> Incident:
    """An incident of ``segment``; a vehicle's for stopped-vehicle and wrong-way kinds."""
    vehicle = kind in (IncidentKind.STOPPED_VEHICLE, IncidentKind.WRONG_WAY)
    return Incident(
        incident_id=f"{segment}-{kind.value}-{serial}",
        kind=kind,
        site_id=SiteId("demo"),
        camera_id=CameraId("cam-1"),
        segment_id=SegmentId(segment),
        started_at=started_at,
        ended_at=ended_at,
        track_id=TrackId(17) if vehicle else None,
        vehicle_class=VehicleClass.CAR if vehicle else None,
        location=(0.25, 0.75),
        value=None if kind is IncidentKind.WRONG_WAY else 31.5,
        detail=f"{kind.value} for the tests",
        slot=slot,
    )


def incident_event(phase: IncidentPhase = IncidentPhase.START) -> IncidentEvent:
    """The start (open) or end (closed after 45 s) of a stopped-vehicle incident."""
    end = None if phase is IncidentPhase.START else T0 + timedelta(seconds=45)
    one = incident(ended_at=end)
    other = incident(IncidentKind.SPILLBACK, started_at=T0 - timedelta(seconds=5), serial=2)
    active = (other, one) if end is None else (other,)
    return IncidentEvent(phase, one, end or T0 + timedelta(seconds=30), active)


def camera_status(state: CameraState = CameraState.STREAMING) -> CameraStatus:
    """A camera status with a last frame time."""
    return CameraStatus(CameraId("cam-1"), state, 1.75, T0, "ok")


def timing_plan(
    intersection: str,
    plan_id: str,
    greens_s: Mapping[str, float],
    *,
    valid_from: datetime,
    reason: str,
    cycle_s: float,
    offset_s: float = 0.0,
    yellow_s: float = 3.0,
    all_red_s: float = 2.0,
    controller: str = "webster",
    mode: PlanMode = PlanMode.ADAPTIVE,
    data_age_s: float | None = None,
    extra: Mapping[str, float] | None = None,
) -> TimingPlan:
    """A plan of ``intersection`` with one phase per ``greens_s`` entry, in that order."""
    return TimingPlan(
        intersection_id=IntersectionId(intersection),
        plan_id=plan_id,
        controller=controller,
        mode=mode,
        cycle_s=cycle_s,
        offset_s=offset_s,
        phases=tuple(
            PhaseTiming(PhaseId(phase), green, yellow_s, all_red_s)
            for phase, green in greens_s.items()
        ),
        valid_from=valid_from,
        reason=reason,
        data_age_s=data_age_s,
        extra=dict(extra or {}),
    )


def plan(plan_id: str = "p-1") -> TimingPlan:
    """A two-phase plan of intersection ``ix-1``."""
    return timing_plan(
        "ix-1",
        plan_id,
        {"north-south": 30.0, "east-west": 25.0},
        cycle_s=70.0,
        valid_from=T0,
        reason="critical flow ratios 0.41/0.32",
        data_age_s=4.5,
        extra={"y_total": 0.73},
    )


STORAGE_T0 = datetime(2026, 3, 1, 7, 30, 0, tzinfo=UTC)


def sample_metrics(
    i: int = 0, *, segment: str = "gajah-mada-nb", queue: bool = True, frames: int = 20
) -> SegmentMetrics:
    """A realistic SegmentMetrics for window ``i`` (10 s windows from STORAGE_T0)."""
    start = STORAGE_T0 + timedelta(seconds=10 * i)
    return SegmentMetrics(
        site_id=SiteId("bandung"),
        camera_id=CameraId("cam-1"),
        segment_id=SegmentId(segment),
        window_start=start,
        window_end=start + timedelta(seconds=10),
        frames=frames,
        vehicles=12.5 + i,
        vehicles_by_class={VehicleClass.CAR: 4.25, VehicleClass.MOTORCYCLE: 8.25},
        pcu=5.4875,
        density_pcu_km_lane=18.29,
        occupancy=0.375,
        flow_veh_h=2520.0,
        flows=(
            FlowCount(LineId("l1"), VehicleClass.MOTORCYCLE, Direction.FORWARD, 5, 1800.0),
            FlowCount(LineId("l2"), VehicleClass.MOTORCYCLE, Direction.FORWARD, 1, 360.0),
            FlowCount(LineId("l1"), VehicleClass.CAR, Direction.BACKWARD, 1, 360.0),
        ),
        queue_m=42.0 if queue else None,
        queue_max_m=55.5 if queue else None,
        los=LevelOfService.D,
        congested=False,
        stale=False,
    )


def frame_zone(segment: str = "seg-a", at: datetime = T0, n: int = 3) -> FrameZone:
    """Return one frame's vehicles of ``segment`` (camera ``cam-1``), ``n`` of them.

    7 m apart, the first at the line and stopped, every third one's speed unknown.
    """
    vehicles = tuple(
        FrameVehicle(7.0 * i, None if i % 3 == 2 else 1.5 * i, 0.15 if i % 2 else 1.0)
        for i in range(n)
    )
    return FrameZone(CameraId("cam-1"), SegmentId(segment), at, vehicles)
