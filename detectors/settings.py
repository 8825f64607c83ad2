"""Settings of the YOLO detector (plain data; the service fills them from its config)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from atcs.errors import DetectorError
from atcs.types import VehicleClass


class Engine(enum.Enum):
    """Which code runs a YOLO model.

    ``AUTO`` picks ``OPENVINO`` for an OpenVINO export on a CPU or Intel device and
    ``ULTRALYTICS`` for everything else.
    """

    AUTO = "auto"
    OPENVINO = "openvino"
    """The engine's own pipelined OpenVINO runner (same detections as ultralytics, faster)."""
    ULTRALYTICS = "ultralytics"
    """``ultralytics.YOLO`` itself, batched; any format ultralytics loads."""


@dataclass(frozen=True, slots=True)
class YoloSettings:
    """How to build and run a YOLO detector.

    ``model``: a model name such as ``yolo11n.pt`` (ultralytics downloads it when online) or
    a path to weights or to an exported model folder. ``image_size_px``: inference size in
    pixels (the longer image side is resized to it; a multiple of the model stride).
    ``confidence`` and ``nms_iou``: thresholds in [0, 1] (ultralytics ``conf`` and ``iou``).
    ``classes``: vehicle classes to keep. ``device``: ``cpu``, ``cuda:0``, ``intel:gpu`` ...
    ``batch_max_frames``: most images in one inference call (the OpenVINO engine on the CPU
    runs one image per request with several requests in flight instead, measured faster;
    see :func:`detectors.openvino_yolo.images_per_request`). ``max_detections``: most boxes
    per image. ``inflight_requests``: inference requests kept in flight by the OpenVINO
    engine (None: what OpenVINO recommends for the device, plus one).
    ``images_per_request``: images of one input size per OpenVINO request (None: the
    measured rule of :func:`detectors.openvino_yolo.images_per_request`; set by
    ``benchmarks/bench_batching.py`` to compare).
    ``inference_timeout_s``: longest wait for one inference before it is an error.
    ``crop_margin_px``: context kept around a measured region when the detector crops to it,
    in model-input pixels; ``crop_step_px``: crop windows snap to this grid (a multiple of
    the model stride), so that cameras share input shapes; ``crop_max_shapes``: most
    distinct crop input shapes (each is a compiled model, about 80 MB); see
    :mod:`detectors.crop`.
    """

    model: str
    image_size_px: int = 640
    confidence: float = 0.25
    nms_iou: float = 0.7
    classes: tuple[VehicleClass, ...] = tuple(VehicleClass)
    device: str = "cpu"
    batch_max_frames: int = 4
    max_detections: int = 300
    engine: Engine = Engine.AUTO
    inflight_requests: int | None = None
    images_per_request: int | None = None
    inference_timeout_s: float = 60.0
    crop_margin_px: int = 32
    crop_step_px: int = 32
    crop_max_shapes: int = 6

    def __post_init__(self) -> None:
        problems = []
        if not 32 <= self.image_size_px <= 4096:
            problems.append(f"image_size_px must be in 32..4096, got {self.image_size_px}")
        if not 0.0 <= self.confidence < 1.0:
            problems.append(f"confidence must be in [0, 1), got {self.confidence}")
        if not 0.0 < self.nms_iou <= 1.0:
            problems.append(f"nms_iou must be in (0, 1], got {self.nms_iou}")
        if not self.classes:
            problems.append("classes must name at least one vehicle class")
        if self.batch_max_frames < 1:
            problems.append(f"batch_max_frames must be at least 1, got {self.batch_max_frames}")
        if self.max_detections < 1:
            problems.append(f"max_detections must be at least 1, got {self.max_detections}")
        if self.inflight_requests is not None and self.inflight_requests < 1:
            problems.append(f"inflight_requests must be at least 1, got {self.inflight_requests}")
        if self.images_per_request is not None and not 1 <= self.images_per_request <= 64:
            problems.append(f"images_per_request must be in 1..64, got {self.images_per_request}")
        if self.inference_timeout_s <= 0:
            problems.append(f"inference_timeout_s must be positive, got {self.inference_timeout_s}")
        if not 0 <= self.crop_margin_px <= 1024:
            problems.append(f"crop_margin_px must be in 0..1024, got {self.crop_margin_px}")
        if not 32 <= self.crop_step_px <= 1024 or self.crop_step_px % 32:
            problems.append(
                f"crop_step_px must be a multiple of 32 in 32..1024, got {self.crop_step_px}"
            )
        if not 0 <= self.crop_max_shapes <= 32:
            problems.append(f"crop_max_shapes must be in 0..32, got {self.crop_max_shapes}")
        if problems:
            raise DetectorError("invalid detector settings: " + "; ".join(problems))

    @property
    def on_cpu_or_intel(self) -> bool:
        """True when the device is the CPU or an Intel OpenVINO device (``intel:gpu`` ...)."""
        device = self.device.strip().lower()
        return device in {"", "cpu"} or device.startswith("intel")
