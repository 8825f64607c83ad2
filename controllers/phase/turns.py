"""Turn clearance: a permissive green that leaves turners standing ends in their protected phase.

A left turn served permissively (it yields to the opposing through traffic) whose turners
found no gap leaves some of them waiting inside the junction, where the cameras cannot see
them. Cutting straight from that green to the crossing street can lock the junction for
good: the turners inside and the crossing traffic block each other (SUMO's cologne1 and
cologne3), or, between two lights a few metres apart, each light's turners wait for
traffic queued behind the other's (ingolstadt21). The network's own programs avoid it by
following a permissive green with the phase that serves the same turn protected; so do
the engine's controllers that use :class:`TurnMemory`.
"""

from __future__ import annotations

from atcs.types import PhaseId, SegmentId
from controllers.phase.observe import IntersectionLayout, PhaseLayout, ZoneView

HEAD_M = 10.0
"""Distance (m) from the stop line within which a queued vehicle heads its queue."""
TURN_MEMORY_S = 10.0
"""A permissive turner seen standing at the stop line this recently (s) calls its clearance."""
TURN_MEMORY_MAX = 256
"""At most this many approach zones remembered per intersection (the map stays bounded)."""


def turn_clearance(
    layout: IntersectionLayout, current: PhaseId, target: PhaseId, waiting: frozenset[SegmentId]
) -> PhaseId | None:
    """Return the phase to serve before ``target`` so that ``current``'s permissive turns clear.

    ``waiting`` are the permissive movements of ``current`` whose turners lately stood at
    the stop line (they found no gap; more may wait inside the junction): the phase that
    serves one of them protected, and only movements ``current`` already serves, goes
    first (None: no such phase, or ``target`` is it).
    """
    green = layout.phase(current)
    if not waiting:
        return None
    served_now = {m.segment_id for m in green.movements}
    for p in layout.phases:
        if p.phase_id == current:
            continue
        protected = {m.segment_id for m in p.movements if not m.permissive}
        if waiting & protected and {m.segment_id for m in p.movements} <= served_now:
            return None if p.phase_id == target else p.phase_id
    return None


class TurnMemory:
    """When each permissive movement last had a turner standing at its stop line in green.

    With ``zone_max_m``, only movements whose approach zone is at most that long (m) are
    watched (a short link between two close lights, where a stuck turner locks both).
    """

    def __init__(self, zone_max_m: float | None = None) -> None:
        self.zone_max_m = zone_max_m
        self._seen: dict[SegmentId, float] = {}

    def note(self, green: PhaseLayout, view: ZoneView, now: float) -> None:
        """Remember the permissive movements of ``green`` with a queued vehicle at the line."""
        for m in green.movements:
            zone = view.zones.get(m.segment_id)
            if (
                m.permissive
                and zone is not None
                and (self.zone_max_m is None or zone.length_m <= self.zone_max_m)
                and any(v.halted and v.distance_m <= HEAD_M for v in zone.vehicles)
            ):
                if m.segment_id not in self._seen and len(self._seen) >= TURN_MEMORY_MAX:
                    self._seen.pop(min(self._seen, key=self._seen.__getitem__))
                self._seen[m.segment_id] = now

    def clearing_phase(
        self, layout: IntersectionLayout, current: PhaseId, target: PhaseId, now: float
    ) -> PhaseId | None:
        """Return the protected phase to serve before leaving ``current`` for ``target``."""
        waiting = frozenset(
            m.segment_id
            for m in layout.phase(current).movements
            if m.permissive and now - self._seen.get(m.segment_id, -1e18) <= TURN_MEMORY_S
        )
        return turn_clearance(layout, current, target, waiting)
