"""What the phase controllers see of a camera zone without frames: its window, spread.

The in-process engine gives the phase controllers each frame's vehicles where a segment
has a stop line (:mod:`atcs.control.frame_zones`); this is the fallback for the others,
for frames gone stale and for a control node fed by the bus.

In the simulator the phase controllers see every detected vehicle with its distance to
the stop line and its speed, each second. The live service measures windows (10 s by
default): per segment the mean number of vehicles, their PCU, the queue from the stop
line (where one is drawn) and the ground speed (where the camera is calibrated).
:func:`zone_from_window` turns the newest fresh window into the same
:class:`~controllers.phase.observe.ZoneSnapshot` (pure):

- ``round(vehicles)`` vehicles, each with the window's mean PCU per vehicle;
- the queued ones: with a measured queue, as many as fill ``queue_m`` over the segment's
  lanes at :data:`QUEUED_SPACING_M` per vehicle (all of them at most); without a queue
  but with a speed, all of them when the mean speed is below walking pace
  (:data:`HALTED_KMH`), none otherwise; with neither, all of them on an approach (a
  vehicle seen on an approach of a signal is taken as waiting for its green) and none on
  an exit (nothing says the exit is jammed: taking every vehicle leaving the junction as
  queued would end every green that feeds a busy exit by the spillback guard);
- queued vehicles stand bumper to bumper from the stop line, lane by lane (speed 0);
  the others are spread evenly over the rest of the segment at the measured speed
  (:data:`DEFAULT_SPEED_M_S` when none is measured).

A segment without a fresh window (camera down, measures older than ``stale_after_s``)
has no snapshot: its phases are blind, so the controllers put them on recall.
"""

from __future__ import annotations

import math

from atcs.types import SegmentId, SegmentMetrics
from controllers.phase.observe import ZoneSnapshot, ZoneVehicle

QUEUED_SPACING_M = 7.0
"""Road length one queued vehicle takes in a lane (m)."""

HALTED_KMH = 5.0
"""Mean speed below which a segment without a queue measure counts as queued (km/h)."""

DEFAULT_SPEED_M_S = 8.0
"""Speed given to moving vehicles when the camera measures none (m/s)."""

MAX_ZONE_VEHICLES = 500
"""Most vehicles one zone is spread into (a bound on a corrupt window)."""


def _queued(queue_m: float | None, speed_kmh: float | None, n: int, lanes: int, *,
            exit_zone: bool) -> int:  # fmt: skip
    if queue_m is not None:
        return min(n, math.ceil(max(0.0, queue_m) * lanes / QUEUED_SPACING_M - 1e-9))
    if speed_kmh is not None:
        return n if speed_kmh < HALTED_KMH else 0
    return 0 if exit_zone else n


def zone_from_measures(
    segment_id: SegmentId,
    *,
    vehicles: float,
    pcu: float,
    queue_m: float | None,
    speed_kmh: float | None,
    length_m: float,
    lanes: int,
    exit_zone: bool = False,
) -> ZoneSnapshot:
    """Spread a window's measures over a zone of ``length_m`` metres and ``lanes`` lanes.

    ``vehicles`` and ``pcu`` are the window's means, ``queue_m`` its queue from the stop
    line (m) and ``speed_kmh`` its mean ground speed (None: not measured); ``exit_zone``:
    the segment leaves the junction (a vehicle there is not waiting for this signal's
    green).
    """
    lanes = max(1, lanes)
    n = min(MAX_ZONE_VEHICLES, max(0, round(vehicles)))
    pcu_each = pcu / vehicles if vehicles > 0 else 1.0
    queued = _queued(queue_m, speed_kmh, n, lanes, exit_zone=exit_zone)
    spread = [
        ZoneVehicle((k // lanes) * QUEUED_SPACING_M + 1.0, 0.0, pcu_each) for k in range(queued)
    ]
    moving = n - queued
    if moving:
        start = math.ceil(queued / lanes) * QUEUED_SPACING_M
        span = max(1.0, length_m - start)
        speed = DEFAULT_SPEED_M_S if speed_kmh is None else speed_kmh / 3.6
        speed = max(speed, 1.0)  # moving: never counted as halted
        spread += [
            ZoneVehicle(start + span * (k + 0.5) / moving, speed, pcu_each) for k in range(moving)
        ]
    return ZoneSnapshot(segment_id, tuple(spread), length_m, lanes)


def zone_from_window(
    metrics: SegmentMetrics, length_m: float, lanes: int, *, exit_zone: bool = False
) -> ZoneSnapshot:
    """Spread ``metrics`` over a zone of ``length_m`` metres and ``lanes`` lanes.

    ``exit_zone``: the segment leaves the junction (see :func:`zone_from_measures`).
    """
    return zone_from_measures(
        metrics.segment_id,
        vehicles=metrics.vehicles,
        pcu=metrics.pcu,
        queue_m=metrics.queue_m,
        speed_kmh=metrics.speed_kmh,
        length_m=length_m,
        lanes=lanes,
        exit_zone=exit_zone,
    )
