"""``atcs propose-detection``: observe a camera's vehicles, propose its detection geometry.

Reads ``frames`` frames ``step`` frames apart from the camera's source (file, folder or
stream), detects each whole plus its measured region tiled at scale 2 (the most sensitive
setting, so that small vehicles are seen), keeps the vehicles whose anchor (bottom-centre)
lies in the camera's segments and hands their heights and rows to
:mod:`atcs.detection_proposal`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atcs.camera_tiles import RunnerSource, tile_settings
from atcs.config import AtcsConfig
from atcs.detection_proposal import Candidate, SeenVehicle, candidates, cheapest, describe
from atcs.errors import ConfigError, DetectorError, SourceError
from atcs.measured_region import MeasuredRegion
from atcs.metrics.geometry import PreparedPolygon, to_pixels
from atcs.sources import make_grabber, redact_url, resolve_kind
from atcs.types import Image
from detectors.base import Detector
from detectors.tiled import TiledDetector
from detectors.tiles import TileSettings

OBSERVE_SCALE = 2.0
"""Tile scale of the observing pass (the most sensitive measured setting)."""


@dataclass(frozen=True, slots=True)
class Proposal:
    """What was seen and proposed for one camera; ``size``: frame (width, height) px."""

    camera_id: str
    frames: int
    size: tuple[int, int]
    seen: tuple[SeenVehicle, ...]
    candidates: tuple[Candidate, ...]
    pick: Candidate
    met: bool
    target: float

    def lines(self) -> list[str]:
        """Return the report printed by the command."""
        w, h = self.size
        heights = sorted(v.height_px for v in self.seen)
        head = [
            f"camera {self.camera_id}: {len(self.seen)} vehicles inside the segments over "
            f"{self.frames} frames of {w}x{h} px",
        ]
        if heights:
            small = sum(x < 32 for x in heights) / len(heights)
            head.append(
                f"vehicle height: median {heights[len(heights) // 2]:.0f} px, "
                f"{small:.0%} under 32 px"
            )
        return head + describe(self.candidates, self.pick, self.met, self.target)


def read_frames(cfg: AtcsConfig, camera_id: str, frames: int, step: int) -> list[Image]:
    """Return ``frames`` frames ``step`` apart from the camera's source (fewer at its end)."""
    camera = cfg.camera(camera_id)
    grabber = make_grabber(camera.source, resolve_kind(camera.source, camera.kind), timeout_s=15.0)
    grabber.open()
    out: list[Image] = []
    try:
        index = 0
        while len(out) < frames and grabber.grab():
            if index % step == 0:
                out.append(grabber.retrieve())
            index += 1
    finally:
        grabber.close()
    if not out:
        raise SourceError(f"{redact_url(camera.source)}: no frame could be read")
    return out


def observe(
    cfg: AtcsConfig, camera_id: str, detector: Detector, images: list[Image]
) -> list[SeenVehicle]:
    """Detect ``images`` sensitively; the vehicles whose anchors lie in the segments."""
    if not isinstance(detector, RunnerSource):
        raise DetectorError("propose-detection needs the OpenVINO engine of detectors.yolo")
    tiled = TiledDetector(detector.runner(), TileSettings(scale=OBSERVE_SCALE))
    region = MeasuredRegion.of_camera(cfg, camera_id) or MeasuredRegion(0.0, 0.0, 1.0, 1.0)
    seen: list[SeenVehicle] = []
    for image in images:
        height, width = int(image.shape[0]), int(image.shape[1])
        polygons = [
            PreparedPolygon(to_pixels(s.polygon, width, height)) for s in cfg.segments_of(camera_id)
        ]
        (found,) = tiled.detect([image], [region.pixels(width, height)])
        xyxy = found.xyxy.astype(np.float64)
        anchors = np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2.0, xyxy[:, 3]], axis=1)
        inside = np.zeros(len(found), dtype=bool)
        for polygon in polygons:
            inside |= polygon.contains(anchors)
        seen += [SeenVehicle(b[3] / height, b[3] - b[1]) for b in xyxy[inside].tolist()]
    return seen


def propose_detection(
    cfg: AtcsConfig,
    camera_id: str,
    detector: Detector,
    *,
    frames: int = 12,
    step: int = 25,
    target: float = 0.9,
) -> Proposal:
    """Observe ``camera_id`` and propose its cheapest setting meeting ``target`` recall."""
    if not cfg.segments_of(camera_id):
        raise ConfigError(f"camera {camera_id!r} has no segment: nothing to measure")
    if frames < 1 or step < 1 or not 0.0 < target <= 1.0:
        raise ConfigError(
            f"--frames and --step must be at least 1 and --recall in (0, 1], "
            f"got {frames}, {step}, {target}"
        )
    images = read_frames(cfg, camera_id, frames, step)
    seen = observe(cfg, camera_id, detector, images)
    height, width = int(images[0].shape[0]), int(images[0].shape[1])
    camera = cfg.camera(camera_id)
    region = MeasuredRegion.of_camera(cfg, camera_id) or MeasuredRegion(0.0, 0.0, 1.0, 1.0)
    cands = candidates(
        seen, region, (width, height), image_size_px=cfg.detector.image_size_px,
        far_below_px=camera.detection.far_below_px, tile=tile_settings(camera),
    )  # fmt: skip
    pick, met = cheapest(cands, target)
    return Proposal(
        camera_id, len(images), (width, height), tuple(seen), tuple(cands), pick, met, target
    )
