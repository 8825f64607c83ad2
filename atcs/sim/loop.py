"""One closed-loop run in SUMO: cameras -> engine -> signal controllers -> what SUMO shows.

This module and :class:`~atcs.sim.peers.RescoObserver` are the only ones that talk to SUMO
while it runs. Every step each light's driver (:mod:`atcs.sim.drivers`) says what the
light shows; then SUMO steps; the states SUMO reports go to each light's audit, the
detector readings to the emulated cameras (:class:`CameraEmulator`, with camera-like
misses and double counts), whose 10-s windows feed the engine's cycle supervisors and
whose per-step view feeds the phase-by-phase controllers (or, with the phase view
``windows``, their windows as the live service has them: :mod:`atcs.sim.window_view`).
Every minute the run notes the longest time any vehicle has stood still (gridlock
detection).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from atcs.bus.messages import MessageMeta
from atcs.config import AnalysisConfig, PcuConfig
from atcs.sim.audit import SignalAudit
from atcs.sim.bus_view import BusZones
from atcs.sim.cameras import CameraEmulator, Detector, DetectorReading, plan_detectors
from atcs.sim.clock import SimClock
from atcs.sim.drivers import Driver
from atcs.sim.live import LiveZones
from atcs.sim.outages import down_at
from atcs.sim.peers import RescoObserver
from atcs.sim.phase_audit import PhaseAudit
from atcs.sim.results import GRIDLOCK_STOPPED_S
from atcs.sim.scenario import Scenario
from atcs.sim.setup import LoopOptions, build_drivers
from atcs.sim.specs import SimIntersection
from atcs.sim.sumo import constants, start_sumo
from atcs.sim.vehicles import VehicleTable
from atcs.sim.window_view import BUS, WINDOWS, WindowZones
from atcs.types import SegmentId, SiteId
from controllers.phase.observe import ZoneView

log = logging.getLogger(__name__)

GRIDLOCK_CHECK_S = 60.0
"""How often (SUMO s) the run looks for vehicles standing still."""


@dataclass(frozen=True, slots=True)
class LoopOutcome:
    """What one run produced besides SUMO's own output files.

    ``plans`` counts cycle plans published and acks by result; ``envelope`` the engine
    envelope's verdicts (on plans or on phase commands); ``mean_queue_veh`` the mean
    number of vehicles halted in the approach zones; ``max_stopped_s`` the longest any
    vehicle stood still without moving (s); ``stuck_vehicles`` the most vehicles seen at
    once that had stood still for :data:`GRIDLOCK_STOPPED_S` or more; ``bus_zones`` (the
    view ``bus`` only) the zone messages sent and lost and the zones a decision took from
    the windows because the newest message was stale.
    """

    audits: tuple[SignalAudit | PhaseAudit, ...]
    plans: dict[str, int]
    envelope: dict[str, int]
    mean_queue_veh: float
    wall_s: float
    max_stopped_s: float
    stuck_vehicles: int = 0
    bus_zones: Mapping[str, int] = field(default_factory=dict)


def bus_view(windowed: WindowZones | None, options: LoopOptions) -> BusZones | None:
    """Return the view ``bus`` over ``windowed`` (None in the other views).

    Its lost messages are drawn from the run's seed (``options.seed``), not the camera
    errors': perfect cameras have one seed for every run.
    """
    if windowed is None or options.phase_view != BUS:
        return None
    return BusZones(windowed, age_s=options.zone_age_s, loss=options.zone_loss, seed=options.seed)


def sumo_args(
    scenario: Scenario,
    detector_file: Path,
    run_dir: Path,
    end_s: float,
    seed: int,
    *,
    junction_blocker_s: float = 0.0,
) -> list[str]:
    """Return SUMO's command line (without the binary) for one run writing into ``run_dir``.

    ``junction_blocker_s`` > 0 passes SUMO's ``--ignore-junction-blocker``: a vehicle
    waiting that long for one standing inside the junction drives on past it (off by
    default, as in RESCO).
    """
    additional = [*map(str, scenario.additional_files), str(detector_file)]
    blocker = (
        ["--ignore-junction-blocker", f"{junction_blocker_s:g}"] if junction_blocker_s > 0 else []
    )
    return [
        "-c", str(scenario.sumocfg),
        "--net-file", str(scenario.net_file),
        "--additional-files", ",".join(additional),
        "--begin", f"{scenario.begin_s:g}",
        "--end", f"{end_s:g}",
        "--seed", str(seed),
        "--tripinfo-output", str(run_dir / "tripinfo.xml"),
        "--tripinfo-output.write-unfinished", "true",
        "--statistic-output", str(run_dir / "statistics.xml"),
        "--time-to-teleport", "-1",
        *blocker,
        "--no-step-log", "true",
        "--no-warnings", "true",
        "--duration-log.disable", "true",
    ]  # fmt: skip


class ClosedLoop:
    """Runs ``controller`` on ``intersections`` of ``scenario`` (one run per instance)."""

    def __init__(
        self,
        scenario: Scenario,
        intersections: Sequence[SimIntersection],
        controller: str,
        options: LoopOptions | None = None,
        *,
        analysis: AnalysisConfig | None = None,
        pcu: PcuConfig | None = None,
    ) -> None:
        self._scenario = scenario
        self._controller = controller
        self._options = options or LoopOptions()
        self._analysis = analysis or AnalysisConfig()
        self._pcu = pcu or PcuConfig()
        self._clock = SimClock()
        self._site_id = SiteId(f"sim-{scenario.name}")
        self._intersections = tuple(intersections)
        self._detectors = plan_detectors(s for ix in intersections for s in ix.segments)
        self._approach = {d.detector_id for d in self._detectors if not d.exit}
        self._sequence = itertools.count(1)

    @property
    def detectors(self) -> tuple[Detector, ...]:
        """The detectors to declare in SUMO's additional file."""
        return self._detectors

    def run(
        self, args: Sequence[str], end_s: float, on_progress: Callable[[float], None]
    ) -> LoopOutcome:
        """Start SUMO with ``args``, run to ``end_s`` (SUMO s) and close it."""
        started = time.monotonic()
        sumo = start_sumo(args)
        try:
            outcome = self._run(sumo, end_s, on_progress)
        finally:
            sumo.close()
        return LoopOutcome(
            audits=tuple(d.audit for d in outcome[1]),
            plans=outcome[2],
            envelope=outcome[3],
            mean_queue_veh=outcome[0],
            wall_s=time.monotonic() - started,
            max_stopped_s=outcome[4][0],
            stuck_vehicles=outcome[4][1],
            bus_zones=outcome[5],
        )

    def _subscribe(self, sumo: ModuleType) -> None:
        c = constants()
        variables = [
            c.LAST_STEP_VEHICLE_ID_LIST,
            c.JAM_LENGTH_METERS,
            c.LAST_STEP_OCCUPANCY,
            c.LAST_STEP_VEHICLE_HALTING_NUMBER,
        ]
        for det in self._detectors:
            sumo.lanearea.subscribe(det.detector_id, variables)
        for ix in self._intersections:
            sumo.trafficlight.subscribe(ix.tls_id, [c.TL_RED_YELLOW_GREEN_STATE])

    def _run(  # noqa: PLR0915 - the loop's one place of SUMO I/O
        self, sumo: ModuleType, end_s: float, on_progress: Callable[[float], None]
    ) -> tuple[
        float, list[Driver], dict[str, int], dict[str, int], tuple[float, int], dict[str, int]
    ]:
        c = constants()
        tick_s = float(sumo.simulation.getDeltaT())
        t = float(sumo.simulation.getTime())
        drivers = build_drivers(
            self._intersections,
            self._controller,
            self._options,
            start_s=t,
            tick_s=tick_s,
            clock=self._clock,
            site_id=self._site_id,
            message=self._meta,
            pcu=self._pcu,
        )
        self._subscribe(sumo)
        segments = [s for ix in self._intersections for s in ix.segments]
        cameras = CameraEmulator(
            self._site_id,
            segments,
            self._detectors,
            self._analysis,
            self._pcu,
            errors=self._options.errors,
        )
        lanes = {lane for s in segments for z in s.zones for lane in z.lanes}
        live = LiveZones(segments, {ln: float(sumo.lane.getLength(ln)) for ln in lanes}, self._pcu)
        vehicles = VehicleTable(sumo)
        windowed = (
            WindowZones(
                segments,
                self._options.phase_window_s,
                queue_speed_m_s=self._analysis.queue_speed_m_s,
                queue_max_gap_m=self._analysis.queue_max_gap_m,
            )
            if self._options.phase_view in {WINDOWS, BUS}
            else None
        )
        bus = bus_view(windowed, self._options)
        observers: dict[float, RescoObserver] = {}
        cache: dict[str, object] = {}

        def zones_now() -> ZoneView:
            view = cache.get("zones")
            if not isinstance(view, ZoneView):
                if bus is not None:
                    view = bus.view(t, down)
                elif windowed is not None:
                    view = windowed.view(t, down)
                else:
                    seen = cameras.seen
                    view = ZoneView(t, live.snapshot(seen, vehicles.now(seen), vehicles.classes))
                cache["zones"] = view
            return view

        def observe(distance_m: float) -> dict[str, tuple[int, int]]:
            key = f"resco-{distance_m:g}"
            lanes_now = cache.get(key)
            if not isinstance(lanes_now, dict):
                observer = observers.get(distance_m)
                if observer is None:
                    observer = observers[distance_m] = RescoObserver(
                        self._intersections, distance_m
                    )
                observer.observe(sumo)
                lanes_now = cache[key] = observer.lanes
            return lanes_now

        window_s = self._analysis.window_s
        window_start = t
        halted = 0.0
        steps = 0
        max_stopped = 0.0
        stuck = 0
        next_check = t + GRIDLOCK_CHECK_S
        last_state: dict[str, str] = {}
        down: frozenset[SegmentId] = frozenset()
        while t < end_s - 1e-9:
            cache.clear()
            now_down = down_at(self._options.outages, t)
            if now_down != down:
                down = now_down
                cameras.down = set(down)
                for driver in drivers:
                    driver.cameras_down(down)
            for ix, driver in zip(self._intersections, drivers, strict=True):
                state = driver.step(t, zones_now, observe)
                if state is not None and state != last_state.get(ix.tls_id):
                    sumo.trafficlight.setRedYellowGreenState(ix.tls_id, state)
                    last_state[ix.tls_id] = state
            sumo.simulationStep()
            t_next = float(sumo.simulation.getTime())
            for ix, driver in zip(self._intersections, drivers, strict=True):
                result = sumo.trafficlight.getSubscriptionResults(ix.tls_id)
                driver.observe(t, result[c.TL_RED_YELLOW_GREEN_STATE], t_next - t)
            vehicles.update()
            readings = {}
            for det_id, values in sumo.lanearea.getAllSubscriptionResults().items():
                readings[det_id] = DetectorReading(
                    tuple(values[c.LAST_STEP_VEHICLE_ID_LIST]),
                    float(values[c.JAM_LENGTH_METERS]),
                    float(values[c.LAST_STEP_OCCUPANCY]),
                )
                if det_id in self._approach:
                    halted += values[c.LAST_STEP_VEHICLE_HALTING_NUMBER]
            cameras.add_step(readings, vehicles.classes, vehicles.resolve)
            if windowed is not None:  # what the cameras detected: live windows, or the bus
                seen = cameras.seen
                detected = live.snapshot(seen, vehicles.now(seen), vehicles.classes)
                (windowed if bus is None else bus).add(t_next, detected)
            steps += 1
            if t_next - window_start >= window_s - 1e-9:
                windows = cameras.close_window(self._clock.at(window_start), self._clock.at(t_next))
                for driver in drivers:
                    driver.on_windows(windows)
                window_start = t_next
            if t_next >= next_check:
                next_check += GRIDLOCK_CHECK_S
                longest, count = vehicles.stops(GRIDLOCK_STOPPED_S)
                max_stopped, stuck = max(max_stopped, longest), max(stuck, count)
            on_progress(t_next - t)
            t = t_next
        longest, count = vehicles.stops(GRIDLOCK_STOPPED_S)
        max_stopped, stuck = max(max_stopped, longest), max(stuck, count)
        plans: dict[str, int] = {}
        envelope: dict[str, int] = {}
        for driver in drivers:
            for key, n in driver.plans().items():
                plans[key] = plans.get(key, 0) + n
            for key, n in driver.verdicts().items():
                envelope[key] = envelope.get(key, 0) + n
        bus_zones = (
            {"sent": bus.sent, "lost": bus.lost, "from_windows": bus.from_windows}
            if bus is not None
            else {}
        )
        stops = (max_stopped, stuck)
        return (halted / steps if steps else 0.0), drivers, plans, envelope, stops, bus_zones

    def _meta(self) -> MessageMeta:
        return MessageMeta(
            f"sim-{self._scenario.name}-{self._controller}"[:64], next(self._sequence)
        )
