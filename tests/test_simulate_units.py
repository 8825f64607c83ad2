"""Pure parts of ``atcs simulate``: specs from programs, bridge, audit, rounding, measures."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from atcs.bus.messages import AckResult, MessageMeta
from atcs.bus.payloads import decode_plan_ack, encode_timing_plan
from atcs.control.inputs import phase_measures
from atcs.errors import SimulationError
from atcs.sim.audit import SignalAudit
from atcs.sim.bridge import SignalBridge
from atcs.sim.cameras import CameraEmulator, DetectorReading, plan_detectors
from atcs.sim.clock import SimClock
from atcs.sim.network import LaneInfo, ProgramPhase, SignalLink, TlsProgram
from atcs.sim.scenario import known_scenarios, read_sumocfg, resolve_scenario
from atcs.sim.specs import SimIntersection, SpecOptions, build_intersection, camera_zone
from atcs.types import PhaseId, PhaseTiming, PlanMode, SegmentId, SiteId, TimingPlan, VehicleClass
from controllers import check, validate_spec
from controllers.seconds import whole_seconds

CLOCK = SimClock()


def _lane(lane_id: str, length: float = 100.0, **kw: object) -> LaneInfo:
    edge, index = lane_id.rsplit("_", 1)
    return LaneInfo(lane_id, edge, int(index), length, **kw)  # type: ignore[arg-type]


def cross_program() -> TlsProgram:
    """Two approaches, one lane each, two phases, a program without all-red.

    The lanes are limited to 30 km/h, where the ITE clearances are 3 s and 1 s.
    """
    links = (
        SignalLink(0, "ns_0", "out_s_0"),
        SignalLink(1, "ew_0", "out_w_0"),
    )
    lanes = {ln: _lane(ln, speed_m_s=8.33) for ln in ("ns_0", "ew_0", "out_s_0", "out_w_0")}
    phases = (
        ProgramPhase("Gr", 30.0),
        ProgramPhase("yr", 3.0),
        ProgramPhase("rG", 20.0),
        ProgramPhase("ry", 3.0),
    )
    return TlsProgram("X", "0", 0.0, phases, links, lanes)


def test_spec_from_program_inserts_all_red_and_keeps_greens() -> None:
    ix = build_intersection(cross_program())
    spec = ix.spec
    validate_spec(spec)
    assert [p.phase_id for p in spec.phases] == ["P1", "P2"]
    # ITE at 30 km/h: 1 + 8.33 / 6.1 = 2.37 s, raised to 3 s; all-red (0 m + 6 m) / 8.33
    # m/s = 0.72 s, raised to 1 s: the program had none.
    assert [p.yellow_s for p in spec.phases] == [3.0, 3.0]
    assert [p.all_red_s for p in spec.phases] == [1.0, 1.0]  # inserted
    assert dict(spec.fallback_plans[0].greens_s) == {"P1": 30.0, "P2": 20.0}
    assert [(s.green, s.yellow, s.all_red) for s in ix.signals] == [
        ("Gr", "yr", "rr"),
        ("rG", "ry", "rr"),
    ]
    assert spec.phases[0].segments == (SegmentId("ns@P1"),)
    assert spec.phases[0].exit_segments == (SegmentId("out_s[out]"),)
    assert spec.cycle_min_s == 58.0  # the program's own cycle (30+20+2*4) is below 60 s


def test_program_with_one_green_phase_is_refused() -> None:
    prog = cross_program()
    one = TlsProgram("X", "0", 0.0, (ProgramPhase("GG", 30.0),), prog.links, prog.lanes)
    with pytest.raises(SimulationError, match="at least two"):
        build_intersection(one)


def test_camera_zone_extends_upstream_over_short_lanes() -> None:
    lane = _lane("a_0", 10.0, upstream=(("b_0", 30.0), ("c_0", 100.0)))
    zone = camera_zone(lane, 75.0, exit_lane=False)
    assert zone.lanes == ("c_0", "b_0", "a_0")
    assert zone.start_m == pytest.approx(65.0)  # 100 - (75 - 40)
    assert zone.end_m == pytest.approx(10.0)
    assert zone.length_m == pytest.approx(75.0)
    out = camera_zone(_lane("o_0", 20.0, downstream=(("p_0", 200.0),)), 50.0, exit_lane=True)
    assert out.lanes == ("o_0", "p_0")
    assert out.start_m == 0.0
    assert out.end_m == pytest.approx(30.0)


def test_unknown_scenario_lists_known_names() -> None:
    with pytest.raises(SimulationError) as err:
        resolve_scenario("atlantis")
    for name in known_scenarios():
        assert name in str(err.value)


def test_sumocfg_sidecar_overrides(tmp_path: Path) -> None:
    (tmp_path / "n.net.xml").write_text("<net/>")
    (tmp_path / "x.sumocfg").write_text(
        '<configuration><input><net-file value="n.net.xml"/></input>'
        '<time><begin value="10"/><end value="70"/></time></configuration>'
    )
    (tmp_path / "x.atcs.toml").write_text("lane_saturation_pcu_h = 1200\n")
    scen = read_sumocfg(tmp_path / "x.sumocfg", "x")
    assert (scen.begin_s, scen.end_s, scen.duration_s) == (10.0, 70.0, 60.0)
    assert scen.overrides == {"lane_saturation_pcu_h": 1200.0}


def _plan(ix: SimIntersection, greens: list[float], start_s: float, pid: str) -> TimingPlan:
    phases = tuple(
        PhaseTiming(p.phase_id, g, p.yellow_s, p.all_red_s)
        for p, g in zip(ix.spec.phases, greens, strict=True)
    )
    return TimingPlan(
        intersection_id=ix.spec.intersection_id,
        plan_id=pid,
        controller="webster",
        mode=PlanMode.ADAPTIVE,
        cycle_s=sum(p.duration_s for p in phases),
        offset_s=0.0,
        phases=phases,
        valid_from=CLOCK.at(start_s),
        reason="test",
    )


def _payload(plan: TimingPlan) -> bytes:
    return encode_timing_plan(SiteId("t"), plan, MessageMeta("s", 1))


def test_bridge_runs_plans_at_cycle_boundaries_and_acks() -> None:
    ix = build_intersection(cross_program())
    bridge = SignalBridge(ix, CLOCK, 1.0)
    assert bridge.step(0.0) == (None, [])
    assert bridge.receive(_payload(_plan(ix, [10, 5], 0.0, "a")), 0.0) == []
    states = []
    acks: list[bytes] = []
    for t in range(40):
        state, out = bridge.step(float(t))
        states.append(state)
        acks += out
        if t == 3:  # a new plan, for the next boundary (cycle 10+4+5+4 = 23 s)
            acks += bridge.receive(_payload(_plan(ix, [6, 5], 23.0, "b")), float(t))
    assert states[:10] == ["Gr"] * 10
    assert states[10:13] == ["yr"] * 3
    assert states[13] == "rr"
    assert states[14:19] == ["rG"] * 5
    assert states[19:22] == ["ry"] * 3
    assert states[22] == "rr"
    assert states[23:29] == ["Gr"] * 6  # plan b from the boundary at 23 s
    decoded = [decode_plan_ack(a, ix.spec.intersection_id) for a in acks]
    assert [(d.plan_id, d.result) for d in decoded] == [
        ("a", AckResult.APPLIED),
        ("b", AckResult.APPLIED),
    ]


@pytest.mark.parametrize("offset_s", [7.0, 30.0])
def test_bridge_honours_offsets_through_safe_transitions(offset_s: float) -> None:
    ix = build_intersection(cross_program())
    bridge = SignalBridge(ix, CLOCK, 1.0)
    audit = SignalAudit(ix, CLOCK, "fixed")
    plan = dataclasses.replace(_plan(ix, [30, 25], 0.0, "coordinated"), offset_s=offset_s)
    bridge.receive(_payload(plan), 0.0)
    starts = []
    for t in range(1200):
        state, _ = bridge.step(float(t))
        assert state is not None
        audit.observe(float(t), state, 1.0)
        if bridge.cycle_start_s == t:
            starts.append(t)
    cycle = plan.cycle_s
    on_grid = [(CLOCK.at(t).timestamp() - offset_s) % cycle == 0 for t in starts]
    assert not on_grid[0]
    assert all(on_grid[-10:])  # reached the grid, and stays on it
    assert bridge.transition_cycles >= 1
    assert audit.violations == 0, audit.messages


def test_bridge_keeps_a_republished_running_plan() -> None:
    ix = build_intersection(cross_program())
    bridge = SignalBridge(ix, CLOCK, 1.0)
    first = _plan(ix, [10, 5], 0.0, "a")
    bridge.receive(_payload(first), 0.0)
    for t in range(30):
        bridge.step(float(t))
    (ack,) = bridge.receive(_payload(first), 30.0)  # the retained plan, refreshed
    assert decode_plan_ack(ack, ix.spec.intersection_id).result is AckResult.APPLIED
    # It does not restart the cycle, and a newer plan does not reject it as superseded.
    assert bridge.cycle_start_s == 23.0
    assert bridge.receive(_payload(_plan(ix, [6, 5], 46.0, "b")), 31.0) == []
    assert bridge.receive(_payload(_plan(ix, [6, 5], 46.0, "b")), 32.0) == []
    state, acks = bridge.step(46.0)
    assert state == "Gr"
    assert [decode_plan_ack(a, ix.spec.intersection_id).plan_id for a in acks] == ["b"]


def test_bridge_rejects_unsafe_or_foreign_plans() -> None:
    ix = build_intersection(cross_program())
    bridge = SignalBridge(ix, CLOCK, 1.0)
    bad = _plan(ix, [10, 5], 0.0, "short-yellow")
    bad = dataclasses.replace(bad, phases=(PhaseTiming(PhaseId("P1"), 10, 2.0, 1.0), bad.phases[1]))
    (ack,) = bridge.receive(_payload(bad), 0.0)
    decoded = decode_plan_ack(ack, ix.spec.intersection_id)
    assert decoded.result is AckResult.REJECTED
    assert "yellow 2 s" in decoded.reason
    assert bridge.receive(b'{"schema": "other"}', 0.0) == []
    assert bridge.step(0.0) == (None, [])


def _feed(audit: SignalAudit, sequence: list[tuple[str, int]]) -> None:
    t = 0.0
    for state, seconds in sequence:
        for _ in range(seconds):
            audit.observe(t, state, 1.0)
            t += 1.0


def test_audit_accepts_what_the_envelope_allows() -> None:
    ix = build_intersection(cross_program())
    audit = SignalAudit(ix, CLOCK, "fixed")
    cycle = [("Gr", 30), ("yr", 3), ("rr", 1), ("rG", 20), ("ry", 3), ("rr", 1)]
    _feed(audit, cycle * 3 + [("Gr", 5)])
    assert audit.violations == 0, list(audit.messages)
    assert len(audit.cycles) == 3
    assert [(p.green_s, p.yellow_s, p.all_red_s) for p in audit.cycles[0].phases] == [
        (30, 3, 1),
        (20, 3, 1),
    ]


def test_audit_catches_missing_all_red_short_yellow_and_skipped_yellow() -> None:
    ix = build_intersection(cross_program())
    no_all_red = SignalAudit(ix, CLOCK, "program")
    _feed(no_all_red, [("Gr", 30), ("yr", 3), ("rG", 20), ("ry", 3), ("Gr", 5)])
    assert no_all_red.violations >= 2
    assert any("after a yellow ended" in m for m in no_all_red.messages)
    short = SignalAudit(ix, CLOCK, "x")
    _feed(short, [("Gr", 30), ("yr", 2), ("rr", 1), ("rG", 20), ("ry", 3), ("rr", 1), ("Gr", 5)])
    assert any("yellow of 2 s" in m for m in short.messages)
    assert any("yellow 2 s < 3 s" in m for m in short.messages)  # the envelope's check
    skipped = SignalAudit(ix, CLOCK, "x")
    _feed(skipped, [("Gr", 30), ("rr", 2), ("rG", 5)])
    assert any("green ended without yellow" in m for m in skipped.messages)
    unknown = SignalAudit(ix, CLOCK, "x")
    _feed(unknown, [("Gr", 5), ("GG", 5)])
    assert any("none of the phases" in m for m in unknown.messages)


def test_whole_seconds_keeps_the_envelope() -> None:
    ix = build_intersection(cross_program())
    running = _plan(ix, [30, 20], 0.0, "run")
    plan = _plan(ix, [27.6, 22.4], 58.0, "new")
    whole = whole_seconds(ix.spec, plan, running)
    assert [p.green_s for p in whole.phases] == [28.0, 22.0]
    assert whole.cycle_s == 58.0
    assert check(ix.spec, whole, running) == []
    assert whole.plan_id != plan.plan_id
    assert whole_seconds(ix.spec, running, None) is running
    too_short = _plan(ix, [25.6, 14.4], 58.0, "short")  # breaks the cycle bounds already
    assert whole_seconds(ix.spec, too_short, running) is too_short


def test_cameras_and_phase_measures() -> None:
    ix = build_intersection(cross_program(), SpecOptions(camera_length_m=50.0))
    segments = ix.segments
    detectors = plan_detectors(segments)
    cams = CameraEmulator(SiteId("t"), segments, detectors)
    by_lane = {d.lane_id: d.detector_id for d in detectors}
    classes = {"m1": VehicleClass.MOTORCYCLE, "c1": VehicleClass.CAR, "c2": VehicleClass.CAR}

    def resolve(vid: str, lane: str, tls: str) -> int | None:
        return {"ns_0": 0, "ew_0": 1}.get(lane)

    empty = DetectorReading((), 0.0, 0.0)
    for step in range(10):
        present = ("m1", "c1") if step < 5 else ("c1", "c2")
        readings = {d.detector_id: empty for d in detectors}
        readings[by_lane["ns_0"]] = DetectorReading(present, 12.0, 20.0)
        cams.add_step(readings, classes, resolve)
    start = datetime(2024, 1, 1, 7, tzinfo=UTC)
    windows = {m.segment_id: m for m in cams.close_window(start, start + timedelta(seconds=10))}
    ns = windows[SegmentId("ns@P1")]
    assert ns.frames == 10
    assert ns.vehicles == pytest.approx(2.0)
    assert ns.pcu == pytest.approx((1.15 * 5 + 2.0 * 5) / 10)
    assert sum(f.count for f in ns.flows) == 3  # m1, c1 entered; c2 at step 5
    assert ns.flow_veh_h == pytest.approx(3 * 360.0)
    assert ns.queue_m == pytest.approx(12.0)
    assert ns.density_pcu_km_lane == pytest.approx(ns.pcu / 0.05)
    assert windows[SegmentId("ew@P2")].vehicles == 0.0
    measures = phase_measures(
        ix.spec,
        {k: [v] for k, v in windows.items()},
        start + timedelta(seconds=12),
        flow_span_s=300.0,
        queue_span_s=90.0,
    )
    p1 = measures[PhaseId("P1")]
    assert p1.flow_pcu_h == pytest.approx(360.0 * (0.15 + 1.0 + 1.0))
    assert p1.queue_pcu == pytest.approx(ns.pcu)
    assert p1.age_s == pytest.approx(2.0)
    assert measures[PhaseId("P2")].flow_pcu_h == 0.0


def test_summary_json_shape(tmp_path: Path) -> None:
    from atcs.sim.results import (
        ControllerResult,
        ControllerSummary,
        SimulationSummary,
        TripStats,
        percentile,
    )

    def run(seed: int, delay: float, stuck: int) -> ControllerResult:
        trips = TripStats(10, 1, 0, delay, 25.0, 60.0, 12.0, 5.0, 36.0, 0, 0, delay * 2)
        return ControllerResult(
            "fixed", trips, 3.0, 0, (), 4, {"published": 2}, {"accepted": 2},
            kind="engine", seed=seed, max_stopped_s=350.0 * bool(stuck), stuck_vehicles=stuck,
        )  # fmt: skip

    runs = (run(1, 30.0, 1), run(2, 50.0, 12), run(3, 34.0, 0))
    summary = SimulationSummary(
        "demo", 0.0, 1000.0, (1, 2, 3), ("C",), (ControllerSummary("fixed", "engine", runs),)
    )
    summary.write(tmp_path / "summary.json")
    doc = json.loads((tmp_path / "summary.json").read_text())
    entry = doc["controllers"]["fixed"]
    for key in (
        "mean_trip_time_s",
        "mean_waiting_time_s",
        "vehicles_completed",
        "safety_violations",
    ):
        assert key in entry
    assert entry["kind"] == "engine"
    assert entry["mean_delay_s"] == pytest.approx(38.0)
    assert entry["median_delay_s"] == pytest.approx(34.0)
    assert entry["p95_delay_s"] == pytest.approx(76.0)
    assert entry["gridlocks"] == 1  # seed 2: 12 vehicles stuck at once; seed 1 only one
    assert entry["gridlocked"] is True
    assert [r["seed"] for r in entry["runs"]] == [1, 2, 3]
    assert "stood still" in doc["gridlock_definition"]
    assert "fixed" in summary.table()
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.95) == 5.0
    assert percentile([], 0.95) == 0.0


def _trip(vid: str, depart: float, depart_delay: float, loss: float, arrival: float) -> str:
    return (
        f'<tripinfo id="{vid}" depart="{depart}" departDelay="{depart_delay}" '
        f'timeLoss="{loss}" arrival="{arrival}" duration="40" waitingTime="0"/>'
    )


def test_resco_code_delay_charges_from_the_route_file_after_the_last_entered(
    tmp_path: Path,
) -> None:
    from atcs.sim.results import read_trip_stats

    # b was scheduled at 10 s and entered last, at 80 s; d never entered; the <trip> e
    # never entered either
    (tmp_path / "tripinfo.xml").write_text(
        "<tripinfos>"
        + _trip("a", 10, 0, 5, 50)
        + _trip("b", 80, 70, 10, -1)
        + _trip("c", 30, 0, 0, 60)
        + "</tripinfos>"
    )
    (tmp_path / "statistics.xml").write_text(
        '<statistics><vehicles waiting="2"/>'
        '<vehicleTripStatistics departDelayWaiting="50"/></statistics>'
    )
    routes = tmp_path / "r.rou.xml"
    routes.write_text(
        '<routes><vType id="car"/><vehicle id="a" depart="10"/><vehicle id="b" depart="10"/>'
        '<vehicle id="c" depart="30"/><vehicle id="d" depart="40"/><trip id="e" depart="20"/>'
        "</routes>"
    )
    trips = read_trip_stats(
        tmp_path / "tripinfo.xml", tmp_path / "statistics.xml", 100.0, (routes,), 100.0
    )
    # the engine: 5 + 80 + 0 over three departed, plus the two SUMO still holds at 50 s
    assert trips.mean_delay_s == pytest.approx((85 + 2 * 50) / 5)
    # RESCO's code: every <vehicle> scheduled after 10 s (c, which entered, and d) is
    # charged 100 s minus its schedule; the <trip> is not
    assert trips.resco_code_never_entered == 2
    assert trips.resco_code_delay_s == pytest.approx((85 + 70 + 60) / 5)
    without = read_trip_stats(tmp_path / "tripinfo.xml", tmp_path / "statistics.xml", 100.0)
    assert without.resco_code_delay_s is None
    routes.write_text('<routes><vehicle id="a" depart="triggered"/></routes>')
    unreadable = read_trip_stats(
        tmp_path / "tripinfo.xml", tmp_path / "statistics.xml", 100.0, (routes,), 100.0
    )
    assert unreadable.resco_code_delay_s is None
