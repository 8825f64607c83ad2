"""The ``schedule`` controller: arrival flows, schedule costs and its hold-or-change decisions."""

from __future__ import annotations

from datetime import time

import pytest

from atcs.types import IntersectionId, PhaseId, SegmentId
from controllers import FallbackPlan
from controllers.phase.commands import ControlMode, SignalState
from controllers.phase.delaybalance import DelayBalance
from controllers.phase.observe import (
    Feeder,
    IntersectionLayout,
    Movement,
    PhaseLayout,
    ZoneSnapshot,
    ZoneVehicle,
    ZoneView,
)
from controllers.phase.schedule import (
    ArrivalRates,
    Fluid,
    Schedule,
    fluid_now,
    moving_flow,
    schedule_cost,
)
from controllers.phase.timing import Change, ExecPhase, Interval, SignalTiming

IX = IntersectionId("X")
A, B = PhaseId("A"), PhaseId("B")
SA, SB = SegmentId("a"), SegmentId("b")
LAYOUT = IntersectionLayout(
    IX, (PhaseLayout(A, (Movement(SA, 1.0, 1),)), PhaseLayout(B, (Movement(SB, 1.0, 1),))), {}
)


def timing() -> SignalTiming:
    """Two phases, 5-40 s greens, 4 s yellow + 2 s all-red each way."""
    phases = (ExecPhase(A, 5.0, 40.0), ExecPhase(B, 5.0, 40.0))
    changes = {(A, B): Change(4.0, 2.0), (B, A): Change(4.0, 2.0)}
    return SignalTiming(IX, phases, changes, (FallbackPlan(time(0, 0), {A: 20.0, B: 20.0}),))


def green(phase: PhaseId, at: float) -> SignalState:
    """``phase`` green since 0 s."""
    return SignalState(IX, at, phase, Interval.GREEN, 0.0, 0.0, None, ControlMode.COMMAND, "")


def zones(at: float, a: tuple[ZoneVehicle, ...], b: tuple[ZoneVehicle, ...]) -> ZoneView:
    return ZoneView(at, {SA: ZoneSnapshot(SA, a, 50.0, 1), SB: ZoneSnapshot(SB, b, 50.0, 1)})


def halted(n: int) -> tuple[ZoneVehicle, ...]:
    return tuple(ZoneVehicle(2.0 + 7 * k, 0.0) for k in range(n))


def test_moving_flow_counts_the_free_part_behind_the_queue() -> None:
    zone = ZoneSnapshot(SA, (ZoneVehicle(2.0, 0.0), ZoneVehicle(30.0, 10.0, 2.0)), 50.0, 1)
    # Queue ends at 2 + 7.5 m; 40.5 m free carry 2 PCU at 10 m/s.
    assert moving_flow(zone) == pytest.approx(20.0 / 40.5)
    assert moving_flow(ZoneSnapshot(SA, halted(6), 50.0, 1)) is None  # queue fills the zone


def test_arrival_rates_learn_only_in_red_and_average_slowly() -> None:
    rates = ArrivalRates(memory_s=100.0)
    moving = (ZoneVehicle(20.0, 10.0),)
    rates.note(zones(0.0, moving, ()), [SA])
    assert rates.rate(SA) == pytest.approx(0.2)  # 10 m/s over 50 m
    assert rates.rate(SB) == 0.0  # never in red yet
    rates.note(zones(2.0, (), ()), [SA])
    assert rates.rate(SA) == pytest.approx(0.2 + 2.0 / 100.0 * (0.0 - 0.2))
    rates.note(zones(60.0, (), ()), [SA])  # after a green: one step, not 58 s, of memory
    assert rates.rate(SA) == pytest.approx(0.196 * (1 - 2.0 / 100.0))


def test_schedule_cost_charges_the_change_interval() -> None:
    fluid = Fluid({SA: 0.0, SB: 2.0}, {SA: [0.0] * 30, SB: [0.0] * 30},
                  {A: {SA: 0.5}, B: {SB: 0.5}})  # fmt: skip
    # Change now: B's 2 PCU wait the 6 s change and 2 s start-up (8 s x 2), then leave at
    # 0.5 PCU/s (1.5 + 1.0 + 0.5): 19 PCU-s. Holding A 4 s more adds 4 s x 2 PCU.
    assert schedule_cost(fluid, timing(), A, hold_s=0, target=B, horizon_s=30) == 19.0
    assert schedule_cost(fluid, timing(), A, hold_s=4, target=B, horizon_s=30) == 27.0


def test_fluid_now_reads_queues_arrivals_and_learned_flow() -> None:
    rates = ArrivalRates()
    rates.note(zones(0.0, (ZoneVehicle(20.0, 10.0),), ()), [SA])
    view = zones(5.0, (ZoneVehicle(2.0, 0.0), ZoneVehicle(30.0, 6.0)), halted(2))
    fluid = fluid_now(LAYOUT, view, rates, {}, horizon_s=8)
    assert fluid.queued == {SA: 1.0, SB: 2.0}
    # The mover arrives in second 5; beyond the camera 0.2 PCU/s from second 4 (50 m / 12 m/s).
    assert fluid.arrivals[SA] == pytest.approx([0, 0, 0, 0, 0.2, 1.2, 0.2, 0.2])
    assert fluid.arrivals[SB] == [0.0] * 8
    assert fluid.capacity == {A: {SA: 0.5}, B: {SB: 0.5}}


def test_schedule_holds_for_a_platoon_beyond_the_gap_that_delay_balance_cuts() -> None:
    # Two vehicles 5 and 7 s away on A (beyond delay-balance's 4 s gap), one queued on B.
    coming = (ZoneVehicle(30.0, 6.0), ZoneVehicle(42.0, 6.0))
    view = zones(10.0, coming, halted(1))
    assert DelayBalance().decide(LAYOUT, timing(), green(A, 10.0), view).phase == B
    held = Schedule().decide(LAYOUT, timing(), green(A, 10.0), view)
    assert held.phase == A
    assert held.reason.startswith("schedule: holding 8 s")


def test_schedule_changes_when_the_queue_outweighs_the_platoon() -> None:
    # One vehicle 7 s away on A against seven queued on B: changing now is cheaper.
    view = zones(10.0, (ZoneVehicle(42.0, 6.0),), halted(7))
    assert Schedule().decide(LAYOUT, timing(), green(A, 10.0), view).phase == B


UB = SegmentId("b-upstream[out]")
FED = IntersectionLayout(
    IX,
    (
        PhaseLayout(A, (Movement(SA, 1.0, 1),)),
        PhaseLayout(B, (Movement(SB, 1.0, 1, feeders=(Feeder(UB, 150.0),)),)),
    ),
    {},
)


def fed_view(at: float, upstream: tuple[ZoneVehicle, ...]) -> ZoneView:
    view = zones(at, (), ())
    return ZoneView(at, {**view.zones, UB: ZoneSnapshot(UB, upstream, 50.0, 1)})


def test_fluid_now_reads_the_upstream_exit_zone_instead_of_the_learned_flow() -> None:
    rates = ArrivalRates()
    rates.note(zones(0.0, (), (ZoneVehicle(20.0, 6.0),)), [SB])  # 0.12 PCU/s learned on B
    view = fed_view(5.0, (ZoneVehicle(60.0, 10.0), ZoneVehicle(130.0, 10.0, 2.0)))
    arrivals = fluid_now(FED, view, rates, {}, horizon_s=16).arrivals[SB]
    # 150 - 60 = 90 m at 10 m/s: second 9. The other vehicle (20 m off) is inside B's own
    # zone already. The upstream zone covers 100-150 m (seconds 8-11): no learned flow there.
    flow = 0.12
    expected = [0.0] * 4 + [flow] * 4 + [0.0, 1.0, 0.0, 0.0] + [flow] * 4
    assert arrivals == pytest.approx(expected)


def test_schedule_changes_early_for_vehicles_coming_from_upstream() -> None:
    # Nobody on A; two vehicles leave the junction upstream of B, 8 and 9 s away. Changing
    # now (6 s change + 2 s start-up) serves them as they come (2 PCU-s queued); holding
    # 2 s more makes them stop (6 PCU-s).
    view = fed_view(10.0, (ZoneVehicle(60.0, 10.0), ZoneVehicle(70.0, 10.0)))
    kept = DelayBalance().decide(FED, timing(), green(A, 10.0), view)
    assert (kept.phase, kept.reason) == (A, "nobody else waits")
    early = Schedule(early=True).decide(FED, timing(), green(A, 10.0), view)
    assert early.phase == B
    assert early.reason == "schedule: vehicles coming to B, changing now saves 4 pcu-s"
    late = Schedule().decide(FED, timing(), green(A, 10.0), view)  # early changes are off
    assert late.phase == A
