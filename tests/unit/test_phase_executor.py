"""The reference phase-by-phase controller: commands, fallback, recall, and its envelope."""

from __future__ import annotations

import itertools
from datetime import time

import pytest

from atcs.errors import ControlError
from atcs.types import IntersectionId, PhaseId
from controllers import FallbackPlan
from controllers.phase.commands import CommandKind, ControlMode, PhaseCommand
from controllers.phase.executor import SignalExecutor
from controllers.phase.timing import Change, ExecPhase, Interval, SignalTiming, timing_problems

IX = IntersectionId("X")
A, B, C = PhaseId("A"), PhaseId("B"), PhaseId("C")


def timing(walk_b: float = 0.0, recall_wait_s: float = 60.0) -> SignalTiming:
    phases = (
        ExecPhase(A, 5.0, 40.0, signal_groups=frozenset({"1", "2"})),
        ExecPhase(B, 5.0, 30.0, walk_s=walk_b, ped_clear_s=walk_b, signal_groups=frozenset({"3"})),
        ExecPhase(C, 5.0, 30.0, signal_groups=frozenset({"4"})),
    )
    changes = {(a.phase_id, b.phase_id): Change(4.0, 2.0) for a in phases for b in phases if a != b}
    plan = FallbackPlan(time(0, 0), {A: 20.0, B: 15.0, C: 10.0}, name="day")
    return SignalTiming(IX, phases, changes, (plan,), recall_wait_s=recall_wait_s)


def cmd(kind: CommandKind, phase: PhaseId, at: float, seq: int, ttl: float = 5.0) -> PhaseCommand:
    until = at + ttl if kind is CommandKind.EXTEND else None
    return PhaseCommand(IX, kind, phase, at, at + ttl, until, seq)


def run(ex: SignalExecutor, start: int, stop: int) -> list[tuple[int, PhaseId, Interval]]:
    return [(t, (s := ex.tick(float(t))).phase, s.interval) for t in range(start, stop)]


def test_local_plan_runs_ring_order_with_clearances() -> None:
    ex = SignalExecutor(timing(), 0.0)
    seq = run(ex, 0, 70)
    assert ex.state.mode is ControlMode.LOCAL
    # A green 0-19 (20 s), yellow 20-23, all-red 24-25, B green from 26 for 15 s, ...
    assert seq[19] == (19, A, Interval.GREEN)
    assert seq[20] == (20, A, Interval.YELLOW)
    assert seq[24] == (24, A, Interval.ALL_RED)
    assert seq[26] == (26, B, Interval.GREEN)
    assert seq[41] == (41, B, Interval.YELLOW)
    assert seq[47] == (47, C, Interval.GREEN)


def test_serve_next_waits_for_min_green_and_skips_phases() -> None:
    ex = SignalExecutor(timing(), 0.0)
    ex.tick(0.0)
    verdict = ex.receive(cmd(CommandKind.SERVE_NEXT, C, 1.0, 1), 1.0)
    assert verdict.accepted
    seq = run(ex, 1, 5)
    assert seq[3] == (4, A, Interval.GREEN)  # min green 5 s
    assert ex.tick(5.0).interval is Interval.YELLOW
    assert ex.state.next_phase == C
    seq = run(ex, 6, 12)
    assert seq[5] == (11, C, Interval.GREEN)  # B skipped, after 4 s yellow + 2 s all-red


def test_extend_holds_green_then_deadline_returns_to_local_plan() -> None:
    ex = SignalExecutor(timing(), 0.0)
    for t in range(0, 35):
        if t % 2 == 0:
            assert ex.receive(
                cmd(CommandKind.EXTEND, A, float(t), t + 1, ttl=3.0), float(t)
            ).accepted
        assert ex.tick(float(t)).interval is Interval.GREEN  # held past the local 20 s
    state = ex.tick(38.0)  # the last extend (issued at 34) ran out at 37
    assert state.mode is ControlMode.LOCAL
    assert state.interval is Interval.YELLOW
    assert "ran out" in state.reason


def test_max_green_forces_off_against_extends() -> None:
    ex = SignalExecutor(timing(), 0.0)
    states = []
    for t in range(0, 45):
        ex.receive(cmd(CommandKind.EXTEND, A, float(t), t + 1), float(t))
        states.append(ex.tick(float(t)))
    assert all(s.interval is Interval.GREEN for s in states[:40])
    assert states[40].phase == A
    assert states[40].interval is Interval.YELLOW
    assert "max green" in ex.state.reason


def test_bad_commands_are_refused_and_change_nothing() -> None:
    ex = SignalExecutor(timing(), 0.0)
    ex.tick(0.0)
    assert ex.receive(cmd(CommandKind.SERVE_NEXT, B, 0.0, 5), 0.0).accepted
    refusals = [
        (PhaseCommand(IntersectionId("Y"), CommandKind.SERVE_NEXT, C, 0, 5, None, 9), "this is"),
        (cmd(CommandKind.SERVE_NEXT, PhaseId("Z"), 0.0, 9), "unknown phase"),
        (cmd(CommandKind.SERVE_NEXT, C, 0.0, 5), "not after"),
        (cmd(CommandKind.SERVE_NEXT, C, -10.0, 9), "after its deadline"),
        (cmd(CommandKind.EXTEND, C, 0.0, 9), "cannot extend"),
        (PhaseCommand(IX, CommandKind.SERVE_NEXT, C, 0, float("nan"), None, 9), "finite"),
    ]
    for command, why in refusals:
        verdict = ex.receive(command, 1.0)
        assert not verdict.accepted
        assert why in verdict.reason
    assert ex.tick(5.0).next_phase == B  # the accepted command still rules


def test_far_deadline_is_cut_to_the_horizon() -> None:
    ex = SignalExecutor(timing(), 0.0)
    verdict = ex.receive(cmd(CommandKind.SERVE_NEXT, A, 0.0, 1, ttl=3600.0), 0.0)
    assert verdict.accepted
    assert "cut" in verdict.reason
    assert ex.tick(31.0).mode is ControlMode.LOCAL


def test_recall_phase_is_served_against_commands() -> None:
    ex = SignalExecutor(timing(recall_wait_s=30.0), 0.0)
    ex.set_recall(C, True)
    served = []
    for t in range(0, 200):
        # The engine only ever asks for A and B.
        want = B if ex.state.phase == A else A
        ex.receive(cmd(CommandKind.SERVE_NEXT, want, float(t), t + 1), float(t))
        state = ex.tick(float(t))
        if state.phase == C and state.interval is Interval.GREEN:
            served.append(t)
    assert served, "a phase on recall must be served"
    runs = [t for t in served if t - 1 not in served and t < 180]
    lengths = [len([t for t in served if r <= t < r + 40]) for r in runs]
    assert all(n >= 10 for n in lengths)  # held for its time-of-day green
    assert max(b - a for a, b in itertools.pairwise(runs)) <= 30 + 10 + 6 + 40


def test_walk_and_pedestrian_clearance_open_the_green() -> None:
    ex = SignalExecutor(timing(walk_b=7.0), 0.0, start_phase=B)
    ex.receive(cmd(CommandKind.SERVE_NEXT, C, 0.0, 1, ttl=30.0), 0.0)
    seq = run(ex, 0, 16)
    assert [i for _, _, i in seq[:7]] == [Interval.WALK] * 7
    assert [i for _, _, i in seq[7:14]] == [Interval.PED_CLEAR] * 7
    assert seq[14] == (14, B, Interval.YELLOW)  # min green 5 s is shorter than 14 s


def test_unusable_timing_is_refused() -> None:
    bad = timing()
    broken = SignalTiming(
        IX,
        bad.phases,
        {**bad.changes, (A, B): Change(2.0, 0.5)},
        bad.local_plans,
    )
    problems = timing_problems(broken)
    assert any("A->B" in p and "yellow 2" in p for p in problems)
    assert any("all-red 0.5" in p for p in problems)
    with pytest.raises(ControlError, match="A->B"):
        SignalExecutor(broken, 0.0)
