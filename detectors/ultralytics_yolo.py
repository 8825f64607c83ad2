"""Any YOLO model ultralytics loads (``.pt``, ONNX, TorchScript, exports), run by ultralytics.

Images of one size are passed to ultralytics together (one batched call of up to
``batch_max_frames``); images of different sizes go in separate calls, because ultralytics
pads a mixed batch to a full square and the boxes would then depend on the batch.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Generator, Iterable, Sequence
from types import ModuleType
from typing import Any, TypeVar

import numpy as np

from atcs.errors import DetectorError
from atcs.types import Detections, Image

from .base import RegionOf, Regions, batched, stream_in_batches
from .classes import ClassMap
from .model_files import MODEL_HINT, ModelKind, ModelSource, short_error
from .settings import YoloSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

ULTRALYTICS_ENV_DEFAULTS = {
    "YOLO_OFFLINE": "1",  # no telemetry or update checks; downloads of named models still run
    "YOLO_AUTOINSTALL": "False",  # never pip-install packages behind the user's back
    "YOLO_VERBOSE": "False",  # the engine logs what matters itself
}


def import_ultralytics() -> ModuleType:
    """Import ultralytics after setting its environment defaults (the user's values win)."""
    for key, value in ULTRALYTICS_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        return importlib.import_module("ultralytics")
    except ImportError as exc:
        raise DetectorError(
            f"the ultralytics package cannot be imported ({exc}); pip install ultralytics"
        ) from exc


def _load_error(source: ModelSource, exc: BaseException) -> DetectorError:
    if source.kind is ModelKind.NAME:
        return DetectorError(
            f"model {source.spec!r} could not be found locally or downloaded "
            f"({short_error(exc)}); without internet, {MODEL_HINT}"
        )
    return DetectorError(
        f"model {source.spec} could not be loaded ({short_error(exc)}); {MODEL_HINT}"
    )


class UltralyticsYolo:
    """A YOLO model run through ``ultralytics.YOLO``, batched per image size."""

    def __init__(self, source: ModelSource, settings: YoloSettings) -> None:
        self.settings = settings
        ultralytics = import_ultralytics()
        target = str(source.path) if source.path is not None else source.spec
        if source.kind is ModelKind.OPENVINO and source.path is not None:
            target = str(source.path.parent)  # ultralytics wants the export folder
        try:
            self._model: Any = ultralytics.YOLO(target, task="detect")
            task = getattr(self._model, "task", "detect")
            if task != "detect":
                raise DetectorError(f"model {source.spec} is a {task!r} model, not detection")
            self._names: dict[int, str] = {int(k): str(v) for k, v in self._model.names.items()}
        except DetectorError:
            raise
        except Exception as exc:
            raise _load_error(source, exc) from exc
        self._class_map = ClassMap(self._names, settings.classes)
        self._classes = list(self._class_map.model_ids)
        self._closed = False
        self._name = f"yolo {source.display_name} (ultralytics {settings.device})"
        try:  # run once now, so that a model that loads but cannot run fails here
            self._predict([np.zeros((64, 64, 3), dtype=np.uint8)])
        except Exception as exc:
            raise _load_error(source, exc) from exc
        logger.info("detector %s ready", self._name)

    @property
    def name(self) -> str:
        """Model and engine, for logs."""
        return self._name

    @property
    def class_map(self) -> ClassMap:
        """Which model classes are kept and what they map to."""
        return self._class_map

    def _predict(self, images: list[Image]) -> list[Detections]:
        s = self.settings
        results = self._model.predict(
            images,
            imgsz=s.image_size_px,
            conf=s.confidence,
            iou=s.nms_iou,
            classes=self._classes,
            max_det=s.max_detections,
            device=s.device,
            verbose=False,
        )
        found = []
        for result in results:
            boxes = result.boxes
            model_class = boxes.cls.cpu().numpy().astype(np.int64)
            found.append(
                Detections(
                    xyxy=boxes.xyxy.cpu().numpy().astype(np.float32),
                    confidence=boxes.conf.cpu().numpy().astype(np.float32),
                    class_id=self._class_map.to_vehicle(model_class),
                )
            )
        return found

    def detect(self, images: Sequence[Image], regions: Regions | None = None) -> list[Detections]:
        """One :class:`Detections` per image, boxes in that image's pixels.

        ``regions`` is ignored: ultralytics detects on whole images.
        """
        if self._closed:
            raise DetectorError(f"detector {self._name} is closed")
        results: list[Detections | None] = [None] * len(images)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, image in enumerate(images):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise DetectorError(
                    f"image must be HxWx3 uint8 BGR, got shape {image.shape} dtype {image.dtype}"
                )
            by_shape.setdefault(image.shape, []).append(index)
        for indices in by_shape.values():
            for part in batched(indices, self.settings.batch_max_frames):
                try:
                    found = self._predict([images[i] for i in part])
                except Exception as exc:
                    raise DetectorError(f"inference failed: {short_error(exc)}") from exc
                for index, detections in zip(part, found, strict=True):
                    results[index] = detections
        return [Detections.empty() if r is None else r for r in results]

    def detect_stream(
        self,
        items: Iterable[T],
        image_of: Callable[[T], Image],
        region_of: RegionOf[T] | None = None,
    ) -> Generator[tuple[T, Detections], None, None]:
        """Yield ``(item, detections)`` in order, ``batch_max_frames`` items per call."""
        return stream_in_batches(
            self.detect, items, image_of, self.settings.batch_max_frames, region_of
        )

    def close(self) -> None:
        """Drop the model; idempotent."""
        self._closed = True
        self._model = None
