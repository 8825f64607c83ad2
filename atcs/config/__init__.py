"""The engine's configuration: TOML read with ``tomllib``, validated by pydantic v2.

:func:`load_config` (in :mod:`atcs.config.loader`) reads a file, expands ``${ENV}``
references, resolves relative paths against the file's folder and validates everything,
raising one :class:`ConfigError` that lists every problem with its field path. Validation
itself does no I/O.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from atcs.config._base import PathText, StrictModel
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
from atcs.config.loader import MODEL_ENV, load_config, parse_config
from atcs.config.measures import (
    CalibrationConfig,
    FiwareConfig,
    IncidentsConfig,
    ZoneConfig,
    measures_problems,
)
from atcs.config.node import NodeConfig
from atcs.config.room import AlarmsConfig, MapConfig
from atcs.config.service import ServiceConfig
from atcs.config.storage import InfluxConfig
from atcs.errors import ConfigError

__all__ = [
    "MODEL_ENV",
    "AlarmsConfig",
    "AnalysisConfig",
    "AtcsConfig",
    "CalibrationConfig",
    "CameraConfig",
    "DashboardConfig",
    "DetectorConfig",
    "FiwareConfig",
    "IncidentsConfig",
    "InfluxConfig",
    "IntersectionConfig",
    "LineConfig",
    "MapConfig",
    "MqttConfig",
    "NodeConfig",
    "PcuConfig",
    "SegmentConfig",
    "ServiceConfig",
    "SiteConfig",
    "ZoneConfig",
    "geometry_warnings",
    "load_config",
    "parse_config",
]


class AtcsConfig(StrictModel):
    """The whole configuration file."""

    site: SiteConfig
    include: list[PathText] = Field(
        default_factory=list,
        max_length=64,
        description="TOML files (relative to this file) merged in: tables merge, arrays append.",
    )
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    pcu: PcuConfig = Field(default_factory=PcuConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    cameras: list[CameraConfig] = Field(
        min_length=1, max_length=1000, description="Cameras, at least one."
    )
    segments: list[SegmentConfig] = Field(
        default_factory=list, max_length=10_000, description="Road segments."
    )
    lines: list[LineConfig] = Field(
        default_factory=list, max_length=10_000, description="Counting lines."
    )
    intersections: list[IntersectionConfig] = Field(
        default_factory=list, max_length=1000, description="Signalised intersections."
    )
    zones: list[ZoneConfig] = Field(
        default_factory=list,
        max_length=10_000,
        description="Zones of intersections for turning movements.",
    )
    calibrations: list[CalibrationConfig] = Field(
        default_factory=list,
        max_length=1000,
        description="Ground calibrations of cameras (speed in km/h).",
    )
    incidents: IncidentsConfig = Field(
        default_factory=IncidentsConfig, description="Incident detection thresholds."
    )
    fiware: FiwareConfig = Field(
        default_factory=FiwareConfig, description="FIWARE TrafficFlowObserved output."
    )
    mqtt: MqttConfig | None = Field(default=None, description="MQTT bus; none: not published.")
    influx: InfluxConfig | None = Field(default=None, description="InfluxDB; none: not stored.")
    dashboard: DashboardConfig | None = Field(
        default=None, description="Web dashboard and HTTP API; none: not served."
    )
    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig)
    node: NodeConfig = Field(
        default_factory=NodeConfig, description="This node of a multi-node city (docs/nodes.md)."
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

    def zones_of(self, camera_id: str) -> list[ZoneConfig]:
        """Return the turning-movement zones seen by ``camera_id``."""
        return [z for z in self.zones if z.camera == camera_id]

    def calibration_of(self, camera_id: str) -> CalibrationConfig | None:
        """Return the ground calibration of ``camera_id``, None when it has none."""
        return next((c for c in self.calibrations if c.camera == camera_id), None)


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
    for i, camera in enumerate(cfg.cameras):
        for label, threshold in camera.detection.class_confidence.items():
            if threshold < cfg.detector.confidence:
                problems.append(
                    f"cameras[{i}].detection.class_confidence.{label}: {threshold} is below "
                    f"[detector] confidence {cfg.detector.confidence}, so boxes between the two "
                    "never reach the camera; lower [detector] confidence to it"
                )
    for i, cam in enumerate(cfg.node.cameras):
        if cam not in cameras:
            problems.append(f"node.cameras[{i}]: unknown camera {cam!r}")
    return problems + measures_problems(cfg)


def geometry_warnings(cfg: AtcsConfig) -> list[str]:
    """Problems that leave the engine running but measuring less than it could.

    Geometry outside the image is an error (coordinates are checked to lie in [0, 1]);
    what is left to warn about: no segment at all, a camera with no segment, which is read
    (for its health) but not analysed, and a phase-mode intersection with approach segments
    that have no stop line (:func:`_phase_stop_line_warnings`).
    """
    warnings: list[str] = []
    if not cfg.segments:
        warnings.append("segments: empty; cameras are read for health only, nothing is measured")
    for cam in cfg.cameras:
        if cfg.segments and not cfg.segments_of(cam.id):
            warnings.append(f"cameras[{cam.id}]: no segment; frames are read but not analysed")
        warnings += _rate_warnings(cfg, cam)
    warnings += _phase_stop_line_warnings(cfg)
    return warnings


def _phase_stop_line_warnings(cfg: AtcsConfig) -> list[str]:
    """Warn of phase-mode approach segments without a stop line (no per-frame vehicles).

    Their phase controller sees the segment's windows spread into vehicles, not the
    vehicles of each frame: in the closed-loop simulator (cologne1, delay-balance, seed 1)
    that took the mean delay from 24.4 s per vehicle to 212.8 s with 10-s windows, worse
    than fixed time (48.7 s); see docs/phase-control.md, "Measures".
    """
    stop_lines = {s.id: s.stop_line is not None for s in cfg.segments}
    out: list[str] = []
    for ix in cfg.intersections:
        if ix.mode != "phase":
            continue
        approach = dict.fromkeys(seg for phase in ix.phases for seg in phase.segments)
        missing = [seg for seg in approach if not stop_lines.get(seg, True)]
        if missing:
            out.append(
                f"intersections[{ix.id}]: phase mode, but approach segments "
                f"{', '.join(missing)} have no stop line: their controller sees "
                f"{cfg.analysis.window_s:g}-s windows "
                "instead of each frame's vehicles (simulated on cologne1: mean delay 212.8 s "
                "instead of 24.4 s); draw their stop lines"
            )
    return out


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
