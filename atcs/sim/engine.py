"""Plans on whole seconds, as signal controllers run them.

The service's :class:`~atcs.control.supervisor.Supervisor` decides in the closed loop
exactly as in the engine; its controller is wrapped in :class:`WholeSecondController` so
that every plan it sends is on whole seconds (a field controller's resolution) and still
keeps every envelope rule (:func:`whole_seconds`). Without it a signal would have to round
the durations itself, and the rounding of two consecutive plans could break a step limit
by a second.
"""

from __future__ import annotations

import logging
import math
from collections import Counter

from atcs.types import PhaseTiming, TimingPlan
from controllers import ControlInput, Controller, check, enforce
from controllers.plans import make_plan_id
from controllers.spec import IntersectionSpec

log = logging.getLogger(__name__)

_EPS = 1e-9


def _half_up(value: float) -> int:
    return math.floor(value + 0.5)


def whole_seconds(
    spec: IntersectionSpec, plan: TimingPlan, running: TimingPlan | None
) -> TimingPlan:
    """Return ``plan`` on whole seconds (signal controllers' resolution), else ``plan``.

    Yellows and all-reds are rounded up; greens are rounded so that their sum is the
    rounded sum of the greens (largest remainders first), so each green moves by less than
    a second and the cycle by at most half a second. With whole-second limits and a
    whole-second running plan the result keeps every envelope rule; it is checked again
    and, should a rule break, the unrounded plan is kept (and the audit will tell).
    """
    values = [v for p in plan.phases for v in (p.green_s, p.yellow_s, p.all_red_s)]
    if (
        all(abs(v - round(v)) < _EPS for v in values)
        and abs(plan.offset_s - round(plan.offset_s)) < _EPS
    ):
        return plan
    greens = [p.green_s for p in plan.phases]
    floors = [math.floor(g + _EPS) for g in greens]
    extra = _half_up(math.fsum(greens)) - sum(floors)
    order = sorted(range(len(greens)), key=lambda i: greens[i] - floors[i], reverse=True)
    rounded = list(floors)
    for i in order[: max(0, extra)]:
        rounded[i] += 1
    phases = tuple(
        PhaseTiming(
            p.phase_id,
            float(g),
            float(math.ceil(p.yellow_s - _EPS)),
            float(math.ceil(p.all_red_s - _EPS)),
        )
        for p, g in zip(plan.phases, rounded, strict=True)
    )
    cycle_s = math.fsum(p.duration_s for p in phases)
    offset_s = float(_half_up(plan.offset_s)) % cycle_s
    whole = TimingPlan(
        intersection_id=plan.intersection_id,
        plan_id=make_plan_id(
            plan.intersection_id,
            controller=plan.controller,
            mode=plan.mode,
            phases=phases,
            offset_s=offset_s,
            valid_from=plan.valid_from,
        ),
        controller=plan.controller,
        mode=plan.mode,
        cycle_s=cycle_s,
        offset_s=offset_s,
        phases=phases,
        valid_from=plan.valid_from,
        reason=plan.reason,
        data_age_s=plan.data_age_s,
        extra=plan.extra,
    )
    problems = check(spec, whole, running)
    if problems:
        log.warning(
            "intersection %s: whole-second version of plan %s breaks %s; sent unrounded",
            plan.intersection_id,
            plan.plan_id,
            "; ".join(problems),
        )
        return plan
    return whole


class WholeSecondController:
    """A controller whose plans are already safe and on whole seconds.

    Wraps ``inner``: its proposal goes through :func:`controllers.enforce` against the
    running plan and :func:`whole_seconds`, so the plan the supervisor's own envelope then
    sees is accepted as is and the signal runs exactly what was decided. ``outcomes``
    counts the envelope's verdicts on the inner controller's proposals.
    """

    def __init__(self, inner: Controller) -> None:
        self._inner = inner
        self.name = inner.name
        self.outcomes: Counter[str] = Counter()

    def propose(self, spec: IntersectionSpec, inputs: ControlInput) -> TimingPlan:
        """Return the inner controller's plan, made safe and put on whole seconds."""
        proposed = self._inner.propose(spec, inputs)
        decision = enforce(spec, proposed, inputs.running, inputs.now)
        self.outcomes[decision.outcome.value] += 1
        if not decision.changed:
            return decision.plan
        return whole_seconds(spec, decision.plan, inputs.running)
