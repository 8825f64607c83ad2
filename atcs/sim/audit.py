"""Audit of what a SUMO traffic light really showed, step by step (pure, no SUMO I/O).

:class:`SignalAudit` is fed the state string SUMO reports after every step. It checks two
ways, independently of what the engine meant to send:

- per link: a green never ends without a yellow, a yellow lasts at least 3 s, and no link
  turns green while another shows yellow or less than 1 s after another's yellow ended
  (the all-red clearance);
- per cycle: the states are matched to the intersection's phases (green, yellow, all-red
  of each phase in ring order); each completed cycle becomes an observed
  :class:`TimingPlan` that must pass the safety envelope's :func:`controllers.check`
  against the cycle before it (min/max green, cycle bounds, step limits, boundaries).

Each completed cycle is also kept as a row of the "what SUMO ran" log.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from atcs.sim.clock import SimClock
from atcs.sim.network import GREEN_CHARS
from atcs.sim.specs import SimIntersection
from atcs.types import PhaseTiming, PlanMode, TimingPlan
from controllers import check

log = logging.getLogger(__name__)

MIN_YELLOW_S = 3.0
MIN_ALL_RED_S = 1.0
MAX_KEPT_MESSAGES = 200
LOGGED_VIOLATIONS = 5
"""Violations logged as warnings per light; the rest go to the debug log and audit.json."""
_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class ObservedCycle:
    """One cycle SUMO ran: start (SUMO s) and green/yellow/all-red seconds per phase."""

    tls_id: str
    start_s: float
    phases: tuple[PhaseTiming, ...]

    @property
    def cycle_s(self) -> float:
        """Cycle length in seconds."""
        return sum(p.duration_s for p in self.phases)


class SignalAudit:
    """Watches one traffic light's states and counts safety-envelope violations.

    Violations are logged as warnings (the first few per light), or only at debug level
    with ``expect_violations`` (a reference run of a program known to break the rules).
    """

    def __init__(
        self,
        intersection: SimIntersection,
        clock: SimClock,
        controller: str,
        *,
        expect_violations: bool = False,
    ) -> None:
        self._ix = intersection
        self._clock = clock
        self._controller = controller
        self._quiet = expect_violations
        self._lookup: dict[str, list[int]] = {}
        for k, sig in enumerate(intersection.signals):
            for order, state in enumerate((sig.green, sig.yellow, sig.all_red)):
                self._lookup.setdefault(state, []).append(3 * k + order)
        n_links = len(intersection.signals[0].green)
        self._link_char: list[str] = ["r"] * n_links
        self._yellow_since: list[float | None] = [None] * n_links
        self._last_yellow_end_s = -1e9
        self._prev_state: str | None = None
        self._cycle: list[list[float]] | None = None
        self._cycle_start_s = 0.0
        self._position = -1
        self._previous_plan: TimingPlan | None = None
        self.violations = 0
        self.messages: deque[str] = deque(maxlen=MAX_KEPT_MESSAGES)
        self.cycles: list[ObservedCycle] = []

    def _violation(self, at_s: float, text: str) -> None:
        self.violations += 1
        message = f"{self._ix.tls_id} t={at_s:g}s: {text}"
        self.messages.append(message)
        if self.violations <= LOGGED_VIOLATIONS and not self._quiet:
            log.warning("safety audit: %s", message)
        else:
            log.debug("safety audit: %s", message)

    def observe(self, at_s: float, state: str, dt_s: float) -> None:
        """Record that ``state`` was shown from SUMO time ``at_s`` for ``dt_s`` seconds."""
        self._links(at_s, state)
        self._phases(at_s, state, dt_s)
        self._prev_state = state

    # Link level ------------------------------------------------------------------------

    def _links(self, at_s: float, state: str) -> None:
        if self._prev_state is None:
            self._link_char = list(state)
            return
        any_yellow = any(c in "yY" for c in state)
        for i, (old, new) in enumerate(zip(self._link_char, state, strict=True)):
            if old == new or (old in GREEN_CHARS and new in GREEN_CHARS):
                continue
            if old in GREEN_CHARS and new not in "yY":
                self._violation(at_s, f"link {i}: green ended without yellow ({old}->{new})")
            if new in "yY":
                self._yellow_since[i] = at_s
            if old in "yY":
                since = self._yellow_since[i]
                if since is not None and at_s - since < MIN_YELLOW_S - _EPS:
                    self._violation(at_s, f"link {i}: yellow of {at_s - since:g} s < 3 s")
                self._yellow_since[i] = None
                self._last_yellow_end_s = at_s
        for i, (old, new) in enumerate(zip(self._link_char, state, strict=True)):
            if new in GREEN_CHARS and old not in GREEN_CHARS:
                if any_yellow:
                    self._violation(at_s, f"link {i}: turned green while another shows yellow")
                elif at_s - self._last_yellow_end_s < MIN_ALL_RED_S - _EPS:
                    gap = at_s - self._last_yellow_end_s
                    self._violation(at_s, f"link {i}: turned green {gap:g} s after a yellow ended")
        self._link_char = list(state)

    # Phase level -----------------------------------------------------------------------

    def _phases(self, at_s: float, state: str, dt_s: float) -> None:
        if state != self._prev_state:
            self._enter(at_s, state)
        if self._cycle is not None and self._position >= 0:
            phase, order = divmod(self._position, 3)
            self._cycle[phase][order] += dt_s

    def _enter(self, at_s: float, state: str) -> None:
        """Match a new ``state`` to the next interval it can be; close cycles on wrap."""
        candidates = self._lookup.get(state, [])
        if not candidates:
            if self._cycle is not None:
                self._violation(at_s, f"state {state} is none of the phases' states")
            self._cycle = None
            self._position = -1
            return
        if self._position < 0:
            greens = [c for c in candidates if c == 0]
            if greens:
                self._start_cycle(at_s)
                self._position = 0
            return
        total = 3 * len(self._ix.signals)
        new = min(candidates, key=lambda c: (c - self._position - 1) % total)
        if new <= self._position:
            self._close()
            self._start_cycle(at_s)
        self._position = new

    def _start_cycle(self, at_s: float) -> None:
        self._cycle = [[0.0, 0.0, 0.0] for _ in self._ix.signals]
        self._cycle_start_s = at_s

    def _close(self) -> None:
        if self._cycle is None:
            return
        phases = tuple(
            PhaseTiming(sig.phase_id, g, y, r)
            for sig, (g, y, r) in zip(self._ix.signals, self._cycle, strict=True)
        )
        observed = ObservedCycle(self._ix.tls_id, self._cycle_start_s, phases)
        self.cycles.append(observed)
        start = self._clock.at(self._cycle_start_s)
        plan = TimingPlan(
            intersection_id=self._ix.spec.intersection_id,
            plan_id=f"observed-{self._cycle_start_s:g}",
            controller=self._controller,
            mode=PlanMode.ADAPTIVE,
            cycle_s=observed.cycle_s,
            offset_s=0.0,
            phases=phases,
            valid_from=start,
            reason="observed in SUMO",
        )
        for problem in check(self._ix.spec, plan, self._previous_plan):
            self._violation(self._cycle_start_s, f"cycle from {self._cycle_start_s:g} s: {problem}")
        self._previous_plan = plan
