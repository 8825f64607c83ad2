"""Configs that used to pass ``validate-config`` and break the engine, or give a traceback.

Each is refused with one :class:`ConfigError` naming the field path (issue 8, defect 5).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from atcs.cli import main
from atcs.config import load_config
from atcs.config.loader import MAX_DEPTH, MAX_FILE_BYTES, format_loc
from atcs.errors import ConfigError
from tests.support.config_fuzz import BASE, INCLUDE_KINDS, judge_file, toml_text, unclear_lines
from tests.unit.test_config import MINIMAL as CONFIG_TEXT

SQUARE = "[[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]"
MINIMAL = CONFIG_TEXT.replace("[[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]", SQUARE)


def refused(tmp_path: Path, text: str | bytes) -> list[str]:
    """The problems of loading ``text``; fails unless it is refused with field paths."""
    path = tmp_path / "c.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert unclear_lines(message) == [], message
    return message.splitlines()


def test_the_minimal_config_loads(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(MINIMAL)
    assert load_config(tmp_path / "c.toml").segments[0].polygon[2] == (0.9, 0.9)


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ('id = "t"', 'id = "t"\n[pcu]\ncar = inf', "pcu.car: Input should be a finite number"),
        (
            'id = "t"',
            'id = "t"\n[pcu]\nbus = 40.0',
            "pcu.bus: Input should be less than or equal to 5",
        ),
        (
            'id = "t"',
            'id = "t"\n[analysis]\nlos_density_pcu_km_lane = [7.0, nan, 16.0, 22.0, 28.0]',
            "analysis.los_density_pcu_km_lane[1]: Input should be a finite number",
        ),
        (
            'id = "t"',
            'id = "t"\n[analysis]\nwindow_s = 0.001',
            "analysis.window_s: Input should be greater than or equal to 1",
        ),
        (
            'id = "t"',
            'id = "t"\n[analysis]\nqueue_speed_m_s = 1e300',
            "analysis.queue_speed_m_s: Input should be less than or equal to 15",
        ),
        ("[0.9, 0.1]", "[nan, 0.1]", "segments[0].polygon[1][0]: Input should be a finite number"),
        (
            SQUARE,
            "[[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]",
            "segments[0].polygon: edges 0 and 2 cross",
        ),
        (
            SQUARE,
            "[[0.1, 0.1], [0.1001, 0.1], [0.1, 0.1001]]",
            "segments[0].polygon: area is below",
        ),
        (
            SQUARE,
            "[[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]]",
            "segments[0].polygon: edges 0 and 2 overlap",
        ),
        (
            SQUARE,
            "[[0.1, 0.1], [0.9, 0.1], [0.5, 0.1], [0.5, 0.5]]",
            "segments[0].polygon: edges 0 and 1 overlap",
        ),
        (
            SQUARE,
            "[[0.1, 0.1], [0.1, 0.1], [0.9, 0.9], [0.1, 0.9]]",
            "segments[0].polygon: corners 0 and 1",
        ),
        (
            SQUARE,
            "[[0.1, 0.1], [0.9, 0.1], [0.9, 1.2]]",
            "segments[0].polygon[2][1]: Input should be less than or equal to 1",
        ),
        (
            "lanes = 2",
            "lanes = 2\nstop_line = [[0.2, 0.9], [0.2, 0.9]]",
            "segments[0].stop_line: Value error, the two points",
        ),
        (
            'id = "t"',
            'id = "t"\ntimezone = "Mars/Olympus_Mons"',
            "site.timezone: unknown IANA time zone 'Mars/Olympus_Mons'",
        ),
        ('id = "t"', 'id = "t"\ntimezone = "America"', "site.timezone: unknown IANA time zone"),
        (
            'id = "t"',
            'id = "t"\n[service]\nlog_level = "LOUD"',
            "service.log_level: Input should be 'DEBUG', 'INFO'",
        ),
        (
            'id = "t"',
            'id = "t"\n[dashboard]\naudit_file = "../../etc/cron.d/x"',
            "dashboard.audit_file: Value error, must be a relative path inside its folder",
        ),
        (
            'id = "t"',
            'id = "t"\n[dashboard]\naudit_file = "/var/log/audit.jsonl"',
            "dashboard.audit_file: Value error, must be a relative path inside its folder",
        ),
        (
            'source = "clip.mp4"',
            'source = "clip.mp4"\nstall_timeout_s = 1e9',
            "cameras[0].stall_timeout_s: Input should be less than or equal to 3600",
        ),
        (
            'source = "clip.mp4"',
            'source = "a\\u0000b"',
            "cameras[0].source: String should match pattern",
        ),
    ],
)
def test_engine_breaking_values_are_refused(tmp_path: Path, old: str, new: str, path: str) -> None:
    assert old in MINIMAL
    problems = refused(tmp_path, MINIMAL.replace(old, new, 1))
    assert any(p.startswith(path.replace("Value error, ", "")) for p in problems), problems


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ('cameras = 5\n[site]\nid = "t"\n', "cameras: Input should be a valid list"),
        ('cameras = "x"\n[site]\nid = "t"\n', "cameras: Input should be a valid list"),
        (
            "site = 5\ncameras = [5]\nsegments = {a = 1}\n",
            "site: Input should be a valid dictionary",
        ),
        (
            '[site]\nid = "t"\n[[cameras]]\nid = "c"\nsource = "x"\n[[cameras.x]]\n',
            "cameras[0].x: Extra",
        ),
        ('"a\\nb" = 1\n[site]\nid = "t"\n', '["a\\nb"]: Extra inputs are not permitted'),
        ("x = 1" + "0" * 5000 + "\n", "c.toml"),
    ],
)
def test_wrong_types_give_one_error(tmp_path: Path, text: str, start: str) -> None:
    problems = refused(tmp_path, text)
    assert any(start in p for p in problems), problems


def test_non_utf8_file(tmp_path: Path) -> None:
    problems = refused(tmp_path, b'[site]\nid = "\xe9t\xe9"\n')
    assert problems == [f"{tmp_path / 'c.toml'}: not UTF-8 text (byte 0xe9 at offset 13)"]


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_config(tmp_path / "c.toml").site.id == "t"


@pytest.mark.parametrize("opening", ["[", "{a = "])
def test_nesting_5000_deep(tmp_path: Path, opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    problems = refused(tmp_path, f"a = {opening * 5000}1{closing * 5000}\n")
    assert problems == [f"{tmp_path / 'c.toml'}: nested deeper than {MAX_DEPTH} levels"]


def test_nesting_just_past_the_bound(tmp_path: Path) -> None:
    depth = MAX_DEPTH + 1
    problems = refused(tmp_path, f"a = {'[' * depth}1{']' * depth}\n")
    assert problems == [
        f"{tmp_path / 'c.toml'}: a{'[0]' * MAX_DEPTH}: nested deeper than 16 levels"
    ]


def test_huge_file(tmp_path: Path) -> None:
    text = MINIMAL + "# " + "x" * MAX_FILE_BYTES + "\n"
    problems = refused(tmp_path, text)
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'c.toml'}: larger than {MAX_FILE_BYTES} bytes")


@pytest.mark.parametrize("kind", INCLUDE_KINDS)
def test_hostile_includes_are_refused(kind: str) -> None:
    assert judge_file(toml_text(BASE).encode(), kind) == "refused"


def test_include_errors_name_the_entry(tmp_path: Path) -> None:
    problems = refused(tmp_path, 'include = ["absent.toml"]\n' + MINIMAL)
    assert problems == ["include[0]: 'absent.toml': config file not found"]


def test_many_problems_are_capped(tmp_path: Path) -> None:
    cams = "".join(f'[[cameras]]\nid = "c{i}"\nsource = "x"\nsample_fps = -1\n' for i in range(80))
    problems = refused(tmp_path, '[site]\nid = "t"\n' + cams)
    assert len(problems) == 51
    assert problems[-1] == "(file): 30 more problem(s) not listed"


def test_scrypt_parameters_are_bounded(tmp_path: Path) -> None:
    user = (
        '{ name = "op", password_hash = "scrypt$1048576$8$1$AAAAAAAAAAAAAAAAAAAAAA==$'
        + "A" * 44
        + '" }'
    )
    problems = refused(tmp_path, MINIMAL + f"[dashboard]\nusers = [{user}]\n")
    assert problems[0].startswith("dashboard.users[0].password_hash: scrypt cost too high")


def test_format_loc_quotes_odd_keys() -> None:
    assert format_loc(("cameras", 0, "source")) == "cameras[0].source"
    assert format_loc(("site", "a b")) == 'site["a b"]'
    assert format_loc(()) == "(file)"
    assert math.isfinite(len(format_loc(("x" * 10_000,))))
    assert len(format_loc(("x" * 10_000,))) < 60


def test_validate_config_never_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i, data in enumerate([b"cameras = 5\n", b"\xff\xfe", b"a = " + b"[" * 5000 + b"]" * 5000]):
        path = tmp_path / f"bad{i}.toml"
        path.write_bytes(data)
        assert main(["validate-config", str(path)]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert f"{path}: 1 problem(s)" in err or f"{path}: " in err
