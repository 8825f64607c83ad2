"""Per-camera detection geometry: ``[cameras.detection]`` (see docs/detection.md).

A camera is detected in one of three ways:

- ``crop`` (the default): the ``[detector] crop`` rule, the frame cropped around the
  camera's segments and lines at the whole frame's scale once its crop check agrees;
- ``whole``: always the whole frame at ``[detector] image_size_px``;
- ``tiles``: the whole frame plus tiles of its far field at ``tile_scale`` (far, small
  vehicles seen with more pixels), merged by cross-tile NMS.

``atcs propose-detection`` measures the vehicles a camera sees and writes the cheapest
setting meeting a recall target (``far_field`` included).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from atcs.config._base import Fraction, StrictModel
from atcs.types import VehicleClass

NormBox = tuple[Fraction, Fraction, Fraction, Fraction]
"""A box in normalised image coordinates: x0, y0, x1, y1 in [0, 1]."""


class CameraDetectionConfig(StrictModel):
    """How one camera's frames are put to the model: cropped, whole or tiled."""

    mode: Literal["crop", "whole", "tiles"] = Field(
        default="crop",
        description=(
            "crop: around the segments and lines when [detector] crop is on and the crop "
            "check agrees (whole frames otherwise); whole: always the whole frame; tiles: the "
            "whole frame plus tiles of the far field at tile_scale, merged by cross-tile NMS "
            "(OpenVINO engine)."
        ),
    )
    tile_scale: float = Field(
        default=2.0,
        ge=0.5,
        le=4.0,
        description="Model pixels per image pixel in the tiles (2: the far field up-scaled twice).",
    )
    tile_px: int = Field(
        default=640,
        ge=64,
        le=1280,
        multiple_of=32,
        description="Side of the square tiles, model pixels (one compiled input shape).",
    )
    tile_overlap_px: int = Field(
        default=64,
        ge=0,
        le=640,
        description="Least overlap of neighbouring tiles, model pixels (a vehicle cut by one "
        "tile's edge lies whole in the next).",
    )
    far_field: NormBox | None = Field(
        default=None,
        description=(
            "Part of the image that is tiled, normalised [x0, y0, x1, y1]; unset: the camera's "
            "measured region (its segments and lines), the whole image when it has none."
        ),
    )
    class_confidence: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "Per-class confidence threshold of this camera, e.g. {truck = 0.35}: boxes of a "
            "named class under its threshold are dropped before tracking; classes not named "
            "keep [detector] confidence, which must not exceed any threshold named here."
        ),
    )
    far_below_px: float = Field(
        default=48.0,
        gt=0.0,
        le=1000.0,
        description=(
            "Vehicle height in image pixels under which a row of the image is far field: "
            "atcs propose-detection tiles the rows where the vehicles it sees are smaller."
        ),
    )

    @field_validator("tile_scale")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("tile_scale must be a finite number")
        return value

    @field_validator("class_confidence")
    @classmethod
    def _class_thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        known = {c.label for c in VehicleClass}
        for label, threshold in value.items():
            if label not in known:
                raise ValueError(
                    f"class_confidence: unknown class {label!r}; known: {sorted(known)}"
                )
            if not 0.0 < threshold < 1.0:
                raise ValueError(f"class_confidence.{label}: must be in (0, 1), got {threshold}")
        return value

    @field_validator("far_field")
    @classmethod
    def _box(cls, value: NormBox | None) -> NormBox | None:
        if value is not None and (value[2] <= value[0] or value[3] <= value[1]):
            raise ValueError("far_field: x1 must exceed x0 and y1 must exceed y0")
        return value

    @model_validator(mode="after")
    def _overlap(self) -> CameraDetectionConfig:
        if self.tile_overlap_px > self.tile_px // 2:
            raise ValueError(
                f"tile_overlap_px: must be at most half of tile_px ({self.tile_px // 2}), "
                f"got {self.tile_overlap_px}"
            )
        return self
