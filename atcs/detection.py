"""Build the configured detector: the bridge from ``[detector]`` config to ``detectors``."""

from __future__ import annotations

from atcs.config import DetectorConfig
from atcs.types import VehicleClass
from detectors.base import Detector
from detectors.settings import YoloSettings


def detector_settings(cfg: DetectorConfig) -> YoloSettings:
    """Return the detector settings equivalent of the ``[detector]`` section ``cfg``."""
    return YoloSettings(
        model=cfg.model,
        image_size_px=cfg.image_size_px,
        confidence=cfg.confidence,
        nms_iou=cfg.nms_iou,
        classes=tuple(VehicleClass.from_label(c) for c in cfg.classes),
        device=cfg.device,
        batch_max_frames=cfg.batch_max_frames,
    )


def build_detector(cfg: DetectorConfig) -> Detector:
    """Load the model named in ``cfg``; raise :class:`atcs.errors.DetectorError` clearly."""
    from detectors.yolo import YoloDetector  # imports the inference engines: only when needed

    return YoloDetector(detector_settings(cfg))
