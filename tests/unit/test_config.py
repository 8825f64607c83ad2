from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from atcs.cli import main
from atcs.config import geometry_warnings, load_config, parse_config
from atcs.config.reference import render
from atcs.errors import ConfigError
from atcs.types import VehicleClass
from tests.support.sites import demo_in_phase_mode

MINIMAL = """
[site]
id = "t"

[[cameras]]
id = "cam"
source = "clip.mp4"

[[segments]]
id = "seg"
camera = "cam"
polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]
length_m = 50.0
lanes = 2

[[lines]]
id = "l1"
camera = "cam"
segment = "seg"
points = [[0.1, 0.5], [0.9, 0.5]]
"""


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return str(info.value).splitlines()


def test_demo_config_loads(repo_dir: Path) -> None:
    cfg = load_config(repo_dir / "config.toml")
    assert {c.id for c in cfg.cameras} == {"pontianak", "beijing", "motorway"}
    assert len(cfg.segments) >= 5
    assert all(seg.camera in {c.id for c in cfg.cameras} for seg in cfg.segments)
    assert geometry_warnings(cfg) == []
    for cam in cfg.cameras:
        assert Path(cam.source).is_absolute(), "relative sources resolve against the file"


def test_relative_source_resolves_against_config_folder(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL.replace("clip.mp4", "media/clip.mp4")))
    assert cfg.cameras[0].source == str(tmp_path / "media" / "clip.mp4")
    assert cfg.service.state_dir == str(tmp_path / "var")


def test_unknown_key_names_field_path(tmp_path: Path) -> None:
    text = MINIMAL.replace('source = "clip.mp4"', 'source = "clip.mp4"\nfps = 3')
    assert problems_of(tmp_path, text) == ["cameras[0].fps: Extra inputs are not permitted"]


def test_every_problem_is_listed(tmp_path: Path) -> None:
    text = MINIMAL.replace("lanes = 2", "lanes = 0").replace('id = "t"', 'id = "Bad Id"')
    problems = problems_of(tmp_path, text)
    assert len(problems) == 2
    assert problems[0].startswith("site.id:")
    assert problems[1].startswith("segments[0].lanes:")


def test_cross_references_checked(tmp_path: Path) -> None:
    text = MINIMAL.replace('camera = "cam"\npolygon', 'camera = "nope"\npolygon')
    problems = problems_of(tmp_path, text)
    assert any("segments[0].camera: unknown camera 'nope'" in p for p in problems)
    assert any("lines[0].segment" in p for p in problems)


def test_duplicate_ids_rejected(tmp_path: Path) -> None:
    text = MINIMAL + '\n[[cameras]]\nid = "cam"\nsource = "x.mp4"\n'
    assert any("cameras[1].id: duplicate id 'cam'" in p for p in problems_of(tmp_path, text))


def test_env_expansion_and_missing_variable(tmp_path: Path) -> None:
    text = MINIMAL.replace('"clip.mp4"', '"rtsp://admin:${CAM_PASS}@10.0.0.5/live"')
    cfg = parse_config(_toml(text), tmp_path, {"CAM_PASS": "s3cret"})
    assert cfg.cameras[0].source == "rtsp://admin:s3cret@10.0.0.5/live"
    with pytest.raises(ConfigError, match=r"cameras\[0\].source: environment variable"):
        parse_config(_toml(text), tmp_path, {})
    default = MINIMAL.replace('"clip.mp4"', '"${MEDIA:-/data}/clip.mp4"')
    assert parse_config(_toml(default), tmp_path, {}).cameras[0].source == "/data/clip.mp4"


def test_model_env_overrides(tmp_path: Path) -> None:
    cfg = parse_config(_toml(MINIMAL), tmp_path, {"ATCS_MODEL": "yolo11s.pt"})
    assert cfg.detector.model == "yolo11s.pt"


def test_include_merges_arrays(tmp_path: Path) -> None:
    write(tmp_path, '[[cameras]]\nid = "cam2"\nsource = "b.mp4"\n', "more.toml")
    cfg = load_config(write(tmp_path, 'include = ["more.toml"]\n' + MINIMAL))
    assert [c.id for c in cfg.cameras] == ["cam", "cam2"]


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[site\n"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml")


def test_geometry_outside_the_image_is_an_error(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "[[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]", "[[0.2, 0.2], [1.5, 0.2], [0.5, 0.9]]"
    ).replace("[[0.1, 0.5], [0.9, 0.5]]", "[[-0.1, 0.5], [0.9, 0.5]]")
    assert problems_of(tmp_path, text) == [
        "segments[0].polygon[1][0]: Input should be less than or equal to 1",
        "lines[0].points[0][0]: Input should be greater than or equal to 0",
    ]


def test_sampling_rates_too_low_for_counts_warn(tmp_path: Path) -> None:
    assert geometry_warnings(load_config(write(tmp_path, MINIMAL))) == [
        'cameras[cam]: counting lines on a camera sampled at 1 frames/s; set profile = "counting"'
        " (5 frames/s) for reliable counts",
    ]
    counting = MINIMAL.replace('source = "clip.mp4"', 'source = "clip.mp4"\nprofile = "counting"')
    assert geometry_warnings(load_config(write(tmp_path, counting))) == []
    slow = counting.replace('profile = "counting"', 'profile = "counting"\nsample_fps = 2.0')
    assert geometry_warnings(load_config(write(tmp_path, slow))) == [
        "cameras[cam]: a counting camera sampled at 2 frames/s; line counts need 5 or more"
    ]


def test_camera_without_segment_warns(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL + '\n[[cameras]]\nid = "idle"\nsource = "b.mp4"\n'))
    assert "cameras[idle]: no segment; frames are read but not analysed" in geometry_warnings(cfg)
    assert not [w for w in geometry_warnings(cfg) if w.startswith("cameras[idle]: counting")]


def test_pcu_factors_follow_pkji(repo_dir: Path) -> None:
    pcu = load_config(repo_dir / "config.toml").pcu
    assert pcu.factor(VehicleClass.CAR, "protected") == 1.0
    assert pcu.factor(VehicleClass.TRUCK, "protected") == 1.3
    assert pcu.factor(VehicleClass.MOTORCYCLE, "protected") == 0.15
    assert pcu.factor(VehicleClass.MOTORCYCLE, "opposed") == 0.40


def test_validate_config_cli(
    tmp_path: Path, repo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate-config", str(repo_dir / "config.toml")]) == 0
    out = capsys.readouterr().out
    assert "cameras: 3" in out
    assert "pontianak-inbound" in out
    bad = write(tmp_path, MINIMAL.replace("length_m = 50.0", "length_m = -1"))
    assert main(["validate-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "segments[0].length_m: Input should be greater than 0" in err


def test_validate_config_never_prints_camera_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAM_PASS", "hunter2")
    text = MINIMAL.replace('"clip.mp4"', '"rtsp://admin:${CAM_PASS}@10.0.0.5/live"')
    assert main(["validate-config", str(write(tmp_path, text))]) == 0
    out = capsys.readouterr()
    assert "hunter2" not in out.out + out.err
    assert "10.0.0.5" in out.out


def test_config_reference_is_up_to_date(repo_dir: Path) -> None:
    committed = (repo_dir / "docs" / "config.md").read_text()
    assert committed == render(), "run: python -m atcs.config.reference > docs/config.md"


def test_cli_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "atcs.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("atcs ")


def _toml(text: str) -> dict[str, object]:
    return tomllib.loads(text)


def test_run_applies_the_configured_log_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    import atcs.service
    from atcs.commands import run

    levels: list[int] = []

    def record(cfg: object, duration_s: float | None, role: object = None) -> int:
        levels.append(logging.getLogger().level)
        return 0

    monkeypatch.setattr(atcs.service, "run_service", record)
    root = logging.getLogger()
    before = root.level
    try:
        path = write(
            tmp_path, MINIMAL.replace('id = "t"', 'id = "t"\n[service]\nlog_level = "WARNING"', 1)
        )
        assert run(path, 1.0) == 0
        assert run(path, 1.0, verbose=True) == 0
        root.setLevel(logging.DEBUG)
        assert run(path, 1.0, verbose=True) == 0
    finally:
        root.setLevel(before)
    assert levels[0] == logging.WARNING
    assert levels[2] == logging.DEBUG


def test_phase_mode_approaches_without_a_stop_line_warn(repo_dir: Path) -> None:
    cfg = load_config(repo_dir / "config.toml")
    assert not [w for w in geometry_warnings(cfg) if w.startswith("intersections[")]
    phased = demo_in_phase_mode(cfg)
    # beijing-south-approach has a stop line: per-frame vehicles; the other three do not
    assert [w for w in geometry_warnings(phased) if w.startswith("intersections[")] == [
        "intersections[simpang-demo]: phase mode, but approach segments pontianak-inbound, "
        "pontianak-outbound, motorway-southbound have no stop line: their controller sees "
        "10-s windows instead of each frame's vehicles (simulated on cologne1: mean delay "
        "212.8 s instead of 24.4 s); draw their stop lines"
    ]
