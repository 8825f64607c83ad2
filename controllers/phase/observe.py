"""What the phase-by-phase controllers see: camera zones now, and how phases use them.

Every second the engine has, per camera zone (a segment), the vehicles the camera detects
in it: their distance to the stop line (approaches) or from the junction (exits), their
speed and PCU (:class:`ZoneSnapshot`). A zone whose camera is down has no snapshot. The
:class:`PhaseLayout` says which approach zones each phase serves, with what weight (1 for
a protected movement, less for a permissive one, which must yield), how many lanes, and
which exit zones the movements discharge into. Distances in metres, speeds in m/s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from atcs.types import IntersectionId, PhaseId, SegmentId

HALTED_M_S = 1.0
"""A detected vehicle slower than this counts as queued (m/s)."""


@dataclass(frozen=True, slots=True)
class ZoneVehicle:
    """One detected vehicle: distance (m), speed (m/s) and its PCU value."""

    distance_m: float
    speed_m_s: float
    pcu: float = 1.0

    @property
    def halted(self) -> bool:
        """Tell whether the vehicle is queued (slower than :data:`HALTED_M_S`)."""
        return self.speed_m_s < HALTED_M_S


@dataclass(frozen=True, slots=True)
class ZoneSnapshot:
    """The vehicles a camera detects in one zone now; ``length_m`` and ``lanes`` of the zone."""

    segment_id: SegmentId
    vehicles: tuple[ZoneVehicle, ...]
    length_m: float
    lanes: int

    @property
    def pcu(self) -> float:
        """PCU in the zone."""
        return sum(v.pcu for v in self.vehicles)

    @property
    def halted_pcu(self) -> float:
        """PCU queued in the zone."""
        return sum(v.pcu for v in self.vehicles if v.halted)


@dataclass(frozen=True, slots=True)
class Feeder:
    """An exit zone of the junction upstream whose vehicles come on to an approach.

    A vehicle ``d`` metres past the upstream junction is ``offset_m - d`` metres from this
    approach's stop line; ``share`` of them (0..1) join this approach zone (the rest the
    other approach zones of the same road).
    """

    segment_id: SegmentId
    offset_m: float
    share: float = 1.0


@dataclass(frozen=True, slots=True)
class Movement:
    """One approach zone a phase serves, with ``weight`` (1: every vehicle counts in full).

    ``exits`` are the exit zones its vehicles discharge into; ``lanes`` its lane count;
    ``permissive`` that the phase serves it only permissively (its turns yield to
    opposing traffic and may wait inside the junction); ``feeders`` the exit zones of the
    junction upstream that see its vehicles coming before its own camera does.
    """

    segment_id: SegmentId
    weight: float
    lanes: int
    exits: tuple[SegmentId, ...] = ()
    permissive: bool = False
    feeders: tuple[Feeder, ...] = ()


@dataclass(frozen=True, slots=True)
class PhaseLayout:
    """The movements one phase serves."""

    phase_id: PhaseId
    movements: tuple[Movement, ...]


@dataclass(frozen=True, slots=True)
class IntersectionLayout:
    """How the phases of one intersection use its camera zones.

    ``exit_lanes`` gives each exit zone's lane count; ``lane_saturation_pcu_h`` the
    saturation flow of one lane (PCU per hour of green).
    """

    intersection_id: IntersectionId
    phases: tuple[PhaseLayout, ...]
    exit_lanes: Mapping[SegmentId, int]
    lane_saturation_pcu_h: float = 1800.0

    def phase(self, phase_id: PhaseId) -> PhaseLayout:
        """Return the layout of ``phase_id`` (KeyError when unknown)."""
        for p in self.phases:
            if p.phase_id == phase_id:
                return p
        raise KeyError(phase_id)


@dataclass(frozen=True, slots=True)
class ZoneView:
    """Every zone's snapshot at ``at_s`` (controller seconds); down zones are absent."""

    at_s: float
    zones: Mapping[SegmentId, ZoneSnapshot]

    def blind(self, layout: IntersectionLayout) -> frozenset[PhaseId]:
        """Phases with an approach zone that has no snapshot (its camera is down)."""
        return frozenset(
            p.phase_id
            for p in layout.phases
            if any(m.segment_id not in self.zones for m in p.movements)
        )
