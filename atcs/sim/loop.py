"""One closed-loop run in SUMO: cameras -> measures -> supervisor -> bus payloads -> bridge.

This is the only module that talks to SUMO while it runs. Every step it hands the emulated
cameras' readings to :class:`CameraEmulator` and closes measurement windows into each
intersection's :class:`~atcs.control.supervisor.Supervisor` (the service's decision logic:
controller, safety envelope, plan tracking); the plans a supervisor publishes travel as
``{p}/intersections/{ix}/plan`` payloads to the :class:`SignalBridge`, its acks travel back
as ``.../plan/ack`` payloads; the states the bridges choose are set in SUMO, and what SUMO
really showed is fed to the :class:`SignalAudit`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from atcs.bus.messages import MessageMeta
from atcs.bus.payloads import decode_plan_ack, encode_timing_plan
from atcs.config import AnalysisConfig, PcuConfig
from atcs.control.supervisor import Supervisor
from atcs.errors import ControlError, PayloadError
from atcs.sim.audit import SignalAudit
from atcs.sim.bridge import SignalBridge
from atcs.sim.cameras import (
    CameraEmulator,
    Detector,
    DetectorReading,
    plan_detectors,
    vehicle_class,
)
from atcs.sim.clock import SimClock
from atcs.sim.engine import CountedController
from atcs.sim.scenario import Scenario
from atcs.sim.specs import SimIntersection
from atcs.sim.sumo import constants, start_sumo
from atcs.types import SiteId, VehicleClass
from controllers import get_controller

log = logging.getLogger(__name__)

PROGRAM = "program"
"""Pseudo-controller: the network's own signal programs, untouched (audited all the same)."""

MAX_VEHICLE_CACHE = 200_000
"""Bound on the per-vehicle maps (class, signal link): vehicles in the network at once."""


@dataclass(frozen=True, slots=True)
class LoopOutcome:
    """What one run produced besides SUMO's own output files.

    ``plans`` counts plans published and acks by result; ``envelope`` the safety envelope's
    verdicts on the controllers' proposals; ``mean_queue_veh`` the mean number of vehicles
    halted in the approach zones (all intersections together).
    """

    audits: tuple[SignalAudit, ...]
    plans: dict[str, int]
    envelope: dict[str, int]
    mean_queue_veh: float
    wall_s: float


@dataclass(slots=True)
class _Site:
    """One controlled intersection's parts during a run (internal, mutable)."""

    ix: SimIntersection
    audit: SignalAudit
    supervisor: Supervisor | None = None
    wrapper: CountedController | None = None
    bridge: SignalBridge | None = None
    last_state: str | None = None


def sumo_args(
    scenario: Scenario, detector_file: Path, run_dir: Path, end_s: float, seed: int
) -> list[str]:
    """Return SUMO's command line (without the binary) for one run writing into ``run_dir``."""
    additional = [*map(str, scenario.additional_files), str(detector_file)]
    return [
        "-c", str(scenario.sumocfg),
        "--additional-files", ",".join(additional),
        "--begin", f"{scenario.begin_s:g}",
        "--end", f"{end_s:g}",
        "--seed", str(seed),
        "--tripinfo-output", str(run_dir / "tripinfo.xml"),
        "--tripinfo-output.write-unfinished", "true",
        "--statistic-output", str(run_dir / "statistics.xml"),
        "--time-to-teleport", "-1",
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
        analysis: AnalysisConfig | None = None,
        pcu: PcuConfig | None = None,
    ) -> None:
        self._scenario = scenario
        self._controller = controller
        self._analysis = analysis or AnalysisConfig()
        self._pcu = pcu or PcuConfig()
        self._clock = SimClock()
        self._site_id = SiteId(f"sim-{scenario.name}")
        self._intersections = tuple(intersections)
        self._detectors = plan_detectors(s for ix in intersections for s in ix.segments)
        self._approach = {d.detector_id for d in self._detectors if not d.exit}
        self._plans: dict[str, int] = {"published": 0, "applied": 0, "rejected": 0}
        self._sequence = itertools.count(1)
        self._stream = f"sim-{scenario.name}-{controller}"[:64]

    @property
    def detectors(self) -> tuple[Detector, ...]:
        """The detectors to declare in SUMO's additional file."""
        return self._detectors

    def _sites(self, tick_s: float) -> list[_Site]:
        out = []
        for ix in self._intersections:
            reference = self._controller == PROGRAM
            audit = SignalAudit(ix, self._clock, self._controller, expect_violations=reference)
            site = _Site(ix, audit)
            if self._controller != PROGRAM:
                site.wrapper = CountedController(get_controller(self._controller))
                spec = ix.spec
                site.supervisor = Supervisor(spec, pcu=self._pcu, controller=site.wrapper)
                site.bridge = SignalBridge(ix, self._clock, tick_s)
            out.append(site)
        return out

    def run(
        self, args: Sequence[str], end_s: float, on_progress: Callable[[float], None]
    ) -> LoopOutcome:
        """Start SUMO with ``args``, run to ``end_s`` (SUMO s) and close it."""
        started = time.monotonic()
        sumo = start_sumo(args)
        try:
            queue, sites = self._run(sumo, end_s, on_progress)
        finally:
            sumo.close()
        envelope: dict[str, int] = {}
        for site in sites:
            if site.wrapper is not None:
                for key, n in site.wrapper.outcomes.items():
                    envelope[key] = envelope.get(key, 0) + n
        return LoopOutcome(
            audits=tuple(s.audit for s in sites),
            plans=dict(self._plans),
            envelope=envelope,
            mean_queue_veh=queue,
            wall_s=time.monotonic() - started,
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

    def _run(
        self, sumo: ModuleType, end_s: float, on_progress: Callable[[float], None]
    ) -> tuple[float, list[_Site]]:
        c = constants()
        tick_s = float(sumo.simulation.getDeltaT())
        sites = self._sites(tick_s)
        self._subscribe(sumo)
        cameras = CameraEmulator(
            self._site_id,
            (s for ix in self._intersections for s in ix.segments),
            self._detectors,
            self._analysis,
            self._pcu,
        )
        classes: dict[str, VehicleClass] = {}
        links: dict[str, tuple[str, int | None]] = {}

        def resolve(vid: str, lane: str, tls: str) -> int | None:
            cached = links.get(vid)
            if cached is not None and cached[0] == lane:
                return cached[1]
            found: int | None = None
            for tls_id, index, _dist, _state in sumo.vehicle.getNextTLS(vid):
                if tls_id == tls:
                    found = int(index)
                    break
            if len(links) < MAX_VEHICLE_CACHE:
                links[vid] = (lane, found)
            return found

        window_s = self._analysis.window_s
        t = float(sumo.simulation.getTime())
        window_start = t
        halted = 0.0
        steps = 0
        while t < end_s - 1e-9:
            for site in sites:
                self._control(sumo, site, t)
            sumo.simulationStep()
            t_next = float(sumo.simulation.getTime())
            for site in sites:
                result = sumo.trafficlight.getSubscriptionResults(site.ix.tls_id)
                site.audit.observe(t, result[c.TL_RED_YELLOW_GREEN_STATE], t_next - t)
            for vid in sumo.simulation.getDepartedIDList():
                if len(classes) < MAX_VEHICLE_CACHE:
                    classes[vid] = vehicle_class(sumo.vehicle.getVehicleClass(vid))
            for vid in sumo.simulation.getArrivedIDList():
                classes.pop(vid, None)
                links.pop(vid, None)
            readings = {}
            for det_id, values in sumo.lanearea.getAllSubscriptionResults().items():
                readings[det_id] = DetectorReading(
                    tuple(values[c.LAST_STEP_VEHICLE_ID_LIST]),
                    float(values[c.JAM_LENGTH_METERS]),
                    float(values[c.LAST_STEP_OCCUPANCY]),
                )
                if det_id in self._approach:
                    halted += values[c.LAST_STEP_VEHICLE_HALTING_NUMBER]
            cameras.add_step(readings, classes, resolve)
            steps += 1
            if t_next - window_start >= window_s - 1e-9:
                windows = cameras.close_window(self._clock.at(window_start), self._clock.at(t_next))
                for site in sites:
                    if site.supervisor is not None:
                        site.supervisor.on_metrics(windows)
                window_start = t_next
            on_progress(t_next - t)
            t = t_next
        return (halted / steps if steps else 0.0), sites

    def _control(self, sumo: ModuleType, site: _Site, t: float) -> None:
        """Run the supervisor's tick, carry plans and acks, set the state for this step."""
        sup, bridge = site.supervisor, site.bridge
        if sup is None or bridge is None:
            return
        now = self._clock.at(t)
        acks: list[bytes] = []
        for plan in sup.tick(now):
            self._plans["published"] += 1
            meta = MessageMeta(self._stream, next(self._sequence))
            acks += bridge.receive(encode_timing_plan(self._site_id, plan, meta), t)
        state, applied = bridge.step(t)
        for payload in acks + applied:
            self._ack(sup, payload, t)
        if state is not None and state != site.last_state:
            sumo.trafficlight.setRedYellowGreenState(site.ix.tls_id, state)
            site.last_state = state

    def _ack(self, sup: Supervisor, payload: bytes, t: float) -> None:
        try:
            ack = decode_plan_ack(payload, sup.spec.intersection_id)
            sup.on_ack(ack, self._clock.at(t))
        except (PayloadError, ControlError) as exc:
            log.warning("%s: ack not taken: %s", sup.spec.intersection_id, exc)
            return
        self._plans[ack.result.value] = self._plans.get(ack.result.value, 0) + 1
