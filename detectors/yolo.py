"""The ultralytics YOLO vehicle detector.

``YoloDetector(YoloSettings(model=...))`` checks the model setting, then runs the model with
the fastest engine that gives ultralytics' own detections:

- an OpenVINO export (``*_openvino_model/`` or its ``.xml``) on the CPU or an Intel device
  runs on :class:`detectors.openvino_yolo.OpenVinoYolo`, the engine's pipelined OpenVINO
  runner (same letterbox, same NMS, several asynchronous requests in flight);
- anything else (``.pt`` weights, a model name such as ``yolo11n.pt`` that ultralytics
  downloads when online, other exports, CUDA devices) runs through ``ultralytics.YOLO``
  in batches (:class:`detectors.ultralytics_yolo.UltralyticsYolo`).

Every problem with the model (missing, unreadable, not a detection model, cannot be
downloaded) is one :class:`atcs.errors.DetectorError` whose message says what to fix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterable, Sequence
from types import TracebackType
from typing import TypeVar

from atcs.errors import DetectorError
from atcs.types import Detections, Image

from .base import RegionOf, Regions
from .classes import ClassMap
from .crop import PixelBox
from .letterbox import Placement
from .model_files import ModelKind, ModelSource, resolve_model
from .openvino_yolo import OpenVinoYolo
from .settings import Engine, YoloSettings
from .ultralytics_yolo import UltralyticsYolo

logger = logging.getLogger(__name__)

T = TypeVar("T")


def choose_engine(source: ModelSource, settings: YoloSettings) -> Engine:
    """Return the engine that runs ``source`` under ``settings`` (never ``AUTO``)."""
    if settings.engine is Engine.OPENVINO:
        if source.kind is not ModelKind.OPENVINO:
            raise DetectorError(
                f"engine 'openvino' needs an OpenVINO export (.xml/.bin folder), "
                f"got {source.spec!r}"
            )
        return Engine.OPENVINO
    if settings.engine is Engine.ULTRALYTICS:
        return Engine.ULTRALYTICS
    if source.kind is ModelKind.OPENVINO and settings.on_cpu_or_intel:
        return Engine.OPENVINO
    return Engine.ULTRALYTICS


class YoloDetector:
    """A YOLO model detecting the configured vehicle classes (see the module docstring).

    Implements :class:`detectors.base.Detector`; usable as a context manager.
    """

    def __init__(self, settings: YoloSettings) -> None:
        self.settings = settings
        self.source = resolve_model(settings.model)
        self.engine = choose_engine(self.source, settings)
        self._impl: OpenVinoYolo | UltralyticsYolo
        if self.engine is Engine.OPENVINO:
            self._impl = OpenVinoYolo(self.source, settings)
        else:
            self._impl = UltralyticsYolo(self.source, settings)

    @property
    def name(self) -> str:
        """Model and engine, for logs and reports."""
        return self._impl.name

    @property
    def class_map(self) -> ClassMap:
        """Which model classes are kept and the vehicle class each one maps to."""
        return self._impl.class_map

    def placement(self, height_px: int, width_px: int, region: PixelBox | None) -> Placement | None:
        """Where an image of this size cropped to ``region`` goes in the model input.

        A :class:`detectors.crop.CropWindow` when the image is cropped, its whole-frame
        letterbox when not; None for the ultralytics engine (whole images, its own letterbox).
        """
        if isinstance(self._impl, OpenVinoYolo):
            return self._impl.placement(height_px, width_px, region)
        return None

    def runner(self) -> OpenVinoYolo:
        """Return the OpenVINO runner, for placements of one's own; raise on other engines."""
        if not isinstance(self._impl, OpenVinoYolo):
            raise DetectorError(
                f"tiling needs the OpenVINO engine; {self.name} runs on {self.engine.value}"
            )
        return self._impl

    def detect(self, images: Sequence[Image], regions: Regions | None = None) -> list[Detections]:
        """One :class:`Detections` per image (HxWx3 uint8 BGR), boxes in its own pixels.

        ``regions``: see :meth:`detectors.base.Detector.detect` (the OpenVINO runner crops
        to them; the ultralytics engine detects on whole images).
        """
        return self._impl.detect(images, regions)

    def detect_stream(
        self,
        items: Iterable[T],
        image_of: Callable[[T], Image],
        region_of: RegionOf[T] | None = None,
    ) -> Generator[tuple[T, Detections], None, None]:
        """Yield ``(item, detections)`` for every item, in order, with inferences in flight.

        At most about ``batch_max_frames x (requests in flight)`` items are held at once.
        """
        return self._impl.detect_stream(items, image_of, region_of)

    def close(self) -> None:
        """Release the model; idempotent."""
        self._impl.close()

    def __enter__(self) -> YoloDetector:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
