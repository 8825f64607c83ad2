"""Plain data shared by every part of the engine (numpy only, no I/O).

Units live in names: ``_s`` seconds, ``_m`` metres, ``_px`` pixels, ``_veh_h`` vehicles
per hour, ``_pcu_km_lane`` passenger-car units per kilometre per lane. Times are aware UTC
datetimes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NewType

import numpy as np
import numpy.typing as npt

from atcs.errors import DataError

CameraId = NewType("CameraId", str)
SegmentId = NewType("SegmentId", str)
LineId = NewType("LineId", str)
IntersectionId = NewType("IntersectionId", str)
PhaseId = NewType("PhaseId", str)
SiteId = NewType("SiteId", str)
TrackId = NewType("TrackId", int)
ZoneId = NewType("ZoneId", str)

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
Image = npt.NDArray[np.uint8]


class VehicleClass(enum.IntEnum):
    """The vehicle classes the engine measures; the value is the ``class_id`` in Detections."""

    CAR = 0
    MOTORCYCLE = 1
    BUS = 2
    TRUCK = 3
    BICYCLE = 4

    @property
    def label(self) -> str:
        """Lower-case name used in config, CSV columns, JSON and InfluxDB tags."""
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> VehicleClass:
        """Return the class named ``label`` (``"car"``, ``"motorcycle"`` ...)."""
        try:
            return cls[label.upper()]
        except KeyError as exc:
            known = ", ".join(c.label for c in cls)
            raise DataError(f"unknown vehicle class {label!r}; known: {known}") from exc


class Direction(enum.Enum):
    """Which way a track crossed a counting line drawn from its first to its second point.

    ``FORWARD`` is a crossing from the left-hand side of the directed line to its right-hand
    side as seen on the image (x to the right, y downwards); ``BACKWARD`` is the reverse.
    """

    FORWARD = "forward"
    BACKWARD = "backward"


class LevelOfService(enum.Enum):
    """Level of service A (free flow) to F (breakdown), from density thresholds."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"
    E = "E"
    F = "F"


class CameraState(enum.Enum):
    """Health of one camera as the operator sees it."""

    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    STALLED = "stalled"
    OFFLINE = "offline"


class PlanMode(enum.Enum):
    """Why a timing plan is running."""

    ADAPTIVE = "adaptive"
    FALLBACK = "fallback"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class Frame:
    """One image from one camera.

    ``image`` is an HxWx3 uint8 BGR array; ``captured_at`` is an aware UTC datetime;
    ``offset_s`` is the position in a recorded file in seconds (None for live sources).
    """

    camera_id: CameraId
    seq: int
    captured_at: datetime
    image: Image
    offset_s: float | None = None

    def __post_init__(self) -> None:
        if self.captured_at.tzinfo is None:
            raise DataError("Frame.captured_at must be timezone-aware")
        img = self.image
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise DataError(
                f"Frame.image must be HxWx3 uint8, got shape {img.shape} dtype {img.dtype}"
            )

    @property
    def width_px(self) -> int:
        """Image width in pixels."""
        return int(self.image.shape[1])

    @property
    def height_px(self) -> int:
        """Image height in pixels."""
        return int(self.image.shape[0])


def _as_1d(
    values: npt.ArrayLike | None, n: int, dtype: type, name: str
) -> npt.NDArray[np.generic] | None:
    if values is None:
        return None
    arr: npt.NDArray[np.generic] = np.asarray(values, dtype=dtype)
    if arr.shape != (n,):
        raise DataError(f"Detections.{name} must have shape ({n},), got {arr.shape}")
    return arr


@dataclass(frozen=True, slots=True, eq=False)
class Detections:
    """Vehicles found in one frame, one array per field (supervision's layout).

    ``xyxy`` float32 (N, 4) box corners in pixels; ``confidence`` float32 (N,) in [0, 1];
    ``class_id`` int64 (N,) holding :class:`VehicleClass` values; ``tracker_id`` int64 (N,)
    or None before tracking. Shapes are checked on creation.
    """

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray
    tracker_id: IntArray | None = None

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise DataError(f"Detections.xyxy must have shape (N, 4), got {xyxy.shape}")
        n = xyxy.shape[0]
        class_id = _as_1d(self.class_id, n, np.int64, "class_id")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", _as_1d(self.confidence, n, np.float32, "confidence"))
        object.__setattr__(self, "class_id", class_id)
        object.__setattr__(self, "tracker_id", _as_1d(self.tracker_id, n, np.int64, "tracker_id"))
        if (
            class_id is not None
            and n
            and (class_id.min() < 0 or class_id.max() >= len(VehicleClass))
        ):
            raise DataError("Detections.class_id holds a value that is not a VehicleClass")

    @classmethod
    def empty(cls) -> Detections:
        """Return detections with no boxes."""
        return cls(
            xyxy=np.zeros((0, 4), dtype=np.float32),
            confidence=np.zeros(0, dtype=np.float32),
            class_id=np.zeros(0, dtype=np.int64),
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, mask: npt.NDArray[np.bool_] | npt.NDArray[np.int64]) -> Detections:
        """Select boxes by boolean mask or index array."""
        return Detections(
            xyxy=self.xyxy[mask],
            confidence=self.confidence[mask],
            class_id=self.class_id[mask],
            tracker_id=None if self.tracker_id is None else self.tracker_id[mask],
        )

    def with_tracker_ids(self, tracker_id: IntArray) -> Detections:
        """Return a copy carrying ``tracker_id`` (shape (N,))."""
        return Detections(self.xyxy, self.confidence, self.class_id, tracker_id)

    def anchors(self) -> FloatArray:
        """Bottom-centre point of every box in pixels, shape (N, 2)."""
        x = (self.xyxy[:, 0] + self.xyxy[:, 2]) / 2.0
        y = self.xyxy[:, 3]
        return np.stack([x, y], axis=1).astype(np.float32)


@dataclass(frozen=True, slots=True)
class FlowCount:
    """Crossings of one counting line by one class in one direction during a window.

    ``flow_veh_h`` is ``count`` per hour of the window's observed time; ``approach`` is True
    for the direction toward the segment's stop line (the line's configured approach
    direction), the one control and PCU use.
    """

    line_id: LineId
    vehicle_class: VehicleClass
    direction: Direction
    count: int
    flow_veh_h: float
    approach: bool = True


@dataclass(frozen=True, slots=True)
class SegmentMetrics:
    """Traffic measures of one road segment over one window (see DESIGN.md, Measures).

    ``vehicles`` and ``vehicles_by_class`` are means over the window's frames;
    ``pcu`` is the PCU-weighted mean; ``density_pcu_km_lane`` is ``pcu / (length_m / 1000 *
    lanes)``; ``occupancy`` is the mean covered fraction of the polygon in [0, 1];
    ``flow_veh_h`` is the hourly rate of the segment's approach crossings (every class, in
    each line's approach direction) per hour of observed time, detailed in ``flows`` (both
    directions); ``queue_m`` is the mean queue length in metres over the window's frames
    (None where no stop line is set) and ``queue_max_m`` its largest value; ``stale`` is
    set when the window saw no frame. ``observed_s`` is how much of the window the camera
    was actually seen (s; None: all of it), ``partial`` is set when that is less than the
    configured share of the window (a window built without it was seen whole).
    ``speed_kmh`` and ``speed_p85_kmh`` are the mean and 85th percentile of the ground
    speeds (km/h) of the ``speed_vehicles`` tracked vehicles that had one in the segment in
    the window (None on cameras without a ground calibration or with no such vehicle);
    ``speed_capped`` counts those whose speed was capped as implausible.
    """

    site_id: SiteId
    camera_id: CameraId
    segment_id: SegmentId
    window_start: datetime
    window_end: datetime
    frames: int
    vehicles: float
    vehicles_by_class: Mapping[VehicleClass, float]
    pcu: float
    density_pcu_km_lane: float
    occupancy: float
    flow_veh_h: float
    flows: tuple[FlowCount, ...]
    queue_m: float | None
    queue_max_m: float | None
    los: LevelOfService
    congested: bool
    stale: bool
    observed_s: float | None = None
    partial: bool = False
    speed_kmh: float | None = None
    speed_p85_kmh: float | None = None
    speed_vehicles: int = 0
    speed_capped: int = 0

    def __post_init__(self) -> None:
        if self.observed_s is None:  # not recorded: the whole window was seen
            object.__setattr__(self, "observed_s", self.window_s)

    @property
    def window_s(self) -> float:
        """Window length in seconds."""
        return (self.window_end - self.window_start).total_seconds()

    @property
    def observed_or_window_s(self) -> float:
        """Seconds of the window the camera was seen (the whole window when not recorded)."""
        return self.window_s if self.observed_s is None else self.observed_s


@dataclass(frozen=True, slots=True)
class MovementCount:
    """Vehicles of one class that went from one zone to another (a turning movement)."""

    from_zone: ZoneId
    to_zone: ZoneId
    vehicle_class: VehicleClass
    count: int


@dataclass(frozen=True, slots=True)
class MovementCounts:
    """The origin-destination (turning movement) matrix of one intersection over one window.

    ``counts`` holds every pair of a zone where movements start and a different zone where
    they end, for every class, zeros included, in a fixed order; a track counts once, when
    it reaches the end zone after leaving the start zone (dated by the frame it arrived).
    ``observed_s`` and ``partial`` are those of the camera's segment windows;
    ``stale`` is set when the window saw no frame.
    """

    site_id: SiteId
    camera_id: CameraId
    intersection_id: IntersectionId
    window_start: datetime
    window_end: datetime
    frames: int
    observed_s: float
    partial: bool
    stale: bool
    counts: tuple[MovementCount, ...]

    @property
    def window_s(self) -> float:
        """Window length in seconds."""
        return (self.window_end - self.window_start).total_seconds()

    @property
    def total(self) -> int:
        """Movements of every pair and class in the window."""
        return sum(c.count for c in self.counts)


@dataclass(frozen=True, slots=True)
class LineCrossing:
    """One track crossing one counting line (a row of the survey's ``crossings.csv``)."""

    camera_id: CameraId
    line_id: LineId
    segment_id: SegmentId
    track_id: TrackId
    vehicle_class: VehicleClass
    direction: Direction
    frame_seq: int
    at: datetime
    offset_s: float | None


@dataclass(frozen=True, slots=True)
class FrameVehicle:
    """One vehicle of a camera zone in one frame (segments with a stop line).

    ``distance_m``: from the stop line to the box's nearest corner along the segment (m,
    at least 0); ``speed_m_s``: its speed (m/s, None while unknown); ``pcu``: its class's
    passenger-car-unit factor on the segment.
    """

    distance_m: float
    speed_m_s: float | None
    pcu: float


@dataclass(frozen=True, slots=True)
class FrameZone:
    """The vehicles one frame shows in a segment with a stop line, nearest the line first.

    What the phase-by-phase control reads as the segment's camera zone
    (:mod:`atcs.control.frame_zones`); ``at`` is the frame's capture time (aware UTC).
    """

    camera_id: CameraId
    segment_id: SegmentId
    at: datetime
    vehicles: tuple[FrameVehicle, ...]


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """Health of one camera: state, measured frame rate (frames/s), last frame time (UTC).

    ``decode_mode`` (video files and streams): ``keyframes`` or ``full``, which frames are
    decoded; ``gop_s``: the measured time between keyframes, s (None until measured).
    """

    camera_id: CameraId
    state: CameraState
    fps: float
    last_frame_at: datetime | None
    detail: str = ""
    decode_mode: str | None = None
    gop_s: float | None = None


@dataclass(frozen=True, slots=True)
class PhaseTiming:
    """Timing of one phase in a plan, all in seconds."""

    phase_id: PhaseId
    green_s: float
    yellow_s: float
    all_red_s: float

    @property
    def duration_s(self) -> float:
        """Green plus yellow plus all-red, in seconds."""
        return self.green_s + self.yellow_s + self.all_red_s


@dataclass(frozen=True, slots=True)
class TimingPlan:
    """A signal timing plan for one intersection.

    ``cycle_s`` equals the sum of the phase durations; ``offset_s`` is the cycle start
    offset in seconds; ``valid_from`` is the UTC time of the cycle boundary from which it
    runs; ``data_age_s`` is the age in seconds of the newest measure it was computed from
    (None for plans not computed from measures).
    """

    intersection_id: IntersectionId
    plan_id: str
    controller: str
    mode: PlanMode
    cycle_s: float
    offset_s: float
    phases: tuple[PhaseTiming, ...]
    valid_from: datetime
    reason: str
    data_age_s: float | None = None
    extra: Mapping[str, float] = field(default_factory=dict)
