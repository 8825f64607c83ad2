"""Signal control in the service: supervisors per intersection and the engine's control loop.

:class:`ControlLoop` (one per engine) owns a :class:`Supervisor` per configured
intersection. A supervisor aggregates segment windows into phase measures, asks the
configured controller for a plan once per cycle, passes it through the safety envelope
(:func:`controllers.enforce`), falls back to the time-of-day plan on stale inputs, obeys
operator overrides and tracks the signal controllers' acks. See ``docs/signal-timing.md``.
"""

from atcs.control.inputs import MeasureBoard, segment_flow_pcu_h
from atcs.control.loop import ControlLoop, PlanPublisher, utc_now
from atcs.control.state import (
    ActiveOverride,
    ControlEvent,
    ControlSettings,
    EventKind,
    IntersectionState,
    PlanState,
    PlanStatus,
    Source,
)
from atcs.control.supervisor import Supervisor
from atcs.control.view import ControlView, PlanBook

__all__ = [
    "ActiveOverride",
    "ControlEvent",
    "ControlLoop",
    "ControlSettings",
    "ControlView",
    "EventKind",
    "IntersectionState",
    "MeasureBoard",
    "PlanBook",
    "PlanPublisher",
    "PlanState",
    "PlanStatus",
    "Source",
    "Supervisor",
    "segment_flow_pcu_h",
    "utc_now",
]
