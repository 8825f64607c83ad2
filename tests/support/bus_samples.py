"""Sample records for the MQTT bus tests (segment metrics, camera status, plans)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from atcs.types import (
    CameraId,
    CameraState,
    CameraStatus,
    Direction,
    FlowCount,
    IntersectionId,
    LevelOfService,
    LineId,
    PhaseId,
    PhaseTiming,
    PlanMode,
    SegmentId,
    SegmentMetrics,
    SiteId,
    TimingPlan,
    VehicleClass,
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
    )


def camera_status(state: CameraState = CameraState.STREAMING) -> CameraStatus:
    """A camera status with a last frame time."""
    return CameraStatus(CameraId("cam-1"), state, 1.75, T0, "ok")


def plan(plan_id: str = "p-1") -> TimingPlan:
    """A two-phase plan of intersection ``ix-1``."""
    return TimingPlan(
        intersection_id=IntersectionId("ix-1"),
        plan_id=plan_id,
        controller="webster",
        mode=PlanMode.ADAPTIVE,
        cycle_s=70.0,
        offset_s=0.0,
        phases=(
            PhaseTiming(PhaseId("north-south"), 30.0, 3.0, 2.0),
            PhaseTiming(PhaseId("east-west"), 25.0, 3.0, 2.0),
        ),
        valid_from=T0,
        reason="critical flow ratios 0.41/0.32",
        data_age_s=4.5,
        extra={"y_total": 0.73},
    )
