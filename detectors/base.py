"""The Detector protocol every vision plug-in implements, and helpers shared by them.

A detector turns images (HxWx3 uint8 BGR arrays) into :class:`atcs.types.Detections` whose
boxes are in that image's own pixels and whose ``class_id`` holds
:class:`atcs.types.VehicleClass` values (never a model's own class index).

Two ways to call one:

- :meth:`Detector.detect` for a handful of images at once (the service's detector worker
  batching the latest frame of several cameras): one :class:`Detections` per image, in order.
- :meth:`Detector.detect_stream` for a long run of items (the survey reading a recorded clip):
  the detector keeps several inferences in flight while the caller's iterator produces the
  next items, and yields ``(item, detections)`` pairs in input order.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from itertools import islice
from typing import Protocol, TypeVar, runtime_checkable

from atcs.types import Detections, Image

from .crop import PixelBox
from .letterbox import Placement

T = TypeVar("T")
Regions = Sequence[PixelBox | None]
"""Per image, the part of it that is measured (image pixels), or None for all of it."""
RegionOf = Callable[[T], PixelBox | None]
"""Per stream item, the part of its image that is measured, or None for all of it."""


@runtime_checkable
class Detector(Protocol):
    """A vehicle detector: images in, one :class:`Detections` per image out."""

    @property
    def name(self) -> str:
        """Short human-readable name (model and engine), used in logs and reports."""
        ...

    def detect(self, images: Sequence[Image], regions: Regions | None = None) -> list[Detections]:
        """Detect vehicles in ``images``; one result per image, boxes in its own pixels.

        Images may have different sizes. ``regions`` (one per image) says which part of each
        image is measured: a detector may run its model on that part only, at the scale it
        would use for the whole image, so vehicles inside it are found as in the whole image
        and vehicles well outside it may be missing. Raises
        :class:`atcs.errors.DetectorError` when the model fails to run.
        """
        ...

    def detect_stream(
        self,
        items: Iterable[T],
        image_of: Callable[[T], Image],
        region_of: RegionOf[T] | None = None,
    ) -> Generator[tuple[T, Detections], None, None]:
        """Detect vehicles in the image of every item, yielding ``(item, detections)`` in order.

        Implementations may keep several inferences in flight, so a result may come out only
        once a few later items have been taken from ``items`` (or ``items`` ended): use it for
        recorded footage, and :meth:`detect` where each result is wanted at once. The number
        of items held at once is bounded. Closing the returned generator early releases them.
        ``region_of`` gives each item's measured region, as ``regions`` does for :meth:`detect`.
        """
        ...

    def close(self) -> None:
        """Release the model; the detector must not be used afterwards. Idempotent."""
        ...


@runtime_checkable
class CroppingDetector(Detector, Protocol):
    """A detector that says where it puts an image cropped to a region (see ``detect``)."""

    def placement(self, height_px: int, width_px: int, region: PixelBox | None) -> Placement | None:
        """Return the model input an image of this size cropped to ``region`` gets.

        A :class:`detectors.crop.CropWindow` when it is cropped; anything else (its
        whole-frame letterbox, or None) when it is detected whole.
        """
        ...


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Yield lists of at most ``size`` consecutive items (the last one may be shorter)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def stream_in_batches(
    detect: Callable[[Sequence[Image], Regions | None], list[Detections]],
    items: Iterable[T],
    image_of: Callable[[T], Image],
    batch_max_frames: int,
    region_of: RegionOf[T] | None = None,
) -> Generator[tuple[T, Detections], None, None]:
    """Plain :meth:`Detector.detect_stream`: call ``detect`` on batches of consecutive items.

    For detectors without a pipelined engine; holds at most ``batch_max_frames`` items.
    """
    for chunk in batched(items, max(1, batch_max_frames)):
        regions = None if region_of is None else [region_of(item) for item in chunk]
        results = detect([image_of(item) for item in chunk], regions)
        yield from zip(chunk, results, strict=True)
