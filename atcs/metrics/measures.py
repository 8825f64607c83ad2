"""Pure measure arithmetic: queue length, density, level of service (DESIGN.md, Measures)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from atcs.types import LevelOfService

_LOS_ORDER = tuple(LevelOfService)


def queue_length_m(
    near_m: npt.ArrayLike, far_m: npt.ArrayLike, slow: npt.ArrayLike, max_gap_m: float
) -> float:
    """Length in metres of the contiguous queue behind a stop line (:func:`queue_members`)."""
    return queue_members(near_m, far_m, slow, max_gap_m)[0]


def queue_members(
    near_m: npt.ArrayLike, far_m: npt.ArrayLike, slow: npt.ArrayLike, max_gap_m: float
) -> tuple[float, npt.NDArray[np.bool_]]:
    """Find the contiguous queue behind a stop line, bumper to bumper: length (m), members.

    Per vehicle (N,): ``near_m`` and ``far_m`` are the distances from the stop line of its
    front and back (the ends of its box along the road; negative values, past the line,
    count as 0); ``slow`` marks stopped or slow vehicles, the only ones that queue. The
    first queued vehicle's front must be within ``max_gap_m`` of the stop line, and each
    next one's front within ``max_gap_m`` of the back of the queue so far (the gap between
    bumpers, not between anchors). The length is the back of the last one: a single car
    stopped at the line gives its own length; 0 when there is no queue. ``members`` (N,)
    marks the vehicles in the queue.
    """
    near = np.maximum(np.asarray(near_m, dtype=np.float64).reshape(-1), 0.0)
    far = np.maximum(np.asarray(far_m, dtype=np.float64).reshape(-1), 0.0)
    mask = np.asarray(slow, dtype=np.bool_).reshape(-1)
    members = np.zeros(len(mask), dtype=np.bool_)
    rows = np.flatnonzero(mask)
    near, far = near[mask], np.maximum(far[mask], near[mask])
    order = np.argsort(near, kind="stable")
    back = 0.0
    for k in order.tolist():
        if near[k] - back > max_gap_m:
            break
        back = max(back, float(far[k]))
        members[rows[k]] = True
    return back, members


def density_pcu_km_lane(pcu: float, length_m: float, lanes: int) -> float:
    """Density in PCU per kilometre per lane: ``pcu / (length_m / 1000 * lanes)``."""
    return pcu / (length_m / 1000.0 * lanes)


def level_of_service(
    density: float, upper_bounds: tuple[float, float, float, float, float]
) -> LevelOfService:
    """Level of service from density: A while ``density <= upper_bounds[0]`` ... F above E."""
    for los, bound in zip(_LOS_ORDER, upper_bounds, strict=False):
        if density <= bound:
            return los
    return LevelOfService.F


def is_congested(los: LevelOfService, congested_from: LevelOfService) -> bool:
    """Tell whether ``los`` is ``congested_from`` or worse."""
    return _LOS_ORDER.index(los) >= _LOS_ORDER.index(congested_from)
