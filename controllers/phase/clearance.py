"""Clearance intervals by the ITE kinematic formula, per approach (durations in seconds).

- Yellow: ``Y = t + v / (2a + 2 G g)`` with reaction time ``t`` = 1.0 s, deceleration
  ``a`` = 3.05 m/s², ``g`` = 9.81 m/s², approach grade ``G`` (decimal, + uphill) and
  approach speed ``v`` (m/s, the 85th percentile or the limit); never below 3 s, and not
  above 6 s (beyond that the ITE guidance is to review the speed, not lengthen the amber).
- All-red: ``R = (W + L) / v`` with ``W`` the distance (m) from the stop line to the far
  side of the last conflicting lane and ``L`` = 6 m the vehicle length; never below 1 s.
- Pedestrians: walk of 7 s (4 s where pedestrians are few), clearance = crossing length /
  1.07 m/s.

:func:`whole_ticks_s` rounds an interval up to the controller's tick, so that what a
controller with a 1-s tick shows is never shorter than the formula asks.
"""

from __future__ import annotations

import math

from atcs.errors import ControlError

REACTION_S = 1.0
DECELERATION_M_S2 = 3.05
GRAVITY_M_S2 = 9.81
VEHICLE_LENGTH_M = 6.0
YELLOW_FLOOR_S = 3.0
YELLOW_CAP_S = 6.0
ALL_RED_FLOOR_S = 1.0
WALK_S = 7.0
PEDESTRIAN_SPEED_M_S = 1.07


def _positive(value: float, what: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ControlError(f"{what} must be a positive finite number, got {value!r}")


def ite_yellow_s(speed_m_s: float, grade: float = 0.0) -> float:
    """ITE yellow (s) for an approach at ``speed_m_s`` on ``grade``, within [3, 6] s."""
    _positive(speed_m_s, "approach speed")
    brake = 2 * DECELERATION_M_S2 + 2 * grade * GRAVITY_M_S2
    if not (math.isfinite(grade) and brake > 0):
        raise ControlError(f"grade {grade!r} leaves no braking deceleration")
    raw = REACTION_S + speed_m_s / brake
    return min(YELLOW_CAP_S, max(YELLOW_FLOOR_S, raw))


def ite_all_red_s(width_m: float, speed_m_s: float) -> float:
    """ITE all-red (s): crossing ``width_m`` plus a vehicle length at ``speed_m_s``, >= 1 s."""
    _positive(speed_m_s, "approach speed")
    if not (math.isfinite(width_m) and width_m >= 0):
        raise ControlError(f"crossing width must be finite and >= 0, got {width_m!r}")
    return max(ALL_RED_FLOOR_S, (width_m + VEHICLE_LENGTH_M) / speed_m_s)


def pedestrian_clearance_s(crossing_m: float, speed_m_s: float = PEDESTRIAN_SPEED_M_S) -> float:
    """Flashing-don't-walk time (s) for a crossing of ``crossing_m`` at ``speed_m_s``."""
    _positive(speed_m_s, "walking speed")
    if not (math.isfinite(crossing_m) and crossing_m >= 0):
        raise ControlError(f"crossing length must be finite and >= 0, got {crossing_m!r}")
    return crossing_m / speed_m_s


def whole_ticks_s(seconds: float, tick_s: float = 1.0) -> float:
    """``seconds`` rounded up to whole ticks of ``tick_s`` (tolerance 1 µs)."""
    _positive(tick_s, "tick")
    return math.ceil(seconds / tick_s - 1e-6) * tick_s
