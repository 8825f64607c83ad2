"""Configuration of the ATCS room: geographic positions, the city map and the alarms.

Positions are WGS 84 ``[latitude, longitude]`` pairs in degrees (the order a map shows and
a GPS reads). Validation does no I/O.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from atcs.config._base import StrictModel
from atcs.types import LevelOfService

Latitude = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)]
LatLon = tuple[Latitude, Longitude]
"""A position: latitude and longitude in degrees (WGS 84)."""


class MapConfig(StrictModel):
    """The city map of the dashboard: its basemap and first view."""

    tile_url: str = Field(
        default="",
        max_length=500,
        pattern=r"^(|https?://\S+\{z\}\S*\{x\}\S*\{y\}\S*)$",
        description=(
            "Basemap tile URL with {z}, {x} and {y} (for example the city's own tile server, "
            "'https://tiles.example.go.id/{z}/{x}/{y}.png'); empty: no basemap, a plain "
            "background with the site's roads, cameras and intersections."
        ),
    )
    attribution: str = Field(
        default="", max_length=300, description="Credit line of the basemap, shown on the map."
    )
    max_zoom: int = Field(default=19, ge=1, le=22, description="Deepest zoom level of the tiles.")
    center: LatLon | None = Field(
        default=None, description="Centre of the first view; none: fit every mapped object."
    )
    zoom: int = Field(
        default=16, ge=1, le=22, description="Zoom of the first view when center is set."
    )


class AlarmsConfig(StrictModel):
    """Alarms raised by the engine: when, how long, how many are kept."""

    congested_from_los: LevelOfService = Field(
        default=LevelOfService.E,
        description="A segment at this level of service or worse is congested for alarms.",
    )
    onset_windows: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Consecutive congested windows that raise a congestion alarm.",
    )
    clear_windows: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Consecutive windows below the threshold that end a congestion alarm.",
    )
    stale_after_s: float = Field(
        default=60.0,
        gt=0.0,
        le=86400.0,
        allow_inf_nan=False,
        description="A segment without a new window for this long (s) raises a stale-data alarm.",
    )
    camera_down_after_s: float = Field(
        default=10.0,
        ge=0.0,
        le=3600.0,
        allow_inf_nan=False,
        description="A camera not streaming for this long (s) raises a camera-down alarm.",
    )
    history_max: int = Field(
        default=500,
        ge=10,
        le=100_000,
        description="Ended alarms kept in memory for the list and the API (oldest go first).",
    )
    audit_file: str = Field(
        default="dashboard/alarm-acks.jsonl",
        min_length=1,
        description="Audit log of alarm acknowledgements (JSON lines), under service.state_dir.",
    )

    @field_validator("audit_file")
    @classmethod
    def _relative(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError("must be a relative path inside service.state_dir")
        return value
