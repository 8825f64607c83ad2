"""Hostile configuration inputs for the config loader's fuzz tests, and the judge of each.

A fuzz input is either a TOML tree (a valid, complete configuration with one to three
values replaced by hostile ones or removed) or the raw bytes of a file. :func:`judge`
loads it and names the outcome: ``refused`` (one :class:`ConfigError` whose every line
starts with a field path), ``accepted`` (and the engine's parts build from it), or a
finding: ``crash:<exception>``, ``unclear-error`` or ``accepted-broken:<why>``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from atcs.config import AtcsConfig, geometry_warnings, load_config
from atcs.errors import ConfigError

ORIGIN = datetime(2024, 1, 1, tzinfo=UTC)

BASE: dict[str, Any] = {
    "site": {"id": "fuzz", "name": "Fuzz", "timezone": "Asia/Makassar"},
    "detector": {"model": "yolo11n.pt", "image_size_px": 320, "confidence": 0.3},
    "analysis": {"window_s": 5.0, "los_density_pcu_km_lane": [7.0, 11.0, 16.0, 22.0, 28.0]},
    "pcu": {"car": 1.0, "motorcycle_protected": 0.15, "truck": 1.3},
    "service": {"state_dir": "var", "log_level": "INFO", "frame_queue_size": 2},
    "cameras": [
        {"id": "cam-a", "source": "clips/a.mp4", "sample_fps": 2.0, "stall_timeout_s": 10.0},
        {"id": "cam-b", "source": "rtsp://10.0.0.5/live", "kind": "rtsp"},
    ],
    "segments": [
        {
            "id": "north",
            "camera": "cam-a",
            "polygon": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]],
            "length_m": 40.0,
            "lanes": 2,
            "stop_line": [[0.1, 0.9], [0.9, 0.9]],
        },
        {
            "id": "south",
            "camera": "cam-b",
            "polygon": [[0.2, 0.5], [0.8, 0.5], [0.5, 0.95]],
            "length_m": 25.0,
            "lanes": 1,
            "movement": "opposed",
        },
    ],
    "lines": [
        {"id": "count", "camera": "cam-a", "segment": "north", "points": [[0.1, 0.5], [0.9, 0.5]]}
    ],
    "intersections": [
        {
            "id": "ix",
            "cycle_min_s": 40.0,
            "cycle_max_s": 120.0,
            "phases": [
                {"id": "ns", "segments": ["north"], "min_green_s": 8.0, "max_green_s": 50.0},
                {
                    "id": "ew",
                    "segments": ["south"],
                    "min_green_s": 8.0,
                    "max_green_s": 50.0,
                    "pedestrian_crossing_m": 9.0,
                },
            ],
            "fallback_plans": [{"starts_at": "06:00", "greens_s": {"ns": 20.0, "ew": 20.0}}],
        }
    ],
    "mqtt": {
        "host": "127.0.0.1",
        "port": 1883,
        "keepalive_s": 30,
        "control_auth": {
            "senders": [
                {
                    "id": "console-1",
                    "role": "operator_console",
                    "algorithm": "hmac-sha256",
                    "key_env": "CONSOLE_KEY",
                    "intersections": ["ix"],
                }
            ]
        },
    },
    "influx": {"url": "http://127.0.0.1:8086", "batch_size": 500, "flush_interval_s": 2.0},
    "dashboard": {
        "port": 0,
        "users": [{"name": "op", "role": "operator", "password_env": "OP_PW"}],
        "audit_file": "dashboard/audit.jsonl",
    },
}


def _paths(tree: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if at:
        yield at
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _paths(value, (*at, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _paths(value, (*at, i))


PATHS = sorted(_paths(BASE), key=repr)
"""Every place in :data:`BASE` a value can be replaced or removed (tables included)."""

_hostile_text = st.sampled_from(
    ["", " ", "\x00", "LOUD", "Mars/Olympus_Mons", "../../../etc", "/etc/passwd", "x" * 5000,
     "${UNSET_FUZZ_VAR}", "${A:-${B}}", "nan", "inf", "1e999", "07:00", "a\nb", "Ω", "CAM-A",
     "rtsp://u:p@h/x", "scrypt$3$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44]
)  # fmt: skip
_hostile_float = st.floats() | st.sampled_from(
    [math.inf, -math.inf, math.nan, 1e308, -1e308, 5e-324, 0.0, -0.0, 1e-9, 1e9, 1e30]
)
_hostile_int = st.integers() | st.sampled_from([0, -1, 2**31, 2**63, -(2**63), 10**400])
_scalars: st.SearchStrategy[Any] = st.one_of(
    _hostile_float,
    _hostile_int,
    st.booleans(),
    st.text(max_size=30),
    _hostile_text,
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.dates(),
    st.times(),
)
_nested = st.recursive(
    _scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)


def _deep_list(depth: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(depth - 1):
        out = [out]
    return out


_point = st.lists(_hostile_float | st.floats(-0.5, 1.5), min_size=0, max_size=3)
_points = st.lists(_point, min_size=0, max_size=8)
_deep = st.integers(1, 3000).map(_deep_list)


hostile_values: st.SearchStrategy[Any] = st.one_of(_scalars, _nested, _points, _deep)
"""Values a hostile or careless file may hold where any config value is expected."""


def _apply(tree: dict[str, Any], path: tuple[Any, ...], value: Any, delete: bool) -> None:
    parent: Any = tree
    for step in path[:-1]:
        if not _holds(parent, step):
            return  # an earlier change removed or replaced this place
        parent = parent[step]
    last = path[-1]
    if delete and _holds(parent, last):
        del parent[last]
    elif not delete and (isinstance(parent, dict) or _holds(parent, last)):
        parent[last] = value


def _holds(container: Any, key: Any) -> bool:
    if isinstance(container, dict):
        return key in container
    return isinstance(container, list) and isinstance(key, int) and key < len(container)


@st.composite
def mutated_trees(draw: st.DrawFn) -> dict[str, Any]:
    """:data:`BASE` with one to three values replaced by hostile ones or removed."""
    tree = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        delete = draw(st.integers(0, 9)) == 0
        _apply(tree, path, None if delete else draw(hostile_values), delete)
    return tree


def toml_value(value: Any) -> str:
    """``value`` as a TOML value (inline tables and arrays; no None)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, list):
        depth = _empty_chain_depth(value)
        if depth:  # a deep [[[...]]] without recursion
            return _nest(depth, "[", "]", "")
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _empty_chain_depth(value: list[Any]) -> int:
    """Depth of ``[[...[]...]]`` (lists of one list ending in an empty one), else 0."""
    depth = 1
    while value:
        if len(value) != 1 or not isinstance(value[0], list):
            return 0
        value, depth = value[0], depth + 1
    return depth


def toml_text(tree: dict[str, Any]) -> str:
    """A whole TOML document holding ``tree`` (one ``key = value`` line per top-level key)."""
    return "".join(f"{toml_value(k)} = {toml_value(v)}\n" for k, v in tree.items())


def _nest(depth: int, opening: str, closing: str, core: str = "1") -> str:
    return opening * depth + core + closing * depth


hostile_documents: st.SearchStrategy[bytes] = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.integers(1, 6000).map(lambda d: f"a = {_nest(d, '[', ']')}\n".encode()),
    st.integers(1, 6000).map(lambda d: f"a = {_nest(d, '{b = ', '}')}\n".encode()),
    st.integers(1, 3000).map(lambda d: ("[" + ".".join(["t"] * d) + "]\nx = 1\n").encode()),
    st.integers(1, 9000).map(lambda n: f"x = 1{'0' * n}\ny = 1e{n}\n".encode()),
    st.sampled_from(
        [b"\xff\xfe[site]\n", b'[site]\nid = "\xe9"\n', b"\x00" * 50, b"cameras = 5\n"]
    ),
)
"""Raw files: bytes, text, deep nesting of arrays, inline tables and headers, long numbers."""


def write_includes(folder: Path, kind: str) -> str:
    """Files under ``folder`` for include case ``kind``; returns the ``include`` TOML line."""
    if kind == "self":
        return 'include = ["config.toml"]\n'
    if kind == "loop":
        (folder / "a.toml").write_text('include = ["b.toml"]\n')
        (folder / "b.toml").write_text('include = ["a.toml"]\n')
        return 'include = ["a.toml"]\n'
    if kind == "binary":
        (folder / "bin.toml").write_bytes(b"\xff\xfe\x00garbage")
        return 'include = ["bin.toml"]\n'
    if kind == "deep":
        (folder / "deep.toml").write_text(f"a = {_nest(5000, '[', ']')}\n")
        return 'include = ["deep.toml"]\n'
    if kind == "folder":
        return 'include = ["."]\n'
    if kind == "missing":
        return 'include = ["absent.toml"]\n'
    if kind == "nul":
        return 'include = ["a\\u0000b.toml"]\n'
    if kind == "device":
        return 'include = ["/dev/zero"]\n'
    if kind == "wrong-type":
        return "include = [1, 2]\n"
    if kind == "table":
        return 'include = {a = "b"}\n'
    raise ValueError(kind)


INCLUDE_KINDS = (
    "self", "loop", "binary", "deep", "folder", "missing", "nul", "device", "wrong-type", "table",
)  # fmt: skip

_PLAIN = r"[A-Za-z_][\w-]*"
_QUOTED = r'\["(?:[^"\\]|\\.)*"\]'
_FIELD_PATH = re.compile(
    rf"^(?:\(file\)|(?:{_PLAIN}|{_QUOTED})(?:\.{_PLAIN}|\[\d+\]|{_QUOTED})*): \S"
)
_FILE_PROBLEM = re.compile(r"^\S.*\.toml: \S")


def unclear_lines(message: str) -> list[str]:
    """Lines of a :class:`ConfigError` message that do not start with a field or file path."""
    lines = message.splitlines()
    if not lines:
        return ["(empty message)"]
    return [ln for ln in lines if not (_FIELD_PATH.match(ln) or _FILE_PROBLEM.match(ln))]


def judge(load: Callable[[], AtcsConfig]) -> str:
    """Run ``load`` and name the outcome (see the module docstring)."""
    try:
        cfg = load()
    except ConfigError as exc:
        return "unclear-error" if unclear_lines(str(exc)) else "refused"
    except Exception as exc:  # the finding a fuzzer looks for
        return f"crash:{type(exc).__name__}"
    problems = engine_problems(cfg)
    return f"accepted-broken:{problems[0]}" if problems else "accepted"


def judge_file(data: bytes, include_kind: str | None = None) -> str:
    """Write ``data`` (after an ``include`` line of ``include_kind``) and judge loading it."""
    with tempfile.TemporaryDirectory(prefix="atcs-fuzz-") as tmp:
        folder = Path(tmp)
        head = write_includes(folder, include_kind).encode() if include_kind else b""
        path = folder / "config.toml"
        path.write_bytes(head + data)
        return judge(lambda: load_config(path, environ={}))


def _non_finite(tree: Any, at: str = "") -> list[str]:
    if isinstance(tree, float) and not math.isfinite(tree):
        return [f"{at}: {tree}"]
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in _non_finite(v, f"{at}.{k}")]
    if isinstance(tree, list | tuple):
        return [p for i, v in enumerate(tree) for p in _non_finite(v, f"{at}[{i}]")]
    return []


def _cross(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> float:
    return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])


def _segments_cross(a: Any, b: Any, c: Any, d: Any) -> bool:
    """Whether segments ab and cd touch or cross (collinear overlaps included)."""
    d1, d2, d3, d4 = _cross(c, d, a), _cross(c, d, b), _cross(a, b, c), _cross(a, b, d)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True

    def on(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> bool:
        return min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and min(p[1], q[1]) <= r[1] <= max(
            p[1], q[1]
        )

    return (
        (d1 == 0 and on(c, d, a))
        or (d2 == 0 and on(c, d, b))
        or (d3 == 0 and on(a, b, c))
        or (d4 == 0 and on(a, b, d))
    )


def polygon_problem(points: list[tuple[float, float]]) -> str | None:
    """Why ``points`` is not a simple polygon of positive area inside [0, 1]², or None."""
    if any(not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0) for x, y in points):
        return "outside [0, 1]"
    n = len(points)
    area = sum(
        points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1]
        for i in range(n)
    )
    if abs(area) / 2 < 1e-9:
        return "zero area"
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # neighbours share a corner
            if _segments_cross(points[i], points[(i + 1) % n], points[j], points[(j + 1) % n]):
                return "self-intersecting"
    return None


def engine_problems(cfg: AtcsConfig) -> list[str]:
    """What in an accepted config would break the engine; empty when it would run."""
    from atcs.commands import summarise
    from atcs.control.loop import ControlLoop
    from atcs.metrics import CameraAnalyzer

    problems = [f"non-finite {p}" for p in _non_finite(cfg.model_dump(mode="python"))]
    for i, seg in enumerate(cfg.segments):
        why = polygon_problem([(x, y) for x, y in seg.polygon])
        if why:
            problems.append(f"segments[{i}].polygon {why}")
    zones = [cfg.site.timezone] + [ix.timezone for ix in cfg.intersections if ix.timezone]
    for zone in zones:
        try:
            ZoneInfo(zone)
        except Exception:
            problems.append(f"time zone {zone!r}")
    if not isinstance(logging.getLevelName(str(cfg.service.log_level)), int):
        problems.append(f"log level {cfg.service.log_level!r}")
    if cfg.dashboard is not None:
        state = Path(cfg.service.state_dir).resolve()
        audit = (state / cfg.dashboard.audit_file).resolve()
        if not audit.is_relative_to(state):
            problems.append("audit_file outside the state folder")
    if cfg.analysis.window_s < 1.0:
        problems.append(f"window_s {cfg.analysis.window_s}")
    try:
        for cam in cfg.cameras:
            CameraAnalyzer.from_config(cfg, cam.id, 640, 360, ORIGIN)
        ControlLoop.from_config(cfg, lambda _plan: None)
        summarise(cfg)
        geometry_warnings(cfg)
    except Exception as exc:
        problems.append(f"build {type(exc).__name__}: {exc}"[:200])
    return problems
