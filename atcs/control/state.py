"""What the control side records and shows: settings, plan states, events and snapshots.

Plain frozen dataclasses (no I/O): :class:`IntersectionState` is what a dashboard or a
health endpoint reads from :meth:`atcs.control.ControlLoop.state`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from atcs.bus.messages import OverrideAction
from atcs.errors import ControlError
from atcs.text import printable
from atcs.types import IntersectionId, PhaseId, PlanMode, SegmentId, TimingPlan


@dataclass(frozen=True, slots=True)
class ControlSettings:
    """Timing and memory knobs of the signal-control supervisor.

    ``decision_lead_s``: the next plan is decided this long (s) before the running plan's
    next cycle boundary (capped at half its cycle), so that it reaches the signal controller
    before it starts. ``ack_timeout_cycles``: a plan that no signal controller has
    acknowledged this many of its cycles after it was due (its start, or its sending if
    later) is marked unacknowledged. ``republish_every_s``: the plan in force is published
    again this often (s) although it did not change (refreshes the retained message and
    the stored time series). ``history_max``: events kept per intersection;
    ``tracked_plans_max``: plans per intersection whose acks are still recognised.
    """

    decision_lead_s: float = 5.0
    ack_timeout_cycles: float = 2.0
    republish_every_s: float = 300.0
    history_max: int = 100
    tracked_plans_max: int = 32

    def __post_init__(self) -> None:
        if not self.decision_lead_s >= 0.0:
            raise ControlError(f"decision_lead_s must be >= 0, got {self.decision_lead_s}")
        if not self.ack_timeout_cycles > 0.0:
            raise ControlError(f"ack_timeout_cycles must be > 0, got {self.ack_timeout_cycles}")
        if not self.republish_every_s > 0.0:
            raise ControlError(f"republish_every_s must be > 0, got {self.republish_every_s}")
        if self.history_max < 1 or self.tracked_plans_max < 2:
            raise ControlError("history_max must be >= 1 and tracked_plans_max >= 2")


class PlanState(enum.Enum):
    """Where a plan the engine sent stands with the signal controller."""

    SENT = "sent"
    APPLIED = "applied"
    REJECTED = "rejected"
    UNACKNOWLEDGED = "unacknowledged"
    SUPERSEDED = "superseded"
    """Replaced by a newer plan before it started; no ack is expected any more."""


class Source(enum.Enum):
    """Who decides the next plan of an intersection, in order of precedence (last wins)."""

    ADAPTIVE = "adaptive"
    """The intersection's configured controller, on fresh measures."""
    FALLBACK = "fallback"
    """The time-of-day plan, because the inputs are stale."""
    HOLD = "hold"
    """An operator holds the plan that was running."""
    FIXED = "fixed"
    """An operator runs a named time-of-day plan or explicit greens."""


class EventKind(enum.Enum):
    """Kinds of entries in an intersection's history."""

    DECISION = "decision"
    STARTED = "started"
    PUBLISHED = "published"
    ACK = "ack"
    ACK_TIMEOUT = "ack-timeout"
    OVERRIDE = "override"
    REJECTED = "rejected"
    INPUTS = "inputs"


ReasonParams = Mapping[str, str | float | int]
"""Values a reason code names (plan ids, seconds, who, why ...)."""


@dataclass(frozen=True, slots=True)
class ControlEvent:
    """One entry of an intersection's history: when, what, and why (``text``).

    ``code`` and ``params`` say the same as ``text`` for translation where it is shown
    (``plan_published`` with ``{"plan": ..., "cycle_s": ...}``); see docs/dashboard.md.
    """

    at: datetime
    kind: EventKind
    text: str
    plan_id: str | None = None
    code: str = ""
    params: ReasonParams = field(default_factory=dict)


EVENT_TEXT_MAX_CHARS = 2000
"""Longest control event text kept and logged (it quotes operator and signal texts)."""


def control_event(
    at: datetime,
    kind: EventKind,
    text: str,
    plan_id: str | None = None,
    code: tuple[str, ReasonParams] = ("", {}),
) -> ControlEvent:
    """Return an event with its texts made printable and cut to :data:`EVENT_TEXT_MAX_CHARS`."""
    params = {
        k: printable(v, EVENT_TEXT_MAX_CHARS) if isinstance(v, str) else v
        for k, v in code[1].items()
    }
    return ControlEvent(at, kind, printable(text, EVENT_TEXT_MAX_CHARS), plan_id, code[0], params)


@dataclass(frozen=True, slots=True)
class PlanStatus:
    """A plan the engine sent (or adopted) and its acknowledgement state.

    ``sent_at`` is when it was first published; ``acked_at``/``acked_by``/``detail`` come
    from the latest ack (``detail``: the signal controller's reason); ``publishes`` counts
    how often it was published (republishing included).
    """

    plan: TimingPlan
    state: PlanState
    sent_at: datetime
    acked_at: datetime | None = None
    acked_by: str = ""
    detail: str = ""
    publishes: int = 1


@dataclass(frozen=True, slots=True)
class ActiveOverride:
    """An operator override in force: the action, who asked, why, and since when (UTC).

    ``greens_s`` holds the target greens of a ``fixed`` override (or the held ones of a
    ``hold``), in seconds per phase; ``plan_name`` the time-of-day plan a ``fixed`` names.
    """

    action: OverrideAction
    who: str
    why: str
    since: datetime
    plan_name: str | None = None
    greens_s: Mapping[PhaseId, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SignalView:
    """A phase-by-phase intersection as the engine last heard it (SPaT-like).

    ``phase``, ``interval``, ``time_in_interval_s``, ``next_phase``, ``controller_mode``
    (``command`` or ``local``), ``controller_reason`` and ``controller_recall`` are the
    signal controller's last state report, ``state_age_s`` how long ago it arrived (None:
    never); ``recall`` the phases the engine serves on recall because a camera of theirs
    is down or stale; ``commands_sent`` and ``verdicts`` (accepted / repaired / refused /
    no_state) count the engine's commands; ``last_command`` describes the newest one;
    ``zones_from`` says, per segment with a zone at the last tick, what it was made from
    (``frame``: the newest frame's vehicles; ``window``: the newest window, spread).
    """

    phase: PhaseId | None
    interval: str | None
    time_in_interval_s: float | None
    next_phase: PhaseId | None
    controller_mode: str | None
    controller_reason: str
    controller_recall: tuple[PhaseId, ...]
    recall: tuple[PhaseId, ...]
    state_age_s: float | None
    commands_sent: int
    verdicts: Mapping[str, int]
    last_command: str
    zones_from: Mapping[SegmentId, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IntersectionState:
    """Snapshot of one intersection's control for dashboards and health checks.

    ``running`` is the plan in force now, ``pending`` the plan sent to start at the next
    cycle boundary (if any); ``mode`` is the running plan's mode; ``source`` who decides
    next; ``stale`` why the inputs are stale now (empty: fresh); ``last_reason`` the reason
    of the latest decision; ``next_decision_at`` when the next regular decision is due;
    ``plans`` the recently sent plans (oldest first) and ``history`` the recent events;
    ``last_reason_code``/``last_reason_params`` and ``stale_codes`` say the same as
    ``last_reason`` and ``stale`` as codes with parameters (for translation); ``signal``
    the phase-by-phase state (None for an intersection run by cycle plans).
    """

    intersection_id: IntersectionId
    controller: str
    source: Source
    mode: PlanMode | None
    running: PlanStatus | None
    pending: PlanStatus | None
    override: ActiveOverride | None
    stale: tuple[str, ...]
    last_reason: str
    next_decision_at: datetime | None
    plans: tuple[PlanStatus, ...]
    history: tuple[ControlEvent, ...]
    last_reason_code: str = ""
    last_reason_params: ReasonParams = field(default_factory=dict)
    stale_codes: tuple[tuple[str, ReasonParams], ...] = ()
    signal: SignalView | None = None
