"""The HTTP API's request and response bodies (they make the OpenAPI schema).

Times are ISO 8601 UTC strings; every number carries its unit in its name, as in the
rest of the engine. Errors are :class:`ErrorBody`: a stable ``code`` the page translates
and an English ``message`` that says what was wrong.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ApiModel(BaseModel):
    """Base of the API bodies: unknown keys are refused in requests."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(ApiModel):
    """An error: a stable code (``wrong_password``, ``reason_required``, ...) and a message."""

    code: str
    message: str


class LoginRequest(ApiModel):
    """User name and password."""

    username: str = Field(max_length=64)
    password: str = Field(max_length=256)


class Whoami(ApiModel):
    """Who the caller is: user (None: anonymous), role and what it may do."""

    user: str | None
    role: Literal["operator", "viewer", "anonymous"]
    may_view: bool
    may_operate: bool
    token: str | None = Field(default=None, description="Session token (only from login).")


class TrendPointView(ApiModel):
    """One window of a segment's trend."""

    window_end: datetime
    density_pcu_km_lane: float
    flow_veh_h: float
    vehicles: float
    los: str
    stale: bool


class SegmentView(ApiModel):
    """A segment's latest window (values None before the first) and its trend."""

    segment_id: str
    name: str
    camera_id: str
    length_m: float
    lanes: int
    window_start: datetime | None
    window_end: datetime | None
    age_s: float | None = Field(description="Seconds since the latest window ended.")
    frames: int | None
    vehicles: float | None
    vehicles_by_class: dict[str, float]
    pcu: float | None
    density_pcu_km_lane: float | None
    occupancy: float | None
    flow_veh_h: float | None
    queue_m: float | None
    los: str | None
    congested: bool | None
    stale: bool | None
    windows: int
    trend: list[TrendPointView]


class CameraView(ApiModel):
    """A camera's status, frame rate, counters and its latest annotated image."""

    camera_id: str
    name: str
    state: str
    fps: float
    last_frame_at: datetime | None
    detail: str
    frames_analysed: int
    detections: int
    lag_s: float = Field(description="Capture-to-analysis delay of its latest frame, s.")
    snapshot_seq: int | None = Field(description="Frame number of the latest image.")
    snapshot_at: datetime | None
    snapshot_url: str | None
    snapshot_problem: str = Field(
        default="",
        description="Why there is no current image (room: 'no snapshot: node X offline').",
    )
    segments: list[str]
    node: str = Field(default="", description="Node that reads the camera (multi-node city).")


class PhaseView(ApiModel):
    """One phase of a plan, in seconds."""

    phase_id: str
    green_s: float
    yellow_s: float
    all_red_s: float


class PlanView(ApiModel):
    """A timing plan and where it stands with the signal controller."""

    plan_id: str
    controller: str
    mode: str
    cycle_s: float
    offset_s: float
    valid_from: datetime
    reason: str
    data_age_s: float | None
    phases: list[PhaseView]
    state: str = Field(description="sent, applied, rejected, unacknowledged, superseded.")
    sent_at: datetime
    acked_at: datetime | None
    acked_by: str
    ack_detail: str


class OverrideView(ApiModel):
    """The operator override in force."""

    action: str
    who: str
    why: str
    since: datetime
    plan_name: str | None
    greens_s: dict[str, float]


class EventView(ApiModel):
    """One entry of an intersection's history (``code``/``params``: ``text`` to translate)."""

    at: datetime
    kind: str
    text: str
    plan_id: str | None
    code: str = ""
    params: dict[str, str | float | int] = Field(default_factory=dict)


class SignalStateView(ApiModel):
    """A phase-by-phase intersection's signal as the engine last heard it (SPaT-like)."""

    phase: str | None = Field(description="Phase in green, or being cleared.")
    interval: str | None = Field(description="walk, ped_clear, green, yellow, all_red.")
    time_in_interval_s: float | None
    next_phase: str | None
    controller_mode: str | None = Field(description="command (engine) or local (its own plan).")
    controller_reason: str
    controller_recall: list[str] = Field(description="Phases the signal controller has on recall.")
    recall: list[str] = Field(description="Phases the engine serves on recall (camera down).")
    state_age_s: float | None = Field(description="Seconds since the last state report.")
    commands_sent: int
    verdicts: dict[str, int] = Field(description="Engine envelope verdicts on the commands.")
    last_command: str
    zones_from: dict[str, str] = Field(
        default_factory=dict,
        description="Per segment the controller saw at its last tick: 'frame' (the newest "
        "frame's vehicles, the segment has a stop line) or 'window' (its newest window, "
        "spread); a segment with no zone (camera down or stale) is absent.",
    )


class IntersectionView(ApiModel):
    """An intersection's control: running and pending plan, mode, override, history."""

    intersection_id: str
    name: str
    controller: str
    source: str = Field(description="Who decides next: adaptive, fallback, hold, fixed.")
    mode: str | None
    running: PlanView | None
    pending: PlanView | None
    override: OverrideView | None
    stale: list[str]
    stale_codes: list[ProblemView] = Field(default_factory=list)
    node: str = Field(default="", description="Node that controls it (multi-node city).")
    last_reason: str
    last_reason_code: str = ""
    last_reason_params: dict[str, str | float | int] = Field(default_factory=dict)
    next_decision_at: datetime | None
    plans: list[PlanView]
    history: list[EventView]
    phases: list[str]
    fixed_plans: list[str] = Field(description="Names of the time-of-day plans 'fixed' can run.")
    signal: SignalStateView | None = Field(
        default=None, description="Phase-by-phase mode: the signal's state (None: cycle plans)."
    )


class ProblemView(ApiModel):
    """One health problem or stale input as a code with parameters (the page translates it)."""

    code: str
    params: dict[str, str | float | int]


class SinkHealth(ApiModel):
    """One output of the engine: connection state, queue and spool sizes."""

    name: str
    kind: str
    connected: bool
    state: str
    last_error: str
    queued: int = Field(description="Messages or points waiting in memory and on disk.")
    spooled: int = Field(description="Messages or points waiting on disk.")
    details: dict[str, float | int | str | bool]


class HealthView(ApiModel):
    """Engine health: uptime, counters, lag and the state of every output."""

    status: Literal["ok", "degraded"]
    problems: list[str]
    problem_codes: list[ProblemView] = Field(description="The problems as codes (same order).")
    version: str
    site_id: str
    started_at: datetime | None
    uptime_s: float
    frames_detected: int
    frames_dropped: int
    detector_failures: int
    analysis_failures: int
    result_queue: int
    windows_published: int
    max_lag_s: float
    sinks: list[SinkHealth]
    control: dict[str, int]
    audit: dict[str, int]


class Overview(ApiModel):
    """Everything the page shows, in one answer (the page asks every ``refresh_s``)."""

    site_id: str
    site_name: str
    timezone: str = Field(description="IANA time zone the page shows times in.")
    title: str
    language: str
    refresh_s: float
    now: datetime
    segments: list[SegmentView]
    cameras: list[CameraView]
    intersections: list[IntersectionView]
    health: HealthView


class OverrideRequest(ApiModel):
    """An operator's request: hold, fixed (a named plan or greens per phase) or release."""

    action: Literal["hold", "fixed", "release"]
    reason: str = Field(max_length=1000, description="Why; required (not blank).")
    plan_name: str | None = Field(default=None, max_length=200)
    greens_s: dict[str, float] | None = Field(
        default=None, description="Green per phase, s (fixed without plan_name)."
    )


class OverrideResult(ApiModel):
    """What became of an override request."""

    accepted: bool
    applied: bool = Field(description="True once the control loop shows it in force.")
    message: str
    intersection: IntersectionView | None
