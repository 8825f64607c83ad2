"""True max-pressure (Varaiya 2013) on camera zones, phase by phase.

At the end of every slot of ``slot_s`` seconds of green (after the phase's minimum green)
the phase of largest pressure is served for the next slot: it stays in green if it is the
one in green, otherwise the signal changes to it. A phase's pressure is, over its
movements, ``weight x lanes x saturation flow x (q_in / lanes - q_out / lanes_out)``, with
``q_in`` the PCU queued in the movement's approach zone and ``q_out`` the mean PCU queued
per lane in the exit zones it discharges into (the downstream queue, where the turning
ratios are not known: each exit weighs the same).
"""

from __future__ import annotations

from controllers.phase.base import SlottedArgmax
from controllers.phase.observe import IntersectionLayout, PhaseLayout, ZoneView

PHASE_MAX_PRESSURE = "phase-max-pressure"


def phase_pressure(layout: IntersectionLayout, phase: PhaseLayout, view: ZoneView) -> float:
    """Varaiya's pressure of ``phase`` (PCU x PCU/h per lane, see the module docstring)."""
    total = 0.0
    for m in phase.movements:
        zone = view.zones.get(m.segment_id)
        q_in = 0.0 if zone is None else zone.halted_pcu
        outs = []
        for exit_id in m.exits:
            out = view.zones.get(exit_id)
            if out is not None:
                outs.append(out.halted_pcu / max(1, layout.exit_lanes.get(exit_id, out.lanes)))
        q_out = sum(outs) / len(outs) if outs else 0.0
        lanes = max(1, m.lanes)
        total += m.weight * lanes * layout.lane_saturation_pcu_h * (q_in / lanes - q_out)
    return total


class PhaseMaxPressure(SlottedArgmax):
    """Varaiya's max-pressure, one decision per ``slot_s`` seconds of green."""

    name = PHASE_MAX_PRESSURE
    what = "max pressure"

    def __init__(self, slot_s: float = 10.0) -> None:
        super().__init__(slot_s)

    def score(self, layout: IntersectionLayout, phase: PhaseLayout, view: ZoneView) -> float:
        """Return Varaiya's pressure of ``phase``."""
        return phase_pressure(layout, phase, view)
