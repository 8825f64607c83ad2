"""``atcs simulate``: every requested controller in closed loop on one scenario.

For each controller, :func:`run_simulation` builds the intersections from the network's
signal programs, writes the emulated cameras' detector file, runs SUMO in closed loop
(:mod:`atcs.sim.loop`), reads SUMO's trip outputs and writes, under ``out_dir``:

- ``summary.json``: per controller, mean delay, trip time, waiting time, vehicles
  completed, safety violations observed and more (rewritten after each controller);
- ``<controller>/``: SUMO's ``tripinfo.xml`` and ``statistics.xml``, ``cycles.csv`` (what
  SUMO really ran: green, yellow and all-red per phase per cycle) and ``audit.json``;
- ``intersections.json``: the specs built from the signal programs.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import json
import logging
import math
import multiprocessing
import re
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atcs.errors import SimulationError
from atcs.sim.audit import SignalAudit
from atcs.sim.camera_errors import PERFECT, CameraErrors
from atcs.sim.cameras import write_detector_file
from atcs.sim.clearances import CLEARANCE_POLICIES, ITE
from atcs.sim.coordination import green_wave
from atcs.sim.loop import ClosedLoop, LoopOutcome, sumo_args
from atcs.sim.network import read_programs
from atcs.sim.outages import plan_outages
from atcs.sim.peers import resco_timing
from atcs.sim.results import (
    ControllerResult,
    ControllerSummary,
    SimulationSummary,
    read_trip_stats,
)
from atcs.sim.scenario import Scenario, resolve_scenario
from atcs.sim.setup import ENGINE, LoopOptions, all_controllers, controller_kind
from atcs.sim.specs import SimIntersection, SpecOptions, build_intersection
from atcs.sim.sumo import in_process_backend
from atcs.sim.window_view import BUS, VEHICLES, check_phase_view

log = logging.getLogger(__name__)


def simulation_controllers() -> tuple[str, ...]:
    """Return the controller names ``atcs simulate`` accepts (engine, peers, reference)."""
    return all_controllers()


def scenario_options(scenario: Scenario, options: SpecOptions | None = None) -> SpecOptions:
    """Return ``options`` (default :class:`SpecOptions`) with the scenario's overrides."""
    opts = options or SpecOptions()
    if scenario.overrides:
        known = {f.name for f in dataclasses.fields(SpecOptions)}
        unknown = sorted(set(scenario.overrides) - known)
        if unknown:
            raise SimulationError(
                f"scenario {scenario.name!r}: unknown option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        opts = dataclasses.replace(opts, **scenario.overrides)  # type: ignore[arg-type]
    return opts


def load_intersections(
    scenario: Scenario, options: SpecOptions | None = None
) -> tuple[SimIntersection, ...]:
    """Return the retimable traffic lights of ``scenario`` (others keep their own program).

    ``options`` (default :class:`SpecOptions`) are updated with the scenario's overrides.
    """
    opts = scenario_options(scenario, options)
    out: list[SimIntersection] = []
    for program in read_programs(scenario.net_file):
        try:
            out.append(build_intersection(program, opts))
        except SimulationError as exc:
            log.warning("%s: left to its own program: %s", scenario.name, exc)
    if not out:
        raise SimulationError(f"scenario {scenario.name!r} has no traffic light to retime")
    return tuple(out)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _write_cycles(path: Path, outcome: LoopOutcome) -> int:
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["tls", "cycle_start_s", "cycle_s", "phase", "green_s", "yellow_s", "all_red_s"]
        )
        for audit in outcome.audits:
            if not isinstance(audit, SignalAudit):
                continue
            for cycle in audit.cycles:
                rows += 1
                for p in cycle.phases:
                    writer.writerow(
                        [
                            cycle.tls_id,
                            f"{cycle.start_s:g}",
                            f"{cycle.cycle_s:g}",
                            p.phase_id,
                            f"{p.green_s:g}",
                            f"{p.yellow_s:g}",
                            f"{p.all_red_s:g}",
                        ]
                    )
    return rows


def _spec_json(ix: SimIntersection) -> dict[str, Any]:
    s = ix.spec
    return {
        "tls": ix.tls_id,
        "intersection": s.intersection_id,
        "cycle_min_s": s.cycle_min_s,
        "cycle_max_s": s.cycle_max_s,
        "max_cycle_step_s": s.max_cycle_step_s,
        "max_split_step_s": s.max_split_step_s,
        "fixed_greens_s": dict(s.fallback_plans[0].greens_s),
        "phases": [
            {
                "phase": p.phase_id,
                "green_state": sig.green,
                "min_green_s": p.min_green_s,
                "max_green_s": p.max_green_s,
                "yellow_s": p.yellow_s,
                "all_red_s": p.all_red_s,
                "segments": list(p.segments),
                "exit_segments": list(p.exit_segments),
            }
            for p, sig in zip(s.phases, ix.signals, strict=True)
        ],
    }


def run_controller(
    scenario: Scenario,
    intersections: Sequence[SimIntersection],
    controller: str,
    *,
    end_s: float,
    seed: int,
    run_dir: Path,
    progress: bool,
    options: LoopOptions | None = None,
) -> ControllerResult:
    """One closed-loop run of ``controller``; outputs go to ``run_dir``."""
    from tqdm import tqdm

    run_dir.mkdir(parents=True, exist_ok=True)
    loop = ClosedLoop(scenario, intersections, controller, options)
    detector_file = run_dir / "cameras.add.xml"
    write_detector_file(detector_file, loop.detectors)
    blocker_s = options.junction_blocker_s if options is not None else 0.0
    args = sumo_args(scenario, detector_file, run_dir, end_s, seed, junction_blocker_s=blocker_s)
    duration = end_s - scenario.begin_s
    with tqdm(
        total=duration,
        unit="sim s",
        desc=f"{scenario.name} {controller} seed {seed}",
        disable=not progress,
        leave=False,
    ) as bar:
        outcome = loop.run(args, end_s, bar.update)
    trips = read_trip_stats(
        run_dir / "tripinfo.xml",
        run_dir / "statistics.xml",
        duration,
        scenario.route_files,
        end_s,
    )
    cycles = _write_cycles(run_dir / "cycles.csv", outcome)
    violations = sum(a.violations for a in outcome.audits)
    examples = tuple(m for a in outcome.audits for m in a.messages)[:20]
    audit_doc = {
        "violations": violations,
        "messages": [m for a in outcome.audits for m in a.messages],
    }
    (run_dir / "audit.json").write_text(json.dumps(audit_doc, indent=2) + "\n", "utf-8")
    kind = controller_kind(controller)
    if violations:
        level = logging.WARNING if kind == ENGINE else logging.INFO
        log.log(
            level, "%s/%s: %d safety violations observed", scenario.name, controller, violations
        )
    return ControllerResult(
        controller=controller,
        trips=trips,
        mean_queue_veh=outcome.mean_queue_veh,
        safety_violations=violations,
        violation_examples=examples,
        cycles_observed=cycles,
        plans=outcome.plans,
        envelope=outcome.envelope,
        wall_s=outcome.wall_s,
        kind=kind,
        seed=seed,
        max_stopped_s=outcome.max_stopped_s,
        stuck_vehicles=outcome.stuck_vehicles,
        bus_zones=outcome.bus_zones,
    )


DECISION_LOGGERS = ("controllers", "atcs.control")
"""Loggers of every decision, repair and ack: thousands of lines per simulated hour."""


@contextlib.contextmanager
def _quiet_decisions() -> Iterator[None]:
    """Send the decision loggers' routine output to debug only (``-v`` shows it)."""
    loggers = [logging.getLogger(name) for name in DECISION_LOGGERS]
    saved = [lg.level for lg in loggers]
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        for lg in loggers:
            lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, saved, strict=True):
            lg.setLevel(level)


def _child_logging(level: int) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _isolated(
    scenario: Scenario,
    intersections: Sequence[SimIntersection],
    controller: str,
    *,
    end_s: float,
    seed: int,
    run_dir: Path,
    progress: bool,
    options: LoopOptions | None = None,
) -> ControllerResult:
    """Run :func:`run_controller` in a fresh process when SUMO runs in-process (libsumo).

    libsumo keeps some state from one simulation to the next in the same process, so that
    a run's result would depend on the runs before it; TraCI runs are separate processes
    already. The child is spawned, not forked: a fork copies whatever the parent holds (a
    test process that ran SUMO before gave results a few tenths of a per cent off), a
    spawned interpreter starts from nothing (about a second more per run).
    """
    job = functools.partial(
        run_controller,
        scenario,
        intersections,
        controller,
        end_s=end_s,
        seed=seed,
        run_dir=run_dir,
        progress=progress,
        options=options,
    )
    if not in_process_backend():
        return job()
    context = multiprocessing.get_context("spawn")
    level = logging.getLogger().getEffectiveLevel()
    with ProcessPoolExecutor(
        max_workers=1, mp_context=context, initializer=_child_logging, initargs=(level,)
    ) as pool:
        return pool.submit(job).result()


@dataclass(frozen=True, slots=True)
class RunSettings:
    """What a simulation varies besides the scenario and controllers.

    ``seeds`` runs (SUMO seeds ``seed`` .. ``seed + seeds - 1``); ``clearances``: ``ite`` or
    ``minimum`` (:mod:`atcs.sim.clearances`); ``camera_errors``: the cameras miss and
    double-count vehicles at the measured rates (False: perfect cameras);
    ``outage_share`` of the approach cameras go down once for ``outage_s`` seconds;
    ``green_wave_m_s`` > 0 puts every light on a common cycle with offsets for a
    west-to-east green wave at that speed (:mod:`atcs.sim.coordination`);
    ``phase_view``: what the phase-by-phase controllers see, every detected vehicle each
    second (``vehicles``) or the live service's windows (``windows``,
    :mod:`atcs.sim.window_view`) of ``phase_window_s`` seconds, or each second's
    vehicles as over the bus (``bus``, :mod:`atcs.sim.bus_view`): ``zone_age_s`` (s) late,
    a share ``zone_loss`` of the messages lost; ``junction_blocker_s`` > 0: a vehicle
    waiting that long behind one standing inside a junction drives past it (SUMO's
    ``--ignore-junction-blocker``; 0, off, is RESCO's setting and the tables').
    """

    seeds: int = 1
    clearances: str = ITE
    camera_errors: bool = True
    outage_share: float = 0.0
    outage_s: float = 900.0
    green_wave_m_s: float = 0.0
    phase_view: str = VEHICLES
    phase_window_s: float = 10.0
    zone_age_s: float = 1.0
    zone_loss: float = 0.0
    junction_blocker_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Return the settings as written in ``summary.json``."""
        return dataclasses.asdict(self)


def _loop_options(
    scen: Scenario,
    *,
    intersections: Sequence[SimIntersection],
    spec: SpecOptions,
    settings: RunSettings,
    seed: int,
    end_s: float,
) -> LoopOptions:
    approaches = [s.segment_id for ix in intersections for s in ix.segments if not s.exit]
    outages = plan_outages(
        approaches,
        scen.begin_s,
        end_s,
        share=settings.outage_share,
        duration_s=settings.outage_s,
        seed=seed,
    )
    errors = CameraErrors(seed=seed) if settings.camera_errors else PERFECT
    return LoopOptions(
        spec, errors, outages, resco_timing(scen.name), settings.phase_view,
        settings.phase_window_s, settings.zone_age_s, settings.zone_loss,
        settings.junction_blocker_s, seed,
    )  # fmt: skip


def _check_views(run: RunSettings) -> None:
    """Refuse a phase view's settings that are out of range or given to another view."""
    check_phase_view(run.phase_view)
    if not 0 < run.phase_window_s < math.inf:
        raise SimulationError(
            f"--phase-window-s must be a positive number, got {run.phase_window_s}"
        )
    if not 0 <= run.zone_age_s < math.inf:
        raise SimulationError(f"--zone-age-s must be 0 or a finite number, got {run.zone_age_s}")
    if not 0 <= run.zone_loss < 1:
        raise SimulationError(f"--zone-loss must be in [0, 1), got {run.zone_loss}")
    defaults = RunSettings()
    if run.phase_view != BUS and (
        run.zone_age_s != defaults.zone_age_s or run.zone_loss != defaults.zone_loss
    ):
        raise SimulationError(
            f"--zone-age-s and --zone-loss apply only to --phase-view {BUS}, not {run.phase_view}"
        )


def run_simulation(  # noqa: PLR0917 - the CLI's documented signature
    scenario: str,
    controllers: list[str],
    seconds: int | None,
    seed: int,
    out_dir: Path,
    progress: bool,
    options: SpecOptions | None = None,
    settings: RunSettings | None = None,
) -> SimulationSummary:
    """Run each of ``controllers`` in closed loop on ``scenario``; print and save the table.

    ``scenario`` is a RESCO name, ``demo``, ``ingolstadt7-restored`` or a ``.sumocfg``
    path; ``controllers`` empty runs every engine controller, the peers and the
    reference; ``seconds`` shortens the scenario's span (from its begin); ``seed`` is
    SUMO's first seed. Raises :class:`SimulationError` for an unknown scenario or
    controller.
    """
    run = settings or RunSettings()
    chosen = list(dict.fromkeys(controllers)) or list(all_controllers())
    for name in chosen:
        controller_kind(name)
    if run.clearances not in CLEARANCE_POLICIES:
        raise SimulationError(
            f"unknown clearances {run.clearances!r}; known: {', '.join(CLEARANCE_POLICIES)}"
        )
    _check_views(run)
    if not 0 <= run.junction_blocker_s < math.inf:
        raise SimulationError(
            "--ignore-junction-blocker must be 0 (off) or a finite number of seconds, "
            f"got {run.junction_blocker_s}"
        )
    if run.seeds < 1:
        raise SimulationError(f"--seeds must be at least 1, got {run.seeds}")
    scen = resolve_scenario(scenario, out_dir)
    if seconds is not None and seconds <= 0:
        raise SimulationError(f"--seconds must be positive, got {seconds}")
    end_s = scen.end_s if seconds is None else min(scen.end_s, scen.begin_s + seconds)
    spec = scenario_options(
        scen, dataclasses.replace(options or SpecOptions(), clearances=run.clearances)
    )
    intersections = load_intersections(scen, spec)
    if run.green_wave_m_s > 0:
        intersections = green_wave(intersections, scen.net_file, run.green_wave_m_s)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "intersections.json").write_text(
        json.dumps([_spec_json(ix) for ix in intersections], indent=2) + "\n", "utf-8"
    )
    summaries: list[ControllerSummary] = []
    seeds = tuple(range(seed, seed + run.seeds))
    with _quiet_decisions():
        for controller in chosen:
            runs = []
            for s in seeds:
                log.info("simulating %s with %s, seed %d", scen.name, controller, s)
                run_dir = out_dir / _slug(controller)
                if run.seeds > 1:
                    run_dir = run_dir / f"seed{s}"
                loop_options = _loop_options(
                    scen, intersections=intersections, spec=spec, settings=run, seed=s, end_s=end_s
                )
                runs.append(
                    _isolated(
                        scen,
                        intersections,
                        controller,
                        end_s=end_s,
                        seed=s,
                        run_dir=run_dir,
                        progress=progress,
                        options=loop_options,
                    )
                )
            summaries.append(
                ControllerSummary(controller, controller_kind(controller), tuple(runs))
            )
            summary = SimulationSummary(
                scen.name,
                scen.begin_s,
                end_s,
                seeds,
                tuple(ix.spec.intersection_id for ix in intersections),
                tuple(summaries),
                run.to_json(),
            )
            summary.write(out_dir / "summary.json")
    print(summary.table())
    return summary
