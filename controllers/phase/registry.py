"""The phase-by-phase controllers the engine knows, by name."""

from __future__ import annotations

from collections.abc import Callable

from atcs.errors import ControlError
from controllers.phase.actuated import (
    ACTUATED,
    ACTUATED_MAX40,
    ACTUATED_ONCE,
    ACTUATED_ONCE_RECALL,
    RECALL_AFTER_S,
    SHORT_MAX_GREEN_S,
    Actuated,
)
from controllers.phase.base import PhaseController
from controllers.phase.delaybalance import DELAY_BALANCE, DelayBalance
from controllers.phase.greedy import PHASE_GREEDY, PhaseGreedy
from controllers.phase.maxpressure import PHASE_MAX_PRESSURE, PhaseMaxPressure
from controllers.phase.schedule import SCHEDULE, Schedule

_FACTORIES: dict[str, Callable[[], PhaseController]] = {
    PHASE_MAX_PRESSURE: PhaseMaxPressure,
    PHASE_GREEDY: PhaseGreedy,
    ACTUATED: Actuated,
    ACTUATED_MAX40: lambda: Actuated(max_green_s=SHORT_MAX_GREEN_S),
    ACTUATED_ONCE: lambda: Actuated(once_per_cycle=True),
    ACTUATED_ONCE_RECALL: lambda: Actuated(once_per_cycle=True, recall_after_s=RECALL_AFTER_S),
    DELAY_BALANCE: DelayBalance,
    SCHEDULE: Schedule,
}


def phase_controller_names() -> tuple[str, ...]:
    """Names accepted by :func:`get_phase_controller`."""
    return tuple(_FACTORIES)


def get_phase_controller(name: str) -> PhaseController:
    """Return a new phase-by-phase controller called ``name``; :class:`ControlError` if unknown."""
    try:
        return _FACTORIES[name]()
    except KeyError:
        known = ", ".join(phase_controller_names())
        raise ControlError(f"unknown phase controller {name!r}; known: {known}") from None
