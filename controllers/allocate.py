"""Share a total green time between phases in proportion to weights, within bounds.

Webster splits by critical flow ratio, max-pressure by pressure and the safety envelope
rescales a clamped plan: all three need greens ``g_i = clamp(lam * w_i, lo_i, hi_i)`` whose
sum is a given total. :func:`allocate` finds ``lam`` by bisection (the sum is continuous
and non-decreasing in ``lam``) and spreads the last rounding residue over the phases that
still have room, so the result sums to the total to within floating-point precision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from atcs.errors import ControlError

_ITERATIONS = 200


def _clamped(
    lam: float, weights: Sequence[float], lo: Sequence[float], hi: Sequence[float]
) -> list[float]:
    return [min(h, max(low, lam * w)) for w, low, h in zip(weights, lo, hi, strict=True)]


def spread(
    values: Sequence[float], amount: float, lo: Sequence[float], hi: Sequence[float]
) -> list[float]:
    """Add ``amount`` (s, may be negative) to ``values`` in proportion to each one's room.

    Room is ``hi - value`` when adding and ``value - lo`` when taking away; the result stays
    within ``[lo, hi]`` and moves the sum by ``amount`` as far as the room allows.
    """
    out = list(values)
    if amount == 0:
        return out
    room = (
        [h - v for v, h in zip(out, hi, strict=True)]
        if amount > 0
        else [v - low for v, low in zip(out, lo, strict=True)]
    )
    room = [max(0.0, r) for r in room]
    total_room = math.fsum(room)
    if total_room <= 0:
        return out
    share = min(1.0, abs(amount) / total_room)
    sign = 1.0 if amount > 0 else -1.0
    out = [v + sign * share * r for v, r in zip(out, room, strict=True)]
    return [min(h, max(low, v)) for v, low, h in zip(out, lo, hi, strict=True)]


def allocate(
    total: float, lo: Sequence[float], hi: Sequence[float], weights: Sequence[float]
) -> list[float]:
    """Greens (s) within ``[lo_i, hi_i]``, proportional to ``weights`` where unclamped.

    The greens sum to ``total`` when ``sum(lo) <= total <= sum(hi)``; below that they are
    ``lo``, above it ``hi``. Where the weighted phases reach their maxima before the total
    is met, the rest is spread over the other phases in proportion to their room. Weights
    must be finite and non-negative; bounds must satisfy ``0 <= lo_i <= hi_i``.
    """
    n = len(lo)
    if len(hi) != n or len(weights) != n:
        raise ControlError("allocate: lo, hi and weights must have the same length")
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise ControlError(f"allocate: weights must be finite and >= 0, got {list(weights)}")
    if any(not (0 <= low <= h) for low, h in zip(lo, hi, strict=True)):
        raise ControlError("allocate: bounds must satisfy 0 <= lo <= hi")
    if total <= math.fsum(lo):
        return list(lo)
    if total >= math.fsum(hi):
        return list(hi)
    positive = [(h / w) for w, h in zip(weights, hi, strict=True) if w > 0]
    if not positive:
        return spread(lo, total - math.fsum(lo), lo, hi)
    low_lam, high_lam = 0.0, max(positive)
    greens = _clamped(high_lam, weights, lo, hi)
    if math.fsum(greens) < total:
        return spread(greens, total - math.fsum(greens), lo, hi)
    for _ in range(_ITERATIONS):
        mid = (low_lam + high_lam) / 2.0
        if mid in (low_lam, high_lam):
            break
        if math.fsum(_clamped(mid, weights, lo, hi)) < total:
            low_lam = mid
        else:
            high_lam = mid
    greens = _clamped(high_lam, weights, lo, hi)
    return spread(greens, total - math.fsum(greens), lo, hi)
