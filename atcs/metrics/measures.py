"""Pure measure arithmetic: queue length, density, level of service (DESIGN.md, Measures)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from atcs.types import LevelOfService

_LOS_ORDER = tuple(LevelOfService)


def queue_length_m(distances_m: npt.ArrayLike, slow: npt.ArrayLike, max_gap_m: float) -> float:
    """Length in metres of the contiguous queue behind a stop line.

    ``distances_m`` (N,) are the vehicles' distances from the stop line (negative values,
    vehicles past the line, count as 0); ``slow`` (N,) marks stopped or slow vehicles; only
    those queue. The first queued vehicle must be within ``max_gap_m`` of the stop line and
    each next one within ``max_gap_m`` of the previous; the answer is the distance of the
    last one, or 0 when there is no queue.
    """
    dist = np.asarray(distances_m, dtype=np.float64).reshape(-1)
    mask = np.asarray(slow, dtype=np.bool_).reshape(-1)
    queued = np.sort(np.maximum(dist[mask], 0.0))
    length = 0.0
    for d in queued.tolist():
        if d - length > max_gap_m:
            break
        length = d
    return length


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
