"""Letterbox geometry, exactly as ultralytics computes it, so boxes and counts match.

ultralytics resizes an image keeping its aspect ratio so that its longer side fits the
inference size, then pads it with grey (114) to the model's input shape. With a model that
accepts any input size (a PyTorch model, a dynamic export) and a batch of images of one size
it pads only to the next multiple of the stride ("minimum rectangle"): a 1280x720 frame runs
as 640x384, not 640x640. :func:`letterbox_geometry` reproduces ``LetterBox.get_params`` and
:func:`boxes_to_image` reproduces ``ops.scale_boxes`` (including its rounding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from atcs.errors import DetectorError
from atcs.types import Image

PAD_VALUE = 114
"""Grey level of the letterbox padding (ultralytics' value)."""


@dataclass(frozen=True, slots=True)
class LetterboxGeometry:
    """Where an image lands in the model input, all in pixels.

    ``image_*`` is the original image, ``input_*`` the model input it is placed in,
    ``resized_*`` the image after resizing, ``top``/``left`` the padding before it.
    """

    image_height_px: int
    image_width_px: int
    input_height_px: int
    input_width_px: int
    resized_height_px: int
    resized_width_px: int
    top_px: int
    left_px: int

    @property
    def input_shape(self) -> tuple[int, int]:
        """Model input (height, width) in pixels."""
        return (self.input_height_px, self.input_width_px)

    def fill(self, image: Image, out: Image) -> None:
        """Letterbox ``image`` into ``out`` (see :func:`letterbox_into`)."""
        letterbox_into(image, self, out)

    def boxes_to_image(self, xyxy: npt.NDArray[np.float32]) -> None:
        """Map boxes from model-input to image pixels in place (see :func:`boxes_to_image`)."""
        boxes_to_image(xyxy, self)


class Placement(Protocol):
    """Where an image goes in a model input and how its boxes come back.

    A whole-frame :class:`LetterboxGeometry` or a :class:`detectors.crop.CropWindow` of one.
    """

    @property
    def input_shape(self) -> tuple[int, int]:
        """Model input (height, width) in pixels."""
        ...

    def fill(self, image: Image, out: Image) -> None:
        """Write the model input for ``image`` into ``out`` (HxWx3 uint8 BGR)."""
        ...

    def boxes_to_image(self, xyxy: npt.NDArray[np.float32]) -> None:
        """Map boxes (N, 4) from model-input pixels to image pixels, in place, clipped."""
        ...


def stride_multiple(size_px: int, stride: int) -> int:
    """Round an inference size up to a multiple of the model stride (ultralytics' check)."""
    return max(math.ceil(size_px / stride) * stride, stride)


def letterbox_geometry(
    height_px: int,
    width_px: int,
    target: tuple[int, int],
    stride: int,
    minimum_rectangle: bool,
) -> LetterboxGeometry:
    """Geometry of placing a ``height_px`` x ``width_px`` image in a ``target`` (h, w) input.

    With ``minimum_rectangle`` the input shrinks to the resized image padded up to a
    multiple of ``stride`` (ultralytics ``auto=True``); otherwise it is exactly ``target``.
    """
    if height_px < 1 or width_px < 1:
        raise DetectorError(f"cannot detect in an empty image of {width_px}x{height_px} px")
    ratio = min(target[0] / height_px, target[1] / width_px)
    new_w = max(round(width_px * ratio), 1)
    new_h = max(round(height_px * ratio), 1)
    dw = target[1] - new_w
    dh = target[0] - new_h
    if minimum_rectangle:
        dw, dh = dw % stride, dh % stride
    half_w, half_h = dw / 2, dh / 2
    top, bottom = round(half_h - 0.1), round(half_h + 0.1)
    left, right = round(half_w - 0.1), round(half_w + 0.1)
    return LetterboxGeometry(
        image_height_px=height_px,
        image_width_px=width_px,
        input_height_px=new_h + top + bottom,
        input_width_px=new_w + left + right,
        resized_height_px=new_h,
        resized_width_px=new_w,
        top_px=top,
        left_px=left,
    )


def letterbox_into(image: Image, geometry: LetterboxGeometry, out: Image) -> None:
    """Resize ``image`` (bilinear, like ultralytics) and pad it into ``out`` (HxWx3 uint8).

    ``out`` must have the geometry's input shape; it may be a view into an inference
    request's input tensor, so the frame is written once, with no intermediate copy.
    """
    g = geometry
    if out.shape != (g.input_height_px, g.input_width_px, 3):
        raise DetectorError(f"letterbox buffer has shape {out.shape}, expected {g.input_shape}")
    top, left = g.top_px, g.left_px
    bottom, right = top + g.resized_height_px, left + g.resized_width_px
    target = out[top:bottom, left:right]
    if (g.image_height_px, g.image_width_px) == (g.resized_height_px, g.resized_width_px):
        target[...] = image
    elif target.flags.c_contiguous:
        written = cv2.resize(
            image, (g.resized_width_px, g.resized_height_px), dst=target,
            interpolation=cv2.INTER_LINEAR,
        )  # fmt: skip
        if not np.shares_memory(written, target):
            target[...] = written
    else:
        target[...] = cv2.resize(
            image, (g.resized_width_px, g.resized_height_px), interpolation=cv2.INTER_LINEAR
        )
    out[:top] = PAD_VALUE
    out[bottom:] = PAD_VALUE
    out[top:bottom, :left] = PAD_VALUE
    out[top:bottom, right:] = PAD_VALUE


def boxes_to_image(xyxy: npt.NDArray[np.float32], geometry: LetterboxGeometry) -> None:
    """Map boxes (N, 4) from model-input pixels back to image pixels, in place, clipped.

    Same arithmetic as ultralytics ``ops.scale_boxes`` with no explicit ratio/pad.
    """
    g = geometry
    h0, w0 = g.image_height_px, g.image_width_px
    h1, w1 = g.input_height_px, g.input_width_px
    gain = min(h1 / h0, w1 / w0)
    new_h, new_w = max(round(h0 * gain), 1), max(round(w0 * gain), 1)
    gain_y, gain_x = new_h / h0, new_w / w0
    pad_x = round((w1 - new_w) / 2 - 0.1)
    pad_y = round((h1 - new_h) / 2 - 0.1)
    xyxy[:, [0, 2]] -= np.float32(pad_x)
    xyxy[:, [1, 3]] -= np.float32(pad_y)
    xyxy[:, [0, 2]] /= np.float32(gain_x)
    xyxy[:, [1, 3]] /= np.float32(gain_y)
    xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, w0)
    xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, h0)
