"""What the phase controllers see of a live camera zone: the vehicles of its newest frame.

The phase controllers were built for the simulator's view: each second, every vehicle a
camera detects in a zone with its distance to the stop line and its speed. Where a segment
has a stop line, the analyser gives exactly that for every frame
(:class:`~atcs.metrics.analyzer.SegmentFrame`: per vehicle the distance of its box's
nearest corner from the stop line, its speed and PCU). :func:`zone_snapshot` turns it
into a :class:`~controllers.phase.observe.ZoneSnapshot` (pure), through the frame's
:class:`~atcs.types.FrameZone` (:func:`frame_zone_of`), which is also what a measuring node
publishes on the bus for a control node elsewhere (``{p}/segments/{segment}/zone``,
:mod:`atcs.bus.zone_payloads`):

- distance: the box's nearest corner from the stop line (m), clipped at 0 (a vehicle
  already over the line stands at it). On an approach that is the vehicle's front; on an
  exit segment, whose stop line is drawn across the junction's mouth (``docs/config.md``,
  ``stop_line``), it is its back, the distance from the junction;
- speed: the analyser's speed (m/s; None while unknown); an unknown one (a track seen
  once) counts as moving at :data:`~atcs.control.zones.DEFAULT_SPEED_M_S`, as the queue
  measure takes an unknown speed as not slow;
- PCU: the class's factor on the segment.

The windows (:mod:`atcs.control.zones`) stay the fallback: a segment without a stop line,
or whose last frame is older than ``frame_stale_s`` (``[intersections.phase_mode]``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from atcs.control.zones import DEFAULT_SPEED_M_S, MAX_ZONE_VEHICLES
from atcs.types import CameraId, FrameVehicle, FrameZone, SegmentId
from controllers.phase.observe import ZoneSnapshot, ZoneVehicle

if TYPE_CHECKING:
    from atcs.metrics.analyzer import SegmentFrame


def frame_vehicles(frame: SegmentFrame) -> tuple[FrameVehicle, ...] | None:
    """Return the vehicles of ``frame``, nearest the stop line first (None: no stop line).

    Distances are clipped at 0, unknown (NaN) speeds are None; at most
    :data:`~atcs.control.zones.MAX_ZONE_VEHICLES`.
    """
    if frame.near_m is None or frame.speed_m_s is None:
        return None
    vehicles = [
        FrameVehicle(
            max(0.0, float(near)), float(speed) if math.isfinite(speed) else None, float(pcu)
        )
        for near, speed, pcu in zip(
            frame.near_m.tolist(), frame.speed_m_s.tolist(), frame.member_pcu.tolist(), strict=True
        )
    ]
    vehicles.sort(key=lambda v: v.distance_m)
    return tuple(vehicles[:MAX_ZONE_VEHICLES])


def frame_zone_of(camera: CameraId, at: datetime, frame: SegmentFrame) -> FrameZone | None:
    """Return ``frame`` (captured by ``camera`` at ``at``) as a zone; None without a stop line."""
    vehicles = frame_vehicles(frame)
    return None if vehicles is None else FrameZone(camera, frame.segment_id, at, vehicles)


def zone_snapshot(
    segment: SegmentId, vehicles: Sequence[FrameVehicle], length_m: float, lanes: int
) -> ZoneSnapshot:
    """Return a frame's ``vehicles`` as ``segment``'s zone of ``length_m`` m and ``lanes`` lanes.

    At most :data:`~atcs.control.zones.MAX_ZONE_VEHICLES`, the nearest to the line first.
    """
    out = sorted(
        (
            ZoneVehicle(
                max(0.0, v.distance_m),
                DEFAULT_SPEED_M_S if v.speed_m_s is None else v.speed_m_s,
                v.pcu,
            )
            for v in vehicles
        ),
        key=lambda v: v.distance_m,
    )
    return ZoneSnapshot(segment, tuple(out[:MAX_ZONE_VEHICLES]), length_m, max(1, lanes))
