"""Property tests: no sequence of commands, delays, losses or recalls breaks the envelope.

An observer independent of the executor rebuilds, from the states shown at each tick,
every green, walk, pedestrian clearance, yellow and all-red, and checks them against the
timing: min and max green, the change interval between each pair of phases in full, walk
and clearance in full, a phase on recall never starved, and the local plan whenever no
command is valid.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atcs.types import IntersectionId, PhaseId
from controllers import FallbackPlan
from controllers.phase.commands import CommandKind, ControlMode, PhaseCommand, SignalState
from controllers.phase.executor import SignalExecutor
from controllers.phase.timing import Change, ExecPhase, Interval, SignalTiming

IX = IntersectionId("X")
EPS = 1e-6
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def timings(draw: st.DrawFn) -> SignalTiming:
    n = draw(st.integers(2, 4))
    phases = []
    for k in range(n):
        walk = draw(st.sampled_from([0.0, 0.0, 4.0, 7.0]))
        clear = draw(st.floats(1.0, 15.0)) if walk else 0.0
        min_green = draw(st.floats(1.0, 10.0))
        floor = max(min_green, walk + clear)
        groups = {f"g{k}"} | ({"shared"} if draw(st.booleans()) else set())
        phases.append(
            ExecPhase(
                PhaseId(f"P{k}"),
                min_green,
                floor + draw(st.floats(1.0, 60.0)),
                walk,
                clear,
                frozenset(groups),
            )
        )
    changes = {
        (a.phase_id, b.phase_id): Change(draw(st.floats(3.0, 6.0)), draw(st.floats(1.0, 3.0)))
        for a in phases
        for b in phases
        if a != b
    }
    greens = {p.phase_id: draw(st.floats(p.green_floor_s, p.max_green_s)) for p in phases}
    return SignalTiming(
        IX,
        tuple(phases),
        changes,
        (FallbackPlan(time(0, 0), greens),),
        recall_wait_s=draw(st.floats(20.0, 150.0)),
        max_horizon_s=draw(st.floats(5.0, 40.0)),
    )


@dataclass(frozen=True)
class Step:
    dt: float
    command: tuple[str, int, float, float, float | None, int] | None
    #         kind, phase index (may be unknown), delay, ttl, until offset, seq jitter


steps = st.builds(
    Step,
    st.sampled_from([0.5, 1.0, 1.0, 1.0, 1.0, 2.5]),
    st.none()
    | st.tuples(
        st.sampled_from(["serve_next", "extend"]),
        st.integers(0, 4),
        st.floats(0.0, 12.0),
        st.floats(-2.0, 60.0),
        st.none() | st.floats(-1.0, 30.0),
        st.sampled_from([1, 1, 1, 0, -3]),
    ),
)


@dataclass
class Observer:
    """Rebuilds intervals from the states shown and checks them (durations in s)."""

    timing: SignalTiming
    gap_s: float
    shown: list[SignalState] = field(default_factory=list)

    def check(self, recall: PhaseId | None) -> None:
        t = self.timing
        phases = {p.phase_id: p for p in t.phases}
        runs: list[tuple[PhaseId, Interval, float, float]] = []  # phase, interval, start, end
        for s in self.shown:
            key = (s.phase, s.interval)
            if runs and runs[-1][:2] == key and runs[-1][2] == s.interval_started_s:
                runs[-1] = (*key, runs[-1][2], s.at_s)
            else:
                if runs:
                    runs[-1] = (*runs[-1][:3], s.at_s)
                runs.append((*key, s.interval_started_s, s.at_s))
        closed = runs[:-1]
        greens: list[tuple[PhaseId, float, float]] = []
        for phase_id, interval, start, end in closed:
            if interval.vehicle_green:
                if greens and greens[-1][0] == phase_id and abs(greens[-1][2] - start) < EPS:
                    greens[-1] = (phase_id, greens[-1][1], end)
                else:
                    greens.append((phase_id, start, end))
            if interval is Interval.WALK:
                assert end - start >= phases[phase_id].walk_s - EPS
            if interval is Interval.PED_CLEAR:
                assert end - start >= phases[phase_id].ped_clear_s - EPS
        last = runs[-1]
        still_running = last[1].vehicle_green and greens and greens[-1][0] == last[0]
        if still_running and abs(greens[-1][2] - last[2]) < EPS:
            greens.pop()  # still running when the sequence ended
        for phase_id, start, end in greens[1:] if len(greens) > 1 else []:
            p = phases[phase_id]
            assert end - start >= p.green_floor_s - EPS, (phase_id, start, end)
        for phase_id, start, end in greens:
            p = phases[phase_id]
            # Each transition waits for a tick: up to one gap late per interval shown.
            late = self.gap_s * (1 + (p.walk_s > 0) + (p.ped_clear_s > 0))
            assert end - start <= p.max_green_s + late + EPS
        for (a, _, a_end), (b, b_start, _) in itertools.pairwise(greens):
            change = t.change(a, b)
            between = [r for r in closed if a_end - EPS <= r[2] < b_start - EPS]
            yellow = sum(r[3] - r[2] for r in between if r[1] is Interval.YELLOW)
            red = sum(r[3] - r[2] for r in between if r[1] is Interval.ALL_RED)
            assert yellow >= change.yellow_s - EPS, (a, b, yellow, change)
            assert red >= change.all_red_s - EPS, (a, b, red, change)
            assert b_start - a_end >= change.total_s - EPS
        if recall is not None:
            served = [(s, e) for p, s, e in greens if p == recall]
            bound = t.recall_wait_s + len(t.phases) * (
                max(p.max_green_s for p in t.phases)
                + max(c.total_s for c in t.changes.values())
                + 2 * self.gap_s
            )
            ends = [self.shown[0].at_s] + [e for _, e in served]
            starts = [s for s, _ in served] + [self.shown[-1].at_s]
            for end, start in zip(ends, starts, strict=False):
                assert start - end <= bound + EPS, (recall, end, start, bound)


@PROPERTY
@given(timings(), st.lists(steps, min_size=50, max_size=400), st.integers(-1, 3))
def test_no_command_sequence_breaks_the_envelope(
    timing: SignalTiming, plan: list[Step], recall_index: int
) -> None:
    ex = SignalExecutor(timing, 1000.0)
    ids = [p.phase_id for p in timing.phases]
    recall = ids[recall_index] if 0 <= recall_index < len(ids) else None
    if recall is not None:
        ex.set_recall(recall, True)
    observer = Observer(timing, gap_s=2.5)
    now, seq = 1000.0, 0
    valid_until = -1.0
    for step in plan:
        now += step.dt
        if step.command is not None:
            kind, index, delay, ttl, until, jitter = step.command
            seq += jitter
            phase = PhaseId(ids[index]) if index < len(ids) else PhaseId("unknown")
            issued = now - delay
            command = PhaseCommand(
                IX,
                CommandKind(kind),
                phase,
                issued,
                issued + ttl,
                None if until is None else issued + until,
                seq,
            )
            verdict = ex.receive(command, now)
            if verdict.accepted:
                end = min(issued + ttl, now + timing.max_horizon_s)
                if command.until_s is not None:
                    end = min(end, command.until_s)
                valid_until = end
        state = ex.tick(now)
        observer.shown.append(state)
        if now > valid_until + EPS:
            assert state.mode is ControlMode.LOCAL
    observer.check(recall)


@PROPERTY
@given(timings(), st.integers(200, 600))
def test_without_commands_the_local_plan_runs(timing: SignalTiming, seconds: int) -> None:
    ex = SignalExecutor(timing, 0.0)
    greens = {p.phase_id: p for p in timing.phases}
    local = timing.local_plans[0].greens_s
    shown = [ex.tick(float(t)) for t in range(seconds)]
    starts = [
        s
        for s, prev in zip(shown[1:], shown, strict=False)
        if s.green_started_s != prev.green_started_s
    ]
    order = [s.phase for s in starts]
    ids = [p.phase_id for p in timing.phases]
    for a, b in itertools.pairwise(order):
        assert ids[(ids.index(a) + 1) % len(ids)] == b  # ring order, no phase skipped
    ends = {}
    for s, prev in zip(shown[1:], shown, strict=False):
        if prev.interval.vehicle_green and not s.interval.vehicle_green:
            ends[prev.green_started_s] = (prev.phase, s.at_s - prev.green_started_s)
    for phase_id, length in ends.values():
        want = min(
            greens[phase_id].max_green_s, max(greens[phase_id].green_floor_s, local[phase_id])
        )
        assert want - EPS <= length <= want + 1.0 + EPS
