"""The pipelined OpenVINO YOLO detector: same detections as ultralytics, more frames/s.

Each image is letterboxed exactly as ultralytics does (:mod:`detectors.letterbox`) straight
into an inference request's input tensor; requests run asynchronously in OpenVINO's own
threads while this thread prepares the next batch and decodes finished ones
(:mod:`detectors.postprocess`, numpy NMS equal to ultralytics'). ``streams + 1`` requests
are kept in flight; images of one input shape that follow each other share a request (up to
four on a CPU with AMX, one on other CPUs, ``batch_max_frames`` on other devices; see
:func:`images_per_request`). An image's result never depends on which other images were
detected with it.

Not thread-safe: one thread at a time calls a detector (the service's detector worker, or
the survey loop).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from atcs.errors import DetectorError
from atcs.types import Detections, Image

from .base import RegionOf, Regions, batched
from .classes import ClassMap
from .crop import WHOLE_FRAME_SHARE, CropWindow, PixelBox, ShapeSet, plan_window
from .letterbox import (
    PAD_VALUE,
    LetterboxGeometry,
    Placement,
    letterbox_geometry,
    stride_multiple,
)
from .model_files import ModelSource, short_error
from .openvino_model import MAX_COMPILED_SHAPES, OpenVinoModel, Variant, cpu_has_amx_int8
from .postprocess import DecodeSettings, decode, decode_end_to_end
from .settings import YoloSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_GEOMETRIES = 64
MAX_PLACEMENTS = 1024
"""Crop placements remembered (one per image size and measured region)."""
CHUNK_REQUESTS = 2
"""Stream items submitted together, in full requests: images of one size that follow each
other in the stream (a batch sorted by input shape) then fill requests across a boundary."""


def _worth_cropping(window: CropWindow) -> bool:
    """Tell whether a window is clearly smaller than the whole-frame input.

    A window may hold the whole image: where the whole frame is letterboxed into a square
    input (as ultralytics runs INT8 models on CPUs with AMX, see
    :mod:`detectors.openvino_model`), a 16:9 image's window drops the padding above and
    below it, 40 % of the input. Where the whole frame already gets the smallest rectangle
    the window covers nearly all of the input and is not used.
    """
    return window.area_share < WHOLE_FRAME_SHARE


def images_per_request(
    fixed_batch: int | None, device: str, settings: YoloSettings, *, amx: bool = False
) -> int:
    """Return how many images (of one input size) go in one inference request at most.

    An export with a fixed batch takes exactly that many. On the CPU, several requests stay
    in flight; each holds one image, or up to four on a CPU with AMX, where batches were
    measured cheaper per image (yolo11n INT8, CPU time per image of the compiled model
    alone, 2 streams, 2026-12-06 on a quiet 2-core machine: 640x352 20.8 / 18.1 / 16.2 ms
    for 1 / 2 / 4 images, 640x384 23.1 / - / 17.3 ms, 512x288 14.2 / - / 10.8 ms, 640x640
    32.1 / 30.4 / 29.5 ms), each image's output bit-identical whatever images share its
    request. Without AMX (AMD Zen 4) batching was measured no cheaper (53 frames per
    CPU-second, batch 1 vs 4). Other devices (GPUs) batch up to ``batch_max_frames``. The
    images of one size are split into requests of powers of two (4, 2, 1; see
    :func:`request_sizes`), so each input shape compiles at most three variants.
    ``settings.images_per_request`` overrides the rule (``benchmarks/bench_batching.py``
    measures it).
    """
    if fixed_batch is not None:
        return fixed_batch
    if settings.images_per_request is not None:
        return settings.images_per_request
    if device == "CPU":
        return 4 if amx else 1
    return settings.batch_max_frames


def request_sizes(count: int, most: int, *, fixed: bool = False) -> list[int]:
    """Split ``count`` images of one input size into request sizes of at most ``most``.

    Powers of two, largest first (7 images, most 4: 4, 2, 1), so that an input shape only
    ever needs requests of 1, 2, 4, ... images (each a compiled variant). A ``fixed`` batch
    export takes ``most`` images per request, the last one padded.
    """
    if fixed:
        return [min(most, count - start) for start in range(0, count, most)]
    sizes: list[int] = []
    left = count
    while left > 0:
        size = 1 << (min(left, most).bit_length() - 1)
        sizes.append(size)
        left -= size
    return sizes


def openvino_device(device: str) -> str:
    """Return the OpenVINO device of a setting: ``cpu`` CPU, ``intel:gpu`` GPU, ``intel`` AUTO."""
    text = device.strip().lower()
    if text in {"", "cpu"}:
        return "CPU"
    if text.startswith("intel"):
        return text.partition(":")[2].upper() or "AUTO"
    raise DetectorError(f"device {device!r} cannot run an OpenVINO model; use cpu or intel:<dev>")


@dataclass(slots=True)
class _Job:
    """One inference request in flight: which chunk slots it holds and their geometry."""

    variant: Variant
    request: Any
    slots: list[int]
    placements: list[Placement]


@dataclass(slots=True)
class _Chunk(Generic[T]):
    """Consecutive stream items whose requests were submitted together."""

    items: list[T]
    jobs: list[_Job] = field(default_factory=list)


class OpenVinoYolo:
    """A YOLO detection export run by OpenVINO with pipelined asynchronous requests."""

    def __init__(self, source: ModelSource, settings: YoloSettings) -> None:
        if source.path is None:
            raise DetectorError(f"model {source.spec!r} is not an OpenVINO export")
        self.settings = settings
        self._device = openvino_device(settings.device)
        self._model = OpenVinoModel(source.path, self._device)
        info = self._model.info
        self._decode_settings = DecodeSettings(
            confidence=settings.confidence,
            nms_iou=settings.nms_iou,
            max_detections=settings.max_detections,
            class_map=ClassMap(info.names, settings.classes),
        )
        self._decode = decode_end_to_end if info.end_to_end else decode
        size = stride_multiple(settings.image_size_px, info.stride)
        self._target = info.fixed_input or (size, size)
        self._minimum_rectangle = info.fixed_input is None and not info.square_static
        self._batch = images_per_request(
            info.fixed_batch, self._device, settings, amx=cpu_has_amx_int8()
        )
        # every input shape may compile one variant per request size (1, 2, 4, ...)
        variants = 1 if info.fixed_batch is not None else self._batch.bit_length()
        self._model.max_shapes = (MAX_COMPILED_SHAPES + settings.crop_max_shapes) * variants
        self._inflight_limit = settings.inflight_requests
        self._timeout_ms = max(1, round(settings.inference_timeout_s * 1000))
        self._geometries: dict[tuple[int, int], LetterboxGeometry] = {}
        self._crop_step = stride_multiple(settings.crop_step_px, info.stride)
        self._shapes = ShapeSet(settings.crop_max_shapes, info.stride)
        self._placements: dict[tuple[int, int, PixelBox], Placement] = {}
        self._closed = False
        self._name = f"yolo {source.display_name} (openvino {self._device})"
        logger.info(
            "detector %s: input %s, %d image(s) per request, classes %s",
            self._name,
            "x".join(map(str, self._target)) if not self._minimum_rectangle else f"{size} px rect",
            self._batch,
            ",".join(v.label for v in settings.classes),
        )

    @property
    def name(self) -> str:
        """Model folder and engine, for logs."""
        return self._name

    @property
    def class_map(self) -> ClassMap:
        """Which model classes are kept and what they map to."""
        return self._decode_settings.class_map

    @property
    def stride(self) -> int:
        """The model's stride in pixels (input sizes and windows are multiples of it)."""
        return int(self._model.info.stride)

    def geometry(self, height_px: int, width_px: int) -> LetterboxGeometry:
        """Letterbox geometry of an image of this size (cached per size)."""
        key = (height_px, width_px)
        found = self._geometries.get(key)
        if found is None:
            if len(self._geometries) >= MAX_GEOMETRIES:
                self._geometries.clear()
            found = letterbox_geometry(
                height_px, width_px, self._target, self._model.info.stride,
                self._minimum_rectangle,
            )  # fmt: skip
            self._geometries[key] = found
        return found

    def placement(self, height_px: int, width_px: int, region: PixelBox | None) -> Placement:
        """Where an image of this size goes in the model input, cropped to ``region``.

        The whole frame's letterbox when ``region`` is None, when its window would cover
        most of the whole-frame input anyway, or when no input shape is left for it (see
        :class:`detectors.crop.ShapeSet`); otherwise a :class:`detectors.crop.CropWindow`.
        """
        whole = self.geometry(height_px, width_px)
        if region is None or self._model.info.fixed_input is not None:
            return whole
        key = (height_px, width_px, region)
        found = self._placements.get(key)
        if found is None:
            if len(self._placements) >= MAX_PLACEMENTS:
                self._placements.clear()
            found = whole
            window = plan_window(
                whole, region, margin_px=self.settings.crop_margin_px, step_px=self._crop_step
            )
            if window is not None and _worth_cropping(window):
                fitted = self._shapes.fit(window)
                if fitted is not None and _worth_cropping(fitted):
                    found = fitted
            self._placements[key] = found
        return found

    def detect(self, images: Sequence[Image], regions: Regions | None = None) -> list[Detections]:
        """One :class:`Detections` per image, boxes in that image's pixels.

        With ``regions`` each image is cropped to a window around its region (see
        :meth:`placement`). Images of one input size are submitted next to each other, so
        that they can share requests.
        """
        if regions is not None and len(regions) != len(images):
            raise DetectorError(f"{len(images)} images but {len(regions)} regions")

        def shape(index: int) -> tuple[int, int]:
            image = images[index]
            if image.ndim < 2:
                return (0, 0)
            region = None if regions is None else regions[index]
            return self.placement(int(image.shape[0]), int(image.shape[1]), region).input_shape

        order = sorted(range(len(images)), key=shape)
        found = self.detect_stream(
            order, images.__getitem__, None if regions is None else regions.__getitem__
        )
        results: list[Detections] = [Detections.empty()] * len(images)
        for index, detections in found:
            results[index] = detections
        return results

    def detect_stream(
        self,
        items: Iterable[T],
        image_of: Callable[[T], Image],
        region_of: RegionOf[T] | None = None,
    ) -> Generator[tuple[T, Detections], None, None]:
        """Yield ``(item, detections)`` in input order, keeping several requests in flight."""
        if self._closed:
            raise DetectorError(f"detector {self._name} is closed")
        return self._stream(items, image_of, region_of)

    def close(self) -> None:
        """Release the compiled model; idempotent."""
        if not self._closed:
            self._closed = True
            self._model.close()

    def detect_placed(self, jobs: Sequence[tuple[Image, Placement]]) -> list[Detections]:
        """Detect each image at its own placement (a tile, a crop window, a letterbox).

        Boxes come back in the image's pixels. Used for tiling (:mod:`detectors.tiles`):
        several windows of one frame, each a separate model input, run in flight together.
        """
        if self._closed:
            raise DetectorError(f"detector {self._name} is closed")
        indices = sorted(range(len(jobs)), key=lambda k: jobs[k][1].input_shape)
        results: list[Detections] = [Detections.empty()] * len(jobs)
        for index, found in self._stream(
            indices, lambda k: jobs[k][0], None, placement_of=lambda k: jobs[k][1]
        ):
            results[index] = found
        return results

    def _stream(
        self,
        items: Iterable[T],
        image_of: Callable[[T], Image],
        region_of: RegionOf[T] | None,
        placement_of: Callable[[T], Placement] | None = None,
    ) -> Generator[tuple[T, Detections], None, None]:
        pending: deque[_Chunk[T]] = deque()
        running = 0
        try:
            for chunk_items in batched(items, CHUNK_REQUESTS * self._batch):
                chunk = self._submit(chunk_items, image_of, region_of, placement_of)
                pending.append(chunk)
                running += len(chunk.jobs)
                while pending and running >= self._limit(chunk):
                    done = pending.popleft()
                    running -= len(done.jobs)
                    yield from self._collect(done)
            while pending:
                yield from self._collect(pending.popleft())
        finally:
            while pending:
                self._abandon(pending.popleft())

    def _limit(self, chunk: _Chunk[T]) -> int:
        if self._inflight_limit is None:
            self._inflight_limit = self._model.optimal_requests(chunk.jobs[0].variant) + 1
            logger.debug("%s keeps %d requests in flight", self._name, self._inflight_limit)
        return self._inflight_limit

    def _submit(
        self,
        chunk_items: list[T],
        image_of: Callable[[T], Image],
        region_of: RegionOf[T] | None,
        placement_of: Callable[[T], Placement] | None,
    ) -> _Chunk[T]:
        chunk = _Chunk(chunk_items)
        groups: dict[tuple[int, int], list[tuple[int, Image, Placement]]] = {}
        for slot, item in enumerate(chunk_items):
            image = image_of(item)
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                self._abandon(chunk)
                raise DetectorError(
                    f"image must be HxWx3 uint8 BGR, got shape {image.shape} dtype {image.dtype}"
                )
            if placement_of is not None:
                placement = placement_of(item)
            else:
                region = None if region_of is None else region_of(item)
                placement = self.placement(int(image.shape[0]), int(image.shape[1]), region)
            groups.setdefault(placement.input_shape, []).append((slot, image, placement))
        try:
            fixed = self._model.info.fixed_batch is not None
            for (height, width), members in groups.items():
                start = 0
                for size in request_sizes(len(members), self._batch, fixed=fixed):
                    chunk.jobs.append(self._start(members[start : start + size], height, width))
                    start += size
        except BaseException:
            self._abandon(chunk)
            raise
        return chunk

    def _start(self, part: list[tuple[int, Image, Placement]], height: int, width: int) -> _Job:
        size = self._model.info.fixed_batch or len(part)
        variant = self._model.variant(size, height, width)
        request = self._model.acquire(variant)
        try:
            tensor = request.get_input_tensor(0).data
            for k, (_, image, placement) in enumerate(part):
                placement.fill(image, tensor[k])
            if len(part) < size:
                tensor[len(part) :] = PAD_VALUE
            request.start_async()
        except Exception as exc:
            self._model.release(variant, request)
            if isinstance(exc, DetectorError):
                raise
            raise DetectorError(f"inference could not start: {short_error(exc)}") from exc
        return _Job(variant, request, [p[0] for p in part], [p[2] for p in part])

    def _wait(self, job: _Job) -> None:
        try:
            finished = job.request.wait_for(self._timeout_ms)
        except Exception as exc:
            self._model.release(job.variant, job.request)
            raise DetectorError(f"inference failed: {short_error(exc)}") from exc
        if not finished:
            raise DetectorError(
                f"inference took longer than {self.settings.inference_timeout_s:g} s; "
                "the request is abandoned"
            )

    def _collect(self, chunk: _Chunk[T]) -> Generator[tuple[T, Detections], None, None]:
        results: list[Detections | None] = [None] * len(chunk.items)
        try:
            while chunk.jobs:
                job = chunk.jobs.pop(0)
                self._wait(job)
                try:
                    output = job.request.get_output_tensor(0).data
                    for k, (slot, placement) in enumerate(
                        zip(job.slots, job.placements, strict=True)
                    ):
                        results[slot] = self._decode(output[k], self._decode_settings, placement)
                finally:
                    self._model.release(job.variant, job.request)
        except BaseException:
            self._abandon(chunk)
            raise
        for item, found in zip(chunk.items, results, strict=True):
            if found is None:  # pragma: no cover - every slot belongs to one job
                raise DetectorError("internal error: an image got no result")
            yield item, found

    def _abandon(self, chunk: _Chunk[T]) -> None:
        """Wait for a chunk's requests without decoding them, so they can be reused."""
        for job in chunk.jobs:
            try:
                finished = job.request.wait_for(self._timeout_ms)
            except Exception:  # the stream is being torn down; the request is simply reused
                finished = True
            if finished:
                self._model.release(job.variant, job.request)
        chunk.jobs.clear()
