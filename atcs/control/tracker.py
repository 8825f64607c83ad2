"""The plans of one intersection as sent to its signal controller, and their acks.

A plan is sent ahead of the cycle boundary it starts at: until then it is *pending*, from
then on it is *in force* (the running plan the safety envelope steps from). A newer plan
sent before a pending one started *supersedes* it. Acks move a plan from ``sent`` to
``applied`` or ``rejected``; a plan with no ack ``ack_timeout_cycles`` of its cycles after
it was due is ``unacknowledged`` (a late ack still counts). A rejected plan never runs: if
it was pending it is dropped, if it was already in force the previous plan the signal kept
running is in force again. Memory is bounded: only the newest ``tracked_plans_max`` plans
are remembered.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict, deque
from datetime import datetime, timedelta

from atcs.bus.messages import AckResult, PlanAck
from atcs.control.state import ControlSettings, PlanState, PlanStatus
from atcs.errors import ControlError
from atcs.types import IntersectionId, TimingPlan


class PlanTracker:
    """Sent plans, which one is pending and which in force, and their ack states."""

    def __init__(self, intersection_id: IntersectionId, settings: ControlSettings) -> None:
        self._ix = intersection_id
        self._settings = settings
        self._plans: OrderedDict[str, PlanStatus] = OrderedDict()
        self._in_force: str | None = None
        self._pending: str | None = None
        self._previous: deque[str] = deque(maxlen=8)
        self.last_publish_at: datetime | None = None

    # What runs ---------------------------------------------------------------------------

    @property
    def running(self) -> TimingPlan | None:
        """The plan in force (None before the first plan)."""
        return None if self._in_force is None else self._plans[self._in_force].plan

    @property
    def pending(self) -> TimingPlan | None:
        """The plan sent to start at a coming cycle boundary, if any."""
        return None if self._pending is None else self._plans[self._pending].plan

    @property
    def upcoming(self) -> TimingPlan | None:
        """The plan that will run after the coming boundary: pending, else the one in force."""
        return self.pending or self.running

    def status(self, plan_id: str | None) -> PlanStatus | None:
        """Return the status of plan ``plan_id`` (None when unknown or None)."""
        return None if plan_id is None else self._plans.get(plan_id)

    def running_status(self) -> PlanStatus | None:
        """Status of the plan in force."""
        return self.status(self._in_force)

    def pending_status(self) -> PlanStatus | None:
        """Status of the pending plan."""
        return self.status(self._pending)

    def statuses(self) -> tuple[PlanStatus, ...]:
        """Every remembered plan, oldest first."""
        return tuple(self._plans.values())

    def advance(self, now: datetime) -> TimingPlan | None:
        """Put the pending plan in force once it started; return it when that happened."""
        if self._pending is None or self._plans[self._pending].plan.valid_from > now:
            return None
        self._put_in_force(self._pending)
        self._pending = None
        return self.running

    def _put_in_force(self, plan_id: str) -> None:
        if self._in_force is not None and self._in_force != plan_id:
            self._previous.append(self._in_force)
        self._in_force = plan_id

    # Sending -----------------------------------------------------------------------------

    def record_sent(self, plan: TimingPlan, now: datetime) -> list[str]:
        """Record ``plan`` as published at ``now``; return the ids of plans it supersedes."""
        superseded = []
        if self._pending is not None and self._pending != plan.plan_id:
            old = self._plans[self._pending]
            self._plans[self._pending] = dataclasses.replace(old, state=PlanState.SUPERSEDED)
            superseded.append(self._pending)
            self._pending = None
        known = self._plans.get(plan.plan_id)
        if known is None:
            self._plans[plan.plan_id] = PlanStatus(plan, PlanState.SENT, now)
        elif known.state in (PlanState.SUPERSEDED, PlanState.REJECTED):  # the same plan again
            self._plans[plan.plan_id] = PlanStatus(
                plan, PlanState.SENT, now, publishes=known.publishes + 1
            )
        else:
            self._plans[plan.plan_id] = dataclasses.replace(known, publishes=known.publishes + 1)
        if plan.valid_from > now:
            self._pending = plan.plan_id
        else:
            self._put_in_force(plan.plan_id)
        self.last_publish_at = now
        self._trim()
        return superseded

    def adopt(self, plan: TimingPlan, now: datetime) -> None:
        """Take ``plan`` as what the signal runs (or will run from its ``valid_from``)."""
        self._plans[plan.plan_id] = PlanStatus(
            plan, PlanState.APPLIED, now, acked_at=now, detail="adopted as running"
        )
        self._pending = None
        if plan.valid_from > now:
            self._pending = plan.plan_id
        else:
            self._put_in_force(plan.plan_id)
        self._trim()

    def _trim(self) -> None:
        keep = {self._in_force, self._pending}
        while len(self._plans) > self._settings.tracked_plans_max:
            oldest = next((k for k in self._plans if k not in keep), None)
            if oldest is None:
                return
            del self._plans[oldest]

    # Acks --------------------------------------------------------------------------------

    def on_ack(self, ack: PlanAck, now: datetime) -> tuple[PlanStatus, bool]:
        """Apply ``ack``; return the plan's new status and whether what runs changed.

        Raises :class:`ControlError` for an ack of another intersection or of a plan this
        intersection did not send recently.
        """
        if ack.intersection_id != self._ix:
            raise ControlError(
                f"ack for intersection {ack.intersection_id!r} reached intersection {self._ix!r}"
            )
        old = self._plans.get(ack.plan_id)
        if old is None:
            recent = ", ".join(list(self._plans)[-3:]) or "none"
            raise ControlError(
                f"intersection {self._ix}: ack ({ack.result.value}) for unknown plan id "
                f"{ack.plan_id!r}; the engine did not send it recently (latest: {recent})"
            )
        by = ack.controller_id
        if ack.result is AckResult.APPLIED:
            state = PlanState.SUPERSEDED if old.state is PlanState.SUPERSEDED else PlanState.APPLIED
            new = dataclasses.replace(
                old, state=state, acked_at=now, acked_by=by, detail=ack.reason
            )
            self._plans[ack.plan_id] = new
            return new, False
        new = dataclasses.replace(
            old, state=PlanState.REJECTED, acked_at=now, acked_by=by, detail=ack.reason
        )
        self._plans[ack.plan_id] = new
        changed = False
        if self._pending == ack.plan_id:
            self._pending = None
            changed = True
        elif self._in_force == ack.plan_id:
            self._in_force = None
            while self._previous:
                candidate = self._previous.pop()
                status = self._plans.get(candidate)
                if status is not None and status.state is not PlanState.REJECTED:
                    self._in_force = candidate
                    break
            changed = True
        return new, changed

    def expire(self, now: datetime) -> list[PlanStatus]:
        """Mark plans with no ack for too long as unacknowledged; return those just marked."""
        out = []
        for status in list(self._plans.values()):
            if status.state is not PlanState.SENT:
                continue
            plan = status.plan
            due = max(status.sent_at, plan.valid_from)
            wait = timedelta(seconds=self._settings.ack_timeout_cycles * plan.cycle_s)
            if now - due > wait:
                new = dataclasses.replace(status, state=PlanState.UNACKNOWLEDGED)
                self._plans[plan.plan_id] = new
                out.append(new)
        return out
