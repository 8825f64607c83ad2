"""Phase commands (engine -> signal controller) and controller state (controller -> engine).

Times are seconds on the controller's clock (POSIX seconds, UTC, in the service and in the
simulator alike); the bus codecs turn them into ISO timestamps.

- :class:`PhaseCommand` ``serve_next``: end the current green as soon as the controller's
  own minimums allow and serve ``phase`` next (naming the phase in green means: hold it);
  ``extend``: keep ``phase``, which must be the green in force (or the one about to start),
  until ``until_s``. Every command is void after ``deadline_s``: when no valid command is
  left the controller runs its local time-of-day plan.
- :class:`SignalState`: the phase in force, its interval and since when, the phase that
  follows during a change, whether the controller obeys commands or runs its local plan
  and why, and the phases on recall.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from atcs.types import IntersectionId, PhaseId
from controllers.phase.timing import Interval


class CommandKind(enum.StrEnum):
    """What a phase command asks (NTCIP 1202: force-off + call, or hold)."""

    SERVE_NEXT = "serve_next"
    EXTEND = "extend"


class ControlMode(enum.StrEnum):
    """Who drives the controller: the engine's commands, or its local time-of-day plan."""

    COMMAND = "command"
    LOCAL = "local"


@dataclass(frozen=True, slots=True)
class PhaseCommand:
    """One command to a phase-by-phase signal controller (times in controller seconds).

    ``seq`` increases with every command an engine sends to the intersection; a command
    issued before the newest one accepted is refused (it arrived out of order).
    """

    intersection_id: IntersectionId
    kind: CommandKind
    phase: PhaseId
    issued_s: float
    deadline_s: float
    until_s: float | None = None
    seq: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SignalState:
    """The controller's state at ``at_s`` (SPaT-like; times in controller seconds).

    ``phase`` is the phase in green, or the one being cleared during yellow and all-red,
    when ``next_phase`` is the one that follows. ``green_started_s`` is when ``phase``'s
    green began; ``interval_started_s`` when the current interval did.
    """

    intersection_id: IntersectionId
    at_s: float
    phase: PhaseId
    interval: Interval
    interval_started_s: float
    green_started_s: float
    next_phase: PhaseId | None
    mode: ControlMode
    reason: str
    recall: frozenset[PhaseId] = frozenset()
    command_seq: int | None = None

    @property
    def time_in_interval_s(self) -> float:
        """Seconds since the current interval began."""
        return self.at_s - self.interval_started_s

    @property
    def green_elapsed_s(self) -> float:
        """Seconds since ``phase``'s green began (also counts during its change)."""
        return self.at_s - self.green_started_s

    @property
    def in_green(self) -> bool:
        """Tell whether ``phase`` shows vehicle green now."""
        return self.interval.vehicle_green


@dataclass(frozen=True, slots=True)
class CommandVerdict:
    """What the controller did with a command: taken (maybe cut) or refused, and why."""

    accepted: bool
    reason: str
