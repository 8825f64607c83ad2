"""JSON payloads of the MQTT contract: encode records to bytes, decode and validate bytes.

Every payload carries ``"schema": "atcs.<kind>/1"``. Datetimes are ISO-8601; the engine
writes UTC with a ``Z`` and microseconds, and reads any offset (converted to UTC). Decoding
checks the JSON Schema in ``atcs/contract`` and raises :class:`~atcs.errors.PayloadError`
with the reason for malformed or foreign messages.
"""

from __future__ import annotations

from typing import Any

from atcs.bus.codec import (
    MAX_PAYLOAD_BYTES,  # noqa: F401 - re-exported
    Received,
    build,
    dump,
    iso_utc,
    load,
    load_for_topic,
    meta_of,
    opt_float,
    opt_time,
    parse_time,
    with_meta,
)
from atcs.bus.messages import (
    AckResult,
    EngineState,
    EngineStatus,
    MessageMeta,
    Override,
    OverrideAction,
    PlanAck,
)
from atcs.bus.schemas import SCHEMA_IDS
from atcs.bus.topics import TopicKind
from atcs.errors import PayloadError
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

# Segment metrics -----------------------------------------------------------------------


def encode_segment_metrics(metrics: SegmentMetrics, meta: MessageMeta) -> bytes:
    """One :class:`SegmentMetrics` as the JSON payload of ``{p}/segments/{segment}/metrics``."""
    doc: dict[str, Any] = {
        "schema": SCHEMA_IDS[TopicKind.SEGMENT_METRICS],
        "site": metrics.site_id,
        "camera": metrics.camera_id,
        "segment": metrics.segment_id,
        "window_start": iso_utc(metrics.window_start),
        "window_end": iso_utc(metrics.window_end),
        "window_s": metrics.window_s,
        "observed_s": metrics.observed_or_window_s,
        "partial": metrics.partial,
        "frames": metrics.frames,
        "vehicles": metrics.vehicles,
        "vehicles_by_class": {vc.label: n for vc, n in metrics.vehicles_by_class.items()},
        "pcu": metrics.pcu,
        "density_pcu_km_lane": metrics.density_pcu_km_lane,
        "occupancy": metrics.occupancy,
        "flow_veh_h": metrics.flow_veh_h,
        "flows": [
            {
                "line": f.line_id,
                "class": f.vehicle_class.label,
                "direction": f.direction.value,
                "count": f.count,
                "flow_veh_h": f.flow_veh_h,
                "approach": f.approach,
            }
            for f in metrics.flows
        ],
        "queue_m": metrics.queue_m,
        "queue_max_m": metrics.queue_max_m,
        "los": metrics.los.value,
        "congested": metrics.congested,
        "stale": metrics.stale,
        "speed_kmh": metrics.speed_kmh,
        "speed_p85_kmh": metrics.speed_p85_kmh,
        "speed_vehicles": metrics.speed_vehicles,
        "speed_capped": metrics.speed_capped,
    }
    return dump(with_meta(doc, meta))


def decode_segment_metrics(
    payload: bytes | str, topic_ident: str | None = None
) -> Received[SegmentMetrics]:
    """Validate and read a segment metrics payload (``topic_ident``: segment in the topic)."""
    doc = load_for_topic(TopicKind.SEGMENT_METRICS, payload, "segment", topic_ident)
    return build(TopicKind.SEGMENT_METRICS, lambda: Received(_metrics_record(doc), meta_of(doc)))


def _metrics_record(doc: dict[str, Any]) -> SegmentMetrics:
    return SegmentMetrics(
        site_id=SiteId(doc["site"]),
        camera_id=CameraId(doc["camera"]),
        segment_id=SegmentId(doc["segment"]),
        window_start=parse_time(doc["window_start"]),
        window_end=parse_time(doc["window_end"]),
        frames=int(doc["frames"]),
        vehicles=float(doc["vehicles"]),
        vehicles_by_class={
            VehicleClass.from_label(k): float(v) for k, v in doc["vehicles_by_class"].items()
        },
        pcu=float(doc["pcu"]),
        density_pcu_km_lane=float(doc["density_pcu_km_lane"]),
        occupancy=float(doc["occupancy"]),
        flow_veh_h=float(doc["flow_veh_h"]),
        flows=tuple(
            FlowCount(
                line_id=LineId(f["line"]),
                vehicle_class=VehicleClass.from_label(f["class"]),
                direction=Direction(f["direction"]),
                count=int(f["count"]),
                flow_veh_h=float(f["flow_veh_h"]),
                approach=bool(f.get("approach", True)),
            )
            for f in doc["flows"]
        ),
        queue_m=opt_float(doc["queue_m"]),
        queue_max_m=opt_float(doc["queue_max_m"]),
        los=LevelOfService(doc["los"]),
        congested=bool(doc["congested"]),
        stale=bool(doc["stale"]),
        observed_s=opt_float(doc.get("observed_s")),
        partial=bool(doc.get("partial", False)),
        speed_kmh=opt_float(doc.get("speed_kmh")),
        speed_p85_kmh=opt_float(doc.get("speed_p85_kmh")),
        speed_vehicles=int(doc.get("speed_vehicles", 0)),
        speed_capped=int(doc.get("speed_capped", 0)),
    )


# Camera status -------------------------------------------------------------------------


def encode_camera_status(site_id: SiteId, status: CameraStatus, meta: MessageMeta) -> bytes:
    """One :class:`CameraStatus` as the payload of ``{p}/cameras/{camera}/status``."""
    doc: dict[str, Any] = {
        "schema": SCHEMA_IDS[TopicKind.CAMERA_STATUS],
        "site": site_id,
        "camera": status.camera_id,
        "state": status.state.value,
        "fps": status.fps,
        "last_frame_at": None if status.last_frame_at is None else iso_utc(status.last_frame_at),
        "detail": status.detail[:1000],
    }
    if status.decode_mode is not None:
        doc["decode_mode"] = status.decode_mode
    if status.gop_s is not None:
        doc["gop_s"] = status.gop_s
    return dump(with_meta(doc, meta))


def decode_camera_status(
    payload: bytes | str, topic_ident: str | None = None
) -> Received[CameraStatus]:
    """Validate and read a camera status payload (``topic_ident``: camera in the topic)."""
    doc = load_for_topic(TopicKind.CAMERA_STATUS, payload, "camera", topic_ident)
    return build(TopicKind.CAMERA_STATUS, lambda: Received(_camera_record(doc), meta_of(doc)))


def _camera_record(doc: dict[str, Any]) -> CameraStatus:
    return CameraStatus(
        camera_id=CameraId(doc["camera"]),
        state=CameraState(doc["state"]),
        fps=float(doc["fps"]),
        last_frame_at=opt_time(doc["last_frame_at"]),
        detail=str(doc["detail"]),
        decode_mode=doc.get("decode_mode"),
        gop_s=opt_float(doc.get("gop_s")),
    )


# Timing plan ---------------------------------------------------------------------------


def encode_timing_plan(site_id: SiteId, plan: TimingPlan, meta: MessageMeta) -> bytes:
    """One :class:`TimingPlan` as the payload of ``{p}/intersections/{ix}/plan``."""
    doc: dict[str, Any] = {
        "schema": SCHEMA_IDS[TopicKind.TIMING_PLAN],
        "site": site_id,
        "intersection": plan.intersection_id,
        "plan_id": plan.plan_id,
        "controller": plan.controller,
        "mode": plan.mode.value,
        "cycle_s": plan.cycle_s,
        "offset_s": plan.offset_s,
        "phases": [
            {
                "phase": p.phase_id,
                "green_s": p.green_s,
                "yellow_s": p.yellow_s,
                "all_red_s": p.all_red_s,
            }
            for p in plan.phases
        ],
        "valid_from": iso_utc(plan.valid_from),
        "reason": plan.reason,
        "data_age_s": plan.data_age_s,
        "extra": dict(plan.extra),
    }
    return dump(with_meta(doc, meta))


def decode_timing_plan(
    payload: bytes | str, topic_ident: str | None = None
) -> Received[TimingPlan]:
    """Validate and read a plan payload (``topic_ident``: intersection in the topic)."""
    doc = load_for_topic(TopicKind.TIMING_PLAN, payload, "intersection", topic_ident)
    return build(TopicKind.TIMING_PLAN, lambda: Received(_plan_record(doc), meta_of(doc)))


def _plan_record(doc: dict[str, Any]) -> TimingPlan:
    return TimingPlan(
        intersection_id=IntersectionId(doc["intersection"]),
        plan_id=str(doc["plan_id"]),
        controller=str(doc["controller"]),
        mode=PlanMode(doc["mode"]),
        cycle_s=float(doc["cycle_s"]),
        offset_s=float(doc["offset_s"]),
        phases=tuple(
            PhaseTiming(
                phase_id=PhaseId(p["phase"]),
                green_s=float(p["green_s"]),
                yellow_s=float(p["yellow_s"]),
                all_red_s=float(p["all_red_s"]),
            )
            for p in doc["phases"]
        ),
        valid_from=parse_time(doc["valid_from"]),
        reason=str(doc["reason"]),
        data_age_s=opt_float(doc["data_age_s"]),
        extra={str(k): float(v) for k, v in doc["extra"].items()},
    )


# Engine status -------------------------------------------------------------------------


def encode_engine_status(status: EngineStatus) -> bytes:
    """Encode the payload of ``{p}/status`` (no ``at`` when None, as in the last will)."""
    doc: dict[str, Any] = {
        "schema": SCHEMA_IDS[TopicKind.ENGINE_STATUS],
        "state": status.state.value,
        "version": status.version,
        "site": status.site_id,
        "client_id": status.client_id,
    }
    if status.at is not None:
        doc["at"] = iso_utc(status.at)
    return dump(doc)


def decode_engine_status(payload: bytes | str) -> EngineStatus:
    """Validate and read an engine status payload."""
    doc = load(TopicKind.ENGINE_STATUS, payload)
    return build(
        TopicKind.ENGINE_STATUS,
        lambda: EngineStatus(
            state=EngineState(doc["state"]),
            version=str(doc["version"]),
            site_id=SiteId(doc["site"]),
            client_id=str(doc["client_id"]),
            at=opt_time(doc.get("at")),
        ),
    )


# Plan ack ------------------------------------------------------------------------------


def encode_plan_ack(ack: PlanAck) -> bytes:
    """Encode what a signal controller sends on ``{p}/intersections/{ix}/plan/ack``."""
    doc: dict[str, Any] = {
        "schema": SCHEMA_IDS[TopicKind.PLAN_ACK],
        "intersection": ack.intersection_id,
        "plan_id": ack.plan_id,
        "result": ack.result.value,
        "reason": ack.reason,
    }
    if ack.controller_id:
        doc["controller_id"] = ack.controller_id
    if ack.at is not None:
        doc["at"] = iso_utc(ack.at)
    return dump(doc)


def load_plan_ack(payload: bytes | str, intersection: IntersectionId) -> dict[str, Any]:
    """Parse and check an ack received on the ack topic of ``intersection`` (a document)."""
    return load_for_topic(TopicKind.PLAN_ACK, payload, "intersection", intersection)


def decode_plan_ack(payload: bytes | str, intersection: IntersectionId) -> PlanAck:
    """Validate and read an ack received on the ack topic of ``intersection``."""
    return plan_ack_from_doc(load_plan_ack(payload, intersection), intersection)


def plan_ack_from_doc(doc: dict[str, Any], intersection: IntersectionId) -> PlanAck:
    """Return the :class:`PlanAck` of a document checked by :func:`load_plan_ack`."""
    return build(TopicKind.PLAN_ACK, lambda: _ack_record(doc, intersection))


def _ack_record(doc: dict[str, Any], intersection: IntersectionId) -> PlanAck:
    return PlanAck(
        intersection_id=intersection,
        plan_id=str(doc["plan_id"]),
        result=AckResult(doc["result"]),
        reason=str(doc.get("reason", "")),
        controller_id=str(doc.get("controller_id", "")),
        at=opt_time(doc.get("at")),
    )


# Override ------------------------------------------------------------------------------


def encode_override(override: Override) -> bytes:
    """Encode what an operator sends on ``{p}/intersections/{ix}/override``."""
    doc: dict[str, Any] = {
        "schema": SCHEMA_IDS[TopicKind.OVERRIDE],
        "intersection": override.intersection_id,
        "action": override.action.value,
        "who": override.who,
        "why": override.why,
    }
    if override.at is not None:
        doc["at"] = iso_utc(override.at)
    if override.plan_name is not None:
        doc["plan_name"] = override.plan_name
    if override.greens_s:
        doc["greens_s"] = {str(k): float(v) for k, v in override.greens_s.items()}
    return dump(doc)


def _explain_override(doc: dict[str, Any]) -> None:
    has_plan = "plan_name" in doc or "greens_s" in doc
    if doc.get("action") == "fixed" and not has_plan:
        raise PayloadError("override 'fixed' needs plan_name or greens_s")
    if doc.get("action") in ("hold", "release") and has_plan:
        raise PayloadError(f"override {doc['action']!r} takes no plan_name or greens_s")


def load_override(payload: bytes | str, intersection: IntersectionId) -> dict[str, Any]:
    """Parse and check an override received on the topic of ``intersection`` (a document)."""
    return load_for_topic(
        TopicKind.OVERRIDE, payload, "intersection", intersection, _explain_override
    )


def decode_override(payload: bytes | str, intersection: IntersectionId) -> Override:
    """Validate and read an override received on the override topic of ``intersection``."""
    return override_from_doc(load_override(payload, intersection), intersection)


def override_from_doc(doc: dict[str, Any], intersection: IntersectionId) -> Override:
    """Return the :class:`Override` of a document checked by :func:`load_override`."""
    return build(TopicKind.OVERRIDE, lambda: _override_record(doc, intersection))


def _override_record(doc: dict[str, Any], intersection: IntersectionId) -> Override:
    return Override(
        intersection_id=intersection,
        action=OverrideAction(doc["action"]),
        who=str(doc["who"]),
        why=str(doc["why"]),
        at=opt_time(doc.get("at")),
        plan_name=doc.get("plan_name"),
        greens_s={PhaseId(k): float(v) for k, v in doc.get("greens_s", {}).items()},
    )
