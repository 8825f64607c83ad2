"""Closed-loop evaluation of the engine's signal control in Eclipse SUMO (``atcs simulate``).

Emulated cameras (SUMO lane-area detectors) feed the same measures, controllers and safety
envelope the service runs; plans reach SUMO only as bus payloads through a signal-controller
bridge, and what SUMO really shows is audited against the envelope. Importing this package
does not import SUMO; :func:`run_simulation` does.
"""

from atcs.sim.results import ControllerResult, SimulationSummary, TripStats
from atcs.sim.scenario import RESCO_NAMES, Scenario, known_scenarios, resolve_scenario
from atcs.sim.simulate import RunSettings, run_simulation, simulation_controllers
from atcs.sim.specs import SimIntersection, SpecOptions, build_intersection

__all__ = [
    "RESCO_NAMES",
    "ControllerResult",
    "RunSettings",
    "Scenario",
    "SimIntersection",
    "SimulationSummary",
    "SpecOptions",
    "TripStats",
    "build_intersection",
    "known_scenarios",
    "resolve_scenario",
    "run_simulation",
    "simulation_controllers",
]
