"""Phase-by-phase controllers, the engine's command envelope and the ITE clearances."""

from __future__ import annotations

from datetime import time

import pytest

from atcs.control.phase_supervisor import PhaseSupervisor
from atcs.errors import ControlError
from atcs.types import IntersectionId, PhaseId, SegmentId
from controllers import FallbackPlan
from controllers.phase.actuated import Actuated
from controllers.phase.base import PhaseDecision
from controllers.phase.clearance import (
    ite_all_red_s,
    ite_yellow_s,
    pedestrian_clearance_s,
    whole_ticks_s,
)
from controllers.phase.commands import CommandKind, ControlMode, PhaseCommand, SignalState
from controllers.phase.envelope import CommandOutcome, check_command, command_for
from controllers.phase.greedy import PhaseGreedy
from controllers.phase.observe import (
    IntersectionLayout,
    Movement,
    PhaseLayout,
    ZoneSnapshot,
    ZoneVehicle,
    ZoneView,
)
from controllers.phase.registry import get_phase_controller, phase_controller_names
from controllers.phase.timing import Change, ExecPhase, Interval, SignalTiming

IX = IntersectionId("X")
A, B = PhaseId("A"), PhaseId("B")
SA, SB, XA = SegmentId("a"), SegmentId("b"), SegmentId("a-exit")


def test_ite_clearances() -> None:
    assert ite_yellow_s(13.89) == pytest.approx(1.0 + 13.89 / 6.1)  # 50 km/h: 3.28 s
    assert ite_yellow_s(8.33) == 3.0  # floor
    assert ite_yellow_s(40.0) == 6.0  # cap
    assert ite_yellow_s(13.89, grade=-0.05) > ite_yellow_s(13.89)  # downhill: longer
    assert ite_all_red_s(30.0, 13.89) == pytest.approx(36.0 / 13.89)
    assert ite_all_red_s(0.0, 20.0) == 1.0  # floor
    assert pedestrian_clearance_s(14.0) == pytest.approx(13.08, abs=0.01)
    assert whole_ticks_s(3.28) == 4.0
    assert whole_ticks_s(3.0000001) == 3.0
    with pytest.raises(ControlError, match="speed"):
        ite_yellow_s(0.0)


def timing() -> SignalTiming:
    phases = (ExecPhase(A, 5.0, 40.0), ExecPhase(B, 5.0, 40.0))
    changes = {(A, B): Change(4.0, 2.0), (B, A): Change(4.0, 2.0)}
    plan = FallbackPlan(time(0, 0), {A: 20.0, B: 20.0})
    return SignalTiming(IX, phases, changes, (plan,), recall_wait_s=90.0)


LAYOUT = IntersectionLayout(
    IX,
    (PhaseLayout(A, (Movement(SA, 1.0, 1, (XA,)),)), PhaseLayout(B, (Movement(SB, 1.0, 1),))),
    {XA: 1},
)


def state(phase: PhaseId, at: float, green_started: float = 0.0) -> SignalState:
    return SignalState(IX, at, phase, Interval.GREEN, green_started, green_started, None,
                       ControlMode.COMMAND, "")  # fmt: skip


def queue(n: int, moving: int = 0) -> tuple[ZoneVehicle, ...]:
    halted = tuple(ZoneVehicle(2.0 + 7 * k, 0.0) for k in range(n))
    return halted + tuple(ZoneVehicle(30.0 + 7 * k, 12.0) for k in range(moving))


def flowing(n: int) -> tuple[ZoneVehicle, ...]:
    """A queue discharging in green: its vehicles already move."""
    return tuple(ZoneVehicle(2.0 + 7 * k, 4.0) for k in range(n))


def view(at: float, a: tuple[ZoneVehicle, ...], b: tuple[ZoneVehicle, ...],
         exit_a: tuple[ZoneVehicle, ...] = ()) -> ZoneView:  # fmt: skip
    zones = {
        SA: ZoneSnapshot(SA, a, 50.0, 1),
        SB: ZoneSnapshot(SB, b, 50.0, 1),
        XA: ZoneSnapshot(XA, exit_a, 50.0, 1),
    }
    return ZoneView(at, zones)


@pytest.mark.parametrize("name", phase_controller_names())
def test_every_controller_holds_minimum_and_serves_demand(name: str) -> None:
    controller = get_phase_controller(name)
    t = timing()
    # Minimum green: hold A even though only B has vehicles.
    assert controller.decide(LAYOUT, t, state(A, 2.0), view(2.0, (), queue(6))).phase == A
    # Later, with A empty and B queued, every controller moves to B (slotted ones by 15 s).
    decisions = [
        controller.decide(LAYOUT, t, state(A, float(s)), view(float(s), (), queue(6))).phase
        for s in range(5, 16)
    ]
    assert B in decisions


@pytest.mark.parametrize("name", ["delay-balance", "actuated"])
def test_platoon_in_green_keeps_the_green(name: str) -> None:
    controller = get_phase_controller(name)
    t = timing()
    decisions = [
        controller.decide(
            LAYOUT, t, state(A, float(s)), view(float(s), flowing(2) + queue(0, 4), queue(1))
        ).phase
        for s in range(5, 10)
    ]
    assert decisions == [A] * 5


def test_spillback_guard_leaves_a_blocked_green() -> None:
    controller = get_phase_controller("delay-balance")
    blocked = tuple(ZoneVehicle(3.0 + 7 * k, 0.0) for k in range(4))
    free = controller.decide(LAYOUT, timing(), state(A, 8.0), view(8.0, flowing(5), queue(2)))
    assert free.phase == A
    jammed = controller.decide(
        LAYOUT, timing(), state(A, 8.0), view(8.0, flowing(5), queue(2), blocked)
    )
    assert jammed.phase == B
    # A queue still standing at the stop line 8 s into green does not flow either.
    stalled = controller.decide(LAYOUT, timing(), state(A, 8.0), view(8.0, queue(5), queue(2)))
    assert stalled.phase == B


TURN, C = SegmentId("turn"), PhaseId("C")


def permissive_turn_site() -> tuple[IntersectionLayout, SignalTiming]:
    """A: through SA + permissive turn; C: the turn protected; B: the crossing street SB."""
    layout = IntersectionLayout(
        IX,
        (
            PhaseLayout(A, (Movement(SA, 1.0, 1), Movement(TURN, 1.0, 1, permissive=True))),
            PhaseLayout(C, (Movement(TURN, 1.0, 1),)),
            PhaseLayout(B, (Movement(SB, 1.0, 1),)),
        ),
        {},
    )
    ids = [A, C, B]
    changes = {(a, b): Change(4.0, 2.0) for a in ids for b in ids if a != b}
    plan = FallbackPlan(time(0, 0), dict.fromkeys(ids, 20.0))
    phases = tuple(ExecPhase(p, 5.0, 40.0) for p in ids)
    return layout, SignalTiming(IX, phases, changes, (plan,))


@pytest.mark.parametrize("name", ["delay-balance", "phase-greedy"])
def test_permissive_turners_left_standing_get_their_protected_phase_first(name: str) -> None:
    layout, t3 = permissive_turn_site()

    def decide(turners: tuple[ZoneVehicle, ...]) -> PhaseId:
        zones = {
            SA: ZoneSnapshot(SA, (), 50.0, 1),
            TURN: ZoneSnapshot(TURN, turners, 12.0, 1),  # a short link from a close light
            SB: ZoneSnapshot(SB, queue(8), 50.0, 1),
        }
        controller = get_phase_controller(name)
        return controller.decide(layout, t3, state(A, 20.0), ZoneView(20.0, zones)).phase

    assert decide(()) == B  # nobody left to turn: straight to the crossing street
    assert decide(queue(1)) == C  # a turner stands at the line: protected turn first


def test_greedy_alone_never_picks_a_protected_turn_its_permissive_green_covers() -> None:
    layout, t3 = permissive_turn_site()
    zones = {
        SA: ZoneSnapshot(SA, (), 50.0, 1),
        TURN: ZoneSnapshot(TURN, queue(2), 12.0, 1),
        SB: ZoneSnapshot(SB, queue(8), 50.0, 1),
    }
    plain, clearing = PhaseGreedy(clear_turns=False), PhaseGreedy()
    at = state(A, 20.0)
    assert plain.decide(layout, t3, at, ZoneView(20.0, zones)).phase == B
    # By default only a turn from a short link clears; on a long approach, only when asked.
    long_zones = {**zones, TURN: ZoneSnapshot(TURN, queue(2), 50.0, 1)}
    assert PhaseGreedy().decide(layout, t3, at, ZoneView(20.0, long_zones)).phase == B
    every_turn = PhaseGreedy(turn_zone_max_m=None)
    assert every_turn.decide(layout, t3, at, ZoneView(20.0, long_zones)).phase == C
    decision = clearing.decide(layout, t3, at, ZoneView(20.0, zones))
    assert decision.phase == C
    assert "clear first" in decision.reason
    # In the protected phase the turn is no longer permissive: the crossing street is next.
    after = clearing.decide(layout, t3, state(C, 40.0, 30.0), ZoneView(40.0, zones))
    assert after.phase == B


def test_max_pressure_counts_the_downstream_queue() -> None:
    controller = get_phase_controller("phase-max-pressure")
    down = tuple(ZoneVehicle(3.0 + 7 * k, 0.0) for k in range(6))
    decision = controller.decide(
        LAYOUT, timing(), state(B, 10.0), view(10.0, queue(4), queue(2), down)
    )
    assert decision.phase == B  # 4 queued minus 6 downstream is less than 2


def test_actuated_skips_phases_without_calls() -> None:
    three = IntersectionLayout(
        IX,
        (
            PhaseLayout(A, (Movement(SA, 1.0, 1),)),
            PhaseLayout(B, (Movement(SB, 1.0, 1),)),
            PhaseLayout(PhaseId("C"), (Movement(SegmentId("c"), 1.0, 1),)),
        ),
        {},
    )
    phases = (*timing().phases, ExecPhase(PhaseId("C"), 5.0, 40.0))
    ids = [p.phase_id for p in phases]
    changes = {(a, b): Change(4.0, 2.0) for a in ids for b in ids if a != b}
    plan = FallbackPlan(time(0, 0), dict.fromkeys(ids, 20.0))
    t3 = SignalTiming(IX, phases, changes, (plan,))
    zones = {
        SA: ZoneSnapshot(SA, (), 50.0, 1),
        SB: ZoneSnapshot(SB, (), 50.0, 1),
        SegmentId("c"): ZoneSnapshot(SegmentId("c"), queue(3), 50.0, 1),
    }
    controller = get_phase_controller("actuated")
    decision = controller.decide(three, t3, state(A, 9.0), ZoneView(9.0, zones))
    assert decision.phase == PhaseId("C")


def test_actuated_short_maximum_cuts_a_green_that_keeps_coming() -> None:
    t = timing()  # the signal's own maximum: 40 s

    def decide(name: str, at: float) -> PhaseId:
        controller = get_phase_controller(name)
        return controller.decide(
            LAYOUT, t, state(A, at), view(at, flowing(3) + queue(0, 3), queue(4))
        ).phase

    assert decide("actuated", 39.0) == A  # vehicles keep coming: extended
    short = Actuated(max_green_s=20.0)
    assert short.name == "actuated-max20"
    kept = short.decide(LAYOUT, t, state(A, 19.0), view(19.0, flowing(3), queue(4)))
    assert kept.phase == A
    cut = short.decide(LAYOUT, t, state(A, 20.0), view(20.0, flowing(3), queue(4)))
    assert cut.phase == B
    assert cut.reason.startswith("short maximum")
    assert decide("actuated-max40", 39.0) == A  # 40 s: not yet


def test_envelope_repairs_and_refuses() -> None:
    t = timing()
    s = state(A, 30.0)
    hold = command_for(PhaseDecision(A, "x"), s, 30.0, 1, 5.0)
    assert hold.kind is CommandKind.EXTEND
    assert check_command(t, s, hold, 30.0, waited_s={}, max_wait_s=90.0).outcome is (
        CommandOutcome.ACCEPTED
    )
    at_38 = state(A, 38.0)
    late_command = command_for(PhaseDecision(A, "x"), at_38, 38.0, 2, 5.0)
    late = check_command(t, at_38, late_command, 38.0, waited_s={}, max_wait_s=90.0)
    assert late.outcome is CommandOutcome.REPAIRED
    assert late.command is not None
    assert late.command.until_s == pytest.approx(40.0)  # cut to A's max green
    starving = check_command(t, s, hold, 30.0, waited_s={B: 95.0}, max_wait_s=90.0)
    assert starving.command is not None
    assert starving.command.kind is CommandKind.SERVE_NEXT
    assert starving.command.phase == B
    wrong = PhaseCommand(IX, CommandKind.SERVE_NEXT, PhaseId("Z"), 30.0, 35.0)
    assert check_command(t, s, wrong, 30.0, waited_s={}, max_wait_s=90.0).outcome is (
        CommandOutcome.REFUSED
    )
    extend_other = PhaseCommand(IX, CommandKind.EXTEND, B, 30.0, 35.0, 35.0)
    fixed = check_command(t, s, extend_other, 30.0, waited_s={}, max_wait_s=90.0)
    assert fixed.command is not None
    assert fixed.command.kind is CommandKind.SERVE_NEXT


def test_supervisor_sends_nothing_without_a_fresh_state_and_bounds_waits() -> None:
    sup = PhaseSupervisor(timing(), LAYOUT, get_phase_controller("phase-greedy"), max_wait_s=60.0)
    assert sup.decide(0.0, view(0.0, (), ())) is None
    sup.on_state(state(A, 0.0))
    assert sup.decide(10.0, view(10.0, (), ())) is None  # the last report is 10 s old
    for t in range(1, 70):
        sup.on_state(state(A, float(t)))
        command = sup.decide(float(t), view(float(t), queue(8, 3), queue(1)))
        assert command is not None
        assert command.deadline_s == pytest.approx(t + 5.0)
    # A keeps more vehicles, but B's vehicle has waited more than 60 s: served next.
    assert command is not None
    assert command.kind is CommandKind.SERVE_NEXT
    assert command.phase == B
    assert sup.outcomes["repaired"] >= 1


def ring_of(
    phases: dict[PhaseId, tuple[SegmentId, ...]],
) -> tuple[IntersectionLayout, SignalTiming]:
    """A ring of ``phases`` (each serving its zones), 5-40 s greens, 4 s + 2 s changes."""
    layout = IntersectionLayout(
        IX,
        tuple(
            PhaseLayout(p, tuple(Movement(z, 1.0, 1) for z in zones)) for p, zones in phases.items()
        ),
        {},
    )
    ids = list(phases)
    changes = {(x, y): Change(4.0, 2.0) for x in ids for y in ids if x != y}
    plan = FallbackPlan(time(0, 0), dict.fromkeys(ids, 20.0))
    return layout, SignalTiming(IX, tuple(ExecPhase(p, 5.0, 40.0) for p in ids), changes, (plan,))


def test_actuated_once_per_cycle_skips_a_movement_already_served() -> None:
    """Ring A, B, C, D where D serves B's zone again (a lead-lag pair)."""
    c, d = PhaseId("C"), PhaseId("D")
    sc = SegmentId("c")
    ring, t4 = ring_of({A: (SA,), B: (SB,), c: (sc,), d: (SB, sc)})

    def zones(at: float) -> ZoneView:
        return ZoneView(at, {SA: ZoneSnapshot(SA, queue(2), 50.0, 1),
                             SB: ZoneSnapshot(SB, queue(3), 50.0, 1),
                             sc: ZoneSnapshot(sc, (), 50.0, 1)})  # fmt: skip

    def run(controller: Actuated) -> PhaseId:
        controller.decide(ring, t4, state(B, 10.0, 0.0), zones(10.0))  # B had its green
        return controller.decide(ring, t4, state(c, 60.0, 50.0), zones(60.0)).phase

    assert run(Actuated()) == d  # plain: the next phase in the ring with a call
    once = Actuated(once_per_cycle=True)
    assert once.name == "actuated-once"
    assert run(once) == A  # B's zone was served this cycle: D skipped, the ring wraps
    # Without B's green in this cycle (a fresh controller), D serves B's waiting vehicles.
    assert (
        Actuated(once_per_cycle=True).decide(ring, t4, state(c, 60.0, 50.0), zones(60.0)).phase == d
    )


def test_actuated_once_per_cycle_hands_over_before_the_signal_maximum() -> None:
    """The signal's own max-out goes to the next phase in the ring; the engine picks first."""
    t = timing()  # the signal's maximum: 40 s
    busy = view(39.0, flowing(3) + queue(0, 3), queue(4))
    assert Actuated().decide(LAYOUT, t, state(A, 39.0), busy).phase == A  # left to the signal
    once = Actuated(once_per_cycle=True)
    assert once.decide(LAYOUT, t, state(A, 38.0), view(38.0, flowing(3), queue(4))).phase == A
    handed = once.decide(LAYOUT, t, state(A, 39.0), busy)
    assert handed.phase == B
    assert handed.reason.startswith("hand-over before the signal's maximum")
    short = Actuated(max_green_s=30.0, once_per_cycle=True)
    assert short.decide(LAYOUT, t, state(A, 30.0), busy).reason.startswith("short maximum")


@pytest.mark.parametrize("once", [False, True])
def test_actuated_recalls_a_zone_its_camera_left_without_green(once: bool) -> None:
    """A vehicle the camera misses at B's red: with no call, A would rest in green for ever."""
    empty = view(0.0, (), ())

    def rests_in_a(controller: Actuated, at: float) -> bool:
        return controller.decide(LAYOUT, timing(), state(A, at), empty).phase == A

    plain = Actuated(once_per_cycle=once)
    assert all(rests_in_a(plain, t) for t in range(0, 600, 10))
    recall = Actuated(once_per_cycle=once, recall_after_s=120.0)
    assert recall.name == ("actuated-once-recall120" if once else "actuated-recall120")
    registered = get_phase_controller("actuated-once-recall")
    assert isinstance(registered, Actuated)
    assert (registered.once_per_cycle, registered.recall_after_s) == (True, 300.0)
    assert all(rests_in_a(recall, t) for t in range(0, 120, 10))  # B's zone last green: t 0
    assert not rests_in_a(recall, 120)
    # B's green resets its zone's clock; A, green then, is not recalled either
    recall.decide(LAYOUT, timing(), state(B, 130.0, 125.0), empty)
    fresh = [t for t in range(131, 400) if not rests_in_a(recall, t)]
    assert fresh[0] == 250  # 120 s after B's zone last had green


def test_a_recall_calls_no_second_phase_once_its_zone_had_green() -> None:
    """B and D both list zone b; a recall of b is served by B, and D is not called after."""
    d = PhaseId("D")
    ring, t3 = ring_of({A: (SA,), B: (SB,), d: (SB,)})
    empty = ZoneView(0.0, {s: ZoneSnapshot(s, (), 50.0, 1) for s in (SA, SB)})
    recall = Actuated(recall_after_s=120.0)
    assert recall.decide(ring, t3, state(A, 0.0), empty).phase == A
    assert recall.decide(ring, t3, state(A, 120.0), empty).phase == B  # b: 120 s without green
    after = recall.decide(ring, t3, state(B, 131.0, 126.0), empty)  # b has had its green
    assert after.phase == B  # D, which lists b too, is not served for nobody
    assert after.reason == "no call elsewhere: rest in green"
