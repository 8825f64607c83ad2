"""The vehicles of a running simulation, as the closed loop needs them (SUMO I/O).

Keeps each vehicle's class (from its departure to its arrival), resolves which signal
link a vehicle in an approach zone will take (asked once per vehicle and lane), reads
the lane, position and speed of the vehicles the cameras see, and finds the longest any
vehicle has stood still. Per-vehicle maps are bounded by :data:`MAX_VEHICLE_CACHE`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType

from atcs.sim.cameras import DUPLICATE_SUFFIX, vehicle_class
from atcs.sim.live import VehicleNow
from atcs.types import SegmentId, VehicleClass

MAX_VEHICLE_CACHE = 200_000
"""Bound on the per-vehicle maps (class, signal link): vehicles in the network at once."""


class VehicleTable:
    """Per-vehicle facts read from ``sumo`` (libsumo or TraCI)."""

    def __init__(self, sumo: ModuleType) -> None:
        self._sumo = sumo
        self.classes: dict[str, VehicleClass] = {}
        self._links: dict[str, tuple[str, int | None]] = {}

    def update(self) -> None:
        """Note the vehicles that departed and arrived in the last step."""
        sumo = self._sumo
        for vid in sumo.simulation.getDepartedIDList():
            if len(self.classes) < MAX_VEHICLE_CACHE:
                self.classes[vid] = vehicle_class(sumo.vehicle.getVehicleClass(vid))
        for vid in sumo.simulation.getArrivedIDList():
            self.classes.pop(vid, None)
            self._links.pop(vid, None)

    def resolve(self, vid: str, lane: str, tls: str) -> int | None:
        """Return the signal link of ``tls`` that vehicle ``vid`` on ``lane`` will take."""
        cached = self._links.get(vid)
        if cached is not None and cached[0] == lane:
            return cached[1]
        found: int | None = None
        for tls_id, index, _dist, _state in self._sumo.vehicle.getNextTLS(vid):
            if tls_id == tls:
                found = int(index)
                break
        if len(self._links) < MAX_VEHICLE_CACHE:
            self._links[vid] = (lane, found)
        return found

    def now(self, seen: Mapping[SegmentId, Mapping[str, str]]) -> dict[str, VehicleNow]:
        """Lane, position and speed of every vehicle in ``seen``."""
        vehicle = self._sumo.vehicle
        out: dict[str, VehicleNow] = {}
        for inside in seen.values():
            for vid in inside:
                real = vid.removesuffix(DUPLICATE_SUFFIX)
                if real not in out:
                    out[real] = VehicleNow(
                        str(vehicle.getLaneID(real)),
                        float(vehicle.getLanePosition(real)),
                        float(vehicle.getSpeed(real)),
                    )
        return out

    def stops(self, threshold_s: float) -> tuple[float, int]:
        """Return the longest any vehicle has now stood still (s), and the stuck count.

        The count is of the vehicles that have stood still for ``threshold_s`` or more.
        """
        vehicle = self._sumo.vehicle
        waits = [float(vehicle.getWaitingTime(v)) for v in vehicle.getIDList()]
        return max(waits, default=0.0), sum(w >= threshold_s for w in waits)
