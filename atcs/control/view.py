"""What a dashboard or the alarms read of signal control, wherever control runs.

:class:`ControlView` is the read side of :class:`~atcs.control.ControlLoop` (in-process
control, roles ``all`` and ``control``). :class:`PlanBook` is the same view built from the
plans on the bus, for the room role: per configured intersection, the latest plan the
control node published (running from its ``valid_from``), its mode, and the node that
sent it; acknowledgements and the decision history stay with the control node. A
phase-by-phase intersection has no plan: the room shows the signal controller's latest
state instead, in ``fallback`` when that state is older than the intersection's
``state_stale_s`` or the controller runs its own time-of-day plan.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

from atcs.control.state import IntersectionState, PlanState, PlanStatus, SignalView, Source
from atcs.types import IntersectionId, PlanMode, TimingPlan
from controllers.phase.commands import ControlMode, SignalState

_SOURCE = {
    PlanMode.ADAPTIVE: Source.ADAPTIVE,
    PlanMode.FALLBACK: Source.FALLBACK,
    PlanMode.MANUAL: Source.FIXED,
}


class ControlView(Protocol):
    """Signal control as a reader sees it."""

    @property
    def intersections(self) -> tuple[IntersectionId, ...]:
        """The intersections in view."""
        ...

    def state(self, now: datetime | None = None) -> Mapping[IntersectionId, IntersectionState]:
        """Return a snapshot per intersection."""
        ...

    def counters(self) -> dict[str, int]:
        """Return message and plan counters."""
        ...


class PlanBook:
    """Latest plan per configured intersection from the bus (a :class:`ControlView`)."""

    def __init__(
        self,
        intersections: Sequence[str],
        phase_mode: Mapping[str, tuple[str, float]] | None = None,
    ) -> None:
        """``phase_mode`` gives the phase-mode intersections' (controller, state_stale_s)."""
        self._ids = tuple(IntersectionId(i) for i in intersections)
        self._phase_mode = {IntersectionId(k): v for k, v in (phase_mode or {}).items()}
        self._lock = threading.Lock()
        self._plans: dict[IntersectionId, TimingPlan] = {}
        self._states: dict[IntersectionId, tuple[SignalState, datetime]] = {}
        self._first_seen: dict[str, datetime] = {}
        self._counts: dict[str, int] = {"plans_received": 0, "plans_ignored": 0}

    @property
    def intersections(self) -> tuple[IntersectionId, ...]:
        """The configured intersections."""
        return self._ids

    def on_plan(self, plan: TimingPlan) -> None:
        """Take a plan from the bus (an unconfigured intersection's is counted and ignored)."""
        with self._lock:
            if plan.intersection_id not in self._ids:
                self._counts["plans_ignored"] += 1
                return
            self._counts["plans_received"] += 1
            old = self._plans.get(plan.intersection_id)
            if old is None or plan.valid_from >= old.valid_from:
                self._plans[plan.intersection_id] = plan
                if old is None or old.plan_id != plan.plan_id:
                    self._first_seen[plan.intersection_id] = datetime.now(UTC)

    def on_signal_state(self, state: SignalState) -> None:
        """Take a phase-mode intersection's signal state (others are counted and ignored)."""
        with self._lock:
            if state.intersection_id not in self._phase_mode:
                self._counts["states_ignored"] = self._counts.get("states_ignored", 0) + 1
                return
            old = self._states.get(state.intersection_id)
            if old is None or state.at_s >= old[0].at_s:
                self._states[state.intersection_id] = (state, datetime.now(UTC))

    def _phase_state(
        self, ix: IntersectionId, state: SignalState, arrived: datetime, now: datetime
    ) -> IntersectionState:
        controller, stale_s = self._phase_mode[ix]
        age_s = max(0.0, (now - arrived).total_seconds())
        stale: tuple[str, ...] = ()
        if age_s > stale_s:
            stale = (f"signal controller: last state {age_s:.1f} s ago (limit {stale_s:g} s)",)
        elif state.mode is ControlMode.LOCAL:
            stale = (f"signal controller on its time-of-day plan: {state.reason}",)
        view = SignalView(
            phase=state.phase, interval=state.interval.value,
            time_in_interval_s=round(state.time_in_interval_s, 1), next_phase=state.next_phase,
            controller_mode=state.mode.value, controller_reason=state.reason,
            controller_recall=tuple(sorted(state.recall)), recall=tuple(sorted(state.recall)),
            state_age_s=round(age_s, 1), commands_sent=0, verdicts={}, last_command="",
        )  # fmt: skip
        source = Source.FALLBACK if stale else Source.ADAPTIVE
        return IntersectionState(
            intersection_id=ix, controller=controller, source=source,
            mode=PlanMode.FALLBACK if stale else PlanMode.ADAPTIVE, running=None, pending=None,
            override=None, stale=stale, last_reason=state.reason, next_decision_at=None,
            plans=(), history=(), signal=view,
        )  # fmt: skip

    def state(self, now: datetime | None = None) -> Mapping[IntersectionId, IntersectionState]:
        """Return each intersection's latest plan as its running plan (or signal state)."""
        at = now or datetime.now(UTC)
        with self._lock:
            plans = dict(self._plans)
            seen = dict(self._first_seen)
            states = dict(self._states)
        out = {ix: self._phase_state(ix, s, arrived, at) for ix, (s, arrived) in states.items()}
        for ix, plan in plans.items():
            status = PlanStatus(plan, PlanState.SENT, seen.get(ix, plan.valid_from))
            out[ix] = IntersectionState(
                intersection_id=ix,
                controller=plan.controller,
                source=_SOURCE.get(plan.mode, Source.ADAPTIVE),
                mode=plan.mode,
                running=status,
                pending=None,
                override=None,
                stale=(),
                last_reason=plan.reason,
                next_decision_at=None,
                plans=(status,),
                history=(),
            )
        return out

    def counters(self) -> dict[str, int]:
        """Plans received and ignored."""
        with self._lock:
            return dict(self._counts)
