"""The engine's configuration: TOML read with ``tomllib``, validated by pydantic v2.

:func:`load_config` reads a file, expands ``${ENV}`` references, resolves relative paths
against the file's folder and validates everything, raising one :class:`ConfigError` that
lists every problem with its field path. Validation itself does no I/O.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from atcs.config._base import StrictModel, expand_env, unresolved_env
from atcs.config.bus import MqttConfig
from atcs.config.control import IntersectionConfig
from atcs.config.core import (
    COUNTING_SAMPLE_FPS,
    AnalysisConfig,
    CameraConfig,
    DetectorConfig,
    LineConfig,
    PcuConfig,
    SegmentConfig,
    SiteConfig,
)
from atcs.config.dashboard import DashboardConfig
from atcs.config.service import ServiceConfig
from atcs.config.storage import InfluxConfig
from atcs.errors import ConfigError

__all__ = [
    "AnalysisConfig",
    "AtcsConfig",
    "CameraConfig",
    "DashboardConfig",
    "DetectorConfig",
    "InfluxConfig",
    "IntersectionConfig",
    "LineConfig",
    "MqttConfig",
    "PcuConfig",
    "SegmentConfig",
    "ServiceConfig",
    "SiteConfig",
    "geometry_warnings",
    "load_config",
    "parse_config",
]

MODEL_ENV = "ATCS_MODEL"


class AtcsConfig(StrictModel):
    """The whole configuration file."""

    site: SiteConfig
    include: list[str] = Field(
        default_factory=list,
        description="TOML files (relative to this file) merged in: tables merge, arrays append.",
    )
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    pcu: PcuConfig = Field(default_factory=PcuConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    cameras: list[CameraConfig] = Field(min_length=1, description="Cameras, at least one.")
    segments: list[SegmentConfig] = Field(default_factory=list, description="Road segments.")
    lines: list[LineConfig] = Field(default_factory=list, description="Counting lines.")
    intersections: list[IntersectionConfig] = Field(
        default_factory=list, description="Signalised intersections."
    )
    mqtt: MqttConfig | None = Field(default=None, description="MQTT bus; none: not published.")
    influx: InfluxConfig | None = Field(default=None, description="InfluxDB; none: not stored.")
    dashboard: DashboardConfig | None = Field(
        default=None, description="Web dashboard and HTTP API; none: not served."
    )

    @model_validator(mode="after")
    def _references(self) -> AtcsConfig:
        problems = _reference_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def camera(self, camera_id: str) -> CameraConfig:
        """Return the camera with id ``camera_id``."""
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise ConfigError(f"no camera with id {camera_id!r}")

    def segments_of(self, camera_id: str) -> list[SegmentConfig]:
        """Return the segments seen by ``camera_id``."""
        return [s for s in self.segments if s.camera == camera_id]

    def lines_of(self, camera_id: str) -> list[LineConfig]:
        """Return the counting lines drawn on ``camera_id``."""
        return [ln for ln in self.lines if ln.camera == camera_id]


def _duplicates(kind: str, ids: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for i, ident in enumerate(ids):
        if ident in seen:
            out.append(f"{kind}[{i}].id: duplicate id {ident!r}")
        seen.add(ident)
    return out


def _reference_problems(cfg: AtcsConfig) -> list[str]:
    problems = _duplicates("cameras", [c.id for c in cfg.cameras])
    problems += _duplicates("segments", [s.id for s in cfg.segments])
    problems += _duplicates("lines", [ln.id for ln in cfg.lines])
    problems += _duplicates("intersections", [x.id for x in cfg.intersections])
    cameras = {c.id for c in cfg.cameras}
    segments = {s.id: s for s in cfg.segments}
    for i, seg in enumerate(cfg.segments):
        if seg.camera not in cameras:
            problems.append(f"segments[{i}].camera: unknown camera {seg.camera!r}")
    for i, line in enumerate(cfg.lines):
        if line.camera not in cameras:
            problems.append(f"lines[{i}].camera: unknown camera {line.camera!r}")
        target = segments.get(line.segment)
        if target is None:
            problems.append(f"lines[{i}].segment: unknown segment {line.segment!r}")
        elif target.camera != line.camera:
            problems.append(
                f"lines[{i}].segment: segment {line.segment!r} is seen by camera "
                f"{target.camera!r}, not {line.camera!r}"
            )
    for i, ix in enumerate(cfg.intersections):
        problems += ix.reference_problems(f"intersections[{i}]", set(segments))
    return problems


def _outside(points: list[tuple[float, float]]) -> tuple[bool, bool]:
    """(any point outside [0, 1]², every point outside) for normalised points."""
    flags = [not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0) for x, y in points]
    return any(flags), all(flags)


def geometry_warnings(cfg: AtcsConfig) -> list[str]:
    """Problems that disable or clip one segment or line but leave the rest running.

    A polygon or line partly outside the image is clipped to it; one wholly outside is
    ignored; a camera with no segment is read (for its health) but not analysed.
    """
    warnings: list[str] = []
    for i, seg in enumerate(cfg.segments):
        some, every = _outside(list(seg.polygon))
        if every:
            warnings.append(f"segments[{i}].polygon: wholly outside the image; segment ignored")
        elif some:
            warnings.append(f"segments[{i}].polygon: partly outside the image; clipped to it")
        if seg.stop_line is not None and _outside(list(seg.stop_line))[0]:
            warnings.append(f"segments[{i}].stop_line: outside the image; clipped to it")
    for i, line in enumerate(cfg.lines):
        some, every = _outside(list(line.points))
        if some:
            warnings.append(f"lines[{i}].points: outside the image; clipped to it")
    if not cfg.segments:
        warnings.append("segments: empty; cameras are read for health only, nothing is measured")
    for cam in cfg.cameras:
        if cfg.segments and not cfg.segments_of(cam.id):
            warnings.append(f"cameras[{cam.id}]: no segment; frames are read but not analysed")
        warnings += _rate_warnings(cfg, cam)
    return warnings


def _rate_warnings(cfg: AtcsConfig, cam: CameraConfig) -> list[str]:
    """Warn of a sampling rate too low for what a camera measures (counts need 5 fps)."""
    if cam.sample_fps >= COUNTING_SAMPLE_FPS:
        return []
    if cam.profile == "counting":
        return [
            f"cameras[{cam.id}]: a counting camera sampled at {cam.sample_fps:g} frames/s; "
            f"line counts need {COUNTING_SAMPLE_FPS:g} or more"
        ]
    if cfg.lines_of(cam.id):
        return [
            f"cameras[{cam.id}]: counting lines on a camera sampled at {cam.sample_fps:g} "
            f'frames/s; set profile = "counting" (5 frames/s) for reliable counts'
        ]
    return []


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(file)"


def _format_validation(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        msg = str(err["msg"]).removeprefix("Value error, ")
        problems.append(f"{_format_loc(tuple(err['loc']))}: {msg}")
    return problems


def _is_url(value: str) -> bool:
    return "://" in value


def _prepare(raw: Any, environ: dict[str, str]) -> Any:
    """Expand ``${ENV}`` in every string of the raw TOML tree (returns a new tree)."""
    if isinstance(raw, dict):
        return {k: _prepare(v, environ) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_prepare(v, environ) for v in raw]
    if isinstance(raw, str):
        return expand_env(raw, environ)
    return raw


def _resolve(value: str, base_dir: Path) -> str:
    if _is_url(value) or "/" not in value or os.path.isabs(value):
        return value
    return os.path.normpath(base_dir / value)


def parse_config(
    raw: dict[str, Any], base_dir: Path, environ: dict[str, str] | None = None
) -> AtcsConfig:
    """Validate an already-parsed TOML tree; paths are resolved against ``base_dir``."""
    env = dict(os.environ) if environ is None else environ
    data = _prepare(raw, env)
    problems: list[str] = []
    for i, cam in enumerate(data.get("cameras", []) if isinstance(data, dict) else []):
        if isinstance(cam, dict) and isinstance(cam.get("source"), str):
            missing = unresolved_env(cam["source"])
            if missing:
                problems.append(f"cameras[{i}].source: environment variable(s) not set: {missing}")
            cam["source"] = _resolve(cam["source"], base_dir)
    if isinstance(data, dict):
        detector = data.setdefault("detector", {})
        if isinstance(detector, dict):
            if env.get(MODEL_ENV):
                detector["model"] = env[MODEL_ENV]
            if isinstance(detector.get("model"), str):
                detector["model"] = _resolve(detector["model"], base_dir)
        for section in ("mqtt", "influx", "dashboard"):
            table = data.get(section)
            if not isinstance(table, dict):
                continue
            for key in ("ca_file", "cert_file", "key_file"):
                if isinstance(table.get(key), str) and not os.path.isabs(table[key]):
                    table[key] = os.path.normpath(base_dir / table[key])
        service = data.setdefault("service", {})
        if isinstance(service, dict):
            state_dir = service.get("state_dir", "var")
            if isinstance(state_dir, str) and not os.path.isabs(state_dir):
                service["state_dir"] = os.path.normpath(base_dir / state_dir)
    try:
        cfg = AtcsConfig.model_validate(data)
    except ValidationError as exc:
        problems += _format_validation(exc)
        raise ConfigError("\n".join(problems)) from None
    if problems:
        raise ConfigError("\n".join(problems))
    return cfg


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> AtcsConfig:
    """Read, expand and validate the TOML file at ``path``; raise :class:`ConfigError`."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config file: {exc.strerror}") from None
    raw = _parse_toml(file, text)
    base_dir = file.resolve().parent
    includes = raw.pop("include", [])
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError("include: must be a list of file paths")
    for inc in includes:
        inc_file = base_dir / inc
        try:
            inc_text = inc_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"include: cannot read {inc!r}: {exc.strerror}") from None
        inc_raw = _parse_toml(inc_file, inc_text)
        if "include" in inc_raw:
            raise ConfigError(f"include: {inc!r} includes further files; only one level is allowed")
        raw = _merge(raw, inc_raw)
    return parse_config(raw, base_dir, environ)


def _parse_toml(file: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None


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
