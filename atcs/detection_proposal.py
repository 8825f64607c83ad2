"""Propose a camera's detection geometry: the cheapest setting meeting a recall target.

``atcs propose-detection --config site.toml --camera ID`` reads a few frames of the camera,
detects them with the most sensitive setting (the whole frame plus its measured region
tiled at scale 2) and keeps the vehicles whose anchor lies in its segments: their heights
in image pixels and where they stand. For every candidate setting (the whole frame or crop
at ``[detector] image_size_px``; tiles at scale 1, 1.5 or 2 over the far band or the whole
measured region) it predicts recall as the mean, over those vehicles, of the recall the
labelled set measured at their height with that setting (:data:`RECALL_BY_HEIGHT`, from
``python -m benchmarks.bench_accuracy``), and its cost as model pixels per frame relative
to the whole-frame pass. It proposes the cheapest candidate whose predicted recall meets
the target, or says that none does and gives the best. The far band is the top of the
measured region down to the last row band whose median vehicle is shorter than the
camera's ``far_below_px``.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from atcs.measured_region import MeasuredRegion
from detectors.letterbox import letterbox_geometry
from detectors.tiles import TileSettings, plan_tiles, scaled_frame

HEIGHT_EDGES_PX = (16.0, 24.0, 32.0, 48.0, 64.0)
"""Upper edges of the height bins of :data:`RECALL_BY_HEIGHT` (the last bin is open)."""
RECALL_BY_HEIGHT: dict[str, tuple[float, ...]] = {
    "whole": (0.00, 0.43, 0.55, 0.72, 0.97, 0.92),
    "tiles-1.0": (0.00, 0.62, 0.66, 0.81, 1.00, 0.87),
    "tiles-1.5": (0.00, 0.77, 0.81, 0.89, 0.97, 0.87),
    "tiles-2.0": (0.00, 0.77, 0.78, 0.88, 0.94, 0.93),
}
"""Recall inside the segments by labelled box height (0-16, 16-24, 24-32, 32-48, 48-64,
>= 64 px), all classes, YOLO11n INT8, whole frame at 640 px with and without tiles of the
far field: docs/benchmarks-accuracy.md."""
BANDS = 8
"""Row bands of the measured region in which vehicle heights are compared."""


@dataclass(frozen=True, slots=True)
class SeenVehicle:
    """A vehicle seen inside the segments: its anchor row (normalised) and height, image px."""

    y: float
    height_px: float


@dataclass(frozen=True, slots=True)
class Candidate:
    """One setting: mode, tile scale, far field (normalised), tiles, cost and recall.

    ``cost``: model pixels per frame over those of the whole-frame pass; ``recall``: the
    predicted recall over the seen vehicles.
    """

    name: str
    mode: str
    tile_scale: float
    far_field: MeasuredRegion | None
    tiles: int
    cost: float
    recall: float

    def toml(self) -> str:
        """Return the ``detection`` line of the camera's ``[[cameras]]`` table."""
        if self.mode != "tiles" or self.far_field is None:
            return f'detection = {{ mode = "{self.mode}" }}'
        f = self.far_field
        return (
            f'detection = {{ mode = "tiles", tile_scale = {self.tile_scale:g}, '
            f"far_field = [{f.x0:.3f}, {f.y0:.3f}, {f.x1:.3f}, {f.y1:.3f}] }}"
        )


def recall_at(setting: str, height_px: float) -> float:
    """Recall the labelled set measured for a vehicle ``height_px`` tall with ``setting``."""
    return RECALL_BY_HEIGHT[setting][bisect.bisect_right(HEIGHT_EDGES_PX, height_px)]


def far_band(
    region: MeasuredRegion, seen: Sequence[SeenVehicle], far_below_px: float
) -> MeasuredRegion | None:
    """Return the top of ``region`` down to the last row band whose median vehicle is small.

    None when no band's median vehicle is shorter than ``far_below_px`` (nothing to tile).
    """
    step = (region.y1 - region.y0) / BANDS
    if step <= 0:
        return None
    bottom: float | None = None
    for k in range(BANDS):
        lo, hi = region.y0 + k * step, region.y0 + (k + 1) * step
        heights = [v.height_px for v in seen if lo <= v.y < hi or (k == BANDS - 1 and v.y == hi)]
        if heights and statistics.median(heights) < far_below_px:
            bottom = hi
    if bottom is None:
        return None
    return MeasuredRegion(region.x0, region.y0, region.x1, bottom)


def candidates(
    seen: Sequence[SeenVehicle],
    region: MeasuredRegion,
    size: tuple[int, int],
    *,
    image_size_px: int,
    far_below_px: float,
    tile: TileSettings,
) -> list[Candidate]:
    """Every candidate setting for a camera with ``size`` = (width, height) px frames."""
    width, height = size
    whole = letterbox_geometry(height, width, (image_size_px, image_size_px), tile.stride, False)
    whole_px = whole.input_height_px * whole.input_width_px
    out = [Candidate("whole frame / crop", "crop", 0.0, None, 0, 1.0, _recall(seen, None, ""))]
    band = far_band(region, seen, far_below_px)
    fields = [("far band", band)] if band is not None and band != region else []
    fields.append(("measured region", region))
    for scale in (1.0, 1.5, 2.0):
        settings = TileSettings(scale, tile.tile_px, tile.overlap_px, tile.stride)
        frame = scaled_frame(height, width, scale, tile.stride)
        for label, field in fields:
            tiles = plan_tiles(frame, field.pixels(width, height), settings)
            cost = 1.0 + sum(t.height_px * t.width_px for t in tiles) / whole_px
            name = f"tiles x{scale:g}, {label}"
            recall = _recall(seen, field, f"tiles-{scale:.1f}")
            out.append(Candidate(name, "tiles", scale, field, len(tiles), cost, recall))
    return out


def _recall(seen: Sequence[SeenVehicle], field: MeasuredRegion | None, setting: str) -> float:
    if not seen:
        return 0.0
    total = 0.0
    for v in seen:
        tiled = field is not None and field.y0 <= v.y <= field.y1
        total += recall_at(setting if tiled else "whole", v.height_px)
    return total / len(seen)


def cheapest(found: Iterable[Candidate], target: float) -> tuple[Candidate, bool]:
    """Return the cheapest candidate meeting ``target`` (True), else the best recall (False)."""
    options = sorted(found, key=lambda c: (c.cost, -c.recall))
    for c in options:
        if c.recall >= target:
            return c, True
    return max(options, key=lambda c: (c.recall, -c.cost)), False


def describe(cands: Sequence[Candidate], pick: Candidate, met: bool, target: float) -> list[str]:
    """Return the proposal as lines: one per candidate, then the choice and its TOML."""
    lines = [
        "| setting | tiles | cost x whole | predicted recall |",
        "| --- | ---: | ---: | ---: |",
    ]
    for c in cands:
        lines.append(f"| {c.name} | {c.tiles} | {c.cost:.2f} | {c.recall:.2f} |")
    if met:
        lines.append(f"cheapest setting with predicted recall >= {target:.2f}: {pick.name}")
    else:
        lines.append(
            f"no setting reaches predicted recall {target:.2f}; the best is {pick.name} "
            f"({pick.recall:.2f})"
        )
    lines.append(f"in the camera's [[cameras]] table: {pick.toml()}")
    return lines
