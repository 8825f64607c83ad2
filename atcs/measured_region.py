"""The part of a camera's image that is measured, where the detector has to look.

A camera's measures come from vehicles whose anchor (bottom-centre of the box) lies in one
of its segments, and from tracks crossing its counting lines. The detector may crop each
frame to the bounding box of those shapes (plus a margin it adds itself; see
:mod:`detectors.crop`), so this module only says where they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from atcs.config import AtcsConfig
from atcs.types import Frame
from detectors.crop import PixelBox

NormPoint = tuple[float, float]


@dataclass(frozen=True, slots=True)
class MeasuredRegion:
    """Bounding box of a camera's segments and lines, normalised image coordinates [0, 1]."""

    x0: float
    y0: float
    x1: float
    y1: float

    @classmethod
    def around(cls, points: Iterable[NormPoint]) -> MeasuredRegion | None:
        """Return the box holding ``points`` (x, y), clipped to the image, or None."""
        pts = list(points)
        if not pts:
            return None
        x0 = max(0.0, min(p[0] for p in pts))
        y0 = max(0.0, min(p[1] for p in pts))
        x1 = min(1.0, max(p[0] for p in pts))
        y1 = min(1.0, max(p[1] for p in pts))
        if x1 < x0 or y1 < y0:
            return None
        return cls(x0, y0, x1, y1)

    @classmethod
    def of_camera(cls, cfg: AtcsConfig, camera_id: str) -> MeasuredRegion | None:
        """Return the region of ``camera_id``: its segments, stop lines and counting lines.

        None when the camera measures nothing (no segment, no line): it is then detected
        on whole frames (the dashboard still shows its vehicles).
        """
        points: list[NormPoint] = []
        for segment in cfg.segments_of(camera_id):
            points += segment.polygon
            if segment.stop_line is not None:
                points += segment.stop_line
        for line in cfg.lines_of(camera_id):
            points += line.points
        return cls.around(points)

    def pixels(self, width_px: int, height_px: int) -> PixelBox:
        """Return the region in pixels of a ``width_px`` x ``height_px`` image (at least 1 px)."""
        return PixelBox.around(
            [(self.x0 * width_px, self.y0 * height_px), (self.x1 * width_px, self.y1 * height_px)]
        )

    def of_frame(self, frame: Frame) -> PixelBox:
        """Return the region in the pixels of ``frame``'s image."""
        return self.pixels(frame.width_px, frame.height_px)


def camera_regions(cfg: AtcsConfig) -> dict[str, MeasuredRegion]:
    """Return the measured region of every camera that has one, by camera id."""
    out: dict[str, MeasuredRegion] = {}
    for camera in cfg.cameras:
        region = MeasuredRegion.of_camera(cfg, camera.id)
        if region is not None:
            out[camera.id] = region
    return out
