"""Trip statistics from SUMO's outputs and the comparison table / ``summary.json``.

Delay follows RESCO (Ault & Sharon 2021): per vehicle, SUMO's ``timeLoss`` plus its
``departDelay`` (time waiting to enter the network), over every vehicle that departed,
including those still driving at the end (``--tripinfo-output.write-unfinished``), plus,
for vehicles that could not enter at all, the time they waited to the end.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from atcs.errors import SimulationError


@dataclass(frozen=True, slots=True)
class TripStats:
    """Trip statistics of one run; times in seconds, throughput in vehicles per hour.

    ``mean_delay_s`` is RESCO's delay (time loss plus departure delay, never-inserted
    vehicles included); ``mean_time_loss_s`` SUMO's time loss alone over departed
    vehicles; ``mean_trip_time_s`` the mean duration of completed trips;
    ``mean_waiting_time_s`` the mean time spent stopped per departed vehicle.
    """

    vehicles_completed: int
    vehicles_unfinished: int
    vehicles_not_inserted: int
    mean_delay_s: float
    mean_time_loss_s: float
    mean_trip_time_s: float
    mean_waiting_time_s: float
    mean_depart_delay_s: float
    throughput_veh_h: float
    collisions: int
    teleports: int


def _float(attrs: Mapping[str, str], key: str) -> float:
    try:
        return float(attrs.get(key, "0") or 0)
    except ValueError:
        return 0.0


def read_trip_stats(tripinfo: Path, statistics: Path, duration_s: float) -> TripStats:
    """Read ``tripinfo`` and ``statistics`` XML outputs of a run of ``duration_s`` seconds."""
    if not tripinfo.is_file() or not statistics.is_file():
        raise SimulationError(f"SUMO wrote no trip outputs ({tripinfo}, {statistics})")
    completed = unfinished = 0
    delay = time_loss = trip_time = waiting = depart_delay = 0.0
    try:
        for _, elem in ET.iterparse(tripinfo, events=("end",)):  # noqa: S314 - our own output
            if elem.tag != "tripinfo":
                continue
            a = elem.attrib
            loss = _float(a, "timeLoss")
            dd = _float(a, "departDelay")
            delay += loss + dd
            time_loss += loss
            depart_delay += dd
            waiting += _float(a, "waitingTime")
            if _float(a, "arrival") >= 0:
                completed += 1
                trip_time += _float(a, "duration")
            else:
                unfinished += 1
            elem.clear()
        root = ET.parse(statistics).getroot()  # noqa: S314 - our own output
    except ET.ParseError as exc:
        raise SimulationError(f"unreadable SUMO output: {exc}") from exc
    vehicles = root.find("vehicles")
    waiting_n = int(_float({} if vehicles is None else vehicles.attrib, "waiting"))
    trip_stats = root.find("vehicleTripStatistics")
    never = _float({} if trip_stats is None else trip_stats.attrib, "departDelayWaiting")
    teleports = root.find("teleports")
    safety = root.find("safety")
    departed = completed + unfinished
    everyone = departed + waiting_n
    return TripStats(
        vehicles_completed=completed,
        vehicles_unfinished=unfinished,
        vehicles_not_inserted=waiting_n,
        mean_delay_s=(delay + waiting_n * max(0.0, never)) / everyone if everyone else 0.0,
        mean_time_loss_s=time_loss / departed if departed else 0.0,
        mean_trip_time_s=trip_time / completed if completed else 0.0,
        mean_waiting_time_s=waiting / departed if departed else 0.0,
        mean_depart_delay_s=depart_delay / departed if departed else 0.0,
        throughput_veh_h=completed * 3600.0 / duration_s if duration_s > 0 else 0.0,
        collisions=int(_float({} if safety is None else safety.attrib, "collisions")),
        teleports=int(_float({} if teleports is None else teleports.attrib, "total")),
    )


@dataclass(frozen=True, slots=True)
class ControllerResult:
    """One controller's closed-loop run: trips, queues, plans and the safety audit.

    ``mean_queue_veh`` is the mean number of vehicles halted in the cameras' approach
    zones (all intersections together); ``safety_violations`` counts what the audit of
    the states SUMO really showed found (must be 0); ``plans`` counts plans sent, applied
    and rejected, ``envelope`` the safety envelope's verdicts.
    """

    controller: str
    trips: TripStats
    mean_queue_veh: float
    safety_violations: int
    violation_examples: tuple[str, ...]
    cycles_observed: int
    plans: Mapping[str, int] = field(default_factory=dict)
    envelope: Mapping[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Return the controller's entry of ``summary.json``."""
        trips = asdict(self.trips)
        return {
            "mean_delay_s": trips.pop("mean_delay_s"),
            "mean_trip_time_s": trips.pop("mean_trip_time_s"),
            "mean_waiting_time_s": trips.pop("mean_waiting_time_s"),
            "vehicles_completed": trips.pop("vehicles_completed"),
            "safety_violations": self.safety_violations,
            **trips,
            "mean_queue_veh": self.mean_queue_veh,
            "cycles_observed": self.cycles_observed,
            "plans": dict(self.plans),
            "envelope": dict(self.envelope),
            "violation_examples": list(self.violation_examples),
            "wall_s": self.wall_s,
        }


@dataclass(frozen=True, slots=True)
class SimulationSummary:
    """Every controller's result on one scenario (``begin_s``..``end_s`` SUMO seconds)."""

    scenario: str
    begin_s: float
    end_s: float
    seed: int
    intersections: tuple[str, ...]
    results: tuple[ControllerResult, ...]

    def result(self, controller: str) -> ControllerResult:
        """Return the result of ``controller``."""
        for res in self.results:
            if res.controller == controller:
                return res
        raise KeyError(controller)

    def to_json(self) -> dict[str, Any]:
        """Return the content of ``summary.json``."""
        return {
            "scenario": self.scenario,
            "begin_s": self.begin_s,
            "end_s": self.end_s,
            "seconds": self.end_s - self.begin_s,
            "seed": self.seed,
            "intersections": list(self.intersections),
            "delay_definition": "mean of timeLoss + departDelay per vehicle (RESCO)",
            "controllers": {r.controller: r.to_json() for r in self.results},
        }

    def write(self, path: Path) -> None:
        """Write ``summary.json`` to ``path``."""
        path.write_text(json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n", "utf-8")

    def table(self) -> str:
        """Return the comparison table printed by ``atcs simulate``."""
        return format_table(self.scenario, self.end_s - self.begin_s, self.results)


def _cell(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.1f}"


def format_table(scenario: str, seconds: float, results: Sequence[ControllerResult]) -> str:
    """Return a plain-text table of ``results`` on ``scenario``."""
    head = (
        f"{'controller':<14}{'delay s':>9}{'trip s':>9}{'wait s':>9}{'queue veh':>11}"
        f"{'done':>7}{'left':>6}{'veh/h':>8}{'violations':>12}"
    )
    lines = [f"scenario {scenario}, {seconds:g} simulated s", head, "-" * len(head)]
    for r in results:
        t = r.trips
        lines.append(
            f"{r.controller:<14}{_cell(t.mean_delay_s):>9}{_cell(t.mean_trip_time_s):>9}"
            f"{_cell(t.mean_waiting_time_s):>9}{_cell(r.mean_queue_veh):>11}"
            f"{t.vehicles_completed:>7}{t.vehicles_unfinished + t.vehicles_not_inserted:>6}"
            f"{_cell(t.throughput_veh_h):>8}{r.safety_violations:>12}"
        )
    return "\n".join(lines)
