"""What a dashboard or the alarms read of signal control, wherever control runs.

:class:`ControlView` is the read side of :class:`~atcs.control.ControlLoop` (in-process
control, roles ``all`` and ``control``). :class:`PlanBook` is the same view built from the
plans on the bus, for the room role: per configured intersection, the latest plan the
control node published (running from its ``valid_from``), its mode, and the signal
controllers' acks of the recent plans; the decision history stays with the control node.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

from atcs.bus.messages import AckResult, PlanAck
from atcs.control.state import ControlSettings, IntersectionState, PlanState, PlanStatus, Source
from atcs.types import IntersectionId, PlanMode, TimingPlan

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
    ) -> None:
        self._ids = tuple(IntersectionId(i) for i in intersections)
        self._ack_timeout_cycles = ack_timeout_cycles
        self._tracked = max(tracked, 2)
        self._clock = clock
        self._lock = threading.Lock()
        self._plans: dict[IntersectionId, TimingPlan] = {}
        self._statuses: dict[IntersectionId, OrderedDict[str, PlanStatus]] = {
            ix: OrderedDict() for ix in self._ids
        }
        self._counts: dict[str, int] = {
            "plans_received": 0, "plans_ignored": 0, "acks": 0, "acks_ignored": 0,
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

    def _timed_out(self, status: PlanStatus, now: datetime) -> PlanStatus:
        if status.state is not PlanState.SENT:
            return status
        due = max(status.sent_at, status.plan.valid_from)
        wait_s = self._ack_timeout_cycles * status.plan.cycle_s
        if (now - due).total_seconds() > wait_s:
            return replace(status, state=PlanState.UNACKNOWLEDGED)
        return status

    def state(self, now: datetime | None = None) -> Mapping[IntersectionId, IntersectionState]:
        """Return each intersection's latest plan as its running plan, with recent acks."""
        at = now or self._clock()
        with self._lock:
            plans = dict(self._plans)
            recent = {ix: list(s.values()) for ix, s in self._statuses.items()}
        out = {}
        for ix, plan in plans.items():
            statuses = tuple(self._timed_out(s, at) for s in recent[ix])
            running = next(s for s in statuses if s.plan.plan_id == plan.plan_id)
            out[ix] = IntersectionState(
                intersection_id=ix,
                controller=plan.controller,
                source=_SOURCE.get(plan.mode, Source.ADAPTIVE),
                mode=plan.mode,
                running=running,
                pending=None,
                override=None,
                stale=(),
                last_reason=plan.reason,
                next_decision_at=None,
                plans=statuses,
                history=(),
            )
        return out

    def counters(self) -> dict[str, int]:
        """Plans and acks received and ignored."""
        with self._lock:
            return dict(self._counts)
