"""Audit of a light in the phase-by-phase mode, from what SUMO showed (pure, no SUMO I/O).

:class:`PhaseAudit` is fed the state string SUMO reports after every step and checks,
independently of what the engine or the signal controller meant:

- per link: a green never ends without amber; the amber lasts at least that link's
  yellow (its ITE value, or 3 s); no link turns green while another shows amber, nor
  less than a link's all-red after that link's amber ended;
- per phase: each green (the phase's state string shown without a break) lasts at least
  its minimum (walk plus pedestrian clearance included) and at most its maximum; the
  first green of the run, which started before control did, is not held to the minimum.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping, Sequence

from atcs.sim.clearances import LinkClearance
from atcs.sim.network import GREEN_CHARS
from atcs.types import PhaseId
from controllers.phase.timing import SignalTiming

log = logging.getLogger(__name__)

MAX_KEPT_MESSAGES = 200
LOGGED_VIOLATIONS = 5
_EPS = 1e-6


class PhaseAudit:
    """Counts envelope violations of one light (see the module docstring)."""

    def __init__(
        self,
        tls_id: str,
        timing: SignalTiming,
        greens: Mapping[PhaseId, str],
        clearances: Sequence[LinkClearance],
        *,
        expect_violations: bool = False,
    ) -> None:
        self.tls_id = tls_id
        self._timing = timing
        self._phase_of = {state: pid for pid, state in greens.items()}
        self._clear = clearances
        self._quiet = expect_violations
        self._prev: str | None = None
        self._yellow_since: dict[int, float] = {}
        self._yellow_end: dict[int, float] = {}
        self._green: tuple[str, float] | None = None
        self._first = True
        self.violations = 0
        self.changes = 0
        self.messages: deque[str] = deque(maxlen=MAX_KEPT_MESSAGES)

    def _violation(self, at_s: float, text: str) -> None:
        self.violations += 1
        message = f"{self.tls_id} t={at_s:g}s: {text}"
        self.messages.append(message)
        if self.violations <= LOGGED_VIOLATIONS and not self._quiet:
            log.warning("safety audit: %s", message)

    def observe(self, at_s: float, state: str) -> None:
        """Record that ``state`` was shown from SUMO time ``at_s``."""
        prev = self._prev
        if prev is not None and state != prev:
            self._links(at_s, prev, state)
        self._phases(at_s, state)
        self._prev = state

    def _links(self, at_s: float, prev: str, state: str) -> None:
        for i, (old, new) in enumerate(zip(prev, state, strict=True)):
            if old == new:
                continue
            ended = old in GREEN_CHARS and (new not in GREEN_CHARS or (old, new) == ("G", "g"))
            if ended and new not in "yY":
                self._violation(at_s, f"link {i}: green ended without amber ({old}->{new})")
            if new in "yY":
                self._yellow_since[i] = at_s
            if old in "yY":
                since = self._yellow_since.pop(i, at_s)
                need = self._clear[i].yellow_s
                if at_s - since < need - _EPS:
                    self._violation(at_s, f"link {i}: amber {at_s - since:g} s < {need:g} s")
                self._yellow_end[i] = at_s
        for i, (old, new) in enumerate(zip(prev, state, strict=True)):
            if new in GREEN_CHARS and old not in GREEN_CHARS:
                if any(c in "yY" for c in state):
                    self._violation(at_s, f"link {i}: turned green while another shows amber")
                    continue
                for j, end in self._yellow_end.items():
                    need = self._clear[j].all_red_s
                    if at_s - end < need - _EPS:
                        self._violation(
                            at_s,
                            f"link {i}: turned green {at_s - end:g} s after link {j}'s amber "
                            f"(all-red {need:g} s)",
                        )
                        break
        self._yellow_end = {j: end for j, end in self._yellow_end.items() if at_s - end < 60.0}

    def _phases(self, at_s: float, state: str) -> None:
        phase = self._phase_of.get(state)
        current = self._green
        if current is not None and current[0] != phase:
            self._close(current[0], current[1], at_s)
            self._green = None
        if phase is not None and (current is None or current[0] != phase):
            self._green = (phase, at_s)

    def _close(self, phase: str, start: float, end: float) -> None:
        spec = next(p for p in self._timing.phases if p.phase_id == phase)
        length = end - start
        self.changes += 1
        if not self._first and length < spec.green_floor_s - _EPS:
            self._violation(end, f"{phase}: green {length:g} s < minimum {spec.green_floor_s:g} s")
        if length > spec.max_green_s + _EPS:
            self._violation(end, f"{phase}: green {length:g} s > maximum {spec.max_green_s:g} s")
        self._first = False
