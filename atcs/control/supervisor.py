"""One intersection's signal control: when to decide, who decides, what reaches the signal.

:class:`Supervisor` is pure logic with an injected clock (every call takes ``now``, an
aware UTC datetime); it never publishes anything itself: :meth:`Supervisor.tick` returns
the plans to publish. Who decides, in order of precedence:

1. an operator override (``hold`` keeps the running timings, ``fixed`` runs a named
   time-of-day plan or explicit greens; mode ``manual``) until it is released;
2. the time-of-day plan (mode ``fallback``) while the inputs are stale: an approach segment
   without measures for ``stale_after_s``, or whose camera is down;
3. the intersection's configured controller (mode ``adaptive`` for webster and
   max-pressure; ``fixed`` runs the time-of-day plans).

When: once per cycle, ``decision_lead_s`` before the next cycle boundary of the plan that
will be running; at once when there is no plan yet, when an override is applied or
released, and when the inputs go stale. Going back from fallback to adaptive waits for the
next regular decision. Every proposal passes :func:`controllers.enforce` against the plan
in force, so the plan that leaves starts at a cycle boundary and changes by no more than
the allowed step; it is published when it differs from the plan that would otherwise run
(and the plan in force is published again every ``republish_every_s``). Every decision,
override, ack and rejection is kept in a bounded history and logged with its reason (at
most 20 lines a minute per kind of event, then a "suppressed N" summary: a flood of acks
cannot flood the log).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from atcs.bus.messages import AckResult, Override, OverrideAction, PlanAck
from atcs.config import PcuConfig
from atcs.control.inputs import MeasureBoard
from atcs.control.overrides import accept_override, describe, fixed_plan, held_plan
from atcs.control.state import (
    ActiveOverride,
    ControlEvent,
    ControlSettings,
    EventKind,
    IntersectionState,
    PlanState,
    ReasonParams,
    Source,
    control_event,
)
from atcs.control.tracker import PlanTracker
from atcs.errors import ControlError
from atcs.logthrottle import ThrottledLog
from atcs.types import CameraId, CameraStatus, SegmentId, SegmentMetrics, TimingPlan
from controllers import (
    ControlInput,
    Controller,
    IntersectionSpec,
    SafetyOutcome,
    check,
    enforce,
    get_controller,
    next_cycle_boundary,
    time_of_day_plan,
    validate_spec,
)
from controllers.plans import require_aware
from controllers.registry import known_plan_source

log = logging.getLogger(__name__)

RETRY_AFTER_S = 10.0
"""After a decision failed (bad input the config did not catch), try again this much later."""


_SAME_S = 1e-6

DECISION_WHY = {
    "no_plan": "no plan is running",
    "override_released": "override released",
    "override_applied": "override applied",
    "inputs_stale": "inputs went stale",
    "cycle_boundary": "next cycle boundary ahead",
}
"""Why a decision is taken now: code and its text in logs and event texts."""


def _override_params(active: ActiveOverride) -> dict[str, str | float | int]:
    params: dict[str, str | float | int] = {
        "action": active.action.value, "who": active.who, "why": active.why,
    }  # fmt: skip
    if active.plan_name is not None:
        params["plan"] = active.plan_name
    if active.greens_s and active.plan_name is None:
        params["greens"] = ", ".join(f"{k}={v:g}" for k, v in active.greens_s.items())
    return params


def same_timings(a: TimingPlan, b: TimingPlan) -> bool:
    """Tell whether ``a`` and ``b`` run the same: controller, mode, offset, timings."""
    if (a.controller, a.mode, len(a.phases)) != (b.controller, b.mode, len(b.phases)):
        return False
    pairs = [(a.offset_s, b.offset_s), (a.cycle_s, b.cycle_s)]
    for x, y in zip(a.phases, b.phases, strict=True):
        if x.phase_id != y.phase_id:
            return False
        pairs += [(x.green_s, y.green_s), (x.yellow_s, y.yellow_s), (x.all_red_s, y.all_red_s)]
    return all(abs(u - v) <= _SAME_S for u, v in pairs)


def boundary_after(plan: TimingPlan, at: datetime) -> datetime:
    """Return the first cycle boundary of ``plan`` later than ``at``."""
    boundary = next_cycle_boundary(plan, at)
    if (boundary - at).total_seconds() < 1e-3:
        boundary += timedelta(seconds=plan.cycle_s)
    return boundary


class Supervisor:
    """Decides, checks and tracks the plans of one intersection (see the module docstring).

    ``pcu``, ``movements`` and ``segment_cameras`` feed the measure aggregation
    (:class:`~atcs.control.inputs.MeasureBoard`); ``controller`` defaults to the one the
    spec names. Raises :class:`ControlError` for a spec that cannot satisfy its limits or
    names an unknown controller.
    """

    def __init__(
        self,
        spec: IntersectionSpec,
        *,
        settings: ControlSettings | None = None,
        pcu: PcuConfig | None = None,
        movements: Mapping[SegmentId, str] | None = None,
        segment_cameras: Mapping[SegmentId, CameraId] | None = None,
        controller: Controller | None = None,
    ) -> None:
        validate_spec(spec)
        self.spec = spec
        self.settings = settings or ControlSettings()
        self._controller = controller or get_controller(spec.controller)
        self.board = MeasureBoard(spec, pcu, movements, segment_cameras)
        self._tracker = PlanTracker(spec.intersection_id, self.settings)
        self._history: deque[ControlEvent] = deque(maxlen=self.settings.history_max)
        self._override: ActiveOverride | None = None
        self._held: TimingPlan | None = None
        self._source = Source.ADAPTIVE
        self._decided = False
        self._decide_now = ""
        self._force_publish = False
        self._next_decision_at: datetime | None = None
        self._retry_at: datetime | None = None
        self._stale = False
        self._last_reason = "no decision yet"
        self._last_code: tuple[str, ReasonParams] = ("no_decision", {})
        self._log = ThrottledLog(log, burst=20, max_keys=len(EventKind))  # per kind a minute

    @property
    def intersection_id(self) -> str:
        """The intersection's id."""
        return self.spec.intersection_id

    @property
    def running(self) -> TimingPlan | None:
        """The plan in force (the last one sent that has started and was not rejected)."""
        return self._tracker.running

    @property
    def override(self) -> ActiveOverride | None:
        """The operator override in force, if any."""
        return self._override

    # Inputs ------------------------------------------------------------------------------

    def on_metrics(self, metrics: Iterable[SegmentMetrics]) -> None:
        """Take closed windows (any segments; those this intersection does not use are ignored)."""
        self.board.add(metrics)

    def on_camera_status(self, status: CameraStatus, now: datetime) -> None:
        """Take a camera's health: a camera that is not streaming makes its segments stale."""
        if self.board.set_camera_status(status):
            self._event(
                now, EventKind.INPUTS, f"camera {status.camera_id} {status.state.value}",
                code=("camera_state", {"camera": status.camera_id, "state": status.state.value}),
            )  # fmt: skip

    def apply_override(self, override: Override, now: datetime) -> None:
        """Put an operator override in force (or release it); it acts at the next tick.

        Raises :class:`ControlError` (after logging it) for a request that cannot be honoured.
        """
        try:
            active = accept_override(self.spec, override, self._tracker.running, now)
        except ControlError as exc:
            self._event(
                now, EventKind.REJECTED, f"override rejected: {exc}", level=logging.WARNING,
                code=("override_rejected", {"who": override.who, "error": str(exc)}),
            )  # fmt: skip
            raise
        if active is None:
            if self._override is None:
                self._event(
                    now,
                    EventKind.OVERRIDE,
                    f"release by {override.who} ({override.why}): no override was in force",
                    code=("release_nothing", {"who": override.who, "why": override.why}),
                )
                return
            text = f"{describe(self._override)} released by {override.who}: {override.why}"
            code = ("override_released", _override_params(self._override))
            code[1].update(who=override.who, why=override.why)
            self._override, self._held = None, None
            self._decide_now = "override_released"
        else:
            self._override = active
            self._held = self._tracker.running if active.action is OverrideAction.HOLD else None
            text = f"{describe(active)} in force until released"
            code = ("override_applied", _override_params(active))
            self._decide_now = "override_applied"
        self._event(now, EventKind.OVERRIDE, text, level=logging.WARNING, code=code)

    def on_ack(self, ack: PlanAck, now: datetime) -> None:
        """Take a signal controller's ack; raises :class:`ControlError` for an unknown plan."""
        try:
            status, changed = self._tracker.on_ack(ack, now)
        except ControlError as exc:
            self._event(
                now, EventKind.REJECTED, f"ack rejected: {exc}", level=logging.WARNING,
                code=("ack_refused", {"plan": ack.plan_id, "error": str(exc)}),
            )  # fmt: skip
            raise
        by = f" by {ack.controller_id}" if ack.controller_id else ""
        why = f": {ack.reason}" if ack.reason else ""
        level = logging.INFO if ack.result is AckResult.APPLIED else logging.WARNING
        text = f"plan {ack.plan_id} {ack.result.value}{by}{why} (now {status.state.value})"
        params: dict[str, str | float | int] = {
            "plan": ack.plan_id, "result": ack.result.value, "by": ack.controller_id or "",
            "why": ack.reason, "state": status.state.value,
        }  # fmt: skip
        if changed:  # decide again for the boundary after the rejected plan's, and send
            running = self._tracker.running
            text += "; the signal keeps " + (running.plan_id if running else "its own plan")
            params["keeps"] = running.plan_id if running else ""
            self._force_publish = True
            self._schedule(running, max(now, status.plan.valid_from))
        self._event(now, EventKind.ACK, text, ack.plan_id, level, code=("plan_ack", params))

    def adopt(self, plan: TimingPlan, now: datetime) -> None:
        """Take ``plan`` as what the signal runs (a retained plan found at start-up).

        Raises :class:`ControlError` for a plan of another intersection, from an unknown
        controller, breaking the envelope's rules, or when this engine already decided.
        """
        try:
            if plan.intersection_id != self.spec.intersection_id:
                raise ControlError(
                    f"plan {plan.plan_id!r} is for intersection {plan.intersection_id!r}, "
                    f"not {self.spec.intersection_id!r}"
                )
            if not known_plan_source(plan.controller):
                raise ControlError(
                    f"plan {plan.plan_id!r} comes from unknown controller {plan.controller!r}"
                )
            problems = check(self.spec, plan, None)
            if problems:
                raise ControlError(f"plan {plan.plan_id!r} breaks " + "; ".join(problems))
            if self._decided:
                raise ControlError(
                    f"plan {plan.plan_id!r} ignored: this engine already controls the intersection"
                )
        except ControlError as exc:
            self._event(
                now, EventKind.REJECTED, f"plan rejected: {exc}", level=logging.WARNING,
                code=("plan_refused", {"plan": plan.plan_id, "error": str(exc)}),
            )  # fmt: skip
            raise
        self._tracker.adopt(plan, now)
        self._next_decision_at = None
        self._event(
            now, EventKind.DECISION, f"adopted running plan {plan.plan_id}", plan.plan_id,
            code=("plan_adopted", {"plan": plan.plan_id}),
        )  # fmt: skip

    # The control tick --------------------------------------------------------------------

    def tick(self, now: datetime) -> list[TimingPlan]:
        """Advance to ``now``; return the plans to publish (usually none, at most one)."""
        require_aware(now)
        started = self._tracker.advance(now)
        if started is not None:
            self._event(
                now, EventKind.STARTED, f"plan {started.plan_id} in force", started.plan_id,
                code=("plan_started", {"plan": started.plan_id, "mode": started.mode.value}),
            )  # fmt: skip
        for status in self._tracker.expire(now):
            self._event(
                now,
                EventKind.ACK_TIMEOUT,
                f"plan {status.plan.plan_id} unacknowledged: no ack "
                f"{self.settings.ack_timeout_cycles:g} cycles after it was due",
                status.plan.plan_id,
                logging.WARNING,
                code=(
                    "plan_unacknowledged",
                    {"plan": status.plan.plan_id, "cycles": self.settings.ack_timeout_cycles},
                ),
            )
        stale = self.board.stale_reasons(now)
        if bool(stale) != self._stale:
            self._stale = bool(stale)
            text = "inputs stale: " + "; ".join(stale) if stale else "inputs fresh again"
            segments = ", ".join(str(c[1]["segment"]) for c in self.board.stale_codes(now))
            self._event(
                now, EventKind.INPUTS, text, level=logging.WARNING if stale else logging.INFO,
                code=("inputs_stale", {"segments": segments}) if stale else ("inputs_fresh", {}),
            )  # fmt: skip
        source = self._wanted(stale)
        why = self._due(now, source)
        if why is None:
            return self._republish(now)
        try:
            plan = self._decide(now, source, stale, why)
        except ControlError as exc:
            self._retry_at = now + timedelta(seconds=RETRY_AFTER_S)
            self._last_reason = f"decision failed: {exc}"
            self._last_code = ("decision_failed", {"error": str(exc)})
            self._event(now, EventKind.REJECTED, self._last_reason, level=logging.ERROR)
            return []
        return [plan] if plan is not None else self._republish(now)

    def _wanted(self, stale: list[str]) -> Source:
        if self._override is not None:
            return Source.HOLD if self._override.action is OverrideAction.HOLD else Source.FIXED
        return Source.FALLBACK if stale else Source.ADAPTIVE

    def _due(self, now: datetime, source: Source) -> str | None:
        if self._retry_at is not None and now < self._retry_at:
            return None
        upcoming = self._tracker.upcoming
        if upcoming is None:
            return "no_plan"
        if self._decide_now:
            return self._decide_now
        if source is Source.FALLBACK and self._source is not Source.FALLBACK:
            return "inputs_stale"
        if self._next_decision_at is None:
            self._next_decision_at = self._decision_time(
                upcoming, boundary_after(upcoming, max(now, upcoming.valid_from))
            )
        if now >= self._next_decision_at:
            return "cycle_boundary"
        return None

    def _decision_time(self, plan: TimingPlan, boundary: datetime) -> datetime:
        lead_s = min(self.settings.decision_lead_s, plan.cycle_s / 2.0)
        return boundary - timedelta(seconds=lead_s)

    def _propose(self, now: datetime, source: Source, stale: list[str]) -> TimingPlan:
        running = self._tracker.running
        if running is not None:  # queues are averaged over about one running cycle
            self.board.queue_span_s = running.cycle_s
        inputs = ControlInput(now, self.board.measures(now), running)
        if source is Source.HOLD and self._override is not None and self._held is not None:
            return held_plan(self.spec, self._held, self._override, inputs)
        if source is Source.FIXED and self._override is not None:
            return fixed_plan(self.spec, self._override, inputs)
        if source is Source.FALLBACK:
            why = "stale inputs: " + "; ".join(stale)
            return time_of_day_plan(self.spec, inputs, controller=self.spec.controller, why=why)
        return self._controller.propose(self.spec, inputs)

    def _decide(
        self, now: datetime, source: Source, stale: list[str], why: str
    ) -> TimingPlan | None:
        running = self._tracker.running
        proposed = self._propose(now, source, stale)
        decision = enforce(self.spec, proposed, running, now)
        self._decided, self._source, self._decide_now, self._retry_at = True, source, "", None
        boundary = next_cycle_boundary(running, now)
        head = f"{source.value} decision ({DECISION_WHY.get(why, why)})"
        base: dict[str, str | float | int] = {
            "source": source.value, "why": why, "controller": proposed.controller,
        }  # fmt: skip
        if decision.outcome is SafetyOutcome.REFUSED:
            upcoming = self._tracker.upcoming
            self._schedule(upcoming, boundary)
            self._last_reason = f"{proposed.reason}; refused: {'; '.join(decision.reasons)}"
            self._last_code = ("decision_refused", {**base, "error": "; ".join(decision.reasons)})
            self._event(
                now, EventKind.DECISION, f"{head}: {self._last_reason}", level=logging.WARNING,
                code=self._last_code,
            )  # fmt: skip
            return None
        plan = decision.plan
        outcome = decision.outcome.value
        upcoming = self._tracker.upcoming
        if upcoming is not None and not self._force_publish and same_timings(plan, upcoming):
            self._schedule(upcoming, boundary)
            self._last_reason = f"{plan.reason} (unchanged: {upcoming.plan_id} goes on)"
            self._last_code = ("decision_unchanged", {**base, "plan": upcoming.plan_id})
            self._event(
                now, EventKind.DECISION, f"{head}: {self._last_reason}", upcoming.plan_id,
                code=self._last_code,
            )  # fmt: skip
            return None
        problems = check(self.spec, plan, running)
        if problems:  # enforce guarantees this never happens; never send such a plan
            raise ControlError(f"plan {plan.plan_id} breaks " + "; ".join(problems))
        superseded = self._tracker.record_sent(plan, now)
        self._force_publish = False
        self._schedule(plan, plan.valid_from)
        self._last_reason = plan.reason
        self._last_code = ("plan_published", {
            **base, "plan": plan.plan_id, "mode": plan.mode.value, "outcome": outcome,
            "cycle_s": round(plan.cycle_s, 1), "valid_from": plan.valid_from.isoformat(),
            "greens": "/".join(f"{p.green_s:.0f}" for p in plan.phases),
        })  # fmt: skip
        replaced = f", replacing {', '.join(superseded)}" if superseded else ""
        self._event(
            now,
            EventKind.PUBLISHED,
            f"{head}: plan {plan.plan_id} {outcome} ({plan.mode.value}, cycle "
            f"{plan.cycle_s:.1f} s, greens "
            + "/".join(f"{p.green_s:.1f}" for p in plan.phases)
            + f" s, from {plan.valid_from:%H:%M:%S}{replaced}): {plan.reason}",
            plan.plan_id,
            code=self._last_code,
        )
        return plan

    def _schedule(self, basis: TimingPlan | None, boundary: datetime) -> None:
        if basis is None or not math.isfinite(basis.cycle_s) or basis.cycle_s <= 0:
            self._next_decision_at = None
            return
        self._next_decision_at = self._decision_time(basis, boundary_after(basis, boundary))

    def _republish(self, now: datetime) -> list[TimingPlan]:
        last = self._tracker.last_publish_at
        running = self._tracker.running
        if running is None or last is None or self._tracker.pending is not None:
            return []
        if (now - last).total_seconds() < self.settings.republish_every_s:
            return []
        self._tracker.record_sent(running, now)
        self._event(
            now, EventKind.PUBLISHED, f"plan {running.plan_id} republished", running.plan_id,
            code=("plan_republished", {"plan": running.plan_id}),
        )  # fmt: skip
        return [running]

    # Reporting ---------------------------------------------------------------------------

    def _event(
        self,
        now: datetime,
        kind: EventKind,
        text: str,
        plan_id: str | None = None,
        level: int = logging.INFO,
        *,
        code: tuple[str, ReasonParams] = ("", {}),
    ) -> None:
        event = control_event(now, kind, text, plan_id, code)  # who, why, texts from the bus
        self._history.append(event)
        self._log.emit(
            level, kind.value, "intersection %s: %s", self.spec.intersection_id, event.text
        )

    def state(self, now: datetime) -> IntersectionState:
        """Return a snapshot for dashboards and health checks."""
        running = self._tracker.running_status()
        stale = tuple(self.board.stale_reasons(now))
        return IntersectionState(
            intersection_id=self.spec.intersection_id,
            controller=self.spec.controller,
            source=self._wanted(list(stale)),
            mode=None if running is None else running.plan.mode,
            running=running,
            pending=self._tracker.pending_status(),
            override=self._override,
            stale=stale,
            last_reason=self._last_reason,
            next_decision_at=self._next_decision_at,
            plans=self._tracker.statuses(),
            history=tuple(self._history),
            last_reason_code=self._last_code[0],
            last_reason_params=dict(self._last_code[1]),
            stale_codes=tuple((c, dict(p)) for c, p in self.board.stale_codes(now)),
        )

    def ack_state(self, plan_id: str) -> PlanState | None:
        """Return the ack state of plan ``plan_id`` (None when not remembered)."""
        status = self._tracker.status(plan_id)
        return None if status is None else status.state
