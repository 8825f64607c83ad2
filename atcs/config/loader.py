"""Reading a configuration file: bounded, decoded, parsed, merged, expanded and validated.

Whatever the file holds, :func:`load_config` either returns a valid :class:`AtcsConfig`
or raises one :class:`ConfigError` whose every line starts with a field path (or the
file's path for problems of the file itself): no other exception escapes. Before any
recursive step the input is bounded: a file is a regular file of at most
:data:`MAX_FILE_BYTES`, all files together at most :data:`MAX_TOTAL_BYTES`, the text is
UTF-8 and the parsed tree at most :data:`MAX_DEPTH` levels deep.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from atcs.config._base import expand_env, unresolved_env
from atcs.errors import ConfigError

if TYPE_CHECKING:
    from atcs.config import AtcsConfig

MODEL_ENV = "ATCS_MODEL"
MAX_FILE_BYTES = 4 * 1024 * 1024
"""Largest configuration file (and each included file), bytes."""

MAX_TOTAL_BYTES = 16 * 1024 * 1024
"""Largest configuration, all included files together, bytes."""

MAX_INCLUDES = 64
"""Most files one configuration may include."""

MAX_DEPTH = 16
"""Deepest nesting of tables and arrays (the engine's own schema needs 6)."""

MAX_PROBLEMS = 50
"""Most problems listed in one error; the rest are counted."""

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> AtcsConfig:
    """Read, expand and validate the TOML file at ``path``; raise :class:`ConfigError`."""
    file = Path(path)
    budget = [MAX_TOTAL_BYTES]
    raw = _load_toml(file, str(file), budget)
    base_dir = file.resolve().parent
    includes = raw.pop("include", [])
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError("include: must be a list of file paths")
    if len(includes) > MAX_INCLUDES:
        raise ConfigError(f"include: at most {MAX_INCLUDES} files")
    for i, inc in enumerate(includes):
        inc_raw = _load_toml(base_dir / inc, f"include[{i}]: {inc!r}", budget)
        if "include" in inc_raw:
            raise ConfigError(
                f"include[{i}]: {inc!r} includes further files; only one level is allowed"
            )
        raw = _merge(raw, inc_raw)
    return parse_config(raw, base_dir, environ)


def parse_config(
    raw: dict[str, Any], base_dir: Path, environ: dict[str, str] | None = None
) -> AtcsConfig:
    """Validate an already-parsed TOML tree; paths are resolved against ``base_dir``."""
    from atcs.config import AtcsConfig

    if not isinstance(raw, dict):
        raise ConfigError(f"(file): must be a table of settings, not {type(raw).__name__}")
    deep = _too_deep(raw)
    if deep is not None:
        raise ConfigError(f"{deep}: nested deeper than {MAX_DEPTH} levels")
    env = dict(os.environ) if environ is None else environ
    data: dict[str, Any] = _prepare(raw, env)
    problems = _resolve_paths(data, base_dir, env)
    try:
        cfg = AtcsConfig.model_validate(data)
    except ValidationError as exc:
        problems += _format_validation(exc)
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:  # a validator's bug
        problems.append(f"(file): cannot be validated: {type(exc).__name__}: {exc}")
    if problems:
        raise ConfigError(_join(problems))
    return cfg


def _join(problems: list[str]) -> str:
    shown = problems[:MAX_PROBLEMS]
    if len(problems) > MAX_PROBLEMS:
        shown.append(f"(file): {len(problems) - MAX_PROBLEMS} more problem(s) not listed")
    return "\n".join(shown)


def _load_toml(file: Path, label: str, budget: list[int]) -> dict[str, Any]:
    """Parse one file; ``label`` names it in errors; ``budget`` holds the bytes left."""
    text = _read_text(file, label, budget)
    try:
        tree = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{label}: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # e.g. an integer past Python's digit limit
        raise ConfigError(f"{label}: not valid TOML: {_one_line(str(exc))}") from None
    deep = _too_deep(tree)
    if deep is not None:
        raise ConfigError(f"{label}: {deep}: nested deeper than {MAX_DEPTH} levels")
    return tree


def _read_text(file: Path, label: str, budget: list[int]) -> str:
    """Return the UTF-8 text of the regular file ``file``, within the size bounds."""
    try:
        info = file.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{label}: not a regular file")
        limit = min(MAX_FILE_BYTES, budget[0])
        with file.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise ConfigError(f"{label}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read config file: {exc.strerror}") from None
    except ValueError as exc:  # a NUL in the path
        raise ConfigError(f"{label}: not a usable file name: {exc}") from None
    if len(data) > limit:
        raise ConfigError(
            f"{label}: larger than {limit} bytes (each file at most {MAX_FILE_BYTES}, "
            f"all together at most {MAX_TOTAL_BYTES})"
        )
    budget[0] -= len(data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{label}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def _too_deep(tree: Any) -> str | None:
    """Field path of a place nested deeper than :data:`MAX_DEPTH`, or None (no recursion)."""
    stack: list[tuple[Any, tuple[int | str, ...]]] = [(tree, ())]
    while stack:
        node, at = stack.pop()
        if len(at) > MAX_DEPTH:
            return format_loc(at[: MAX_DEPTH + 1])
        if isinstance(node, dict):
            stack.extend((v, (*at, str(k))) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, (*at, i)) for i, v in enumerate(node))
    return None


def _prepare(raw: Any, environ: dict[str, str]) -> Any:
    """Expand ``${ENV}`` in every string of the raw TOML tree (returns a new tree)."""
    if isinstance(raw, dict):
        return {k: _prepare(v, environ) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_prepare(v, environ) for v in raw]
    if isinstance(raw, str):
        return expand_env(raw, environ)
    return raw


def _table(data: dict[str, Any], key: str, create: bool = False) -> dict[str, Any] | None:
    """``data[key]`` when it is a table (made empty when absent and ``create``), else None."""
    if create and key not in data:
        data[key] = {}
    value = data.get(key)
    return value if isinstance(value, dict) else None


def _resolve_paths(data: dict[str, Any], base_dir: Path, env: dict[str, str]) -> list[str]:
    """Resolve relative paths against ``base_dir`` in place; list unset ``${ENV}``."""
    problems: list[str] = []
    cameras = data.get("cameras")
    for i, cam in enumerate(cameras if isinstance(cameras, list) else []):
        if isinstance(cam, dict) and isinstance(cam.get("source"), str):
            missing = unresolved_env(cam["source"])
            if missing:
                problems.append(f"cameras[{i}].source: environment variable(s) not set: {missing}")
            cam["source"] = _resolve(cam["source"], base_dir)
    detector = _table(data, "detector", create=True)
    if detector is not None:
        if env.get(MODEL_ENV):
            detector["model"] = env[MODEL_ENV]
        if isinstance(detector.get("model"), str):
            detector["model"] = _resolve(detector["model"], base_dir)
    for section in ("mqtt", "influx", "dashboard"):
        table = _table(data, section)
        for key in ("ca_file", "cert_file", "key_file"):
            if table is not None and isinstance(table.get(key), str):
                table[key] = _absolute(table[key], base_dir)
    service = _table(data, "service", create=True)
    if service is not None:
        state_dir = service.get("state_dir", "var")
        if isinstance(state_dir, str):
            service["state_dir"] = _absolute(state_dir, base_dir)
    return problems


def _absolute(value: str, base_dir: Path) -> str:
    return value if os.path.isabs(value) else os.path.normpath(base_dir / value)


def _resolve(value: str, base_dir: Path) -> str:
    if "://" in value or "/" not in value or os.path.isabs(value):
        return value
    return os.path.normpath(base_dir / value)


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def format_loc(loc: tuple[int | str, ...]) -> str:
    """Return a field path such as ``cameras[0].source``; odd keys are quoted: ``site["a b"]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part[:40])}]"
    return out or "(file)"


def _format_validation(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        msg = _one_line(str(err["msg"]).removeprefix("Value error, "), 300)
        problems.append(f"{format_loc(tuple(err['loc']))}: {msg}")
    return problems


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Merge ``extra`` into ``base``: arrays are concatenated, tables merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        if key not in out:
            out[key] = value
        elif isinstance(out[key], list) and isinstance(value, list):
            out[key] = [*out[key], *value]
        elif isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
