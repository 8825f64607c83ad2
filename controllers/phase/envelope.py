"""The engine's side of the phase-by-phase envelope: every command is checked before it leaves.

:func:`command_for` turns a controller's :class:`~controllers.phase.base.PhaseDecision`
into a :class:`~controllers.phase.commands.PhaseCommand` (hold the phase in green:
``extend`` it for ``ttl_s``; any other phase: ``serve_next`` with a deadline ``ttl_s``
ahead). :func:`check_command` then applies the engine's rules, repairing what it can:

1. the command is for this intersection and names one of its phases (else refused);
2. its deadline lies after now and at most ``max_horizon_s`` ahead (cut);
3. an ``extend`` names the phase in green (or the one the signal is changing to) and ends
   no later than that green's maximum (else it becomes ``serve_next`` / is cut);
4. no phase with demand waits longer than ``max_wait_s`` since its last green: such a
   phase is served next, whatever the controller said.

The signal controller enforces its own minimums, maximums and clearances whatever it
receives (:mod:`controllers.phase.executor`); this is the first line, that the last.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from atcs.types import PhaseId
from controllers.phase.base import PhaseDecision, target_phase
from controllers.phase.commands import CommandKind, PhaseCommand, SignalState
from controllers.phase.timing import SignalTiming


class CommandOutcome(enum.StrEnum):
    """The engine envelope's verdict on a command."""

    ACCEPTED = "accepted"
    REPAIRED = "repaired"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class CommandCheck:
    """A command as it may leave (None when refused), the verdict and the reasons."""

    command: PhaseCommand | None
    outcome: CommandOutcome
    reasons: tuple[str, ...] = ()


def command_for(
    decision: PhaseDecision, state: SignalState, now_s: float, seq: int, ttl_s: float
) -> PhaseCommand:
    """Return the command carrying ``decision`` (``ttl_s`` seconds of validity)."""
    if decision.phase == target_phase(state):
        kind, until = CommandKind.EXTEND, now_s + ttl_s
    else:
        kind, until = CommandKind.SERVE_NEXT, None
    return PhaseCommand(
        state.intersection_id,
        kind,
        decision.phase,
        now_s,
        now_s + ttl_s,
        until,
        seq,
        decision.reason,
    )


def check_command(
    timing: SignalTiming,
    state: SignalState,
    command: PhaseCommand,
    now_s: float,
    *,
    waited_s: Mapping[PhaseId, float],
    max_wait_s: float,
) -> CommandCheck:
    """Apply the engine's rules to ``command`` (see the module docstring).

    ``waited_s`` gives, for each phase with demand, the seconds since its last green.
    """
    ids = [p.phase_id for p in timing.phases]
    if command.intersection_id != timing.intersection_id or command.phase not in ids:
        return CommandCheck(None, CommandOutcome.REFUSED, ("wrong intersection or phase",))
    if not all(math.isfinite(t) for t in (now_s, command.deadline_s)):
        return CommandCheck(None, CommandOutcome.REFUSED, ("times must be finite",))
    reasons: list[str] = []
    out = command
    if out.deadline_s <= now_s or out.deadline_s > now_s + timing.max_horizon_s:
        deadline = now_s + min(timing.max_horizon_s, max(1.0, out.deadline_s - now_s))
        out = replace(out, deadline_s=deadline)
        reasons.append("deadline moved into the allowed horizon")
    current = target_phase(state)
    if out.kind is CommandKind.EXTEND and out.phase != current:
        out = replace(out, kind=CommandKind.SERVE_NEXT, until_s=None)
        reasons.append(f"extend of {command.phase} while {current} is served: serve next")
    if out.kind is CommandKind.EXTEND:
        limit = state.green_started_s + timing.phase(current).max_green_s
        if not state.in_green:
            limit = math.inf
        until = out.deadline_s if out.until_s is None else out.until_s
        if until > limit:
            out = replace(out, until_s=max(limit, now_s + 1e-3))
            reasons.append(f"extend cut to {current}'s max green")
    starving = [
        (w, p) for p, w in waited_s.items() if w >= max_wait_s and p != current and p in ids
    ]
    if starving and out.phase != max(starving)[1]:
        phase = max(starving)[1]
        out = replace(out, kind=CommandKind.SERVE_NEXT, phase=phase, until_s=None)
        reasons.append(f"{phase} waited {max(starving)[0]:.0f} s (limit {max_wait_s:g} s)")
    outcome = CommandOutcome.REPAIRED if reasons else CommandOutcome.ACCEPTED
    return CommandCheck(out, outcome, tuple(reasons))
