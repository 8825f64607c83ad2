"""Pure parts of the phase-by-phase mode in ``atcs simulate``: clearances per link, the
signal bridge, its audit, the live camera view, camera errors, outages and the peers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from atcs.bus.messages import MessageMeta
from atcs.bus.phase_payloads import Clock
from atcs.config.core import PcuConfig
from atcs.control.phase_supervisor import PhaseSupervisor
from atcs.sim.camera_errors import PERFECT, CameraErrors
from atcs.sim.clearances import LinkClearance, change_frames, link_clearances
from atcs.sim.clock import SimClock
from atcs.sim.drivers import PeerDriver, PhaseDriver
from atcs.sim.live import LiveZones, VehicleNow
from atcs.sim.network import LaneInfo, ProgramPhase, SignalLink, TlsProgram
from atcs.sim.outages import down_at, plan_outages
from atcs.sim.peers import (
    PeerRule,
    RescoSignal,
    RescoTiming,
    best_phase,
    phase_scores,
    resco_timing,
    resco_yellow,
)
from atcs.sim.phase_audit import PhaseAudit
from atcs.sim.phase_site import PhaseBridge, phase_setup
from atcs.sim.setup import LoopOptions, build_drivers
from atcs.sim.specs import SpecOptions, build_intersection
from atcs.types import PhaseId, SegmentId, SiteId, VehicleClass
from controllers.phase.commands import CommandKind, ControlMode, PhaseCommand
from controllers.phase.observe import Feeder, ZoneSnapshot, ZoneVehicle, ZoneView
from controllers.phase.registry import get_phase_controller
from controllers.phase.timing import Interval


def _lane(lane_id: str, speed: float, **kw: object) -> LaneInfo:
    edge, index = lane_id.rsplit("_", 1)
    return LaneInfo(lane_id, edge, int(index), 100.0, speed_m_s=speed, **kw)  # type: ignore[arg-type]


def program() -> TlsProgram:
    """North-south at 50 km/h over a 30 m junction, east-west at 30 km/h over 10 m."""
    links = (
        SignalLink(0, "ns_0", "out_s_0", path_m=30.0),
        SignalLink(1, "ew_0", "out_w_0", path_m=10.0),
    )
    lanes = {
        "ns_0": _lane("ns_0", 13.89, upstream=(("up_0", 40.0),)),
        "ew_0": _lane("ew_0", 8.33),
        "out_s_0": _lane("out_s_0", 13.89),
        "out_w_0": _lane("out_w_0", 8.33),
    }
    phases = (ProgramPhase("Gr", 30.0), ProgramPhase("yr", 3.0),
              ProgramPhase("rG", 20.0), ProgramPhase("ry", 3.0))  # fmt: skip
    return TlsProgram("X", "0", 0.0, phases, links, lanes)


def test_clearances_per_link_by_ite() -> None:
    ite = link_clearances(program())
    # 50 km/h: yellow 3.28 -> 4 s; all-red (30 + 6) / 13.89 = 2.6 -> 3 s.
    assert ite[0] == LinkClearance(4.0, 3.0)
    # 30 km/h: yellow 2.37 -> 3 s; all-red (10 + 6) / 8.33 = 1.9 -> 2 s.
    assert ite[1] == LinkClearance(3.0, 2.0)
    assert set(link_clearances(program(), "minimum")) == {LinkClearance(3.0, 1.0)}


def test_change_frames_give_each_link_its_own_yellow() -> None:
    clear = (LinkClearance(4.0, 2.0), LinkClearance(3.0, 1.0), LinkClearance(3.0, 1.0))
    change = change_frames("GGr", "rrG", clear)
    assert (change.yellow_s, change.all_red_s) == (4.0, 2.0)
    assert change.frames == ("yyr", "yyr", "yyr", "yrr", "rrr", "rrr")
    overlap = change_frames("Grr", "GGr", clear)  # nothing ends: no clearance
    assert overlap.frames == ()
    demoted = change_frames("Gr", "gG", clear[:2])  # protected -> permissive shows amber
    assert demoted.frames[0] == "yr"


def test_phase_bridge_serves_a_command_with_the_clearances() -> None:
    ix = build_intersection(program())
    setup = phase_setup(ix)
    bridge = PhaseBridge(setup, 0.0)
    shown = []
    for t in range(0, 30):
        if t == 6:
            verdict = bridge.receive(
                PhaseCommand(ix.spec.intersection_id, CommandKind.SERVE_NEXT, PhaseId("P2"),
                             6.0, 11.0, None, 1), 6.0)  # fmt: skip
            assert verdict.accepted
        text, state = bridge.step(float(t))
        shown.append((t, text, state.interval))
    assert shown[5][1] == "Gr"
    assert [s[1] for s in shown[6:13]] == ["yr"] * 4 + ["rr"] * 3
    assert shown[13][1:] == ("rG", Interval.GREEN)


def test_phase_layout_names_the_exit_zones_upstream_as_feeders() -> None:
    layout = phase_setup(build_intersection(program())).layout
    feeders = {m.segment_id: m.feeders for p in layout.phases for m in p.movements}
    # ns_0 (100 m) is fed without a choice by up_0 (40 m): a light at either end of them
    # would see the vehicles 100 or 140 m before this stop line.
    assert feeders[SegmentId("ns@P1")] == (
        Feeder(SegmentId("ns[out]"), 100.0),
        Feeder(SegmentId("up[out]"), 140.0),
    )
    assert feeders[SegmentId("ew@P2")] == (Feeder(SegmentId("ew[out]"), 100.0),)


def _audit() -> PhaseAudit:
    ix = build_intersection(program())
    setup = phase_setup(ix)
    return PhaseAudit("X", setup.timing, setup.greens, link_clearances(program()))


def test_phase_audit_passes_a_clean_change_and_catches_bad_ones() -> None:
    audit = _audit()
    states = ["Gr"] * 10 + ["yr"] * 4 + ["rr"] * 3 + ["rG"] * 10
    for t, state in enumerate(states):
        audit.observe(float(t), state)
    assert audit.violations == 0, list(audit.messages)
    bad = _audit()
    # 2 s of amber (4 needed), then green after 1 s of all-red (3 needed), 3-s green.
    for t, state in enumerate(["Gr"] * 10 + ["yr"] * 2 + ["rr"] + ["rG"] * 3 + ["Gy"]):
        bad.observe(float(t), state)
    text = " ".join(bad.messages)
    assert "amber 2 s < 4 s" in text
    assert "after link 0's amber" in text
    assert "green 3 s < minimum 5 s" in text
    assert "turned green while another shows amber" in text


def test_live_zones_measure_distance_along_the_zone() -> None:
    ix = build_intersection(program(), SpecOptions(camera_length_m=120.0))
    live = LiveZones(ix.segments, {"ns_0": 100.0, "up_0": 40.0, "out_s_0": 100.0})
    ns = next(s for s in ix.segments if s.lanes == ("ns_0",))
    out = next(s for s in ix.segments if s.exit and s.lanes == ("out_s_0",))
    seen = {
        ns.segment_id: {"a": "ns_0", "b": "ns_0", "b#2": "ns_0"},
        out.segment_id: {"c": "out_s_0"},
    }
    vehicles = {
        "a": VehicleNow("ns_0", 90.0, 0.0),  # 10 m before the stop line, queued
        "b": VehicleNow("up_0", 30.0, 12.0),  # 10 m before ns_0: 110 m from the line
        "c": VehicleNow("out_s_0", 25.0, 8.0),
    }
    snap = live.snapshot(seen, vehicles, {"a": VehicleClass.CAR, "b": VehicleClass.BUS})
    distances = sorted(v.distance_m for v in snap[ns.segment_id].vehicles)
    assert distances == pytest.approx([10.0, 110.0, 110.0])  # b counted twice
    assert snap[ns.segment_id].halted_pcu == pytest.approx(1.0)
    assert snap[out.segment_id].vehicles[0].distance_m == pytest.approx(25.0)


def test_camera_errors_follow_the_measured_rates() -> None:
    errors = CameraErrors(seed=7)
    cars = Counter(errors.copies(f"v{k}", "seg", VehicleClass.CAR) for k in range(20000))
    motos = Counter(errors.copies(f"v{k}", "seg", VehicleClass.MOTORCYCLE) for k in range(20000))
    assert cars[0] / 20000 == pytest.approx(0.05, abs=0.01)
    assert motos[0] / 20000 == pytest.approx(0.29, abs=0.015)
    assert cars[2] / 20000 == pytest.approx(0.95 * 0.03, abs=0.006)
    assert errors.copies("v1", "seg", VehicleClass.CAR) == errors.copies(
        "v1", "seg", VehicleClass.CAR
    )
    assert {PERFECT.copies(f"v{k}", "s", VehicleClass.MOTORCYCLE) for k in range(500)} == {1}


def test_outages_take_a_share_of_cameras_down_once() -> None:
    segments = [SegmentId(f"s{k}") for k in range(8)]
    outages = plan_outages(segments, 0.0, 3600.0, share=0.25, duration_s=900.0, seed=3)
    assert len(outages) == 2
    assert all(o.end_s - o.start_s == 900.0 and 0 <= o.start_s <= 2700.0 for o in outages)
    first = outages[0]
    assert down_at(outages, first.start_s + 1) >= {first.segment_id}
    assert first.segment_id not in down_at(outages, first.end_s + 1)
    assert plan_outages(segments, 0.0, 3600.0, share=0.25, duration_s=900.0, seed=3) == outages


def test_resco_rules() -> None:
    ix = build_intersection(program())
    lanes = {"ns_0": (4, 2), "ew_0": (3, 5), "down_0": (6, 0)}
    greedy = PeerRule("g", pressure=False, distance_m=50.0, enveloped=False)
    assert phase_scores(ix, greedy, lanes, {}) == [6.0, 8.0]
    pressure = PeerRule("p", pressure=True, distance_m=200.0, enveloped=False)
    assert phase_scores(ix, pressure, lanes, {}) == [4.0, 3.0]
    # The north-south exit feeds a light whose queue is 6: pressure 4 - 6.
    assert phase_scores(ix, pressure, lanes, {"out_s_0": "down_0"}) == [-2.0, 3.0]
    assert best_phase([3.0, 5.0, 5.0]) == 1
    assert resco_yellow("GGgr", "rGrG") == "yGyr"
    signal = RescoSignal(ix)
    signal.choose(1, 100.0)
    assert [signal.state(100.0 + k) for k in range(4)] == ["yr", "yr", "yr", "rG"]
    # RESCO's arterial map runs a 2-s yellow (its yellow_length there) with a 5-s step.
    assert resco_timing("arterial4x4") == RescoTiming(step_s=5.0, yellow_s=2.0)
    assert resco_timing("cologne8") == RescoTiming(step_s=10.0, yellow_s=3.0)
    signal = RescoSignal(ix, resco_timing("arterial4x4").yellow_s)
    signal.choose(1, 100.0)
    assert [signal.state(100.0 + k) for k in range(3)] == ["yr", "yr", "rG"]


@pytest.mark.parametrize("yellow_s", [2.0, 3.0])
def test_peer_yellow_reaches_the_light(yellow_s: float) -> None:
    """The run's RESCO yellow is what the peer's light shows before a new phase."""
    ix = build_intersection(program())
    options = LoopOptions(peer_timing=RescoTiming(yellow_s=yellow_s))
    (driver,) = build_drivers(
        [ix],
        "resco-greedy",
        options,
        start_s=0.0,
        tick_s=1.0,
        clock=SimClock(),
        site_id=SiteId("t"),
        message=lambda: MessageMeta("s", 1),
        pcu=PcuConfig(),
    )
    assert isinstance(driver, PeerDriver)
    driver.signal.choose(1, 10.0)
    shown = [driver.signal.state(10.0 + k) for k in range(4)]
    assert shown.count("yr") == int(yellow_s)
    assert shown[int(yellow_s)] == "rG"


def _now(view: ZoneView) -> Callable[[], ZoneView]:
    return lambda: view


def _recall_run(down: bool) -> tuple[list[str], set[ControlMode]]:
    """120 s of delay-balance on ``program()`` with a queue on P1 only; P2's camera down."""
    ix = build_intersection(program())
    setup = phase_setup(ix)
    supervisor = PhaseSupervisor(setup.timing, setup.layout, get_phase_controller("delay-balance"))
    sim = SimClock()
    clock = Clock(sim.at, sim.seconds)
    driver = PhaseDriver(supervisor, PhaseBridge(setup, 0.0, 1.0, clock), _audit(), clock)
    p1, p2 = (p.movements[0].segment_id for p in setup.layout.phases)
    platoon = tuple(ZoneVehicle(2.0 + 7 * k, 5.0) for k in range(8))  # never ends
    if down:
        driver.cameras_down(frozenset({p2}))
    zones = {p1: ZoneSnapshot(p1, platoon, 100.0, 1)}
    if not down:
        zones[p2] = ZoneSnapshot(p2, (), 100.0, 1)
    shown: list[str] = []
    modes: set[ControlMode] = set()
    for t in range(120):
        text = driver.step(float(t), _now(ZoneView(float(t), zones)), lambda _range: {})
        shown.append(text or "")
        if t > 0:  # the first command goes out after the first state report
            modes.add(driver.bridge.executor.state.mode)
    return shown, modes


def test_a_down_camera_puts_only_its_phases_on_recall() -> None:
    """P2 is held for its time-of-day green only while its camera is down; P1 stays adaptive."""
    seen, modes = _recall_run(down=False)
    assert seen.count("rG") <= 6  # nobody seen on P2: only its minimum green at P1's max-out
    blind, modes_down = _recall_run(down=True)
    assert blind.count("rG") >= 20  # P2 on recall: its time-of-day green (20 s)
    # P1 still follows its platoon to the maximum green (60 s), not the fallback plan's 30 s.
    assert blind[:60] == ["Gr"] * 60
    assert modes == modes_down == {ControlMode.COMMAND}  # never the local fallback plan
