"""The controllers the engine knows, by name."""

from __future__ import annotations

from collections.abc import Callable

from atcs.errors import ControlError
from controllers.fixed import FIXED, FixedTimeController
from controllers.hybrid import (
    TOD_PRESSURE,
    WEBSTER_PRESSURE,
    TimeOfDayPressureController,
    WebsterPressureController,
)
from controllers.maxpressure import MAX_PRESSURE, MaxPressureController
from controllers.spec import Controller
from controllers.webster import WEBSTER, WebsterController

MANUAL = "manual"
"""Controller name of an operator's plan (an override); not a selectable controller."""

_FACTORIES: dict[str, Callable[[], Controller]] = {
    FIXED: FixedTimeController,
    WEBSTER: WebsterController,
    MAX_PRESSURE: MaxPressureController,
    WEBSTER_PRESSURE: WebsterPressureController,
    TOD_PRESSURE: TimeOfDayPressureController,
}


def controller_names() -> tuple[str, ...]:
    """Names accepted by :func:`get_controller`, e.g. ``("fixed", "webster", ...)``."""
    return tuple(_FACTORIES)


def get_controller(name: str) -> Controller:
    """Return a new controller called ``name``; :class:`ControlError` if it is unknown."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        known = ", ".join(controller_names())
        raise ControlError(f"unknown controller {name!r}; known: {known}") from None
    return factory()


def known_plan_source(name: str) -> bool:
    """Tell whether a plan may come from ``name``: a registered controller or ``manual``."""
    return name in _FACTORIES or name == MANUAL
