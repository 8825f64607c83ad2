"""Turn the engine's records into the API's bodies (:mod:`atcs.web.models`); no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from atcs import __version__
from atcs.config import AtcsConfig
from atcs.control import IntersectionState, PlanStatus
from atcs.control.state import SignalView
from atcs.snapshots import CameraCounters, Snapshot
from atcs.types import CameraState, CameraStatus, IntersectionId, TimingPlan
from atcs.web.board import SegmentBoard
from atcs.web.engine_view import EngineCounters, OutputHealth
from atcs.web.models import (
    CameraView,
    EventView,
    HealthView,
    IntersectionView,
    OverrideView,
    PhaseView,
    PlanView,
    ProblemView,
    SegmentView,
    SignalStateView,
    SinkHealth,
    TrendPointView,
)

LAG_WARN_S = 10.0
"""A camera whose latest frame was analysed this late (s) counts as a health problem."""


def segment_views(
    cfg: AtcsConfig, boards: Sequence[SegmentBoard], now: datetime
) -> list[SegmentView]:
    """One view per configured segment (values None before its first window)."""
    by_id = {s.id: s for s in cfg.segments}
    out = []
    for board in boards:
        seg = by_id[board.segment_id]
        m = board.latest
        trend = [
            TrendPointView(
                window_end=p.window_end, density_pcu_km_lane=p.density_pcu_km_lane,
                flow_veh_h=p.flow_veh_h, vehicles=p.vehicles, los=p.los.value, stale=p.stale,
            )
            for p in board.trend
        ]  # fmt: skip
        out.append(
            SegmentView(
                segment_id=seg.id,
                name=seg.name,
                camera_id=seg.camera,
                length_m=seg.length_m,
                lanes=seg.lanes,
                window_start=m.window_start if m else None,
                window_end=m.window_end if m else None,
                age_s=max(0.0, (now - m.window_end).total_seconds()) if m else None,
                frames=m.frames if m else None,
                vehicles=m.vehicles if m else None,
                vehicles_by_class={k.label: v for k, v in m.vehicles_by_class.items()} if m else {},
                pcu=m.pcu if m else None,
                density_pcu_km_lane=m.density_pcu_km_lane if m else None,
                occupancy=m.occupancy if m else None,
                flow_veh_h=m.flow_veh_h if m else None,
                queue_m=m.queue_m if m else None,
                los=m.los.value if m else None,
                congested=m.congested if m else None,
                stale=m.stale if m else None,
                windows=board.windows,
                trend=trend,
            )
        )
    return out


def camera_views(
    cfg: AtcsConfig,
    statuses: Sequence[CameraStatus],
    counters: Mapping[str, CameraCounters],
    snapshots: Mapping[str, Snapshot | None],
) -> list[CameraView]:
    """One view per configured camera, with its live status and latest image."""
    by_id = {str(s.camera_id): s for s in statuses}
    out = []
    for cam in cfg.cameras:
        status = by_id.get(cam.id)
        count = counters.get(cam.id) or CameraCounters()
        snap = snapshots.get(cam.id)
        out.append(
            CameraView(
                camera_id=cam.id,
                name=cam.name,
                state=status.state.value if status else CameraState.OFFLINE.value,
                fps=round(status.fps, 2) if status else 0.0,
                last_frame_at=status.last_frame_at if status else None,
                detail=status.detail if status else "not started",
                frames_analysed=count.frames,
                detections=count.detections,
                lag_s=round(count.lag_s, 3),
                snapshot_seq=snap.frame_seq if snap else None,
                snapshot_at=snap.captured_at if snap else None,
                snapshot_url=(
                    f"api/cameras/{cam.id}/snapshot.jpg?seq={snap.frame_seq}" if snap else None
                ),
                segments=[s.id for s in cfg.segments_of(cam.id)],
            )
        )
    return out


def plan_view(status: PlanStatus) -> PlanView:
    """Return a plan and its acknowledgement state."""
    plan: TimingPlan = status.plan
    return PlanView(
        plan_id=plan.plan_id,
        controller=plan.controller,
        mode=plan.mode.value,
        cycle_s=round(plan.cycle_s, 3),
        offset_s=round(plan.offset_s, 3),
        valid_from=plan.valid_from,
        reason=plan.reason,
        data_age_s=plan.data_age_s,
        phases=[
            PhaseView(
                phase_id=p.phase_id,
                green_s=round(p.green_s, 3),
                yellow_s=p.yellow_s,
                all_red_s=p.all_red_s,
            )
            for p in plan.phases
        ],
        state=status.state.value,
        sent_at=status.sent_at,
        acked_at=status.acked_at,
        acked_by=status.acked_by,
        ack_detail=status.detail,
    )


def intersection_view(
    cfg: AtcsConfig, state: IntersectionState, history_max: int = 20
) -> IntersectionView:
    """Return an intersection's control state, newest plans and events first."""
    ix_cfg = next(ix for ix in cfg.intersections if ix.id == state.intersection_id)
    ov = state.override
    override = None
    if ov is not None:
        override = OverrideView(
            action=ov.action.value, who=ov.who, why=ov.why, since=ov.since,
            plan_name=ov.plan_name, greens_s={str(k): v for k, v in ov.greens_s.items()},
        )  # fmt: skip
    history = [
        EventView(
            at=e.at, kind=e.kind.value, text=e.text, plan_id=e.plan_id, code=e.code,
            params=dict(e.params),
        )
        for e in reversed(state.history)
    ][:history_max]  # fmt: skip
    return IntersectionView(
        intersection_id=state.intersection_id,
        name=ix_cfg.name,
        controller=state.controller,
        source=state.source.value,
        mode=state.mode.value if state.mode else None,
        running=plan_view(state.running) if state.running else None,
        pending=plan_view(state.pending) if state.pending else None,
        override=override,
        stale=list(state.stale),
        stale_codes=[ProblemView(code=c, params=dict(p)) for c, p in state.stale_codes],
        last_reason=state.last_reason,
        last_reason_code=state.last_reason_code,
        last_reason_params=dict(state.last_reason_params),
        next_decision_at=state.next_decision_at,
        plans=[plan_view(p) for p in reversed(state.plans)][:history_max],
        history=history,
        phases=[p.id for p in ix_cfg.phases],
        fixed_plans=[p.name or p.starts_at.strftime("%H:%M") for p in ix_cfg.fallback_plans],
        signal=signal_view(state.signal) if state.signal is not None else None,
    )


def signal_view(signal: SignalView) -> SignalStateView:
    """Return the API view of a phase-by-phase intersection's signal state."""
    return SignalStateView(
        phase=signal.phase,
        interval=signal.interval,
        time_in_interval_s=signal.time_in_interval_s,
        next_phase=signal.next_phase,
        controller_mode=signal.controller_mode,
        controller_reason=signal.controller_reason,
        controller_recall=list(signal.controller_recall),
        recall=list(signal.recall),
        state_age_s=signal.state_age_s,
        commands_sent=signal.commands_sent,
        verdicts=dict(signal.verdicts),
        last_command=signal.last_command,
        zones_from=dict(signal.zones_from),
    )


def intersection_views(
    cfg: AtcsConfig, states: Mapping[IntersectionId, IntersectionState]
) -> list[IntersectionView]:
    """Every controlled intersection in configuration order."""
    return [
        intersection_view(cfg, states[IntersectionId(ix.id)])
        for ix in cfg.intersections
        if IntersectionId(ix.id) in states
    ]


def health_view(
    cfg: AtcsConfig,
    *,
    counters: EngineCounters,
    outputs: Sequence[OutputHealth],
    cameras: Sequence[CameraView],
    control: Mapping[str, int],
    audit: Mapping[str, int],
    now: datetime,
) -> HealthView:
    """Engine health and the problems an operator should see at once."""
    problems = []
    codes: list[ProblemView] = []
    for out in outputs:
        if not out.connected:
            problems.append(
                f"{out.name}: {out.state}" + (f" ({out.last_error})" if out.last_error else "")
            )
            codes.append(ProblemView(code="output", params={"name": out.name, "state": out.state}))
        if out.spooled:
            problems.append(f"{out.name}: {out.spooled} waiting on disk")
            codes.append(ProblemView(code="spooled", params={"name": out.name, "n": out.spooled}))
    for cam in cameras:
        if cam.state != CameraState.STREAMING.value:
            problems.append(f"camera {cam.camera_id}: {cam.state}")
            params: dict[str, str | float | int] = {"camera": cam.camera_id, "state": cam.state}
            codes.append(ProblemView(code="camera", params=params))
        elif cam.lag_s > LAG_WARN_S:
            problems.append(f"camera {cam.camera_id}: {cam.lag_s:.0f} s behind")
            params = {"camera": cam.camera_id, "lag": round(cam.lag_s)}
            codes.append(ProblemView(code="lag", params=params))
    started = counters.started_at
    return HealthView(
        status="degraded" if problems else "ok",
        problems=problems,
        problem_codes=codes,
        version=__version__,
        site_id=cfg.site.id,
        started_at=started,
        uptime_s=round((now - started).total_seconds(), 1) if started else 0.0,
        frames_detected=counters.frames_detected,
        frames_dropped=counters.frames_dropped,
        detector_failures=counters.detector_failures,
        analysis_failures=counters.analysis_failures,
        result_queue=counters.result_queue,
        windows_published=counters.windows_published,
        max_lag_s=max((c.lag_s for c in cameras), default=0.0),
        sinks=[
            SinkHealth(
                name=o.name,
                kind=o.kind,
                connected=o.connected,
                state=o.state,
                last_error=o.last_error,
                queued=o.queued,
                spooled=o.spooled,
                details=dict(o.details),
            )
            for o in outputs
        ],
        control=dict(control),
        audit=dict(audit),
    )
