"""Signal-timing controllers and the safety envelope every plan must pass.

A controller is a pure function of an :class:`IntersectionSpec` and a
:class:`ControlInput` returning a :class:`~atcs.types.TimingPlan`; get one by name with
:func:`get_controller`. :func:`enforce` decides what may run; :func:`check` lists the rules
a plan breaks. Nothing here does I/O or imports the service, the bus, storage or SUMO.
"""

from controllers.fixed import FIXED, FixedTimeController, time_of_day_plan
from controllers.limits import spec_problems, validate_spec
from controllers.maxpressure import MAX_PRESSURE, MaxPressureController
from controllers.plans import active_fallback, next_cycle_boundary
from controllers.registry import MANUAL, controller_names, get_controller
from controllers.rules import check
from controllers.safety import SafetyDecision, SafetyOutcome, enforce
from controllers.spec import (
    ControlInput,
    Controller,
    FallbackPlan,
    IntersectionSpec,
    PhaseMeasure,
    PhaseSpec,
)
from controllers.webster import WEBSTER, WebsterController, webster_cycle_s

__all__ = [
    "FIXED",
    "MANUAL",
    "MAX_PRESSURE",
    "WEBSTER",
    "ControlInput",
    "Controller",
    "FallbackPlan",
    "FixedTimeController",
    "IntersectionSpec",
    "MaxPressureController",
    "PhaseMeasure",
    "PhaseSpec",
    "SafetyDecision",
    "SafetyOutcome",
    "WebsterController",
    "active_fallback",
    "check",
    "controller_names",
    "enforce",
    "get_controller",
    "next_cycle_boundary",
    "spec_problems",
    "time_of_day_plan",
    "validate_spec",
    "webster_cycle_s",
]
