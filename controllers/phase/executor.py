"""The reference phase-by-phase signal controller: a pure state machine.

:class:`SignalExecutor` stands where a signal controller's firmware stands. It is what the
SUMO bridge runs and what a field adapter would wrap (mapping :class:`PhaseCommand` to
NTCIP 1202 hold / force-off / call, see ``docs/signal-timing.md``). It keeps, on its own
and whatever it is told:

- every green lasts at least its minimum (and walk plus pedestrian clearance) and at most
  its maximum (then it is forced off, "max-out");
- every change shows the yellow then the all-red of its :class:`~controllers.phase.
  timing.Change` in full; each interval is shown for at least its length (a transition
  happens only on a tick, never back-dated, at most one per tick);
- with no valid command (none yet, or the last one is past its deadline, or an extend
  has run out) it runs its local time-of-day plan: the green in force until the plan's
  green, then the phases in ring order with the plan's greens;
- a phase on recall (its camera is down) is served next once it has waited
  ``recall_wait_s``, and then held for its time-of-day green, even against commands.

Commands are checked when they arrive (:meth:`SignalExecutor.receive`): another
intersection, an unknown phase, non-finite times, a repeated or out-of-order ``seq``, a
deadline already past, or an extend of a phase that is not in green is refused and
changes nothing; a deadline further than ``max_horizon_s`` ahead is cut to it.
Times are controller seconds; a tick earlier than the last one counts as the last one.
"""

from __future__ import annotations

import math
from dataclasses import replace

from atcs.errors import ControlError
from atcs.types import PhaseId
from controllers.phase.commands import (
    CommandKind,
    CommandVerdict,
    ControlMode,
    PhaseCommand,
    SignalState,
)
from controllers.phase.timing import Interval, SignalTiming, local_greens_s, validate_timing
from controllers.plans import zone_named

_EPS = 1e-6


class SignalExecutor:
    """One intersection's phase-by-phase controller (see the module docstring).

    Starts at ``start_s`` in the green of ``start_phase`` (default: the first phase),
    running its local plan. Raises :class:`ControlError` for an unusable ``timing``.
    """

    def __init__(
        self, timing: SignalTiming, start_s: float, start_phase: PhaseId | None = None
    ) -> None:
        validate_timing(timing)
        if not math.isfinite(start_s):
            raise ControlError(f"start time must be finite, got {start_s!r}")
        self.timing = timing
        self._zone = zone_named(timing.timezone, timing.intersection_id)
        self._ids = tuple(p.phase_id for p in timing.phases)
        self._phases = {p.phase_id: p for p in timing.phases}
        first = start_phase if start_phase is not None else self._ids[0]
        if first not in self._phases:
            raise ControlError(f"{timing.intersection_id}: no phase {first!r} to start with")
        self._now = start_s
        self._phase = first
        self._interval = Interval.GREEN
        self._interval_start = start_s
        self._green_start = start_s
        self._next: PhaseId | None = None
        self._command: PhaseCommand | None = None
        self._last_seq: int | None = None
        self._reason = "no command yet"
        self._recall: set[PhaseId] = set()
        self._recall_hold = False
        self._last_end = dict.fromkeys(self._ids, start_s)
        self._local_cache: tuple[int, dict[PhaseId, float]] | None = None
        self._start_green(start_s, first)

    # Inputs ------------------------------------------------------------------------------

    def receive(self, command: PhaseCommand, now_s: float) -> CommandVerdict:
        """Take ``command`` arriving at ``now_s``; say whether it was accepted and why."""
        now = max(now_s, self._now)
        problem = self._refusal(command, now)
        if problem:
            return CommandVerdict(False, problem)
        self._expire(now)
        notes = []
        deadline = command.deadline_s
        if deadline > now + self.timing.max_horizon_s:
            deadline = now + self.timing.max_horizon_s
            notes.append(f"deadline cut to {self.timing.max_horizon_s:g} s ahead")
        until = command.until_s
        if command.kind is CommandKind.EXTEND:
            until = deadline if until is None else min(until, deadline)
        self._command = replace(command, deadline_s=deadline, until_s=until)
        self._last_seq = command.seq
        self._reason = f"{command.kind.value} {command.phase}" + (
            f": {command.reason}" if command.reason else ""
        )
        return CommandVerdict(True, "; ".join(notes) or "accepted")

    def _refusal(self, command: PhaseCommand, now: float) -> str:
        if command.intersection_id != self.timing.intersection_id:
            return (
                f"command for {command.intersection_id!r}, this is {self.timing.intersection_id!r}"
            )
        if command.phase not in self._phases:
            return f"unknown phase {command.phase!r}; known: {', '.join(self._ids)}"
        times = [command.issued_s, command.deadline_s]
        if command.until_s is not None:
            times.append(command.until_s)
        if not all(isinstance(t, int | float) and math.isfinite(t) for t in times):
            return "command times must be finite numbers"
        if self._last_seq is not None and command.seq <= self._last_seq:
            return f"seq {command.seq} not after the last accepted {self._last_seq}"
        if command.deadline_s <= now + _EPS:
            return f"arrived {now - command.deadline_s:.3f} s after its deadline"
        if command.kind is CommandKind.EXTEND:
            if command.until_s is not None and command.until_s <= now + _EPS:
                return "extend until a time already past"
            if not self._can_extend(command.phase):
                return f"cannot extend {command.phase}: {self._phase} {self._interval.value}"
        return ""

    def _can_extend(self, phase: PhaseId) -> bool:
        if self._interval.vehicle_green:
            return phase == self._phase
        return phase == self._next

    def set_recall(self, phase: PhaseId, on: bool) -> None:
        """Put ``phase`` on recall (its detection failed) or take it off."""
        if phase not in self._phases:
            raise ControlError(f"{self.timing.intersection_id}: no phase {phase!r}")
        if on:
            self._recall.add(phase)
        else:
            self._recall.discard(phase)

    # Time --------------------------------------------------------------------------------

    def tick(self, now_s: float) -> SignalState:
        """Advance to ``now_s`` (at most one transition) and return the state to show."""
        if math.isfinite(now_s):
            self._now = max(self._now, now_s)
        now = self._now
        self._expire(now)
        elapsed = now - self._interval_start
        phase = self._phases[self._phase]
        if self._interval is Interval.WALK and elapsed >= phase.walk_s - _EPS:
            self._enter(now, Interval.PED_CLEAR if phase.ped_clear_s > 0 else Interval.GREEN)
            elapsed = 0.0
        if self._interval is Interval.PED_CLEAR and elapsed >= phase.ped_clear_s - _EPS:
            self._enter(now, Interval.GREEN)
        # Walk and pedestrian clearance end inside the vehicle green: the green may end on
        # the same tick, as the vehicles saw green all along.
        if self._interval is Interval.YELLOW:
            change = self.timing.change(self._phase, self._require_next())
            if elapsed >= change.yellow_s - _EPS:
                if change.all_red_s > _EPS:
                    self._enter(now, Interval.ALL_RED)
                else:
                    self._start_green(now, self._require_next())
        elif self._interval is Interval.ALL_RED:
            change = self.timing.change(self._phase, self._require_next())
            if elapsed >= change.all_red_s - _EPS:
                self._start_green(now, self._require_next())
        elif self._interval is Interval.GREEN:
            nxt = self._end_of_green(now)
            if nxt is not None:
                self._start_change(now, nxt)
        return self.state

    @property
    def state(self) -> SignalState:
        """The state at the last tick."""
        return SignalState(
            intersection_id=self.timing.intersection_id,
            at_s=self._now,
            phase=self._phase,
            interval=self._interval,
            interval_started_s=self._interval_start,
            green_started_s=self._green_start,
            next_phase=self._next,
            mode=ControlMode.COMMAND if self._command is not None else ControlMode.LOCAL,
            reason=self._reason,
            recall=frozenset(self._recall),
            command_seq=self._last_seq,
        )

    def _require_next(self) -> PhaseId:
        if self._next is None:  # pragma: no cover - set by every change
            raise ControlError("change without a next phase")
        return self._next

    def _enter(self, now: float, interval: Interval) -> None:
        self._interval = interval
        self._interval_start = now

    def _start_green(self, now: float, phase_id: PhaseId) -> None:
        phase = self._phases[phase_id]
        self._phase = phase_id
        self._next = None
        self._green_start = now
        self._recall_hold = phase_id in self._recall and self._command is not None
        if phase.walk_s > 0:
            self._enter(now, Interval.WALK)
        elif phase.ped_clear_s > 0:
            self._enter(now, Interval.PED_CLEAR)
        else:
            self._enter(now, Interval.GREEN)

    def _start_change(self, now: float, nxt: PhaseId) -> None:
        self._last_end[self._phase] = now
        change = self.timing.change(self._phase, nxt)
        if change.total_s <= _EPS:
            self._start_green(now, nxt)
            return
        self._next = nxt
        self._enter(now, Interval.YELLOW if change.yellow_s > _EPS else Interval.ALL_RED)

    def _expire(self, now: float) -> None:
        cmd = self._command
        if cmd is None:
            return
        end = cmd.deadline_s if cmd.until_s is None else min(cmd.deadline_s, cmd.until_s)
        if now > end + _EPS:
            self._command = None
            what = "extend ran out" if cmd.kind is CommandKind.EXTEND else "deadline passed"
            self._reason = f"{what} at {end:.1f} s (seq {cmd.seq}): local time-of-day plan"

    # Decisions ---------------------------------------------------------------------------

    def local_green_s(self, phase_id: PhaseId) -> float:
        """Return the green (s) of ``phase_id`` in the local plan in force, within bounds."""
        minute = int(self._now // 60)
        if self._local_cache is None or self._local_cache[0] != minute:
            self._local_cache = (minute, local_greens_s(self.timing, self._now))
        return self._local_cache[1][phase_id]

    def _overdue_recall(self, now: float) -> PhaseId | None:
        waiting = [
            (now - self._last_end[r], r)
            for r in self._recall
            if r != self._phase and now - self._last_end[r] >= self.timing.recall_wait_s - _EPS
        ]
        return max(waiting)[1] if waiting else None

    def _end_of_green(self, now: float) -> PhaseId | None:
        """Return the phase to change to now, or None to stay in green."""
        phase = self._phases[self._phase]
        elapsed = now - self._green_start
        if elapsed < phase.green_floor_s - _EPS:
            return None
        cmd = self._command
        wanted = cmd.phase if cmd is not None and cmd.kind is CommandKind.SERVE_NEXT else None
        overdue = self._overdue_recall(now)
        if elapsed >= phase.max_green_s - _EPS:
            self._reason = f"{self._phase} reached its max green {phase.max_green_s:g} s"
            if wanted is not None and wanted != self._phase:
                return wanted
            return overdue or self.timing.ring_next(self._phase)
        if cmd is None:
            if elapsed >= self.local_green_s(self._phase) - _EPS:
                return self.timing.ring_next(self._phase)
            return None
        if self._recall_hold and elapsed < self.local_green_s(self._phase) - _EPS:
            return None
        if overdue is not None:
            self._reason = f"{overdue} on recall and waiting: served next"
            return overdue
        if cmd.kind is CommandKind.EXTEND and cmd.phase != self._phase:
            self._command = None
            self._reason = f"extend of {cmd.phase} void: {self._phase} in green"
            return None
        if wanted is not None and wanted != self._phase:
            return wanted
        return None
