"""Coordination in cycle mode: a common cycle with offsets for a green wave (pure but XML).

:func:`green_wave` gives every retimed light the same cycle (the longest of their
fixed-time cycles, the extra time shared among its greens in proportion, within each
green's maximum) and an offset so that a vehicle leaving the westmost light at the start
of a cycle, and driving east at ``speed_m_s``, finds each following light starting its
cycle too: ``offset = (x - x_west) / speed mod cycle``, with ``x`` the
position (m) of the light's junction in the network. The plans' offsets reach SUMO
through the emulated controller, which honours them (:mod:`atcs.sim.bridge`).

This is the classic one-way progression along an arterial (the RESCO ``arterial4x4``
map runs its arterials west to east). Every light there runs the same phases in the same
order with the same greens, so shifting whole cycles by the travel time shifts the
arterial's green (whichever phase serves it) by the same amount.
"""

from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from atcs.errors import SimulationError
from atcs.sim.specs import SimIntersection
from atcs.types import PhaseId


def junction_x_m(net_file: Path, ids: Sequence[str]) -> dict[str, float]:
    """Return the x position (m) of the junctions called ``ids`` in ``net_file``."""
    wanted = set(ids)
    out: dict[str, float] = {}
    try:
        for _, element in ET.iterparse(net_file):  # noqa: S314 - a local, trusted SUMO file
            if element.tag == "junction" and element.get("id") in wanted:
                out[str(element.get("id"))] = float(element.get("x", "nan"))
            element.clear()
    except (OSError, ET.ParseError, ValueError) as exc:
        raise SimulationError(f"cannot read junction positions from {net_file}: {exc}") from exc
    return out


def _fixed_cycle_s(ix: SimIntersection) -> float:
    spec = ix.spec
    lost = sum(p.yellow_s + p.all_red_s for p in spec.phases)
    return sum(spec.fallback_plans[0].greens_s.values()) + lost


def _stretched(ix: SimIntersection, cycle_s: float) -> dict[PhaseId, float]:
    """Return the fixed greens of ``ix`` stretched to ``cycle_s``, each within its maximum."""
    greens = dict(ix.spec.fallback_plans[0].greens_s)
    spare = cycle_s - _fixed_cycle_s(ix)
    for _ in range(len(greens)):
        room = {p.phase_id: p.max_green_s - greens[p.phase_id] for p in ix.spec.phases}
        open_ids = [k for k, r in room.items() if r > 1e-9]
        if spare <= 1e-9 or not open_ids:
            break
        total = sum(greens[k] for k in open_ids)
        used = 0.0
        for k in open_ids:
            add = min(room[k], spare * greens[k] / total)
            greens[k] += add
            used += add
        spare -= used
    if spare > 1e-6:
        raise SimulationError(
            f"{ix.tls_id}: cannot reach the common cycle {cycle_s:g} s within max greens"
        )
    return greens


def green_wave(
    intersections: Sequence[SimIntersection], net_file: Path, speed_m_s: float
) -> tuple[SimIntersection, ...]:
    """Return ``intersections`` on a common cycle with west-to-east green-wave offsets."""
    if not (math.isfinite(speed_m_s) and speed_m_s > 0):
        raise SimulationError(f"green-wave speed must be positive, got {speed_m_s!r}")
    xs = junction_x_m(net_file, [ix.tls_id for ix in intersections])
    missing = [ix.tls_id for ix in intersections if ix.tls_id not in xs]
    if missing:
        raise SimulationError(
            f"no junction position for light(s) {', '.join(missing)}: a green wave needs "
            "each light on a junction of the same id"
        )
    cycle_s = max(_fixed_cycle_s(ix) for ix in intersections)
    west = min(xs.values())
    out = []
    for ix in intersections:
        offset_s = round(((xs[ix.tls_id] - west) / speed_m_s) % cycle_s, 1) % cycle_s
        plan = dataclasses.replace(
            ix.spec.fallback_plans[0],
            greens_s=_stretched(ix, cycle_s),
            offset_s=offset_s,
            name=f"green wave {speed_m_s:g} m/s",
        )
        if not ix.spec.cycle_min_s - 1e-9 <= cycle_s <= ix.spec.cycle_max_s + 1e-9:
            raise SimulationError(
                f"{ix.tls_id}: the common cycle {cycle_s:g} s is outside its bounds "
                f"[{ix.spec.cycle_min_s:g}, {ix.spec.cycle_max_s:g}] s"
            )
        spec = dataclasses.replace(ix.spec, fallback_plans=(plan,), offset_s=offset_s)
        out.append(dataclasses.replace(ix, spec=spec))
    return tuple(out)
