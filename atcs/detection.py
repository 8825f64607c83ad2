"""Build the configured detector: the bridge from ``[detector]`` config to ``detectors``."""

from __future__ import annotations

from dataclasses import replace

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
        crop_margin_px=cfg.crop_margin_px,
    )


def build_detector(
    cfg: DetectorConfig,
    *,
    inflight_requests: int | None = None,
    images_per_request: int | None = None,
) -> Detector:
    """Load the model named in ``cfg``; raise :class:`atcs.errors.DetectorError` clearly.

    ``inflight_requests`` overrides how many inferences the detector keeps in flight
    (None: the detector's own choice, suited to live latency); ``images_per_request``
    how many images of one input size share a request (None: the detector's rule).
    """
    from detectors.yolo import YoloDetector  # imports the inference engines: only when needed

    settings = detector_settings(cfg)
    if inflight_requests is not None:
        settings = replace(settings, inflight_requests=inflight_requests)
    if images_per_request is not None:
        settings = replace(settings, images_per_request=images_per_request)
    return YoloDetector(settings)
