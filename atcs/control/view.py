"""What a dashboard or the alarms read of signal control, wherever control runs.

:class:`ControlView` is the read side of :class:`~atcs.control.ControlLoop` (in-process
control, roles ``all`` and ``control``). :class:`PlanBook` is the same view built from the
plans on the bus, for the room role: per configured intersection, the latest plan the
control node published (running from its ``valid_from``), its mode, and the node that
sent it; acknowledgements and the decision history stay with the control node.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

from atcs.control.state import IntersectionState, PlanState, PlanStatus, Source
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
    """Latest plan per configured intersection from the bus (a :class:`ControlView`)."""

    def __init__(self, intersections: Sequence[str]) -> None:
        self._ids = tuple(IntersectionId(i) for i in intersections)
        self._lock = threading.Lock()
        self._plans: dict[IntersectionId, TimingPlan] = {}
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

    def state(self, now: datetime | None = None) -> Mapping[IntersectionId, IntersectionState]:
        """Return each intersection's latest plan as its running plan."""
        with self._lock:
            plans = dict(self._plans)
            seen = dict(self._first_seen)
        out = {}
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
