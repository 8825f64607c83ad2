"""The engine's records as InfluxDB points (DESIGN.md, InfluxDB schema).

===================  ==================================  ==========================================
measurement          tags                                time
===================  ==================================  ==========================================
``segment_metrics``  site, camera, segment               window end
``camera_health``    site, camera                        when the status was handed to the store
``signal_plan``      site, intersection, controller,     ``valid_from`` (the cycle boundary the
                     mode                                plan starts at)
``alarm``            site, kind, subject, severity,      when the alarm changed
                     change
===================  ==================================  ==========================================

Tags are only low-cardinality ids; a plan id, a track id or a time is never a tag. Every
number is a field: see :func:`metrics_point`, :func:`camera_point` and :func:`plan_point`
for the field names. Because a point's identity is (measurement, tags, time), writing the
same record twice stores it once: replays after an ambiguous failure cannot duplicate rows.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import TYPE_CHECKING

from atcs.storage.lineprotocol import FieldValue, Point
from atcs.types import (
    CameraState,
    CameraStatus,
    Direction,
    SegmentMetrics,
    SiteId,
    TimingPlan,
    VehicleClass,
)

SEGMENT_METRICS = "segment_metrics"
CAMERA_HEALTH = "camera_health"
SIGNAL_PLAN = "signal_plan"
ALARM = "alarm"

if TYPE_CHECKING:
    from atcs.alarms.model import AlarmEvent

_VEHICLE_KEYS = {vc: f"vehicles_{vc.label}" for vc in VehicleClass}
_FLOW_KEYS = {
    (vc, d): (f"flow_{vc.label}_{d.value}_veh_h", f"crossings_{vc.label}_{d.value}")
    for vc in VehicleClass
    for d in Direction
}


def metrics_point(metrics: SegmentMetrics) -> Point:
    """Return a ``segment_metrics`` point at the window end.

    Fields: ``window_s``, ``observed_s`` (time of the window the camera was seen, s),
    ``partial`` (boolean: observed less than the configured share), ``frames`` (integer),
    ``vehicles``, ``vehicles_<class>`` for every class (0.0 when absent), ``pcu``,
    ``density_pcu_km_lane``, ``occupancy``, ``flow_veh_h`` (approach flow: toward the stop
    line), ``flow_forward_veh_h`` and ``flow_backward_veh_h`` (every class),
    ``flow_<class>_<direction>_veh_h`` and ``crossings_<class>_<direction>`` (integer) for
    every class and direction, summed over the segment's counting lines (flows per hour of
    observed time), ``queue_m`` and
    ``queue_max_m`` (left out where no stop line is set), ``los`` (string ``A``..``F``),
    ``congested`` and ``stale`` (booleans).
    """
    fields: dict[str, FieldValue] = {
        "window_s": float(metrics.window_s),
        "observed_s": float(metrics.observed_or_window_s),
        "partial": bool(metrics.partial),
        "frames": int(metrics.frames),
        "vehicles": float(metrics.vehicles),
    }
    by_class = metrics.vehicles_by_class
    for vc, key in _VEHICLE_KEYS.items():
        fields[key] = float(by_class.get(vc, 0.0))
    fields["pcu"] = float(metrics.pcu)
    fields["density_pcu_km_lane"] = float(metrics.density_pcu_km_lane)
    fields["occupancy"] = float(metrics.occupancy)
    fields["flow_veh_h"] = float(metrics.flow_veh_h)
    flows = dict.fromkeys(_FLOW_KEYS, 0.0)
    counts = dict.fromkeys(_FLOW_KEYS, 0)
    for flow in metrics.flows:
        flows[flow.vehicle_class, flow.direction] += float(flow.flow_veh_h)
        counts[flow.vehicle_class, flow.direction] += int(flow.count)
    for direction in Direction:
        fields[f"flow_{direction.value}_veh_h"] = math.fsum(
            v for (_, d), v in flows.items() if d is direction
        )
    for pair, (flow_key, _) in _FLOW_KEYS.items():
        fields[flow_key] = flows[pair]
    for pair, (_, count_key) in _FLOW_KEYS.items():
        fields[count_key] = counts[pair]
    if metrics.queue_m is not None:
        fields["queue_m"] = float(metrics.queue_m)
    if metrics.queue_max_m is not None:
        fields["queue_max_m"] = float(metrics.queue_max_m)
    fields["los"] = metrics.los.value
    fields["congested"] = bool(metrics.congested)
    fields["stale"] = bool(metrics.stale)
    return Point(
        measurement=SEGMENT_METRICS,
        time=metrics.window_end,
        tags={
            "site": str(metrics.site_id),
            "camera": str(metrics.camera_id),
            "segment": str(metrics.segment_id),
        },
        fields=fields,
    )


def camera_point(site_id: SiteId, status: CameraStatus, at: datetime) -> Point:
    """Return a ``camera_health`` point at ``at`` (aware UTC).

    Fields: ``state`` (string: streaming, reconnecting, stalled, offline), ``up`` (boolean,
    state is streaming), ``fps`` (frames/s), ``since_last_frame_s`` (seconds from the last
    frame to ``at``; left out before the first frame) and ``detail`` (string, when set).
    """
    fields: dict[str, FieldValue] = {
        "state": status.state.value,
        "up": status.state is CameraState.STREAMING,
        "fps": float(status.fps),
    }
    if status.last_frame_at is not None:
        fields["since_last_frame_s"] = max(0.0, (at - status.last_frame_at).total_seconds())
    if status.detail:
        fields["detail"] = status.detail
    if status.decode_mode is not None:
        fields["decode_mode"] = status.decode_mode
    if status.gop_s is not None:
        fields["gop_s"] = float(status.gop_s)
    return Point(
        measurement=CAMERA_HEALTH,
        time=at,
        tags={"site": str(site_id), "camera": str(status.camera_id)},
        fields=fields,
    )


def plan_point(site_id: SiteId, plan: TimingPlan) -> Point:
    """Return a ``signal_plan`` point at the plan's ``valid_from``.

    Fields: ``plan_id`` and ``reason`` (strings), ``cycle_s``, ``offset_s``, ``phases``
    (integer), ``green_<phase>_s``, ``yellow_<phase>_s`` and ``all_red_<phase>_s`` per phase,
    ``data_age_s`` (left out when None) and ``extra_<name>`` for each extra number.
    """
    fields: dict[str, FieldValue] = {
        "plan_id": plan.plan_id,
        "reason": plan.reason,
        "cycle_s": float(plan.cycle_s),
        "offset_s": float(plan.offset_s),
        "phases": len(plan.phases),
    }
    for phase in plan.phases:
        fields[f"green_{phase.phase_id}_s"] = float(phase.green_s)
        fields[f"yellow_{phase.phase_id}_s"] = float(phase.yellow_s)
        fields[f"all_red_{phase.phase_id}_s"] = float(phase.all_red_s)
    if plan.data_age_s is not None:
        fields["data_age_s"] = float(plan.data_age_s)
    for name, value in plan.extra.items():
        fields[f"extra_{name}"] = float(value)
    return Point(
        measurement=SIGNAL_PLAN,
        time=plan.valid_from,
        tags={
            "site": str(site_id),
            "intersection": str(plan.intersection_id),
            "controller": plan.controller,
            "mode": plan.mode.value,
        },
        fields=fields,
    )


def alarm_point(event: AlarmEvent) -> Point:
    """Return an ``alarm`` point at the time of the change.

    Tags: ``site``, ``kind``, ``subject`` (the segment, camera, intersection or node id),
    ``severity``, ``change`` (raised, ended, acknowledged). Fields: ``alarm_id``, ``code``,
    ``params`` (JSON object), ``started_at`` (ms since the epoch), ``active`` and
    ``acknowledged`` (booleans), ``duration_s`` (once ended), ``user`` and ``comment``
    (once acknowledged).
    """
    alarm = event.alarm
    fields: dict[str, FieldValue] = {
        "alarm_id": alarm.alarm_id,
        "code": alarm.code,
        "params": json.dumps(dict(alarm.params), ensure_ascii=False, sort_keys=True),
        "started_at": int(alarm.started_at.timestamp() * 1000),
        "active": alarm.active,
        "acknowledged": alarm.acknowledged,
    }
    if alarm.ended_at is not None:
        fields["duration_s"] = max(0.0, (alarm.ended_at - alarm.started_at).total_seconds())
    if alarm.acked_at is not None:
        fields["user"] = alarm.acked_by
        fields["comment"] = alarm.ack_comment
    return Point(
        measurement=ALARM,
        time=event.at,
        tags={
            "site": event.site_id,
            "kind": alarm.kind.value,
            "subject": alarm.subject.split("~", 1)[0],
            "severity": alarm.severity.value,
            "change": event.change.value,
        },
        fields=fields,
    )
