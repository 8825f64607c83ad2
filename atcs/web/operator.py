"""Operator actions from the dashboard: check, hand to the control loop, audit.

An action becomes an :class:`~atcs.bus.messages.Override` (``who`` is the logged-in user,
``why`` the required reason) and takes the same path as an override from the MQTT bus:
:meth:`atcs.control.ControlLoop.on_override`, applied at the engine's next tick. Before
that, the request is checked with the control side's own rules
(:func:`atcs.control.overrides.accept_override`), so a request that cannot be honoured is
answered at once with the reason instead of being dropped later in the loop. Every
request by an operator, accepted or refused, is written to the audit log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from atcs.bus.messages import Override, OverrideAction
from atcs.control import ControlLoop, IntersectionState
from atcs.control.overrides import accept_override
from atcs.errors import ControlError
from atcs.types import IntersectionId, PhaseId
from atcs.web.audit import AuditLog, AuditRecord
from atcs.web.auth import Session
from atcs.web.models import OverrideRequest

log = logging.getLogger(__name__)

APPLY_WAIT_S = 3.0
"""How long an answer waits for the control loop to show the override in force, s."""


class ApiError(Exception):
    """An API request that cannot be served: HTTP status, stable code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


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
    """Takes operator requests for the intersections of one control loop."""

    def __init__(
        self,
        site_id: str,
        control: ControlLoop | None,
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
        self._record(session, override, "accepted", "handed to the control loop", remote)
        control.on_override(override)
        log.info(
            "dashboard: %s asked %s for intersection %s: %s",
            session.user, override.action.value, intersection, override.why,
        )  # fmt: skip
        deadline = time.monotonic() + self._wait_s
        while True:
            state = control.state().get(override.intersection_id)
            if state is not None and _in_force(state, override):
                return override, state, True
            if time.monotonic() >= deadline:
                return override, state, False
            time.sleep(0.05)

    def _check(self, override: Override, now: datetime) -> ControlLoop:
        control = self._control
        ix = override.intersection_id
        known = control.intersections if control is not None else ()
        if control is None or ix not in known:
            names = ", ".join(known) or "none"
            raise ApiError(
                404, "unknown_intersection", f"unknown intersection {ix!r}; known: {names}"
            )
        if not override.why:
            raise ApiError(
                422, "reason_required", "every operator action needs a reason (not blank)"
            )
        state = control.state(now)[ix]
        running = state.running.plan if state.running is not None else None
        try:
            accept_override(control.supervisor(ix).spec, override, running, now)
        except ControlError as exc:
            raise ApiError(422, "override_refused", str(exc)) from None
        return control

    def _record(
        self, session: Session, override: Override, outcome: str, detail: str, remote: str
    ) -> None:
        with self._lock:
            self.counts[outcome] += 1
        rec = AuditRecord(
            at=override.at or self._clock(),
            site_id=self._site_id,
            user=session.user,
            role=session.role,
            intersection_id=override.intersection_id,
            action=override.action.value,
            reason=override.why,
            outcome=outcome,
            detail=detail,
            plan_name=override.plan_name,
            greens_s={str(k): v for k, v in override.greens_s.items()},
            remote=remote,
        )
        try:
            self._audit.record(rec)
        except OSError as exc:
            log.error("audit: cannot write %s: %s", self._audit.path, exc)
            raise ApiError(
                503, "audit_unavailable", f"the audit log cannot be written: {exc.strerror}"
            ) from None
