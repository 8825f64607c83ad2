"""Trip statistics from SUMO's outputs and the comparison table / ``summary.json``.

Delay follows RESCO (Ault & Sharon 2021): per vehicle, SUMO's ``timeLoss`` plus its
``departDelay`` (time waiting to enter the network), over every vehicle that departed,
including those still driving at the end (``--tripinfo-output.write-unfinished``), plus,
for vehicles that could not enter at all, the time they waited to the end (SUMO's count
of vehicles still waiting; RESCO's code estimates those from the route file instead, see
docs/simulation.md, "Measures of performance").
"""

from __future__ import annotations

import json
import math
import statistics
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from atcs.errors import SimulationError
from atcs.sim.resco_delay import never_entered_charge

GRIDLOCK_STOPPED_S = 300.0
"""A vehicle that stood still this long (s) without moving at all is stuck: its lane did not
move for five minutes, longer than any red the engine allows (120 s on the RESCO networks)."""

GRIDLOCK_VEHICLES = 10
"""A run gridlocked when this many vehicles were stuck at once: a jam that no longer
clears, not one vehicle waiting for a lane change (the longest stop is reported too)."""


@dataclass(frozen=True, slots=True)
class TripStats:
    """Trip statistics of one run; times in seconds, throughput in vehicles per hour.

    ``mean_delay_s`` is RESCO's delay (time loss plus departure delay, never-inserted
    vehicles included); ``mean_time_loss_s`` SUMO's time loss alone over departed
    vehicles; ``mean_trip_time_s`` the mean duration of completed trips;
    ``mean_waiting_time_s`` the mean time spent stopped per departed vehicle;
    ``p95_delay_s`` the 95th percentile of the per-vehicle delays (never-inserted vehicles
    each counted with their mean wait); ``resco_code_delay_s`` the mean delay as RESCO's
    published code computes it, with ``resco_code_never_entered`` the vehicles it charges
    as never departed (:mod:`atcs.sim.resco_delay`; None without the route files).
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
    p95_delay_s: float = 0.0
    resco_code_delay_s: float | None = None
    resco_code_never_entered: int | None = None


def _float(attrs: Mapping[str, str], key: str) -> float:
    try:
        return float(attrs.get(key, "0") or 0)
    except ValueError:
        return 0.0


def read_trip_stats(
    tripinfo: Path,
    statistics: Path,
    duration_s: float,
    route_files: Sequence[Path] = (),
    end_s: float | None = None,
) -> TripStats:
    """Read ``tripinfo`` and ``statistics`` XML outputs of a run of ``duration_s`` seconds.

    With the scenario's ``route_files`` and the run's ``end_s`` (s), also the delay as
    RESCO's code computes it.
    """
    if not tripinfo.is_file() or not statistics.is_file():
        raise SimulationError(f"SUMO wrote no trip outputs ({tripinfo}, {statistics})")
    completed = unfinished = 0
    last_depart, last_scheduled = 0.0, float("-inf")
    delays: list[float] = []
    delay = time_loss = trip_time = waiting = depart_delay = 0.0
    try:
        for _, elem in ET.iterparse(tripinfo, events=("end",)):  # noqa: S314 - our own output
            if elem.tag != "tripinfo":
                continue
            a = elem.attrib
            loss = _float(a, "timeLoss")
            dd = _float(a, "departDelay")
            depart = _float(a, "depart")
            if depart > last_depart:  # RESCO's "last departed": the first of ties;
                # its schedule (RESCO reads it from the route file) is depart - departDelay
                last_depart, last_scheduled = depart, depart - dd
            delay += loss + dd
            delays.append(loss + dd)
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
    resco = (
        never_entered_charge(route_files, last_scheduled, end_s)
        if route_files and end_s is not None and math.isfinite(last_scheduled)
        else None
    )
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
        p95_delay_s=percentile(delays + [max(0.0, never)] * waiting_n, 0.95),
        resco_code_delay_s=None if resco is None else (delay + resco[1]) / (departed + resco[0]),
        resco_code_never_entered=None if resco is None else resco[0],
    )


def percentile(values: Sequence[float], q: float) -> float:
    """Return the ``q`` quantile (0..1) of ``values``, nearest rank (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[rank]


@dataclass(frozen=True, slots=True)
class ControllerResult:
    """One controller's closed-loop run: trips, queues, plans and the safety audit.

    ``mean_queue_veh`` is the mean number of vehicles halted in the cameras' approach
    zones (all intersections together); ``safety_violations`` counts what the audit of
    the states SUMO really showed found (must be 0); ``plans`` counts plans sent, applied
    and rejected, ``envelope`` the safety envelope's verdicts; ``bus_zones`` the zone
    messages of the view ``bus`` (sent, lost, and zones taken from the windows instead).
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
    kind: str = "engine"
    seed: int = 1
    max_stopped_s: float = 0.0
    stuck_vehicles: int = 0
    bus_zones: Mapping[str, int] = field(default_factory=dict)

    @property
    def gridlocked(self) -> bool:
        """Tell whether :data:`GRIDLOCK_VEHICLES` vehicles were stuck at once."""
        return self.stuck_vehicles >= GRIDLOCK_VEHICLES

    def to_json(self) -> dict[str, Any]:
        """Return the controller's entry of ``summary.json``."""
        trips = asdict(self.trips)
        return {
            "kind": self.kind,
            "seed": self.seed,
            "mean_delay_s": trips.pop("mean_delay_s"),
            "p95_delay_s": trips.pop("p95_delay_s"),
            "gridlocked": self.gridlocked,
            "max_stopped_s": self.max_stopped_s,
            "stuck_vehicles": self.stuck_vehicles,
            "mean_trip_time_s": trips.pop("mean_trip_time_s"),
            "mean_waiting_time_s": trips.pop("mean_waiting_time_s"),
            "vehicles_completed": trips.pop("vehicles_completed"),
            "safety_violations": self.safety_violations,
            **trips,
            "mean_queue_veh": self.mean_queue_veh,
            "cycles_observed": self.cycles_observed,
            "plans": dict(self.plans),
            "envelope": dict(self.envelope),
            "bus_zones": dict(self.bus_zones),
            "violation_examples": list(self.violation_examples),
            "wall_s": self.wall_s,
        }


@dataclass(frozen=True, slots=True)
class ControllerSummary:
    """One controller's runs over seeds, and their aggregate (delays in s)."""

    controller: str
    kind: str
    runs: tuple[ControllerResult, ...]

    def delays(self) -> list[float]:
        """Mean delay of each run."""
        return [r.trips.mean_delay_s for r in self.runs]

    @property
    def mean_delay_s(self) -> float:
        """Mean over seeds of the mean delay."""
        return statistics.fmean(self.delays())

    @property
    def median_delay_s(self) -> float:
        """Median over seeds of the mean delay."""
        return statistics.median(self.delays())

    @property
    def p95_delay_s(self) -> float:
        """Mean over seeds of the 95th-percentile delay."""
        return statistics.fmean(r.trips.p95_delay_s for r in self.runs)

    @property
    def gridlocks(self) -> int:
        """Runs that gridlocked."""
        return sum(r.gridlocked for r in self.runs)

    @property
    def safety_violations(self) -> int:
        """Violations over every run."""
        return sum(r.safety_violations for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        """Return the controller's entry of ``summary.json``: aggregate, then each run."""
        first = self.runs[0].to_json()
        return {
            **first,
            "kind": self.kind,
            "seeds": [r.seed for r in self.runs],
            "mean_delay_s": self.mean_delay_s,
            "median_delay_s": self.median_delay_s,
            "p95_delay_s": self.p95_delay_s,
            "gridlocked": self.gridlocks > 0,
            "gridlocks": self.gridlocks,
            "safety_violations": self.safety_violations,
            "wall_s": statistics.fmean(r.wall_s for r in self.runs),
            "runs": [r.to_json() for r in self.runs],
        }


@dataclass(frozen=True, slots=True)
class SimulationSummary:
    """Every controller's runs on one scenario (``begin_s``..``end_s`` SUMO seconds)."""

    scenario: str
    begin_s: float
    end_s: float
    seeds: tuple[int, ...]
    intersections: tuple[str, ...]
    summaries: tuple[ControllerSummary, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)

    def result(self, controller: str, seed: int | None = None) -> ControllerResult:
        """Return the run of ``controller`` (its first seed, or ``seed``)."""
        for summary in self.summaries:
            if summary.controller == controller:
                for run in summary.runs:
                    if seed is None or run.seed == seed:
                        return run
        raise KeyError(controller)

    def to_json(self) -> dict[str, Any]:
        """Return the content of ``summary.json``."""
        return {
            "scenario": self.scenario,
            "begin_s": self.begin_s,
            "end_s": self.end_s,
            "seconds": self.end_s - self.begin_s,
            "seed": self.seeds[0] if self.seeds else None,
            "seeds": list(self.seeds),
            "intersections": list(self.intersections),
            "settings": dict(self.settings),
            "delay_definition": "mean of timeLoss + departDelay per vehicle (RESCO)",
            "gridlock_definition": (
                f"{GRIDLOCK_VEHICLES} or more vehicles at once had each stood still "
                f"(< 0.1 m/s) for {GRIDLOCK_STOPPED_S:g} s or more (checked every minute)"
            ),
            "controllers": {s.controller: s.to_json() for s in self.summaries},
        }

    def write(self, path: Path) -> None:
        """Write ``summary.json`` to ``path``."""
        path.write_text(json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n", "utf-8")

    def table(self) -> str:
        """Return the comparison table printed by ``atcs simulate``."""
        return format_table(self.scenario, self.end_s - self.begin_s, self.summaries)


def _cell(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.1f}"


def format_table(scenario: str, seconds: float, summaries: Sequence[ControllerSummary]) -> str:
    """Return a plain-text table of ``summaries`` on ``scenario``."""
    head = (
        f"{'controller':<30}{'kind':<10}{'seeds':>6}{'mean s':>8}{'median s':>9}{'p95 s':>8}"
        f"{'done':>7}{'left':>6}{'gridlocks':>10}{'violations':>11}{'wall s':>8}"
    )
    lines = [f"scenario {scenario}, {seconds:g} simulated s", head, "-" * len(head)]
    for s in summaries:
        left = statistics.fmean(
            r.trips.vehicles_unfinished + r.trips.vehicles_not_inserted for r in s.runs
        )
        done = statistics.fmean(r.trips.vehicles_completed for r in s.runs)
        lines.append(
            f"{s.controller:<30}{s.kind:<10}{len(s.runs):>6}{_cell(s.mean_delay_s):>8}"
            f"{_cell(s.median_delay_s):>9}{_cell(s.p95_delay_s):>8}{done:>7.0f}{left:>6.0f}"
            f"{s.gridlocks:>10}{s.safety_violations:>11}"
            f"{statistics.fmean(r.wall_s for r in s.runs):>8.1f}"
        )
    return "\n".join(lines)
