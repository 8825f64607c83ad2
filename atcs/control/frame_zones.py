"""What the phase controllers see of a live camera zone: the vehicles of its newest frame.

The phase controllers were built for the simulator's view: each second, every vehicle a
camera detects in a zone with its distance to the stop line and its speed. Where a segment
has a stop line, the analyser gives exactly that for every frame
(:class:`~atcs.metrics.analyzer.SegmentFrame`: per vehicle the distance of its box's
nearest corner from the stop line, its speed and PCU). :func:`zone_from_frame` turns it
into a :class:`~controllers.phase.observe.ZoneSnapshot` (pure):

- distance: the box's nearest corner from the stop line (m), clipped at 0 (a vehicle
  already over the line stands at it). On an approach that is the vehicle's front; on an
  exit segment, whose stop line is drawn across the junction's mouth (``docs/config.md``,
  ``stop_line``), it is its back, the distance from the junction;
- speed: the analyser's speed (m/s); an unknown one (a track seen once) counts as moving
  at :data:`~atcs.control.zones.DEFAULT_SPEED_M_S`, as the queue measure takes an unknown
  speed as not slow;
- PCU: the class's factor on the segment.

The windows (:mod:`atcs.control.zones`) stay the fallback: a segment without a stop line,
or whose last frame is older than ``frame_stale_s`` (``[intersections.phase_mode]``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from atcs.control.zones import DEFAULT_SPEED_M_S, MAX_ZONE_VEHICLES
from controllers.phase.observe import ZoneSnapshot, ZoneVehicle

if TYPE_CHECKING:
    from atcs.metrics.analyzer import SegmentFrame


def zone_from_frame(frame: SegmentFrame, length_m: float, lanes: int) -> ZoneSnapshot | None:
    """Return the vehicles of ``frame`` as a zone of ``length_m`` m and ``lanes`` lanes.

    None when the segment has no stop line (no distances). At most
    :data:`~atcs.control.zones.MAX_ZONE_VEHICLES`, the nearest to the line first.
    """
    if frame.near_m is None or frame.speed_m_s is None:
        return None
    vehicles = [
        ZoneVehicle(
            max(0.0, float(near)),
            float(speed) if math.isfinite(speed) else DEFAULT_SPEED_M_S,
            float(pcu),
        )
        for near, speed, pcu in zip(
            frame.near_m.tolist(), frame.speed_m_s.tolist(), frame.member_pcu.tolist(), strict=True
        )
    ]
    vehicles.sort(key=lambda v: v.distance_m)
    return ZoneSnapshot(frame.segment_id, tuple(vehicles[:MAX_ZONE_VEHICLES]), length_m,
                        max(1, lanes))  # fmt: skip
