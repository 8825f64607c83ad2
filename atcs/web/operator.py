"""Operator actions from the dashboard: check, hand to the control loop, audit.

An action becomes an :class:`~atcs.bus.messages.Override` (``who`` is the logged-in user,
``why`` the required reason) and is handed to an :class:`OverrideTarget`: in one process
(:class:`LoopTarget`) the same path as an override from the MQTT bus,
:meth:`atcs.control.ControlLoop.on_override`, applied at the engine's next tick; in the
room node (:class:`atcs.roles.overrides.BusOverrides`) a signed override on the bus, which
the control node checks, applies and audits like any other. Before that, the request is
checked with the control side's own rules
(:func:`atcs.control.overrides.accept_override`), so a request that cannot be honoured is
answered at once with the reason instead of being dropped later in the loop. Every
request by an operator, accepted or refused, is written to the audit log, every text in
it bounded and made printable (:func:`atcs.text.printable`: a 10,000-character id or a
reason with newlines cannot bloat or forge audit lines).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from atcs.bus.messages import Override, OverrideAction
from atcs.control import ControlLoop, IntersectionState
from atcs.control.overrides import accept_override
from atcs.errors import ControlError
from atcs.text import printable
from atcs.types import IntersectionId, PhaseId, TimingPlan
from atcs.web.audit import AuditLog, AuditRecord
from atcs.web.auth import Session
from atcs.web.models import OverrideRequest

log = logging.getLogger(__name__)

APPLY_WAIT_S = 3.0
"""How long an answer waits for the control loop to show the override in force, s."""

ID_MAX_CHARS = 100
"""Longest id, user, phase or address written to the audit trail (longer ones are cut)."""
REASON_MAX_CHARS = 1000
"""Longest reason written to the audit trail, characters (the API accepts no longer)."""
DETAIL_MAX_CHARS = 500
"""Longest refusal detail written to the audit trail, characters."""
GREENS_MAX = 32
"""Most phases of a request's greens written to the audit trail."""


class ApiError(Exception):
    """An API request that cannot be served: HTTP status, stable code and message.

    ``retry_after_s`` (when above 0) becomes a ``Retry-After`` header, in whole seconds.
    """

    def __init__(self, status: int, code: str, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


class OverrideTarget(Protocol):
    """Where the desk's overrides go: the in-process control loop or the control node."""

    @property
    def intersections(self) -> tuple[IntersectionId, ...]:
        """The intersections overrides may address."""
        ...

    def state(self, now: datetime | None = None) -> Mapping[IntersectionId, IntersectionState]:
        """Return each intersection's control state now."""
        ...

    def check(self, override: Override, running: TimingPlan | None, now: datetime) -> None:
        """Raise :class:`ControlError` for an override the control side would refuse."""
        ...

    def hand_over(self, override: Override) -> str:
        """Send ``override`` on its way; return where it went; :class:`ApiError` if it cannot."""
        ...

    def in_force(self, state: IntersectionState, override: Override) -> bool:
        """Tell whether ``state`` shows ``override`` in force (or released)."""
        ...


class LoopTarget:
    """The in-process control loop as the desk's target (roles ``all``)."""

    def __init__(self, loop: ControlLoop) -> None:
        self._loop = loop

    @property
    def intersections(self) -> tuple[IntersectionId, ...]:
        """The loop's intersections."""
        return self._loop.intersections

    def state(self, now: datetime | None = None) -> Mapping[IntersectionId, IntersectionState]:
        """Return the loop's state."""
        return self._loop.state(now)

    def check(self, override: Override, running: TimingPlan | None, now: datetime) -> None:
        """Check with the phase-mode or the cycle rules of the override's intersection."""
        ix = override.intersection_id
        if ix in self._loop.phase_intersections:
            self._loop.phase(ix).check_override(override)
        else:
            accept_override(self._loop.supervisor(ix).spec, override, running, now)

    def hand_over(self, override: Override) -> str:
        """Queue the override for the loop's next tick."""
        self._loop.on_override(override)
        return "handed to the control loop"

    def in_force(self, state: IntersectionState, override: Override) -> bool:
        """Whether the loop's state shows the override."""
        return _in_force(state, override)


def _in_force(state: IntersectionState, override: Override) -> bool:
    if override.action is OverrideAction.RELEASE:
        return state.override is None
    active = state.override
    return (
        active is not None
        and active.action is override.action
        and active.who == override.who
        and active.why == override.why
    )


class OperatorDesk:
    """Takes operator requests for the intersections of one control target."""

    def __init__(
        self,
        site_id: str,
        control: OverrideTarget | None,
        audit: AuditLog,
        *,
        apply_wait_s: float = APPLY_WAIT_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._site_id = site_id
        self._control = control
        self._audit = audit
        self._wait_s = apply_wait_s
        self._clock = clock
        self.counts: dict[str, int] = {"accepted": 0, "refused": 0}
        self._lock = threading.Lock()

    def submit(
        self, session: Session, intersection: str, request: OverrideRequest, remote: str = ""
    ) -> tuple[Override, IntersectionState | None, bool]:
        """Check and hand over ``request``; return it, the state after, and whether it shows.

        Raises :class:`ApiError`: 404 ``unknown_intersection``, 422 ``reason_required`` or
        ``override_refused`` (with the control side's reason).
        """
        now = self._clock()
        greens = {PhaseId(k): float(v) for k, v in (request.greens_s or {}).items()}
        override = Override(
            intersection_id=IntersectionId(intersection),
            action=OverrideAction(request.action),
            who=session.user,
            why=request.reason.strip(),
            at=now,
            plan_name=request.plan_name or None,
            greens_s=greens,
        )
        try:
            control = self._check(override, now)
        except ApiError as exc:
            self._record(session, override, "refused", f"{exc.code}: {exc.message}", remote)
            raise
        try:
            where = control.hand_over(override)
        except ApiError as exc:
            self._record(session, override, "refused", f"{exc.code}: {exc.message}", remote)
            raise
        self._record(session, override, "accepted", where, remote)
        log.info(
            "dashboard: %s asked %s for intersection %s: %s",
            session.user, override.action.value, intersection, printable(override.why),
        )  # fmt: skip
        deadline = time.monotonic() + self._wait_s
        while True:
            state = control.state().get(override.intersection_id)
            if state is not None and control.in_force(state, override):
                return override, state, True
            if time.monotonic() >= deadline:
                return override, state, False
            time.sleep(0.05)

    def _check(self, override: Override, now: datetime) -> OverrideTarget:
        control = self._control
        ix = override.intersection_id
        known = control.intersections if control is not None else ()
        if control is None or ix not in known:
            names = ", ".join(known) or "none"
            raise ApiError(
                404,
                "unknown_intersection",
                f"unknown intersection '{printable(ix, ID_MAX_CHARS)}'; known: {names}",
            )
        if not override.why:
            raise ApiError(
                422, "reason_required", "every operator action needs a reason (not blank)"
            )
        state = control.state(now).get(ix)
        running = state.running.plan if state is not None and state.running is not None else None
        try:
            control.check(override, running, now)
        except ControlError as exc:
            raise ApiError(422, "override_refused", str(exc)) from None
        return control

    def _record(
        self, session: Session, override: Override, outcome: str, detail: str, remote: str
    ) -> None:
        with self._lock:
            self.counts[outcome] += 1
        greens = list(override.greens_s.items())[:GREENS_MAX]
        rec = AuditRecord(
            at=override.at or self._clock(),
            site_id=self._site_id,
            user=printable(session.user, ID_MAX_CHARS),
            role=session.role,
            intersection_id=printable(override.intersection_id, ID_MAX_CHARS),
            action=override.action.value,
            reason=printable(override.why, REASON_MAX_CHARS),
            outcome=outcome,
            detail=printable(detail, DETAIL_MAX_CHARS),
            plan_name=None if override.plan_name is None else printable(override.plan_name),
            greens_s={printable(k, ID_MAX_CHARS): v for k, v in greens},
            remote=printable(remote, ID_MAX_CHARS),
        )
        try:
            self._audit.record(rec)
        except OSError as exc:
            log.error("audit: cannot write %s: %s", self._audit.path, exc)
            raise ApiError(
                503, "audit_unavailable", f"the audit log cannot be written: {exc.strerror}"
            ) from None
