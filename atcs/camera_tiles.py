"""The cameras detected with far-field tiles: ``[cameras.detection] mode = "tiles"``.

Each such camera's frame runs the model on the whole frame (``[detector] image_size_px``)
plus square tiles of its far field at ``tile_scale`` (:class:`detectors.tiled.TiledDetector`),
and the boxes are merged by cross-tile NMS. The far field is the configured ``far_field`` box
or, unset, the camera's measured region (the very box the ``crop`` mode cuts around, from
:class:`atcs.measured_region.MeasuredRegion`), so tiles and crop look at the same part of
the image. Tiling needs the OpenVINO engine; with another engine the camera is detected on
whole frames and the reason is logged once.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

from atcs.config import AtcsConfig, CameraConfig
from atcs.errors import DetectorError
from atcs.measured_region import MeasuredRegion
from atcs.types import Detections, Frame
from detectors.crop import CropWindow, PixelBox
from detectors.openvino_yolo import OpenVinoYolo
from detectors.tiled import TiledDetector
from detectors.tiles import TileSettings

log = logging.getLogger(__name__)


@runtime_checkable
class RunnerSource(Protocol):
    """A detector that can hand over its OpenVINO runner (``detectors.yolo.YoloDetector``)."""

    def runner(self) -> OpenVinoYolo:
        """Return the runner; raise :class:`atcs.errors.DetectorError` on other engines."""
        ...


def tile_settings(camera: CameraConfig, stride: int = 32) -> TileSettings:
    """Return the tile settings of ``camera``'s ``[cameras.detection]``."""
    d = camera.detection
    return TileSettings(
        scale=d.tile_scale, tile_px=d.tile_px, overlap_px=d.tile_overlap_px, stride=stride
    )


def far_field_of(cfg: AtcsConfig, camera_id: str) -> MeasuredRegion:
    """Return the part of ``camera_id``'s image that is tiled, normalised [0, 1]."""
    box = cfg.camera(camera_id).detection.far_field
    if box is not None:
        return MeasuredRegion(*box)
    return MeasuredRegion.of_camera(cfg, camera_id) or MeasuredRegion(0.0, 0.0, 1.0, 1.0)


class CameraTiles:
    """Tiled detection of the cameras configured for it. Bounded: one entry per camera."""

    def __init__(self, cfg: AtcsConfig, detector: object) -> None:
        self._fields: dict[str, MeasuredRegion] = {}
        self._tiled: dict[str, TiledDetector] = {}
        wanted = [c for c in cfg.cameras if c.enabled and c.detection.mode == "tiles"]
        if not wanted:
            return
        try:
            if not isinstance(detector, RunnerSource):
                raise DetectorError("tiling needs the OpenVINO engine of detectors.yolo")
            runner = detector.runner()
        except DetectorError as exc:
            log.error(
                "cameras %s: tiles configured but %s; detected on whole frames",
                ",".join(c.id for c in wanted), exc,
            )  # fmt: skip
            return
        for camera in wanted:
            self._fields[camera.id] = far_field_of(cfg, camera.id)
            self._tiled[camera.id] = TiledDetector(runner, tile_settings(camera, runner.stride))
            log.info(
                "camera=%s tiles at scale %g (%d px) over %s",
                camera.id, camera.detection.tile_scale, camera.detection.tile_px,
                self._fields[camera.id],
            )  # fmt: skip

    def __contains__(self, camera_id: object) -> bool:
        return camera_id in self._tiled

    def far_field(self, frame: Frame) -> PixelBox:
        """Return the far field of ``frame``'s camera in its pixels."""
        return self._fields[frame.camera_id].of_frame(frame)

    def tiles(self, frame: Frame) -> tuple[CropWindow, ...]:
        """Return the tiles ``frame`` is cut into (model-input windows)."""
        tiled = self._tiled[frame.camera_id]
        return tiled.tiles(frame.height_px, frame.width_px, self.far_field(frame))

    def detect(self, frame: Frame) -> Detections:
        """Detect ``frame`` whole plus its far-field tiles, merged; boxes in its pixels."""
        tiled = self._tiled[frame.camera_id]
        return tiled.detect([frame.image], [self.far_field(frame)])[0]
