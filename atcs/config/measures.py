"""Configuration of turning-movement zones, ground calibration, incidents and FIWARE output.

The measures beyond counting (docs/measures.md).

Validation does no I/O: a calibration is fitted here (numpy only) so that degenerate points
are refused with their field path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from atcs.config._base import Name, NormPoint, Polygon, StrictModel
from atcs.config.core import Identifier
from atcs.errors import DataError
from atcs.homography import MIN_POINTS, GroundHomography

if TYPE_CHECKING:
    from atcs.config import AtcsConfig

IncidentKindName = Literal["stopped_vehicle", "wrong_way", "spillback", "density_jump"]
INCIDENT_KINDS: tuple[IncidentKindName, ...] = (
    "stopped_vehicle",
    "wrong_way",
    "spillback",
    "density_jump",
)
GroundMetres = Annotated[float, Field(ge=-100_000.0, le=100_000.0)]
GroundPoint = tuple[GroundMetres, GroundMetres]
"""A point on the ground plane in metres (for a road: across it and along it)."""


class ZoneConfig(StrictModel):
    """A zone of an intersection seen by one camera: where turning movements start and end."""

    id: Identifier = Field(description="Zone id, unique among all zones (from_zone, to_zone).")
    camera: Identifier = Field(description="Id of the camera that sees the zone.")
    intersection: Identifier | None = Field(
        default=None,
        description=(
            "Intersection whose origin-destination matrix the zone belongs to (topic "
            "{prefix}/movements/{intersection}); none: the camera id. All zones of one "
            "intersection are on one camera."
        ),
    )
    name: Name = Field(default="", description="Human name, e.g. 'south arm, inbound lanes'.")
    role: Literal["entry", "exit", "both"] = Field(
        default="both",
        description=(
            "entry: movements start here; exit: movements end here; both: an arm with "
            "inbound and outbound lanes in one polygon."
        ),
    )
    polygon: Polygon = Field(
        description=(
            "Zone outline, normalised [x, y] image coordinates in [0, 1]: 3 to 100 corners, "
            "edges that do not cross."
        )
    )

    @property
    def intersection_id(self) -> str:
        """The intersection the zone belongs to (its camera when not named)."""
        return self.intersection or self.camera


class CalibrationConfig(StrictModel):
    """A camera's ground calibration: image points and their positions on the road in metres."""

    camera: Identifier = Field(description="Id of the calibrated camera (one calibration each).")
    image_points: list[NormPoint] = Field(
        min_length=MIN_POINTS,
        max_length=100,
        description=(
            "Points on the road surface, normalised [x, y] image coordinates; at least four, "
            "no three of four on one line. With more than four the fit is least squares and "
            "`atcs calibrate` reports how well they agree."
        ),
    )
    ground_points_m: list[GroundPoint] = Field(
        min_length=MIN_POINTS,
        max_length=100,
        description=(
            "The same points on the ground, [across, along] the road in metres, in the same "
            "order (any origin; e.g. from lane widths and lane-marking lengths)."
        ),
    )
    max_speed_kmh: float = Field(
        default=200.0,
        gt=0.0,
        le=500.0,
        description=(
            "Speeds above this (km/h) are implausible: capped to it and counted "
            "(speed_capped), a sign of a bad calibration or a track jumping between vehicles."
        ),
    )
    smoothing_s: float = Field(
        default=1.0,
        gt=0.0,
        le=10.0,
        description="A track's speed is the slope of its ground positions over this span, s.",
    )
    note: Name = Field(
        default="", description="How the ground points were measured (for the next engineer)."
    )

    @model_validator(mode="after")
    def _solvable(self) -> CalibrationConfig:
        if len(self.image_points) != len(self.ground_points_m):
            raise ValueError(
                f"image_points has {len(self.image_points)} points and ground_points_m "
                f"{len(self.ground_points_m)}: give each image point its ground position"
            )
        try:
            GroundHomography(self.image_points, self.ground_points_m)
        except DataError as exc:
            raise ValueError(str(exc)) from None
        return self


class IncidentsConfig(StrictModel):
    """Incident detection: stopped vehicles, wrong-way tracks, queue spillback, density jumps."""

    kinds: tuple[IncidentKindName, ...] = Field(
        default=INCIDENT_KINDS,
        description="Incident kinds detected: stopped_vehicle, wrong_way, spillback, density_jump.",
    )
    stopped_after_s: float = Field(
        default=30.0,
        gt=0.0,
        le=3600.0,
        description="A vehicle stopped outside a queue this long (s) is an incident.",
    )
    stopped_speed_m_s: float = Field(
        default=1.0,
        gt=0.0,
        le=10.0,
        description=(
            "Slower than this (m/s) is stopped (ground speed on calibrated cameras, else the "
            "stop line's metre scale); twice this ends the incident."
        ),
    )
    stopped_box_heights_s: float = Field(
        default=0.2,
        gt=0.0,
        le=5.0,
        description=(
            "Without any metre scale: a vehicle moving less than this many of its own box "
            "heights per second is stopped."
        ),
    )
    spillback_after_s: float = Field(
        default=10.0,
        gt=0.0,
        le=3600.0,
        description="A queue reaching the segment's spillback point this long (s) is an incident.",
    )
    clear_after_s: float = Field(
        default=10.0,
        gt=0.0,
        le=3600.0,
        description="A spillback ends when the queue stayed short of the point this long, s.",
    )
    density_jump_pcu_km_lane: float = Field(
        default=15.0,
        gt=0.0,
        le=1000.0,
        description=(
            "A window whose density exceeds the baseline by at least this much "
            "(pcu/km/lane) and by density_jump_ratio is a density jump."
        ),
    )
    density_jump_ratio: float = Field(
        default=2.0,
        ge=1.0,
        le=100.0,
        description="... and is at least this multiple of the baseline density.",
    )
    density_baseline_windows: int = Field(
        default=6,
        ge=1,
        le=1000,
        description=(
            "The baseline is the mean density of this many earlier whole windows; the "
            "incident ends at the first window back under the trigger level."
        ),
    )
    max_active_per_camera: int = Field(
        default=200,
        ge=1,
        le=100_000,
        description="Most incidents open at once per camera (bound on memory); more are dropped.",
    )


class FiwareConfig(StrictModel):
    """FIWARE TrafficFlowObserved rendering of every segment window (NGSI-LD key-values)."""

    enabled: bool = Field(
        default=False,
        description=(
            "Publish each segment window also as a TrafficFlowObserved entity on "
            "{prefix}/segments/{segment}/traffic-flow-observed, and write "
            "traffic_flow_observed.jsonl in `atcs analyze`."
        ),
    )
    entity_prefix: str = Field(
        default="urn:ngsi-ld:TrafficFlowObserved:",
        min_length=1,
        max_length=200,
        description="Entity ids are this prefix, the site id, ':' and the segment id.",
    )
    data_provider: Name = Field(
        default="", description="dataProvider of every entity; empty: left out."
    )


def measures_problems(cfg: AtcsConfig) -> list[str]:
    """Cross-reference problems of zones and calibrations, each with its field path."""
    problems: list[str] = []
    cameras = {c.id for c in cfg.cameras}
    seen: set[str] = set()
    camera_of: dict[str, str] = {}
    for i, zone in enumerate(cfg.zones):
        if zone.id in seen:
            problems.append(f"zones[{i}].id: duplicate id {zone.id!r}")
        seen.add(zone.id)
        if zone.camera not in cameras:
            problems.append(f"zones[{i}].camera: unknown camera {zone.camera!r}")
        other = camera_of.setdefault(zone.intersection_id, zone.camera)
        if other != zone.camera:
            problems.append(
                f"zones[{i}].camera: intersection {zone.intersection_id!r} has zones on camera "
                f"{other!r} already; a movement is seen by one camera"
            )
    for ix in camera_of:
        roles = {z.role for z in cfg.zones if z.intersection_id == ix}
        if not roles & {"entry", "both"} or not roles & {"exit", "both"}:
            problems.append(
                f"zones: intersection {ix!r} needs a zone where movements start (entry or "
                f"both) and one where they end (exit or both)"
            )
    calibrated: set[str] = set()
    for i, cal in enumerate(cfg.calibrations):
        if cal.camera not in cameras:
            problems.append(f"calibrations[{i}].camera: unknown camera {cal.camera!r}")
        if cal.camera in calibrated:
            problems.append(f"calibrations[{i}].camera: camera {cal.camera!r} is calibrated twice")
        calibrated.add(cal.camera)
    return problems
