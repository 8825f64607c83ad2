"""What a dashboard or the alarms read of signal control, wherever control runs.

:class:`ControlView` is the read side of :class:`~atcs.control.ControlLoop` (in-process
control, roles ``all`` and ``control``). :class:`PlanBook` is the same view built from the
plans on the bus, for the room role: per configured intersection, the latest plan the
control node published (running from its ``valid_from``), its mode, and the signal
controllers' acks of the recent plans; the decision history stays with the control node. A
phase-by-phase intersection has no plan: the room shows the signal controller's latest
state instead, in ``fallback`` when that state is older than the intersection's
``state_stale_s`` or the controller runs its own time-of-day plan. The control node's
override state (``{p}/intersections/{ix}/override/state``) says whether an operator
override is in force: the room then shows it, as the single process does, and raises the
``intersection_manual`` alarm.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

from atcs.bus.messages import AckResult, OverrideAction, PlanAck
from atcs.bus.override_state import OverrideState
from atcs.control.counters import CounterRecord, PlanBookCounters
from atcs.control.overrides import active_override_of
from atcs.control.state import (
    ActiveOverride,
    ControlSettings,
    IntersectionState,
    PlanState,
    PlanStatus,
    SignalView,
    Source,
)
from atcs.types import IntersectionId, PlanMode, TimingPlan
from controllers.phase.commands import ControlMode, SignalState

_SOURCE = {
    PlanMode.ADAPTIVE: Source.ADAPTIVE,
    PlanMode.FALLBACK: Source.FALLBACK,
    PlanMode.MANUAL: Source.FIXED,
}

_OVERRIDE_SOURCE = {OverrideAction.HOLD: Source.HOLD, OverrideAction.FIXED: Source.FIXED}


class ControlView(Protocol):
    """Signal control as a reader sees it."""

    @property
    def intersections(self) -> tuple[IntersectionId, ...]:
        """The intersections in view."""
        ...

    def state(self, now: datetime | None = None) -> Mapping[IntersectionId, IntersectionState]:
        """Return a snapshot per intersection."""
        ...

    def counters(self) -> CounterRecord:
        """Return message and plan counters (a typed record; ``as_map()`` for health)."""
        ...


class PlanBook:
    """Latest plan per configured intersection from the bus, with its acks (a ControlView).

    Plans and acks arrive on the bus feed's thread (:meth:`on_plan`, :meth:`on_ack`); the
    ``tracked`` most recent plans of each intersection keep their ack state (applied,
    rejected, or unacknowledged ``ack_timeout_cycles`` of their cycles after they were
    due, as the control loop marks them), so the room raises the same intersection alarms
    as the single process.
    """

    def __init__(
        self,
        intersections: Sequence[str],
        *,
        ack_timeout_cycles: float = ControlSettings().ack_timeout_cycles,
        tracked: int = ControlSettings().tracked_plans_max,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        phase_mode: Mapping[str, tuple[str, float]] | None = None,
    ) -> None:
        """``phase_mode`` gives the phase-mode intersections' (controller, state_stale_s)."""
        self._ids = tuple(IntersectionId(i) for i in intersections)
        self._ack_timeout_cycles = ack_timeout_cycles
        self._tracked = max(tracked, 2)
        self._clock = clock
        self._lock = threading.Lock()
        self._plans: dict[IntersectionId, TimingPlan] = {}
        self._phase_mode = {IntersectionId(k): v for k, v in (phase_mode or {}).items()}
        self._states: dict[IntersectionId, tuple[SignalState, datetime]] = {}
        self._overrides: dict[IntersectionId, OverrideState] = {}
        self._statuses: dict[IntersectionId, OrderedDict[str, PlanStatus]] = {
            ix: OrderedDict() for ix in self._ids
        }
        self._counts: dict[str, int] = {
            "plans_received": 0, "plans_ignored": 0, "acks": 0, "acks_ignored": 0,
            "override_states": 0, "override_states_ignored": 0, "states_ignored": 0,
        }  # fmt: skip

    @property
    def intersections(self) -> tuple[IntersectionId, ...]:
        """The configured intersections."""
        return self._ids

    def on_plan(self, plan: TimingPlan) -> None:
        """Take a plan from the bus (an unconfigured intersection's is counted and ignored)."""
        with self._lock:
            statuses = self._statuses.get(plan.intersection_id)
            if statuses is None:
                self._counts["plans_ignored"] += 1
                return
            self._counts["plans_received"] += 1
            known = statuses.get(plan.plan_id)
            if known is None:
                statuses[plan.plan_id] = PlanStatus(plan, PlanState.SENT, self._clock())
                while len(statuses) > self._tracked:
                    statuses.popitem(last=False)
            else:
                statuses[plan.plan_id] = replace(known, publishes=known.publishes + 1)
            old = self._plans.get(plan.intersection_id)
            if old is None or plan.valid_from >= old.valid_from:
                self._plans[plan.intersection_id] = plan

    def on_ack(self, ack: PlanAck) -> None:
        """Take a signal controller's ack (one of a plan not seen recently is counted only)."""
        with self._lock:
            statuses = self._statuses.get(ack.intersection_id)
            known = None if statuses is None else statuses.get(ack.plan_id)
            if statuses is None or known is None:
                self._counts["acks_ignored"] += 1
                return
            self._counts["acks"] += 1
            applied = ack.result is AckResult.APPLIED
            statuses[ack.plan_id] = replace(
                known,
                state=PlanState.APPLIED if applied else PlanState.REJECTED,
                acked_at=ack.at or self._clock(),
                acked_by=ack.controller_id,
                detail=ack.reason,
            )

    def on_override_state(self, state: OverrideState) -> None:
        """Take a control node's override state (an unconfigured intersection's is ignored)."""
        with self._lock:
            if state.intersection_id not in self._statuses:
                self._counts["override_states_ignored"] += 1
                return
            self._counts["override_states"] += 1
            old = self._overrides.get(state.intersection_id)
            if old is None or state.at >= old.at:
                self._overrides[state.intersection_id] = state

    def _timed_out(self, status: PlanStatus, now: datetime) -> PlanStatus:
        if status.state is not PlanState.SENT:
            return status
        due = max(status.sent_at, status.plan.valid_from)
        wait_s = self._ack_timeout_cycles * status.plan.cycle_s
        if (now - due).total_seconds() > wait_s:
            return replace(status, state=PlanState.UNACKNOWLEDGED)
        return status

    def on_signal_state(self, state: SignalState) -> None:
        """Take a phase-mode intersection's signal state (others are counted and ignored)."""
        with self._lock:
            if state.intersection_id not in self._phase_mode:
                self._counts["states_ignored"] += 1
                return
            old = self._states.get(state.intersection_id)
            if old is None or state.at_s >= old[0].at_s:
                self._states[state.intersection_id] = (state, self._clock())

    def _phase_state(
        self,
        ix: IntersectionId,
        state: SignalState,
        arrived: datetime,
        now: datetime,
        override: ActiveOverride | None,
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
        if override is not None:
            source = _OVERRIDE_SOURCE[override.action]
        return IntersectionState(
            intersection_id=ix, controller=controller, source=source,
            mode=PlanMode.FALLBACK if stale else PlanMode.ADAPTIVE, running=None, pending=None,
            override=override, stale=stale, last_reason=state.reason, next_decision_at=None,
            plans=(), history=(), signal=view,
        )  # fmt: skip

    def state(self, now: datetime | None = None) -> Mapping[IntersectionId, IntersectionState]:
        """Return each intersection's latest plan as its running plan (or signal state)."""
        at = now or self._clock()
        with self._lock:
            plans = dict(self._plans)
            recent = {ix: list(s.values()) for ix, s in self._statuses.items()}
            states = dict(self._states)
            held = {ix: active_override_of(s) for ix, s in self._overrides.items()}
        out = {
            ix: self._phase_state(ix, s, arrived, at, held.get(ix))
            for ix, (s, arrived) in states.items()
        }
        for ix, plan in plans.items():
            statuses = tuple(self._timed_out(s, at) for s in recent[ix])
            running = next(s for s in statuses if s.plan.plan_id == plan.plan_id)
            override = held.get(ix)
            source = _SOURCE.get(plan.mode, Source.ADAPTIVE)
            out[ix] = IntersectionState(
                intersection_id=ix,
                controller=plan.controller,
                source=source if override is None else _OVERRIDE_SOURCE[override.action],
                mode=plan.mode,
                running=running,
                pending=None,
                override=override,
                stale=(),
                last_reason=plan.reason,
                next_decision_at=None,
                plans=statuses,
                history=(),
            )
        return out

    def counters(self) -> PlanBookCounters:
        """Plans, acks and states received and ignored."""
        with self._lock:
            return PlanBookCounters(**self._counts)
