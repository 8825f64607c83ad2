"""A detector that adds tiles of the far field to the whole-frame pass.

Each image is detected whole at the runner's own input size (the near field, where
vehicles are big) and on tiles of its far field at a larger scale (see
:mod:`detectors.tiles`); all inputs of one frame run in flight together and the boxes are
merged by cross-tile NMS; a vehicle reported as two classes of one group (a van as car and
as truck) keeps its more confident class. The far field is given per image as a box in image
pixels (for a camera: the part of its segments where vehicles are small).
"""

from __future__ import annotations

from collections.abc import Sequence

from atcs.types import Detections, Image

from .crop import CropWindow, PixelBox
from .letterbox import Placement
from .openvino_yolo import OpenVinoYolo
from .tiles import (
    TileSettings,
    drop_class_duplicates,
    merge_detections,
    plan_tiles,
    scaled_frame,
)

MAX_PLANS = 256
"""Tile plans remembered (one per image size and far field)."""


class TiledDetector:
    """Whole frame plus far-field tiles, merged; boxes in image pixels."""

    def __init__(self, runner: OpenVinoYolo, settings: TileSettings, *, whole: bool = True) -> None:
        self.runner = runner
        self.settings = settings
        self.whole = whole
        self._plans: dict[tuple[int, int, PixelBox], tuple[CropWindow, ...]] = {}

    def tiles(self, height_px: int, width_px: int, far_field: PixelBox) -> tuple[CropWindow, ...]:
        """Return the tiles covering ``far_field`` of an image of this size (cached)."""
        key = (height_px, width_px, far_field)
        found = self._plans.get(key)
        if found is None:
            if len(self._plans) >= MAX_PLANS:
                self._plans.clear()
            frame = scaled_frame(height_px, width_px, self.settings.scale, self.runner.stride)
            found = plan_tiles(frame, far_field, self.settings)
            self._plans[key] = found
        return found

    def detect(
        self, images: Sequence[Image], far_fields: Sequence[PixelBox | None]
    ) -> list[Detections]:
        """One merged :class:`Detections` per image; a None far field means no tiles."""
        jobs: list[tuple[Image, Placement]] = []
        owner: list[int] = []
        for index, (image, far) in enumerate(zip(images, far_fields, strict=True)):
            height, width = int(image.shape[0]), int(image.shape[1])
            placements: list[Placement] = []
            if self.whole or far is None:
                placements.append(self.runner.geometry(height, width))
            if far is not None:
                placements.extend(self.tiles(height, width, far))
            jobs.extend((image, p) for p in placements)
            owner.extend([index] * len(placements))
        found = self.runner.detect_placed(jobs)
        parts: list[list[Detections]] = [[] for _ in images]
        windows: list[list[PixelBox | None]] = [[] for _ in images]
        for index, (_, placement), detections in zip(owner, jobs, found, strict=True):
            parts[index].append(detections)
            windows[index].append(
                placement.source_box() if isinstance(placement, CropWindow) else None
            )
        return [
            drop_class_duplicates(
                merge_detections(p, windows=w, image_size=(int(i.shape[1]), int(i.shape[0])))
            )
            for p, w, i in zip(parts, windows, images, strict=True)
        ]
