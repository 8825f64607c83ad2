"""Crop geometry: detect only where it is measured, at the whole frame's pixel scale.

A camera's segments and counting lines usually cover part of the image. Instead of running
the model on the whole letterboxed frame, the detector can run it on a *window* of that
same letterboxed frame: the rectangle, in model-input pixels, that holds the measured region
plus a margin, with edges on the model's stride grid. Inside the window every pixel is the
one the whole-frame input would have held (same resize, same scale, same position on the
stride grid), so a vehicle inside it is seen exactly as in the whole frame; only the context
beyond the window is missing, which the margin keeps away from the measured region.

Pure geometry, no model: :func:`plan_window` places a window, :meth:`CropWindow.fill` writes
the window's pixels into a model input, :meth:`CropWindow.boxes_to_image` maps boxes found in
it back to image pixels, and :class:`ShapeSet` keeps the number of distinct input shapes (each
one a compiled model) bounded. Tiling can reuse the same pieces: a tile is a window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from atcs.errors import DetectorError
from atcs.types import Image

from .letterbox import PAD_VALUE, LetterboxGeometry, boxes_to_image

WHOLE_FRAME_SHARE = 0.9
"""A window covering at least this share of the whole-frame input is not worth cropping."""


@dataclass(frozen=True, slots=True)
class PixelBox:
    """An axis-aligned rectangle in image pixels: ``x0 <= x <= x1``, ``y0 <= y <= y1``."""

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        values = (self.x0, self.y0, self.x1, self.y1)
        if not all(math.isfinite(v) for v in values):
            raise DetectorError(f"box coordinates must be finite, got {values}")
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise DetectorError(f"box must have x0 < x1 and y0 < y1, got {values}")

    @classmethod
    def around(cls, points: Iterable[tuple[float, float]]) -> PixelBox:
        """Return the smallest box holding ``points`` (x, y) px; a degenerate one gets 1 px."""
        xs, ys = [], []
        for x, y in points:
            xs.append(float(x))
            ys.append(float(y))
        if not xs:
            raise DetectorError("a box needs at least one point")
        x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
        return cls(x0, y0, max(x1, x0 + 1.0), max(y1, y0 + 1.0))

    @property
    def width_px(self) -> float:
        """Width in pixels."""
        return self.x1 - self.x0

    @property
    def height_px(self) -> float:
        """Height in pixels."""
        return self.y1 - self.y0

    def union(self, other: PixelBox) -> PixelBox:
        """Return the smallest box holding both."""
        return PixelBox(
            min(self.x0, other.x0), min(self.y0, other.y0),
            max(self.x1, other.x1), max(self.y1, other.y1),
        )  # fmt: skip

    def clipped(self, width_px: int, height_px: int) -> PixelBox | None:
        """Return the part inside a ``width_px`` x ``height_px`` image, or None if none is."""
        x0, y0 = max(self.x0, 0.0), max(self.y0, 0.0)
        x1, y1 = min(self.x1, float(width_px)), min(self.y1, float(height_px))
        if x1 <= x0 or y1 <= y0:
            return None
        return PixelBox(x0, y0, x1, y1)


@dataclass(frozen=True, slots=True)
class CropWindow:
    """A window of a frame's letterboxed model input; the model runs on the window alone.

    ``frame`` is where the whole image lands in the whole-frame input (size, scale,
    padding); ``top_px``, ``left_px``, ``height_px``, ``width_px`` place the window in that
    input, in model-input pixels, on the model's stride grid. A window may reach past the
    whole-frame input (it is then padded grey there, as the letterbox pads).
    """

    frame: LetterboxGeometry
    top_px: int
    left_px: int
    height_px: int
    width_px: int

    def __post_init__(self) -> None:
        if self.height_px < 1 or self.width_px < 1:
            raise DetectorError(f"empty crop window {self.width_px}x{self.height_px}")

    @property
    def input_shape(self) -> tuple[int, int]:
        """Model input (height, width) in pixels: the window's size."""
        return (self.height_px, self.width_px)

    @property
    def scale(self) -> float:
        """Model-input pixels per image pixel (the whole frame's letterbox ratio)."""
        return self.frame.resized_width_px / self.frame.image_width_px

    @property
    def holds_whole_image(self) -> bool:
        """True when every pixel of the resized image lies inside the window (nothing cut)."""
        g = self.frame
        return (
            self.top_px <= g.top_px
            and self.left_px <= g.left_px
            and self.top_px + self.height_px >= g.top_px + g.resized_height_px
            and self.left_px + self.width_px >= g.left_px + g.resized_width_px
        )

    @property
    def area_share(self) -> float:
        """Window area over the whole-frame input's area."""
        g = self.frame
        return (self.height_px * self.width_px) / (g.input_height_px * g.input_width_px)

    def source_box(self) -> PixelBox | None:
        """Return the part of the image the window shows, image px (None: only padding)."""
        g = self.frame
        sx = g.image_width_px / g.resized_width_px
        sy = g.image_height_px / g.resized_height_px
        box = PixelBox(
            (self.left_px - g.left_px) * sx, (self.top_px - g.top_px) * sy,
            (self.left_px + self.width_px - g.left_px) * sx,
            (self.top_px + self.height_px - g.top_px) * sy,
        )  # fmt: skip
        return box.clipped(g.image_width_px, g.image_height_px)

    def fill(self, image: Image, out: Image) -> None:
        """Write the window of ``image``'s letterboxed input into ``out`` (HxWx3 uint8).

        The image is resized exactly as the whole-frame letterbox resizes it, so every pixel
        inside the window equals the whole-frame input's pixel at the same place.
        """
        g = self.frame
        if image.shape[:2] != (g.image_height_px, g.image_width_px):
            raise DetectorError(
                f"image is {image.shape[1]}x{image.shape[0]} px, the crop window was planned "
                f"for {g.image_width_px}x{g.image_height_px}"
            )
        if out.shape != (self.height_px, self.width_px, 3):
            raise DetectorError(f"crop buffer has shape {out.shape}, expected {self.input_shape}")
        resized: Image = image
        if (g.image_height_px, g.image_width_px) != (g.resized_height_px, g.resized_width_px):
            resized = np.asarray(
                cv2.resize(
                    image, (g.resized_width_px, g.resized_height_px), interpolation=cv2.INTER_LINEAR
                ),
                dtype=np.uint8,
            )
        rows = _overlap(self.top_px, self.height_px, g.top_px, g.resized_height_px)
        cols = _overlap(self.left_px, self.width_px, g.left_px, g.resized_width_px)
        if rows is None or cols is None:
            out[...] = PAD_VALUE
            return
        (r0, r1), (c0, c1) = rows, cols
        out[: r0 - self.top_px] = PAD_VALUE
        out[r1 - self.top_px :] = PAD_VALUE
        band = out[r0 - self.top_px : r1 - self.top_px]
        band[:, : c0 - self.left_px] = PAD_VALUE
        band[:, c1 - self.left_px :] = PAD_VALUE
        band[:, c0 - self.left_px : c1 - self.left_px] = resized[
            r0 - g.top_px : r1 - g.top_px, c0 - g.left_px : c1 - g.left_px
        ]

    def boxes_to_image(self, xyxy: npt.NDArray[np.float32]) -> None:
        """Map boxes (N, 4) from window pixels to image pixels, in place, clipped to the image.

        The window offset is added, then the whole frame's letterbox is undone with the
        same arithmetic as for a whole-frame detection.
        """
        xyxy[:, [0, 2]] += np.float32(self.left_px)
        xyxy[:, [1, 3]] += np.float32(self.top_px)
        boxes_to_image(xyxy, self.frame)


def _overlap(
    start: int, length: int, other_start: int, other_length: int
) -> tuple[int, int] | None:
    lo, hi = max(start, other_start), min(start + length, other_start + other_length)
    return (lo, hi) if hi > lo else None


def plan_window(
    frame: LetterboxGeometry, region: PixelBox, *, margin_px: int, step_px: int
) -> CropWindow | None:
    """Place the window holding ``region`` (image pixels) plus ``margin_px`` (model pixels).

    The margin stops at the image's edges (beyond them is only padding); the edges are then
    snapped outward to multiples of ``step_px`` (a multiple of the model stride) counted
    from the whole-frame input's corner, inside that input. None when the region lies
    outside the image.
    """
    if step_px < 1 or margin_px < 0:
        raise DetectorError(f"crop step must be >= 1 and margin >= 0, got {step_px}, {margin_px}")
    g = frame
    inside = region.clipped(g.image_width_px, g.image_height_px)
    if inside is None:
        return None
    gx = g.resized_width_px / g.image_width_px
    gy = g.resized_height_px / g.image_height_px
    top, bottom = _snap(
        (g.top_px + inside.y0 * gy, g.top_px + inside.y1 * gy), margin_px,
        (g.top_px, g.top_px + g.resized_height_px), step_px, g.input_height_px,
    )  # fmt: skip
    left, right = _snap(
        (g.left_px + inside.x0 * gx, g.left_px + inside.x1 * gx), margin_px,
        (g.left_px, g.left_px + g.resized_width_px), step_px, g.input_width_px,
    )  # fmt: skip
    return CropWindow(g, top, left, bottom - top, right - left)


def _snap(
    span: tuple[float, float], margin: int, image: tuple[int, int], step: int, limit: int
) -> tuple[int, int]:
    """Widen [lo, hi] by ``margin`` within the image's extent, snap it outward to ``step``."""
    lo, hi = max(span[0] - margin, image[0]), min(span[1] + margin, image[1])
    start = max(0, math.floor(lo / step) * step)
    end = min(limit, math.ceil(hi / step) * step)
    if end <= start:  # a region thinner than the grid at the input's edge
        end = min(limit, start + step)
        start = max(0, end - step)
    return start, end


def fit_window(window: CropWindow, shape: tuple[int, int], stride: int) -> CropWindow:
    """Grow ``window`` to ``shape`` (height, width) >= its own, around its centre.

    The new window stays on the ``stride`` grid and inside the whole-frame input where the
    shape fits in it; where it does not, it is centred on that input and padded.
    """
    height, width = shape
    if height < window.height_px or width < window.width_px:
        raise DetectorError(f"shape {shape} is smaller than the window {window.input_shape}")
    g = window.frame
    top = _grow(window.top_px, window.height_px, height, g.input_height_px, stride)
    left = _grow(window.left_px, window.width_px, width, g.input_width_px, stride)
    return CropWindow(g, top, left, height, width)


def _grow(start: int, length: int, new_length: int, limit: int, stride: int) -> int:
    if new_length >= limit:
        return -((new_length - limit) // 2 // stride) * stride
    begin = start - (new_length - length) // 2 // stride * stride
    return min(max(begin, 0), (limit - new_length) // stride * stride)


class ShapeSet:
    """The model input shapes crops may use: at most ``max_shapes`` distinct ones.

    Every distinct shape is one compiled model (memory and start-up time), so windows share
    shapes: a window whose own shape is new takes it while there is room; once the set is
    full it grows to the smallest shape already held that contains it, and when none does it
    is not cropped (the caller detects on the whole frame).
    """

    def __init__(self, max_shapes: int, stride: int) -> None:
        if max_shapes < 0:
            raise DetectorError(f"max_shapes must be >= 0, got {max_shapes}")
        self.max_shapes = max_shapes
        self.stride = stride
        self.shapes: list[tuple[int, int]] = []

    def fit(self, window: CropWindow) -> CropWindow | None:
        """Return the window on a shape of the set (added when there is room), or None."""
        own = window.input_shape
        if own in self.shapes:
            return window
        if len(self.shapes) < self.max_shapes:
            self.shapes.append(own)
            return window
        holding = [s for s in self.shapes if s[0] >= own[0] and s[1] >= own[1]]
        if not holding:
            return None
        best = min(holding, key=lambda s: (s[0] * s[1], s))
        return fit_window(window, best, self.stride)
