"""Intersections in the config: validation with field paths, conversion to the spec."""

from __future__ import annotations

import copy
import tomllib
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import pytest

from atcs.config import load_config, parse_config
from atcs.config.control import IntersectionConfig, intersection_spec
from atcs.errors import ConfigError
from controllers import (
    ControlInput,
    PhaseMeasure,
    SafetyOutcome,
    check,
    controller_names,
    enforce,
    get_controller,
    spec_problems,
)


def _raw(repo_dir: Path) -> dict[str, Any]:
    """The demo config with its includes merged, as parse_config wants it."""
    raw = tomllib.loads((repo_dir / "config.toml").read_text(encoding="utf-8"))
    for inc in raw.pop("include"):
        for key, value in tomllib.loads((repo_dir / inc).read_text(encoding="utf-8")).items():
            raw[key] = [*raw.get(key, []), *value]
    return raw


@pytest.fixture
def raw(repo_dir: Path) -> dict[str, Any]:
    return _raw(repo_dir)


def _error(raw: dict[str, Any], repo_dir: Path) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, repo_dir, {})
    return str(info.value)


def test_the_demo_config_holds_the_demo_intersection(repo_dir: Path) -> None:
    cfg = load_config(repo_dir / "config.toml", environ={})
    [ix] = cfg.intersections
    spec = intersection_spec(ix, cfg.site.timezone)
    assert spec.intersection_id == "simpang-demo"
    assert spec.timezone == "Asia/Jakarta"
    assert [p.phase_id for p in spec.phases] == ["south", "ahmad-yani", "motorway"]
    south = spec.phases[0]
    assert south.segments == ("beijing-south-approach",)
    assert south.exit_segments == ("beijing-junction",)
    assert south.pedestrian_crossing_m == 15.0
    assert south.signal_groups == ("S1", "S2")
    assert spec.phases[1].segments == ("pontianak-inbound", "pontianak-outbound")
    assert spec.phases[2].yellow_s == 4.0
    assert spec.controller == "webster"
    assert [f.starts_at for f in spec.fallback_plans][:2] == [time(0, 0), time(6, 0)]
    assert spec.fallback_plans[1].greens_s == {"south": 35.0, "ahmad-yani": 25.0, "motorway": 45.0}
    assert spec_problems(spec) == []
    segment_ids = {s.id for s in cfg.segments}
    assert {s for p in spec.phases for s in p.segments + p.exit_segments} <= segment_ids


def test_every_controller_runs_the_demo_intersection_safely(repo_dir: Path) -> None:
    cfg = load_config(repo_dir / "config.toml", environ={})
    spec = intersection_spec(cfg.intersections[0], cfg.site.timezone)
    now = datetime(2024, 5, 6, 0, 30, tzinfo=UTC)  # 07:30 WIB: morning peak
    measures = {
        p.phase_id: PhaseMeasure(p.phase_id, flow_pcu_h=f, queue_pcu=q, age_s=4.0)
        for p, f, q in zip(spec.phases, [2400.0, 1100.0, 1500.0], [30.0, 12.0, 9.0], strict=True)
    }
    running = None
    for name in controller_names():
        plan = get_controller(name).propose(spec, ControlInput(now, measures, running=running))
        decision = enforce(spec, plan, running, now)
        assert decision.outcome is not SafetyOutcome.REFUSED
        assert check(spec, decision.plan, running) == []
        running = decision.plan
    fixed = get_controller("fixed").propose(spec, ControlInput(now, {}))
    assert [p.green_s for p in fixed.phases] == [35.0, 25.0, 45.0]
    assert "morning peak" in fixed.reason


def test_intersection_timezone_overrides_the_site(raw: dict[str, Any], repo_dir: Path) -> None:
    raw["intersections"][0]["timezone"] = "Asia/Makassar"
    cfg = parse_config(raw, repo_dir, {})
    assert intersection_spec(cfg.intersections[0], cfg.site.timezone).timezone == "Asia/Makassar"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda ix: ix["phases"][0].update(min_green_s=70.0),
            "intersections[0]: phases[0].min_green_s: 70 s is more than max_green_s 60 s",
        ),
        (
            lambda ix: ix.update(cycle_max_s=45.0),
            "intersections[0]: cycle_min_s: 50 s is more than cycle_max_s 45 s",
        ),
        (
            lambda ix: ix.update(cycle_min_s=40.0, cycle_max_s=45.0),
            "intersections[0]: cycle_max_s: 45 s is shorter than the shortest possible cycle",
        ),
        (
            lambda ix: ix["phases"][1].update(pedestrian_crossing_m=60.0),
            "intersections[0]: phases[1].pedestrian_crossing_m: clearance 50.0 s (60 m at "
            "1.2 m/s) does not fit in max_green_s 45 s",
        ),
        (
            lambda ix: ix["fallback_plans"][1]["greens_s"].update(south=11.0),
            "intersections[0]: fallback_plans[1].greens_s.south: 11 s is outside [12.5, 60] s",
        ),
        (
            lambda ix: ix["fallback_plans"][2]["greens_s"].pop("motorway"),
            "intersections[0]: fallback_plans[2].greens_s: no green for phases ['motorway']",
        ),
        (
            lambda ix: ix["fallback_plans"][0]["greens_s"].update(west=20.0),
            "intersections[0]: fallback_plans[0].greens_s: unknown phases ['west']",
        ),
        (
            lambda ix: ix["fallback_plans"][3].update(starts_at="06:00"),
            "intersections[0]: fallback_plans[3].starts_at: another plan also starts at 06:00",
        ),
        (
            lambda ix: ix["phases"][2].update(id="south"),
            "intersections[0]: phases[2].id: duplicate phase id 'south'",
        ),
        (
            lambda ix: ix["phases"][0].update(yellow_s=2.0),
            "intersections[0].phases[0].yellow_s: Input should be greater than or equal to 3",
        ),
        (
            lambda ix: ix["phases"][0].update(all_red_s=0.0),
            "intersections[0].phases[0].all_red_s: Input should be greater than or equal to 1",
        ),
        (
            lambda ix: ix.update(controller="scats"),
            "intersections[0].controller: unknown controller 'scats'; known: fixed, webster, "
            "max-pressure",
        ),
        (
            lambda ix: ix["phases"][1]["segments"].append("jl-merdeka"),
            "intersections[0].phases[1].segments[2]: unknown segment 'jl-merdeka'",
        ),
        (
            lambda ix: ix["phases"][0]["exit_segments"].append("nowhere"),
            "intersections[0].phases[0].exit_segments[1]: unknown segment 'nowhere'",
        ),
        (
            lambda ix: ix.update(phases=ix["phases"][:1]),
            "intersections[0].phases: List should have at least 2",
        ),
        (lambda ix: ix.update(fallback_plans=[]), "intersections[0].fallback_plans: List should"),
        (
            lambda ix: ix["phases"][0].update(green_s=20.0),
            "intersections[0].phases[0].green_s: Extra inputs are not permitted",
        ),
        (
            lambda ix: ix["fallback_plans"][0].update(starts_at="07:00+07:00"),
            "intersections[0].fallback_plans[0].starts_at: give a local time of day",
        ),
        (
            lambda ix: ix.update(max_split_step_s=0.0),
            "intersections[0].max_split_step_s: Input should be greater than 0",
        ),
    ],
)
def test_an_intersection_that_cannot_satisfy_its_limits_is_rejected(
    raw: dict[str, Any], repo_dir: Path, change: Any, message: str
) -> None:
    bad = copy.deepcopy(raw)
    change(bad["intersections"][0])
    assert message in _error(bad, repo_dir)


def test_duplicate_intersection_ids_are_rejected(raw: dict[str, Any], repo_dir: Path) -> None:
    raw["intersections"].append(copy.deepcopy(raw["intersections"][0]))
    assert "intersections[1].id: duplicate id 'simpang-demo'" in _error(raw, repo_dir)


def test_validation_lists_every_problem_of_the_intersection(
    raw: dict[str, Any], repo_dir: Path
) -> None:
    ix = raw["intersections"][0]
    ix["phases"][0]["min_green_s"] = 70.0
    ix["phases"][2]["min_green_s"] = 80.0
    message = _error(raw, repo_dir)
    assert "phases[0].min_green_s: 70 s" in message
    assert "phases[2].min_green_s: 80 s" in message


def test_a_phase_without_segments_is_allowed(raw: dict[str, Any], repo_dir: Path) -> None:
    raw["intersections"][0]["phases"][1]["segments"] = []
    cfg = parse_config(raw, repo_dir, {})
    assert cfg.intersections[0].phases[1].segments == []


def test_the_config_model_can_be_built_directly() -> None:
    ix = IntersectionConfig.model_validate(
        {
            "id": "tiny",
            "controller": "max-pressure",
            "cycle_min_s": 30,
            "cycle_max_s": 90,
            "phases": [
                {"id": "a", "min_green_s": 7, "max_green_s": 40},
                {"id": "b", "min_green_s": 7, "max_green_s": 40, "pedestrian_crossing_m": 9.6},
            ],
            "fallback_plans": [{"starts_at": time(5, 30), "greens_s": {"a": 20, "b": 15}}],
        }
    )
    spec = intersection_spec(ix, "UTC")
    assert spec.controller == "max-pressure"
    assert spec.max_cycle_step_s == 10.0
    assert spec.max_split_step_s == 5.0
    assert spec.stale_after_s == 60.0
    assert spec.phases[0].yellow_s == 3.0
    assert spec.phases[0].all_red_s == 2.0
    assert spec.phases[0].saturation_flow_pcu_h == 1800.0
    assert spec.phases[1].walking_speed_m_s == 1.2
    assert spec.fallback_plans[0].starts_at == time(5, 30)
