"""Configuration of the site, cameras, detector, segments, counting lines and analysis."""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from atcs.config._base import (
    Name,
    NormLine,
    NormPoint,
    PathText,
    Polygon,
    StrictModel,
    TimeZoneName,
)
from atcs.config.detection import CameraDetectionConfig
from atcs.config.room import LatLon
from atcs.types import LevelOfService, VehicleClass

Identifier = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="Lower-case id: letters, digits, '-' and '_' (used in MQTT topics and tags).",
    ),
]
SourceKind = Literal["auto", "file", "folder", "rtsp", "mjpeg", "snapshot"]
COUNTING_SAMPLE_FPS = 5.0
"""Default sampling rate of a counting camera, frames/s (tracks need 5 to 10)."""


class SiteConfig(StrictModel):
    """The monitored site as a whole."""

    id: Identifier = Field(description="Site id, a tag on every stored point.")
    name: Name = Field(default="", description="Human name of the site.")
    timezone: TimeZoneName = Field(
        default="Asia/Jakarta", description="IANA time zone for time-of-day plans and display."
    )


class DetectorConfig(StrictModel):
    """The vehicle detector (ultralytics YOLO)."""

    model: PathText = Field(
        default="yolo11n.pt",
        description=(
            "Model name (downloaded by ultralytics when online) or path to weights / an "
            "exported model folder; relative paths are relative to the config file. "
            "The environment variable ATCS_MODEL overrides it."
        ),
    )
    image_size_px: int = Field(
        default=640, ge=32, le=2048, multiple_of=32, description="Inference image size in pixels."
    )
    confidence: float = Field(
        default=0.25, gt=0.0, lt=1.0, description="Minimum detection confidence, 0..1."
    )
    nms_iou: float = Field(
        default=0.7, gt=0.0, le=1.0, description="IoU threshold of non-maximum suppression, 0..1."
    )
    classes: tuple[str, ...] = Field(
        default=tuple(c.label for c in VehicleClass),
        min_length=1,
        max_length=len(VehicleClass),
        description="Vehicle classes to keep: car, motorcycle, bus, truck, bicycle.",
    )
    batch_max_frames: int = Field(
        default=16,
        ge=1,
        le=64,
        description=(
            "Most frames (across cameras) taken for the detector at once; the OpenVINO CPU "
            "engine streams them, pairing frames of one input size (see docs/detection.md)."
        ),
    )
    device: str = Field(
        default="cpu",
        pattern=r"^[A-Za-z0-9:,._-]{1,32}$",
        description="Inference device: cpu, cuda:0, ...",
    )
    crop: bool = Field(
        default=True,
        description=(
            "Run the model only on the part of each frame around the camera's segments and "
            "counting lines, at the whole frame's scale (OpenVINO engine; see docs/detection.md)."
        ),
    )
    crop_margin_px: int = Field(
        default=32,
        ge=0,
        le=640,
        description="Context kept around the segments and lines when cropping, model-input px.",
    )
    crop_recheck_s: float = Field(
        default=600.0,
        ge=0.0,
        le=86_400.0,
        description=(
            "Seconds of a camera's footage after which its crop verdict is checked again, "
            "both ways on its next frames, as at the start (0: checked once). The first "
            "frames' scene may not be the later one's (docs/detection.md)."
        ),
    )

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = {c.label for c in VehicleClass}
        unknown = [v for v in value if v not in known]
        if unknown:
            raise ValueError(f"unknown vehicle classes {unknown}; known: {sorted(known)}")
        return value


MAX_PCU = 5.0
"""Largest passenger-car-unit factor accepted (PKJI's heaviest class is 1.3)."""

MAX_DENSITY_PCU_KM_LANE = 1000.0
"""Largest level-of-service density bound accepted, pcu/km/lane (jam density is ~200)."""


class PcuConfig(StrictModel):
    """Passenger-car-unit factors per class (PKJI 2023, signalised approaches)."""

    car: float = Field(
        default=1.0, ge=0.0, le=MAX_PCU, description="PCU of a car or light vehicle (KR)."
    )
    bus: float = Field(
        default=1.3, ge=0.0, le=MAX_PCU, description="PCU of a bus (heavy vehicle, KB)."
    )
    truck: float = Field(
        default=1.3, ge=0.0, le=MAX_PCU, description="PCU of a truck (heavy vehicle, KB)."
    )
    motorcycle_protected: float = Field(
        default=0.15,
        ge=0.0,
        le=MAX_PCU,
        description="PCU of a motorcycle (SM) on a protected approach.",
    )
    motorcycle_opposed: float = Field(
        default=0.40,
        ge=0.0,
        le=MAX_PCU,
        description="PCU of a motorcycle (SM) on an opposed approach.",
    )
    bicycle: float = Field(
        default=0.0,
        ge=0.0,
        le=MAX_PCU,
        description="PCU of a bicycle; PKJI treats non-motorised vehicles as side friction.",
    )

    def factor(self, vehicle_class: VehicleClass, movement: str) -> float:
        """PCU factor of ``vehicle_class`` on an approach with ``movement`` protected/opposed."""
        if vehicle_class is VehicleClass.MOTORCYCLE:
            return self.motorcycle_opposed if movement == "opposed" else self.motorcycle_protected
        return float(getattr(self, vehicle_class.label))


class AnalysisConfig(StrictModel):
    """Windows, tracking, queue detection and level-of-service thresholds."""

    window_s: float = Field(
        default=10.0,
        ge=1.0,
        le=3600.0,
        description="Window length, s (1 s to 1 h: a window holds several frames).",
    )
    track_max_age_s: float = Field(
        default=1.5, gt=0.0, le=60.0, description="A track unseen for this long (s) is dropped."
    )
    track_max_count: int = Field(
        default=2000,
        ge=10,
        le=100_000,
        description="Most live tracks per camera (bound on memory).",
    )
    track_gate_chi2: float = Field(
        default=9.21,
        gt=0.0,
        le=100.0,
        description=(
            "Association gate: largest squared Mahalanobis distance of a box centre from its "
            "track's prediction (9.21: 99 % of a 2-D normal)."
        ),
    )
    crossing_confirm_frames: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Frames a track must hold its new side of a line before a crossing counts.",
    )
    max_frame_gap_s: float = Field(
        default=2.0,
        gt=0.0,
        le=3600.0,
        description=(
            "Frames further apart than this (s) leave the time between them unobserved "
            "(camera loss, engine start): flows are per hour of observed time."
        ),
    )
    partial_below_share: float = Field(
        default=0.8,
        ge=0.0,
        le=1.0,
        description="A window observed for less than this share of its length is partial.",
    )
    queue_speed_m_s: float = Field(
        default=1.5,
        gt=0.0,
        le=15.0,
        description="A vehicle slower than this (m/s) is stopped or slow.",
    )
    queue_max_gap_m: float = Field(
        default=12.0,
        gt=0.0,
        le=200.0,
        description="Largest bumper-to-bumper gap (m) between queued vehicles in one queue.",
    )
    static_after_s: float = Field(
        default=120.0,
        ge=0.0,
        le=86400.0,
        description=(
            "A detected 'vehicle' that has not moved for this long (s) where the background "
            "shows that nothing arrived is scenery (a static false positive) and is kept out "
            "of the segment measures; 0 turns the check off (docs/measures.md)."
        ),
    )
    static_history_s: float = Field(
        default=600.0,
        gt=0.0,
        le=86400.0,
        description="How far back the background is remembered for that check, s.",
    )
    static_change: float = Field(
        default=12.0,
        gt=0.0,
        le=255.0,
        description=(
            "Mean grey-level difference (0-255) inside the box, between the background before "
            "the object was first seen and now, above which it arrived (a real vehicle)."
        ),
    )
    los_density_pcu_km_lane: tuple[float, float, float, float, float] = Field(
        default=(7.0, 11.0, 16.0, 22.0, 28.0),
        description="Upper density bounds (pcu/km/lane) of LOS A, B, C, D and E; above is F.",
    )
    congested_from_los: LevelOfService = Field(
        default=LevelOfService.E, description="This level of service and worse is congested."
    )

    @field_validator("los_density_pcu_km_lane")
    @classmethod
    def _increasing(
        cls, value: tuple[float, float, float, float, float]
    ) -> tuple[float, float, float, float, float]:
        if any(b <= a for a, b in itertools.pairwise(value)) or value[0] <= 0:
            raise ValueError("thresholds must be positive and strictly increasing")
        if value[-1] > MAX_DENSITY_PCU_KM_LANE:
            raise ValueError(f"thresholds must not exceed {MAX_DENSITY_PCU_KM_LANE:g} pcu/km/lane")
        return value


class CameraConfig(StrictModel):
    """One CCTV camera or recorded source."""

    id: Identifier
    name: Name = Field(default="", description="Human name, e.g. the street and view.")
    source: PathText = Field(
        description=(
            "Video file, image folder, rtsp:// URL, http(s):// MJPEG stream or snapshot URL. "
            "${NAME} and ${NAME:-default} are read from the environment (put credentials "
            "there); relative paths are relative to the config file."
        ),
    )
    kind: SourceKind = Field(
        default="auto", description="Source kind; auto guesses from the URL or path."
    )
    profile: Literal["density", "counting"] = Field(
        default="density",
        description=(
            "density: a low sampling rate (default 1 frame/s), keyframes decoded where the "
            "GOP allows, served after counting cameras when the node is short of CPU; "
            "counting: 5-10 frames/s (default 5) for tracks and line counts, every frame "
            "decoded, served first."
        ),
    )
    sample_fps: float = Field(
        default=1.0,
        gt=0.0,
        le=60.0,
        description=(
            "Frames per second analysed from this camera (default: 1 for density cameras, "
            "5 for counting cameras)."
        ),
    )
    decode: Literal["auto", "keyframes", "full"] = Field(
        default="auto",
        description=(
            "auto: decode keyframes only while the stream's GOP fits the sampling period, "
            "every frame otherwise; keyframes: keyframes only (the rate drops to the keyframe "
            "rate); full: every frame. Video files and RTSP streams only."
        ),
    )
    stream_options: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'FFmpeg options for a video file or stream, e.g. {rtsp_transport = "udp"} '
            "(RTSP defaults to tcp)."
        ),
    )
    realtime: bool = Field(
        default=True, description="Play recorded files at their own frame rate, as a live feed."
    )
    loop: bool = Field(default=True, description="Restart a recorded file at its end (service).")
    stall_timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        le=3600.0,
        description="No frame for this long (s) marks the camera stalled.",
    )
    reconnect_initial_s: float = Field(
        default=1.0,
        gt=0.0,
        le=3600.0,
        description="First reconnect delay (s); doubles up to the maximum.",
    )
    reconnect_max_s: float = Field(
        default=30.0, gt=0.0, le=3600.0, description="Longest reconnect delay, s."
    )
    enabled: bool = Field(
        default=True, description="Set false to keep a camera configured but off."
    )
    location: LatLon | None = Field(
        default=None,
        description="Where the camera stands, [latitude, longitude] in degrees (city map).",
    )
    detection: CameraDetectionConfig = Field(
        default_factory=CameraDetectionConfig,
        description="How frames are put to the model: cropped, whole or tiled (docs/detection.md).",
    )

    @model_validator(mode="before")
    @classmethod
    def _rate_from_profile(cls, data: object) -> object:
        if isinstance(data, dict) and "sample_fps" not in data:
            rate = COUNTING_SAMPLE_FPS if data.get("profile") == "counting" else 1.0
            return {**data, "sample_fps": rate}
        return data

    @model_validator(mode="after")
    def _delays(self) -> CameraConfig:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s: must not be below reconnect_initial_s")
        return self


class SegmentConfig(StrictModel):
    """A road segment (an approach or a link) seen by one camera."""

    id: Identifier
    camera: Identifier = Field(description="Id of the camera that sees this segment.")
    name: Name = Field(default="", description="Human name, e.g. 'Jl. Gajah Mada northbound'.")
    polygon: Polygon = Field(
        description=(
            "Segment outline, normalised [x, y] image coordinates in [0, 1]: 3 to 100 "
            "corners, edges that do not cross, an area of at least 1e-6 of the image."
        )
    )
    length_m: float = Field(gt=0.0, le=5000.0, description="Length of road the polygon covers, m.")
    lanes: int = Field(ge=1, le=12, description="Number of lanes (motorcycle-wide lanes count).")
    movement: Literal["protected", "opposed"] = Field(
        default="protected", description="Protected or opposed approach (motorcycle PCU)."
    )
    stop_line: NormLine | None = Field(
        default=None,
        description=(
            "Stop line, two normalised points; the queue is measured back from it. On a "
            "phase-mode exit segment, draw it across the junction's mouth (where vehicles "
            "leave the junction): distances along the segment are then from the junction."
        ),
    )
    one_way: bool = Field(
        default=False,
        description=(
            "Traffic crosses this segment's counting lines only in their approach direction: "
            "a track crossing one the other way is a wrong-way incident."
        ),
    )
    spillback_point: NormPoint | None = Field(
        default=None,
        description=(
            "Normalised [x, y] point on the road (needs a stop line): a queue reaching back "
            "past it is a spillback incident (e.g. the upstream junction's mouth)."
        ),
    )

    @model_validator(mode="after")
    def _spillback_needs_stop_line(self) -> SegmentConfig:
        if self.spillback_point is not None and self.stop_line is None:
            raise ValueError("spillback_point: needs a stop_line (queues are measured from it)")
        return self

    geo_line: list[LatLon] | None = Field(
        default=None,
        min_length=2,
        max_length=500,
        description=(
            "The road the segment covers on the city map: [latitude, longitude] points in "
            "degrees, in the direction of travel (toward the stop line)."
        ),
    )


class LineConfig(StrictModel):
    """A counting line: tracks crossing it give flow by class and direction."""

    id: Identifier
    camera: Identifier = Field(description="Id of the camera the line is drawn on.")
    segment: Identifier = Field(description="Segment whose flow this line measures.")
    points: NormLine = Field(description="Two different normalised [x, y] points in [0, 1].")
    forward_label: str = Field(
        default="forward",
        min_length=1,
        max_length=32,
        description="Name of a crossing from the line's left to its right.",
    )
    backward_label: str = Field(
        default="backward", min_length=1, max_length=32, description="Name of the other direction."
    )
    approach_direction: Literal["forward", "backward", "both"] = Field(
        default="forward",
        description=(
            "Direction toward the segment's stop line: the approach flow, the one control "
            "and PCU use (both directions are published)."
        ),
    )
