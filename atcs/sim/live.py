"""What the emulated cameras see each second, for the phase-by-phase controllers (pure).

:class:`LiveZones` turns the vehicles each camera saw in a step (after its misses and
double counts, :class:`~atcs.sim.cameras.CameraEmulator`) and the vehicles' lane, position
and speed into one :class:`~controllers.phase.observe.ZoneSnapshot` per segment: each
detected vehicle's distance to the stop line (approaches) or from the junction (exits),
its speed and PCU. A camera that is down gives no snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from atcs.config import PcuConfig
from atcs.sim.cameras import DUPLICATE_SUFFIX
from atcs.sim.specs import SegmentLanes
from atcs.types import SegmentId, VehicleClass
from controllers.phase.observe import ZoneSnapshot, ZoneVehicle


@dataclass(frozen=True, slots=True)
class VehicleNow:
    """A vehicle this step: its lane, position on it (m from the lane start), speed (m/s)."""

    lane_id: str
    position_m: float
    speed_m_s: float


class LiveZones:
    """Per-step zone snapshots for ``segments`` (lane lengths in metres from SUMO)."""

    def __init__(
        self,
        segments: Iterable[SegmentLanes],
        lane_length_m: Mapping[str, float],
        pcu: PcuConfig | None = None,
    ) -> None:
        self._pcu = pcu or PcuConfig()
        self._segments = {s.segment_id: s for s in segments}
        # (segment, lane) -> (metres between the lane and the line, lane length, exit?)
        self._offsets: dict[tuple[SegmentId, str], tuple[float, float, bool]] = {}
        for seg in self._segments.values():
            for zone in seg.zones:
                lengths = [lane_length_m.get(lane, 0.0) for lane in zone.lanes]
                for k, lane in enumerate(zone.lanes):
                    offset = sum(lengths[:k]) if seg.exit else sum(lengths[k + 1 :])
                    self._offsets[(seg.segment_id, lane)] = (offset, lengths[k], seg.exit)
        self._factors = {cls: self._pcu.factor(cls, "protected") for cls in VehicleClass}

    def snapshot(
        self,
        seen: Mapping[SegmentId, Mapping[str, str]],
        vehicles: Mapping[str, VehicleNow],
        classes: Mapping[str, VehicleClass],
    ) -> dict[SegmentId, ZoneSnapshot]:
        """Snapshots of the segments in ``seen`` (vehicle id -> lane at the junction)."""
        out: dict[SegmentId, ZoneSnapshot] = {}
        for seg_id, inside in seen.items():
            seg = self._segments.get(seg_id)
            if seg is None:
                continue
            detected = []
            for vid in inside:
                real = vid.removesuffix(DUPLICATE_SUFFIX)
                now = vehicles.get(real)
                if now is None:
                    continue
                offset, length, exit_zone = self._offsets.get(
                    (seg_id, now.lane_id), (0.0, now.position_m, seg.exit)
                )
                if exit_zone:
                    distance = offset + now.position_m
                else:
                    distance = offset + max(0.0, length - now.position_m)
                factor = self._factors[classes.get(real, VehicleClass.CAR)]
                detected.append(ZoneVehicle(distance, now.speed_m_s, factor))
            out[seg_id] = ZoneSnapshot(seg_id, tuple(detected), seg.length_m, len(seg.lanes))
        return out
