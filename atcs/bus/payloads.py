"""Messages of the core contract: segment metrics, camera and engine status, timing plans.

Every payload carries ``"schema": "atcs.<kind>/1"``. Datetimes are ISO-8601; the engine
writes UTC with a ``Z`` and microseconds, and reads any offset (converted to UTC). Each
message is declared once (:class:`~atcs.bus.model.Message`): the JSON Schema in
``atcs/contract``, the check of inbound payloads and the codec all come from it. Decoders
raise only :class:`~atcs.errors.PayloadError`, with the reason.
"""

from __future__ import annotations

from atcs.bus.codec import Received
from atcs.bus.control_payloads import (
    OVERRIDE,
    PLAN_ACK,
    decode_override,
    decode_plan_ack,
    encode_override,
    encode_plan_ack,
    load_override,
    load_plan_ack,
    override_from_doc,
    plan_ack_from_doc,
)
from atcs.bus.messages import (
    EngineState,
    EngineStatus,
    MessageMeta,
)
from atcs.bus.model import Field, Message, Struct
from atcs.bus.topics import TopicKind
from atcs.bus.wire import (
    ArrayOf,
    Boolean,
    Choice,
    DateTime,
    Id,
    Integer,
    MapOf,
    Nullable,
    Number,
    Text,
    choice,
)
from atcs.types import (
    CameraState,
    CameraStatus,
    Direction,
    FlowCount,
    LevelOfService,
    PhaseTiming,
    PlanMode,
    SegmentMetrics,
    SiteId,
    TimingPlan,
    VehicleClass,
)

__all__ = [
    "CAMERA_STATUS",
    "ENGINE_STATUS",
    "FLOW",
    "OVERRIDE",
    "PHASE_TIMING",
    "PLAN_ACK",
    "SEGMENT_METRICS",
    "SITE",
    "TIMING_PLAN",
    "VEHICLE_CLASS",
    "WINDOW",
    "decode_camera_status",
    "decode_engine_status",
    "decode_override",
    "decode_plan_ack",
    "decode_segment_metrics",
    "decode_timing_plan",
    "encode_camera_status",
    "encode_engine_status",
    "encode_override",
    "encode_plan_ack",
    "encode_segment_metrics",
    "encode_timing_plan",
    "load_override",
    "load_plan_ack",
    "override_from_doc",
    "plan_ack_from_doc",
]
"""Acks and overrides are declared in :mod:`atcs.bus.control_payloads`, exported here too."""

VEHICLE_CLASS = Choice(
    tuple(c.label for c in VehicleClass), lambda c: str(c.label), VehicleClass.from_label
)
"""A vehicle class by its label (``car``, ``motorcycle``, ``bus``, ``truck``, ``bicycle``)."""

SITE = Field("site", Id(), "Site id.", attr="site_id")


WINDOW = (
    Field("window_start", DateTime(), "Window start, ISO-8601 UTC."),
    Field("window_end", DateTime(), "Window end, ISO-8601 UTC."),
    Field(
        "window_s",
        Number(exclusive_minimum=0),
        "Window length, s.",
        attr=None,
        get=lambda r: r.window_s,
    ),
)
"""Start, end and length of a measuring window (records with a ``window_s`` property)."""


# Segment metrics -----------------------------------------------------------------------

FLOW = Struct(
    (
        Field("line", Id(), "Counting line id.", attr="line_id"),
        Field("class", VEHICLE_CLASS, attr="vehicle_class"),
        Field("direction", choice(Direction)),
        Field("count", Integer()),
        Field("flow_veh_h", Number(minimum=0)),
        Field(
            "approach",
            Boolean(),
            "True for the line's approach direction (toward the stop line), the one control "
            "and PCU use. Optional for older senders: absent means true.",
            required=False,
            default=True,
        ),
    ),
    FlowCount,
)

SEGMENT_METRICS: Message[SegmentMetrics] = Message(
    TopicKind.SEGMENT_METRICS,
    "SegmentMetrics",
    "Traffic measures of one road segment over one window, published retained (QoS 1) on "
    "{prefix}/segments/{segment}/metrics.",
    Struct(
        (
            SITE,
            Field("camera", Id(), "Camera that sees the segment.", attr="camera_id"),
            Field("segment", Id(), "Segment id (also in the topic).", attr="segment_id"),
            *WINDOW,
            Field(
                "observed_s",
                Number(minimum=0),
                "Time of the window the camera was actually seen, s (at most window_s); flows "
                "are per hour of it. Optional for older senders: absent means the whole window.",
                get=lambda m: m.observed_or_window_s,
                required=False,
            ),
            Field(
                "partial",
                Boolean(),
                "True when observed_s is less than the configured share of window_s (engine "
                "start, camera loss). Optional for older senders: absent means false.",
                required=False,
                default=False,
            ),
            Field("frames", Integer(), "Frames analysed in the window."),
            Field(
                "vehicles",
                Number(minimum=0),
                "Mean vehicles in the segment over the window's frames.",
            ),
            Field(
                "vehicles_by_class",
                MapOf(Number(minimum=0), keys=VEHICLE_CLASS),
                "Mean vehicles per class (car, motorcycle, bus, truck, bicycle).",
            ),
            Field("pcu", Number(minimum=0), "PCU-weighted mean vehicles (passenger-car units)."),
            Field("density_pcu_km_lane", Number(minimum=0), "pcu / (length_m / 1000 * lanes)."),
            Field(
                "occupancy",
                Number(minimum=0, maximum=1),
                "Mean covered fraction of the segment polygon, 0..1.",
            ),
            Field(
                "flow_veh_h",
                Number(minimum=0),
                "Approach flow: crossings of the segment's lines in their approach direction "
                "(toward the stop line), every class, per hour of observed time, vehicles/h.",
            ),
            Field(
                "flows",
                ArrayOf(FLOW),
                "Crossings per counting line, class and direction (both directions), each per "
                "hour of observed time.",
            ),
            Field(
                "queue_m",
                Nullable(Number(minimum=0)),
                "Mean queue length, m; null without a stop line.",
            ),
            Field(
                "queue_max_m",
                Nullable(Number(minimum=0)),
                "Longest queue in the window, m; null without a stop line.",
            ),
            Field("los", choice(LevelOfService), "Level of service from density."),
            Field("congested", Boolean()),
            Field("stale", Boolean(), "True when the window saw no frame."),
            Field(
                "speed_kmh",
                Nullable(Number(minimum=0)),
                "Mean ground speed, km/h, of the tracked vehicles that had one in the segment "
                "in the window (one value per vehicle); null on cameras without a ground "
                "calibration or with no such vehicle. Optional for older senders: absent "
                "means null.",
                required=False,
            ),
            Field(
                "speed_p85_kmh",
                Nullable(Number(minimum=0)),
                "85th percentile of the same per-vehicle speeds, km/h; null as speed_kmh. "
                "Optional for older senders: absent means null.",
                required=False,
            ),
            Field(
                "speed_vehicles",
                Integer(),
                "Vehicles with a speed in the window. Optional for older senders: absent means 0.",
                required=False,
                default=0,
            ),
            Field(
                "speed_capped",
                Integer(),
                "Of those, vehicles whose speed was capped at the calibration's "
                "max_speed_kmh as implausible (a bad calibration or track). Optional for "
                "older senders: absent means 0.",
                required=False,
                default=0,
            ),
        ),
        SegmentMetrics,
    ),
    streamed=True,
    topic_key="segment",
)


def encode_segment_metrics(metrics: SegmentMetrics, meta: MessageMeta) -> bytes:
    """One :class:`SegmentMetrics` as the JSON payload of ``{p}/segments/{segment}/metrics``."""
    return SEGMENT_METRICS.encode(metrics, meta)


def decode_segment_metrics(
    payload: bytes | str, topic_ident: str | None = None
) -> Received[SegmentMetrics]:
    """Validate and read a segment metrics payload (``topic_ident``: segment in the topic)."""
    return SEGMENT_METRICS.decode(payload, topic_ident)


# Camera status -------------------------------------------------------------------------

CAMERA_STATUS: Message[CameraStatus] = Message(
    TopicKind.CAMERA_STATUS,
    "CameraStatus",
    "Health of one camera, published retained (QoS 1) on {prefix}/cameras/{camera}/status.",
    Struct(
        (
            Field("site", Id(), "Site id.", attr=None),
            Field("camera", Id(), "Camera id (also in the topic).", attr="camera_id"),
            Field("state", choice(CameraState)),
            Field("fps", Number(minimum=0), "Measured frame rate, frames/s."),
            Field(
                "last_frame_at",
                Nullable(DateTime()),
                "Time of the last frame, ISO-8601 UTC; null before the first.",
            ),
            Field(
                "detail",
                Text(max_length=1000, cut=True),
                "Human detail, e.g. the last error.",
            ),
            Field(
                "decode_mode",
                Choice(("keyframes", "full")),
                "Video files and streams: keyframes only, or every frame decoded. Optional "
                "for older senders.",
                required=False,
            ),
            Field(
                "gop_s",
                Number(minimum=0),
                "Measured time between keyframes, s. Optional: absent until measured, and "
                "for older senders.",
                required=False,
            ),
        ),
        CameraStatus,
    ),
    streamed=True,
    topic_key="camera",
)


def encode_camera_status(site_id: SiteId, status: CameraStatus, meta: MessageMeta) -> bytes:
    """One :class:`CameraStatus` as the payload of ``{p}/cameras/{camera}/status``."""
    return CAMERA_STATUS.encode(status, meta, site=site_id)


def decode_camera_status(
    payload: bytes | str, topic_ident: str | None = None
) -> Received[CameraStatus]:
    """Validate and read a camera status payload (``topic_ident``: camera in the topic)."""
    return CAMERA_STATUS.decode(payload, topic_ident)


# Timing plan ---------------------------------------------------------------------------

PHASE_TIMING = Struct(
    (
        Field("phase", Text(min_length=1), attr="phase_id"),
        Field("green_s", Number(minimum=0)),
        Field("yellow_s", Number(minimum=0)),
        Field("all_red_s", Number(minimum=0)),
    ),
    PhaseTiming,
)

TIMING_PLAN: Message[TimingPlan] = Message(
    TopicKind.TIMING_PLAN,
    "TimingPlan",
    "A signal timing plan that passed the safety envelope, retained (QoS 1) on "
    "{prefix}/intersections/{ix}/plan.",
    Struct(
        (
            Field("site", Id(), "Site id.", attr=None),
            Field(
                "intersection",
                Id(),
                "Intersection id (also in the topic).",
                attr="intersection_id",
            ),
            Field("plan_id", Text(1, 128)),
            Field("controller", Text(min_length=1), "Algorithm that proposed the plan."),
            Field("mode", choice(PlanMode)),
            Field(
                "cycle_s",
                Number(exclusive_minimum=0),
                "Cycle length, s (sum of phase durations).",
            ),
            Field("offset_s", Number(minimum=0), "Cycle start offset, s."),
            Field("phases", ArrayOf(PHASE_TIMING, min_items=1)),
            Field(
                "valid_from",
                DateTime(),
                "Cycle boundary from which the plan runs, ISO-8601 UTC.",
            ),
            Field("reason", Text()),
            Field(
                "data_age_s",
                Nullable(Number(minimum=0)),
                "Age of the newest measure used, s; null if none.",
            ),
            Field(
                "extra",
                MapOf(Number()),
                "Controller-specific numbers.",
                get=lambda p: {str(k): float(v) for k, v in p.extra.items()},
            ),
        ),
        TimingPlan,
    ),
    streamed=True,
    topic_key="intersection",
)


def encode_timing_plan(site_id: SiteId, plan: TimingPlan, meta: MessageMeta) -> bytes:
    """One :class:`TimingPlan` as the payload of ``{p}/intersections/{ix}/plan``."""
    return TIMING_PLAN.encode(plan, meta, site=site_id)


def decode_timing_plan(
    payload: bytes | str, topic_ident: str | None = None
) -> Received[TimingPlan]:
    """Validate and read a plan payload (``topic_ident``: intersection in the topic)."""
    return TIMING_PLAN.decode(payload, topic_ident)


# Engine status -------------------------------------------------------------------------

ENGINE_STATUS: Message[EngineStatus] = Message(
    TopicKind.ENGINE_STATUS,
    "EngineStatus",
    "Availability of the engine, retained (QoS 1) on {prefix}/status. The last will carries "
    "state offline without 'at'.",
    Struct(
        (
            Field("state", choice(EngineState)),
            Field("version", Text(min_length=1), "Engine version."),
            SITE,
            Field("client_id", Text(), "MQTT client id of the engine."),
            Field(
                "at",
                DateTime(),
                "When the state began, ISO-8601 UTC; absent in the last will.",
                required=False,
            ),
        ),
        EngineStatus,
    ),
)


def encode_engine_status(status: EngineStatus) -> bytes:
    """Encode the payload of ``{p}/status`` (no ``at`` when None, as in the last will)."""
    return ENGINE_STATUS.encode(status)


def decode_engine_status(payload: bytes | str) -> EngineStatus:
    """Validate and read an engine status payload."""
    return ENGINE_STATUS.decode(payload).record
