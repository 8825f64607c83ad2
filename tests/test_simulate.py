"""``atcs simulate`` in real Eclipse SUMO: short closed-loop runs on the demo and cologne1."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from atcs.cli import main
from atcs.errors import SimulationError
from atcs.sim import RunSettings, resolve_scenario, run_simulation
from atcs.sim.coordination import green_wave
from atcs.sim.loop import sumo_args
from atcs.sim.network import read_programs
from atcs.sim.simulate import _loop_options, load_intersections
from atcs.sim.specs import SpecOptions, build_intersection
from controllers import validate_spec

pytestmark = pytest.mark.sim

FIELDS = (
    "mean_delay_s",
    "mean_trip_time_s",
    "mean_waiting_time_s",
    "vehicles_completed",
    "safety_violations",
)


def _summary(out: Path) -> dict[str, dict[str, Any]]:
    doc = json.loads((out / "summary.json").read_text())
    controllers: dict[str, dict[str, Any]] = doc["controllers"]
    return controllers


def test_spec_from_cologne1_program() -> None:
    (program,) = read_programs(resolve_scenario("cologne1").net_file)
    ix = build_intersection(program)
    spec = ix.spec
    validate_spec(spec)
    assert [p.phase_id for p in spec.phases] == ["P1", "P2", "P3", "P4"]
    assert dict(spec.fallback_plans[0].greens_s) == {"P1": 29, "P2": 6, "P3": 29, "P4": 6}
    # ITE per link: the 70 km/h approaches (P1, P2) 5 s, the 50 km/h ones 4 s; all-red
    # from the widest crossing (the program has none: inserted).
    assert [p.yellow_s for p in spec.phases] == [5.0, 5.0, 4.0, 4.0]
    assert [p.all_red_s for p in spec.phases] == [2.0, 2.0, 3.0, 3.0]
    # The derived change states match the program's own amber where it has one ...
    assert ix.signals[0].green == "rrrrrGGGggrrrrrGGGgg"
    assert ix.signals[0].yellow == "rrrrryyyggrrrrryyygg"
    # ... and add the all-red clearance the program lacks.
    assert ix.signals[0].all_red == "rrrrrrrrggrrrrrrrrgg"
    assert ix.signals[1].all_red == "r" * 20
    # Protected lefts (P2) are fed by the left-turn movements only; exits are outgoing edges.
    assert all("@P1-P2" in s for s in spec.phases[1].segments)
    assert spec.phases[0].exit_segments
    assert all(s.endswith("[out]") for s in spec.phases[0].exit_segments)
    assert spec.cycle_min_s == 60.0
    assert spec.cycle_max_s == 120.0


def test_bad_scenario_name(tmp_path: Path) -> None:
    with pytest.raises(SimulationError, match=r"cologne1.*ingolstadt21.*sumocfg"):
        run_simulation("cologne99", ["fixed"], 60, 1, tmp_path, progress=False)
    with pytest.raises(SimulationError, match="unknown controller"):
        run_simulation("demo", ["psychic"], 60, 1, tmp_path, progress=False)


def test_cli_reports_bad_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--scenario", "nowhere", "--controller", "fixed", "--out",
                 str(tmp_path), "--no-progress"])  # fmt: skip
    assert code == 2
    assert "unknown scenario 'nowhere'" in capsys.readouterr().err


def test_demo_closed_loop(tmp_path: Path) -> None:
    summary = run_simulation("demo", ["fixed", "max-pressure"], 600, 3, tmp_path, progress=False)
    results = _summary(tmp_path)
    assert set(results) == {"fixed", "max-pressure"}
    for name, entry in results.items():
        for field in FIELDS:
            assert field in entry, (name, field)
        assert entry["safety_violations"] == 0, entry["violation_examples"]
        assert isinstance(entry["vehicles_completed"], int)
        assert entry["vehicles_completed"] > 100
        assert entry["collisions"] == 0
    plans = results["max-pressure"]["plans"]
    assert isinstance(plans, dict)
    assert plans["applied"] >= 3
    assert plans["rejected"] == 0
    # What SUMO ran is logged per cycle and every cycle keeps the envelope.
    with (tmp_path / "max-pressure" / "cycles.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len({r["cycle_start_s"] for r in rows}) >= 4
    assert all(float(r["yellow_s"]) >= 3 and float(r["all_red_s"]) >= 1 for r in rows)
    greens = {(r["cycle_start_s"], r["phase"]): float(r["green_s"]) for r in rows}
    assert len(set(greens.values())) > 1  # the adaptive controller did retime the signal
    assert (
        summary.result("fixed").trips.vehicles_completed == results["fixed"]["vehicles_completed"]
    )


def test_cologne1_closed_loop_and_audit(tmp_path: Path) -> None:
    run_simulation(
        "cologne1", ["webster", "max-pressure", "program"], 400, 1, tmp_path, progress=False
    )
    results = _summary(tmp_path)
    for name in ("webster", "max-pressure"):
        assert results[name]["safety_violations"] == 0, results[name]["violation_examples"]
        assert results[name]["vehicles_completed"] > 50
        # cologne1's route file lists <trip>s, which RESCO's code never charges as never
        # departed: its delay is the mean over the vehicles that entered
        row = results[name]
        assert row["resco_code_never_entered"] == 0
        assert row["resco_code_delay_s"] == pytest.approx(
            row["mean_time_loss_s"] + row["mean_depart_delay_s"]
        )
    # The network's own program has no all-red: the audit of what SUMO ran must see it.
    assert results["program"]["safety_violations"] > 0
    examples = results["program"]["violation_examples"]
    assert isinstance(examples, list)
    assert any("all-red" in e or "after a yellow ended" in e for e in examples)


def test_traci_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATCS_SUMO_TRACI", "1")
    run_simulation("cologne1", ["webster"], 200, 1, tmp_path, progress=False)
    assert _summary(tmp_path)["webster"]["safety_violations"] == 0


def test_every_resco_network_builds() -> None:
    for name in ("cologne3", "cologne8", "ingolstadt7", "ingolstadt21", "grid4x4", "arterial4x4"):
        intersections = load_intersections(resolve_scenario(name))
        assert intersections, name
        for ix in intersections:
            validate_spec(ix.spec)


def test_phase_mode_beats_fixed_time_on_cologne1(tmp_path: Path) -> None:
    """A full hour: the engine's own phase-by-phase controller against fixed time."""
    summary = run_simulation("cologne1", ["fixed", "delay-balance"], None, 1, tmp_path, False)
    results = _summary(tmp_path)
    fixed, adaptive = results["fixed"], results["delay-balance"]
    assert adaptive["kind"] == "engine"
    assert adaptive["safety_violations"] == 0, adaptive["violation_examples"]
    assert fixed["safety_violations"] == 0
    assert not adaptive["gridlocked"]
    assert adaptive["mean_delay_s"] < 0.8 * fixed["mean_delay_s"]
    assert adaptive["p95_delay_s"] < fixed["p95_delay_s"]
    envelope = adaptive["envelope"]
    assert isinstance(envelope, dict)
    assert envelope["accepted"] > 3000  # one command a second, each checked
    assert summary.result("delay-balance").trips.vehicles_completed > 1900


def test_every_controller_runs_by_default(tmp_path: Path) -> None:
    run_simulation("cologne1", [], 150, 1, tmp_path, False)
    doc = json.loads((tmp_path / "summary.json").read_text())
    rows = doc["controllers"]
    kinds = {name: row["kind"] for name, row in rows.items()}
    assert kinds["program"] == "reference"
    assert kinds["resco-greedy"] == kinds["resco-max-pressure-envelope"] == "peer"
    assert kinds["delay-balance"] == kinds["webster"] == kinds["actuated"] == "engine"
    assert kinds["actuated-max40"] == kinds["actuated-once"] == "engine"
    assert kinds["actuated-once-recall"] == kinds["schedule"] == "engine"
    assert len(rows) == 18
    for name, row in rows.items():
        assert {"mean_delay_s", "median_delay_s", "p95_delay_s", "gridlocked"} <= set(row), name
        if row["kind"] == "engine" or name.endswith("-envelope"):
            assert row["safety_violations"] == 0, (name, row["violation_examples"])
    # RESCO's own rules show 3 s of yellow and no all-red: the audit sees it.
    assert rows["resco-greedy"]["safety_violations"] > 0


def test_camera_outages_put_phases_on_recall(tmp_path: Path) -> None:
    settings = RunSettings(outage_share=0.5, outage_s=300.0)
    run_simulation("cologne1", ["delay-balance"], 600, 2, tmp_path, False, settings=settings)
    row = _summary(tmp_path)["delay-balance"]
    assert row["safety_violations"] == 0
    assert json.loads((tmp_path / "summary.json").read_text())["settings"]["outage_share"] == 0.5
    assert row["vehicles_completed"] > 200


def test_ingolstadt7_with_its_missing_phase_restored(tmp_path: Path) -> None:
    original = resolve_scenario("ingolstadt7")
    restored = resolve_scenario("ingolstadt7-restored", tmp_path)
    assert restored.net_file.parent == tmp_path / "ingolstadt7-restored"
    assert original.net_file.read_text() != restored.net_file.read_text()
    cluster = "cluster_306484187"

    def greens(net: Path) -> int:
        (prog,) = [p for p in read_programs(net) if p.tls_id.startswith(cluster)]
        return sum(p.is_green for p in prog.phases)

    assert greens(restored.net_file) == greens(original.net_file) + 1


def test_green_wave_offsets_follow_the_arterial() -> None:
    scenario = resolve_scenario("arterial4x4")
    lights = {
        ix.tls_id: ix for ix in green_wave(load_intersections(scenario), scenario.net_file, 20.0)
    }
    cycles = {sum(ix.spec.fallback_plans[0].greens_s.values()) for ix in lights.values()}
    assert len(cycles) == 1  # a common cycle
    # 200 m between lights at 20 m/s: 10 s further east, the same west to east in every row
    assert [lights[f"nt{k}"].spec.offset_s for k in (1, 2, 3, 4)] == [0.0, 10.0, 20.0, 30.0]
    assert lights["nt5"].spec.fallback_plans[0].offset_s == lights["nt5"].spec.offset_s
    with pytest.raises(SimulationError, match="positive"):
        green_wave(tuple(lights.values()), scenario.net_file, 0.0)


def test_the_bus_view_without_age_or_loss_is_the_per_second_view(tmp_path: Path) -> None:
    """``--phase-view bus`` through the CLI: age 0 reproduces each second; age and loss tell."""

    def run(name: str, *view: str) -> dict[str, Any]:
        out = tmp_path / name
        code = main(["simulate", "--scenario", "cologne1", "--controller", "delay-balance",
                     "--seconds", "900", "--seed", "1", "--out", str(out), "--no-progress",
                     *view])  # fmt: skip
        assert code == 0
        return json.loads((out / "summary.json").read_text())  # type: ignore[no-any-return]

    each_second = run("vehicles")["controllers"]["delay-balance"]
    no_delay = run("bus0", "--phase-view", "bus", "--zone-age-s", "0")["controllers"]
    # Each run in an interpreter of its own: equal to the last digit.
    expected = each_second["mean_delay_s"]
    assert no_delay["delay-balance"]["mean_delay_s"] == pytest.approx(expected, rel=1e-9)
    lossy = run("bus1", "--phase-view", "bus", "--zone-age-s", "1", "--zone-loss", "0.3")
    assert lossy["settings"]["phase_view"] == "bus"
    assert (lossy["settings"]["zone_age_s"], lossy["settings"]["zone_loss"]) == (1.0, 0.3)
    row = lossy["controllers"]["delay-balance"]
    (counts,) = [r["bus_zones"] for r in row["runs"]]
    assert counts["sent"] > 10_000  # one message per segment with vehicles, each second
    assert counts["lost"] / counts["sent"] == pytest.approx(0.3, abs=0.02)
    assert counts["from_windows"] > 0  # a segment whose messages were lost for 2 s
    assert no_delay["delay-balance"]["runs"][0]["bus_zones"]["lost"] == 0
    assert each_second["runs"][0]["bus_zones"] == {}  # no bus in the per-second view
    assert row["mean_delay_s"] > expected  # decided on late, lossy zones
    assert row["safety_violations"] == 0
    assert row["vehicles_completed"] > 300


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        (RunSettings(phase_view="bus", zone_loss=1.0), "zone-loss"),
        (RunSettings(phase_view="bus", zone_age_s=float("inf")), "zone-age-s"),
        (RunSettings(zone_loss=0.1), "apply only to --phase-view bus"),
        (RunSettings(phase_view="windows", zone_age_s=2.0), "apply only to --phase-view bus"),
        (RunSettings(phase_view="windows", phase_window_s=0.0), "phase-window-s"),
        (RunSettings(junction_blocker_s=-1.0), "ignore-junction-blocker"),
        (RunSettings(junction_blocker_s=float("inf")), "ignore-junction-blocker"),
    ],
)
def test_settings_out_of_range_or_for_another_view_are_refused(
    tmp_path: Path, settings: RunSettings, complaint: str
) -> None:
    with pytest.raises(SimulationError, match=complaint):
        run_simulation("cologne1", ["delay-balance"], 60, 1, tmp_path, False, settings=settings)


def test_the_bus_view_draws_its_losses_from_the_run_seed_even_with_perfect_cameras(
    tmp_path: Path,
) -> None:
    scenario = resolve_scenario("cologne1", tmp_path)
    settings = RunSettings(camera_errors=False, phase_view="bus", zone_loss=0.2)
    seeds = {
        _loop_options(scenario, intersections=(), spec=SpecOptions(), settings=settings,
                      seed=seed, end_s=scenario.end_s).seed
        for seed in (3, 4)
    }  # fmt: skip
    assert seeds == {3, 4}


def test_sumo_ignores_junction_blockers_only_when_asked(tmp_path: Path) -> None:
    """``--ignore-junction-blocker S`` reaches SUMO (which refuses options it does not know)."""
    scenario = resolve_scenario("cologne1", tmp_path)
    plain = sumo_args(scenario, tmp_path / "d.xml", tmp_path, 60.0, 1)
    assert "--ignore-junction-blocker" not in plain
    asked = sumo_args(scenario, tmp_path / "d.xml", tmp_path, 60.0, 1, junction_blocker_s=30.0)
    at = asked.index("--ignore-junction-blocker")
    assert asked[at + 1] == "30"
    out = tmp_path / "run"
    code = main(["simulate", "--scenario", "cologne1", "--controller", "actuated",
                 "--seconds", "300", "--ignore-junction-blocker", "30", "--out", str(out),
                 "--no-progress"])  # fmt: skip
    assert code == 0
    doc = json.loads((out / "summary.json").read_text())
    assert doc["settings"]["junction_blocker_s"] == 30.0
    assert doc["controllers"]["actuated"]["vehicles_completed"] > 50


def test_the_peers_take_rescos_step_and_yellow_for_the_map(tmp_path: Path) -> None:
    """RESCO's map_config: arterial4x4 a 5-s step and 2-s yellow, the other maps 10 s, 3 s."""
    got = {}
    for name in ("arterial4x4", "cologne1"):
        scenario = resolve_scenario(name, tmp_path)
        options = _loop_options(scenario, intersections=(), spec=SpecOptions(),
                                settings=RunSettings(), seed=1, end_s=scenario.end_s)  # fmt: skip
        got[name] = (options.peer_timing.step_s, options.peer_timing.yellow_s)
    assert got == {"arterial4x4": (5.0, 2.0), "cologne1": (10.0, 3.0)}
