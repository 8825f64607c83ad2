"""Tiling geometry: detect small, far vehicles on windows of an up-scaled frame.

At the engine's 640 px input a 960x540 or 1280x960 frame is shrunk by 1.5 or 2, and a
motorcycle 15-30 px tall in the image is 8-15 px tall for the model: many are simply not
found. Tiling runs the model on several fixed-size windows (tiles) of the frame letterboxed at
a larger *scale* (1.0: native resolution, every image pixel one model pixel; 2.0: up-scaled
twice), each tile a :class:`detectors.crop.CropWindow` of that large input, so that the
pixels, the stride grid and the way boxes map back are exactly those of a crop:

- :func:`scaled_frame` places the whole image at a scale (the large input the tiles cut);
- :func:`plan_tiles` covers a region of the image (the far field) with tiles of one shape
  (one compiled model), overlapping by at least a margin so that a vehicle cut by one tile's
  edge lies whole in its neighbour, and all on the stride grid;
- :func:`merge_detections` joins the boxes of every tile (and of a whole-frame pass) with
  cross-tile NMS: same-class boxes are merged when their IoU is high (the same vehicle seen
  by two tiles) or when one lies almost inside the other (a vehicle cut by a tile's edge
  against its whole box in the neighbouring tile).

Pure geometry and numpy, no model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from atcs.errors import DetectorError
from atcs.types import Detections, VehicleClass

from .crop import CropWindow, PixelBox
from .letterbox import LetterboxGeometry, letterbox_geometry, stride_multiple


@dataclass(frozen=True, slots=True)
class TileSettings:
    """How to tile: scale, tile size and overlap.

    ``scale``: model pixels per image pixel; ``tile_px``: square tile side in model pixels (a
    multiple of ``stride``); ``overlap_px``: least overlap between neighbours, model pixels.
    """

    scale: float = 1.0
    tile_px: int = 640
    overlap_px: int = 64
    stride: int = 32

    def __post_init__(self) -> None:
        problems = []
        if not 0.25 <= self.scale <= 4.0 or not math.isfinite(self.scale):
            problems.append(f"tile scale must be in 0.25..4, got {self.scale}")
        if self.stride < 1 or self.tile_px < self.stride or self.tile_px % self.stride:
            problems.append(
                f"tile_px must be a positive multiple of the stride {self.stride}, "
                f"got {self.tile_px}"
            )
        elif not 0 <= self.overlap_px <= self.tile_px // 2:
            problems.append(f"overlap_px must be in 0..{self.tile_px // 2}, got {self.overlap_px}")
        if problems:
            raise DetectorError("invalid tile settings: " + "; ".join(problems))


def scaled_frame(height_px: int, width_px: int, scale: float, stride: int) -> LetterboxGeometry:
    """Letterbox an image so that one image pixel is ``scale`` model pixels.

    The longer side becomes ``round(longer * scale)`` pixels rounded up to a multiple of
    ``stride`` (so the scale is exact when that product already is one: 960, 1280 ... px at
    scale 1.0, where no pixel is resampled) and the shorter side is padded to the next
    multiple of ``stride`` (ultralytics' minimum rectangle), so tiles stay on the grid.
    """
    if height_px < 1 or width_px < 1:
        raise DetectorError(f"cannot tile an empty image of {width_px}x{height_px} px")
    longer = stride_multiple(max(1, round(max(height_px, width_px) * scale)), stride)
    return letterbox_geometry(height_px, width_px, (longer, longer), stride, True)


def _starts(
    span: tuple[float, float], tile: int, overlap: int, stride: int, limit: int
) -> list[int]:
    """Tile starts (on the ``stride`` grid, inside ``0..limit - tile``) covering ``span``."""
    lo, hi = span
    last = max(0, limit - tile)
    first = min(max(0, math.floor(lo / stride) * stride), last)
    end = min(limit, math.ceil(hi / stride) * stride)
    if end - first <= tile:
        return [first]
    step = max(stride, (tile - overlap) // stride * stride)
    count = math.ceil((end - first - tile) / step) + 1
    room = end - tile - first  # spread the tiles evenly so every overlap is >= the margin
    starts = [first + round(room * k / (count - 1) / stride) * stride for k in range(count)]
    return sorted({min(s, last) for s in starts})


def plan_tiles(
    frame: LetterboxGeometry, region: PixelBox, settings: TileSettings
) -> tuple[CropWindow, ...]:
    """Cover ``region`` (image pixels) of the scaled ``frame`` with tiles of one shape.

    Every tile is ``tile_px`` square (smaller only where the whole input is smaller), on
    the stride grid, inside the input, and neighbours overlap by at least ``overlap_px``
    model pixels. Empty when the region lies outside the image.
    """
    g = frame
    inside = region.clipped(g.image_width_px, g.image_height_px)
    if inside is None:
        return ()
    sx = g.resized_width_px / g.image_width_px
    sy = g.resized_height_px / g.image_height_px
    tile_h = min(settings.tile_px, g.input_height_px)
    tile_w = min(settings.tile_px, g.input_width_px)
    rows = _starts(
        (g.top_px + inside.y0 * sy, g.top_px + inside.y1 * sy), tile_h,
        settings.overlap_px, settings.stride, g.input_height_px,
    )  # fmt: skip
    cols = _starts(
        (g.left_px + inside.x0 * sx, g.left_px + inside.x1 * sx), tile_w,
        settings.overlap_px, settings.stride, g.input_width_px,
    )  # fmt: skip
    return tuple(CropWindow(g, top, left, tile_h, tile_w) for top in rows for left in cols)


TWO_WHEELERS = frozenset({int(VehicleClass.MOTORCYCLE), int(VehicleClass.BICYCLE)})
"""Classes whose boxes differ by scale in what they hold: the bike alone or bike and rider."""


def merge_detections(
    parts: Sequence[Detections],
    *,
    windows: Sequence[PixelBox | None] | None = None,
    image_size: tuple[int, int] = (0, 0),
    iou_threshold: float = 0.5,
    inside_threshold: float = 0.8,
    edge_px: float = 2.0,
) -> Detections:
    """Join detections of overlapping tiles (image pixels) into one set: cross-tile NMS.

    Greedy, best confidence first, per class. A box is dropped when its IoU with a kept box
    of its class is above ``iou_threshold`` (one vehicle seen by two tiles). A box that a
    tile's edge cut is dropped too when at least ``inside_threshold`` of its area lies
    inside a box of another part (its neighbour, or the whole frame, saw the vehicle
    whole); when the cut box was the more confident, it is kept and grows to hold the whole
    vehicle. ``windows`` gives the part of the image each part saw (None: the whole image);
    a box is *cut* when it comes within ``edge_px`` of an edge of its window that is not the
    image's edge. Without ``windows`` every box of another part counts as possibly cut (the
    older, looser rule). Two boxes that neither edge cut are only compared by IoU, so two
    neighbouring vehicles, or a car half hidden behind another, are never merged into one
    box. Kept boxes come out best first.
    """
    if not 0.0 < iou_threshold <= 1.0 or not 0.0 < inside_threshold <= 1.0:
        raise DetectorError(
            f"merge thresholds must be in (0, 1], got {iou_threshold}, {inside_threshold}"
        )
    if windows is not None and len(windows) != len(parts):
        raise DetectorError(f"{len(windows)} windows for {len(parts)} parts")
    if not parts:
        return Detections.empty()
    xyxy = np.concatenate([p.xyxy for p in parts]).astype(np.float32)
    conf = np.concatenate([p.confidence for p in parts]).astype(np.float32)
    cls = np.concatenate([p.class_id for p in parts]).astype(np.int64)
    part = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    cut_by_edge = (
        np.ones(len(conf), dtype=bool)
        if windows is None
        else np.concatenate(
            [
                _touches_inner_edge(p.xyxy, w, image_size, edge_px)
                for p, w in zip(parts, windows, strict=True)
            ]
        )
    )
    order = np.argsort(-conf, kind="stable")
    areas = np.maximum(xyxy[:, 2] - xyxy[:, 0], 0) * np.maximum(xyxy[:, 3] - xyxy[:, 1], 0)
    alive = np.ones(len(conf), dtype=bool)
    keep: list[int] = []
    for i in order:
        if not alive[i]:
            continue
        keep.append(int(i))
        alive[i] = False
        rest = np.flatnonzero(alive & (cls == cls[i]))
        if not rest.size:
            continue
        inter, union = _overlaps(xyxy, areas, int(i), rest)
        with np.errstate(divide="ignore", invalid="ignore"):
            rest_inside = np.where(areas[rest] > 0, inter / areas[rest], 0.0)
            kept_inside = np.where(areas[i] > 0, inter / areas[i], 0.0)
        other = part[rest] != part[i]
        nested = other & ((rest_inside >= inside_threshold) | (kept_inside >= inside_threshold))
        grows = bool(cut_by_edge[i]) or int(cls[i]) in TWO_WHEELERS
        kept_part = other & grows & (kept_inside >= inside_threshold)
        same = _iou(inter, union) > iou_threshold
        grown = rest[kept_part & ~same]
        for j in grown:  # the kept box is part of the vehicle: grow it
            xyxy[i, :2] = np.minimum(xyxy[i, :2], xyxy[j, :2])
            xyxy[i, 2:] = np.maximum(xyxy[i, 2:], xyxy[j, 2:])
        if grown.size:  # the grown box may now be the same vehicle as one it was not before
            areas[i] = (xyxy[i, 2] - xyxy[i, 0]) * (xyxy[i, 3] - xyxy[i, 1])
            same |= _iou(*_overlaps(xyxy, areas, int(i), rest)) > iou_threshold
        alive[rest[same | nested]] = False
    index = np.asarray(keep, dtype=np.int64)
    return Detections(xyxy=xyxy[index], confidence=conf[index], class_id=cls[index])


def _iou(inter: npt.NDArray[np.float64], union: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Intersection over union from :func:`_overlaps`' areas (0 where the union is empty)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _overlaps(
    xyxy: npt.NDArray[np.floating[Any]],
    areas: npt.NDArray[np.floating[Any]],
    i: int,
    rest: npt.NDArray[np.intp],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Intersection and union areas (px²) of box ``i`` with each box of ``rest``."""
    w = np.minimum(xyxy[i, 2], xyxy[rest, 2]) - np.maximum(xyxy[i, 0], xyxy[rest, 0])
    h = np.minimum(xyxy[i, 3], xyxy[rest, 3]) - np.maximum(xyxy[i, 1], xyxy[rest, 1])
    inter = (np.maximum(w, 0) * np.maximum(h, 0)).astype(np.float64)
    return inter, (areas[i] + areas[rest] - inter).astype(np.float64)


def _touches_inner_edge(
    xyxy: npt.NDArray[np.float32],
    window: PixelBox | None,
    image_size: tuple[int, int],
    edge_px: float,
) -> npt.NDArray[np.bool_]:
    """Tell which boxes come within ``edge_px`` of an edge of ``window`` inside the image."""
    if window is None:
        return np.zeros(len(xyxy), dtype=bool)
    near = np.zeros(len(xyxy), dtype=bool)
    image_w, image_h = image_size
    for side, edge, image_edge in (
        (0, window.x0, 0.0), (1, window.y0, 0.0), (2, window.x1, image_w), (3, window.y1, image_h),
    ):  # fmt: skip
        if abs(edge - image_edge) > edge_px:
            near |= np.abs(xyxy[:, side] - edge) <= edge_px
    return near


CLASS_GROUPS: tuple[frozenset[int], ...] = (
    frozenset({int(VehicleClass.CAR), int(VehicleClass.BUS), int(VehicleClass.TRUCK)}),
    frozenset(TWO_WHEELERS),
)
"""Classes the model confuses on one object (a van as car and truck, a bike as both)."""


def drop_class_duplicates(found: Detections, *, iou_threshold: float = 0.7) -> Detections:
    """Keep one box per object seen as two classes of one :data:`CLASS_GROUPS` group.

    The model's own NMS works per class, so a van can come out as a car and as a truck
    with nearly the same box. Of two boxes of different classes of one group whose IoU is
    above ``iou_threshold``, the less confident is dropped. Boxes of different groups (a
    motorcycle in front of a car) are never compared. Order is kept.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise DetectorError(f"class duplicate IoU must be in (0, 1], got {iou_threshold}")
    group = np.full(len(found), -1, dtype=np.int64)
    for g, members in enumerate(CLASS_GROUPS):
        group[np.isin(found.class_id, list(members))] = g
    xyxy = found.xyxy.astype(np.float64)
    areas = np.maximum(xyxy[:, 2] - xyxy[:, 0], 0) * np.maximum(xyxy[:, 3] - xyxy[:, 1], 0)
    alive = np.ones(len(found), dtype=bool)
    for i in np.argsort(-found.confidence, kind="stable"):
        if not alive[i] or group[i] < 0:
            continue
        rest = np.flatnonzero(alive & (group == group[i]) & (found.class_id != found.class_id[i]))
        if not rest.size:
            continue
        inter, union = _overlaps(xyxy, areas, int(i), rest)
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
        alive[rest[iou > iou_threshold]] = False
    return Detections(
        xyxy=found.xyxy[alive], confidence=found.confidence[alive], class_id=found.class_id[alive]
    )
