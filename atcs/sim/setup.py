"""Which driver runs each light for a given controller name, and what kind of run it is.

Kinds (the ``kind`` of each row of ``summary.json``):

- ``engine``: the engine's cycle controllers (``fixed``, ``webster``, ...) and its
  phase-by-phase controllers (``phase-max-pressure``, ``phase-greedy``, ``actuated``,
  ``delay-balance``), through the engine's own path;
- ``peer``: RESCO's MaxPressure and Greedy, on their own rules (``resco-*``) and inside the
  engine's envelope (``resco-*-envelope``);
- ``reference``: the network's own program (``program``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from atcs.bus.messages import MessageMeta
from atcs.bus.phase_payloads import Clock
from atcs.config import PcuConfig
from atcs.control.phase_supervisor import PhaseSupervisor
from atcs.control.supervisor import Supervisor
from atcs.errors import SimulationError
from atcs.sim.audit import SignalAudit
from atcs.sim.bridge import SignalBridge
from atcs.sim.camera_errors import CameraErrors
from atcs.sim.clearances import link_clearances
from atcs.sim.clock import SimClock
from atcs.sim.drivers import CycleDriver, Driver, PeerDriver, PhaseDriver, ProgramDriver
from atcs.sim.engine import CountedController
from atcs.sim.outages import CameraOutage
from atcs.sim.peers import PEERS, RescoTiming, downstream_lanes, peer_rule
from atcs.sim.phase_audit import PhaseAudit
from atcs.sim.phase_site import PhaseBridge, phase_setup
from atcs.sim.specs import SimIntersection, SpecOptions
from atcs.sim.window_view import VEHICLES
from atcs.types import SiteId
from controllers import controller_names, get_controller
from controllers.phase.registry import get_phase_controller, phase_controller_names


@dataclass(frozen=True, slots=True)
class LoopOptions:
    """How a run is set up: spec options, camera errors, outages, the peers' RESCO timing.

    ``phase_view``: what the phase-by-phase controllers see (:mod:`atcs.sim.window_view`),
    with ``phase_window_s`` the windows' length (s) in the views ``windows`` and ``bus``;
    ``zone_age_s`` (s) and ``zone_loss`` (share of messages) in the view ``bus``;
    ``junction_blocker_s`` > 0: SUMO's ``--ignore-junction-blocker`` (s); ``seed``: the
    run's SUMO seed, from which the view ``bus`` draws its lost messages.
    """

    spec: SpecOptions = field(default_factory=SpecOptions)
    errors: CameraErrors = field(default_factory=CameraErrors)
    outages: tuple[CameraOutage, ...] = ()
    peer_timing: RescoTiming = field(default_factory=RescoTiming)
    phase_view: str = VEHICLES
    phase_window_s: float = 10.0
    zone_age_s: float = 1.0
    zone_loss: float = 0.0
    junction_blocker_s: float = 0.0
    seed: int = 0


PROGRAM = "program"
"""Pseudo-controller: the network's own signal programs, untouched (audited all the same)."""

ENGINE, PEER, REFERENCE = "engine", "peer", "reference"


def controller_kind(name: str) -> str:
    """``engine``, ``peer`` or ``reference``; :class:`SimulationError` for an unknown name."""
    if name in controller_names() or name in phase_controller_names():
        return ENGINE
    if name in PEERS:
        return PEER
    if name == PROGRAM:
        return REFERENCE
    raise SimulationError(f"unknown controller {name!r}; known: {', '.join(all_controllers())}")


def all_controllers() -> tuple[str, ...]:
    """Every name ``atcs simulate`` runs: the engine's, the peers, the reference."""
    return (*controller_names(), *phase_controller_names(), *PEERS, PROGRAM)


def build_drivers(
    intersections: Sequence[SimIntersection],
    controller: str,
    options: LoopOptions,
    *,
    start_s: float,
    tick_s: float,
    clock: SimClock,
    site_id: SiteId,
    message: Callable[[], MessageMeta],
    pcu: PcuConfig,
) -> list[Driver]:
    """One driver per light for ``controller`` (see the module docstring)."""
    kind = controller_kind(controller)
    out: list[Driver] = []
    for ix in intersections:
        if controller == PROGRAM:
            audit = SignalAudit(ix, clock, controller, expect_violations=True)
            out.append(ProgramDriver(audit))
            continue
        if controller in controller_names():
            counted = CountedController(get_controller(controller))
            sup = Supervisor(ix.spec, pcu=pcu, controller=counted)
            bridge = SignalBridge(ix, clock, tick_s)
            audit = SignalAudit(ix, clock, controller)
            out.append(
                CycleDriver(
                    sup,
                    bridge,
                    audit,
                    clock=clock,
                    message=message,
                    site_id=site_id,
                    counted=counted,
                )
            )
            continue
        setup = phase_setup(ix, options.spec)
        clear = link_clearances(ix.program, options.spec.clearances, tick_s)
        rule = peer_rule(controller) if kind == PEER else None
        phase_audit = PhaseAudit(
            ix.tls_id,
            setup.timing,
            setup.greens,
            clear,
            expect_violations=rule is not None and not rule.enveloped,
        )
        if rule is not None:
            bridge_or_none = PhaseBridge(setup, start_s, tick_s) if rule.enveloped else None
            out.append(
                PeerDriver(
                    ix,
                    rule,
                    options.peer_timing,
                    phase_audit,
                    bridge=bridge_or_none,
                    downstream=downstream_lanes(intersections),
                )
            )
            continue
        supervisor = PhaseSupervisor(setup.timing, setup.layout, get_phase_controller(controller))
        bus_clock = Clock(clock.at, clock.seconds)
        phase_bridge = PhaseBridge(setup, start_s, tick_s, bus_clock)
        out.append(PhaseDriver(supervisor, phase_bridge, phase_audit, bus_clock))
    return out
