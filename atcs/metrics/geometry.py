"""Segment geometry in pixels: polygons, anchors inside them, covered area, metres on a road.

Coordinates are continuous image pixels: x to the right, y downwards, the image spans
``[0, width_px] x [0, height_px]``; pixel ``(row i, column j)`` is the unit square whose
centre is ``(j + 0.5, i + 0.5)``. Normalised config points ``(x, y)`` map to
``(x * width_px, y * height_px)``.

Decisions:

- Polygons are *closed*: a point on an edge or a vertex is inside, so a vehicle whose box
  touches the bottom of the image still belongs to a polygon drawn down to ``y = 1.0``.
- Occupancy is counted on a grid of cells (the image scaled down so that its longer side is
  at most ``max_side_px``): a cell belongs to the polygon, or to a box, when its centre
  does. With scale 1 and integer corners the result is the exact area ratio.
- Distances along a road are linear along the normal of the stop line; the polygon vertex
  farthest from the stop line is ``length_m`` metres away.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from atcs.errors import DataError

PointsPx = npt.NDArray[np.float64]
"""Points in pixels, shape (K, 2), float64."""
BoolArray = npt.NDArray[np.bool_]

_EDGE_EPS = 1e-9


def to_pixels(points: Sequence[tuple[float, float]], width_px: int, height_px: int) -> PointsPx:
    """Map normalised ``(x, y)`` points to pixels (no clipping), shape (K, 2)."""
    if width_px <= 0 or height_px <= 0:
        raise DataError(f"image size must be positive, got {width_px}x{height_px} px")
    arr = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return arr * np.array([width_px, height_px], dtype=np.float64)


def polygon_area_px2(polygon: PointsPx) -> float:
    """Area of a simple polygon in square pixels (shoelace formula, always >= 0)."""
    if len(polygon) < 3:
        return 0.0
    x = polygon[:, 0]
    y = polygon[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def _clip_half_plane(
    points: list[tuple[float, float]], axis: int, bound: float, keep_ge: bool
) -> list[tuple[float, float]]:
    """Keep the part of a polygon with ``point[axis] >= bound`` (or ``<=``)."""

    def inside(p: tuple[float, float]) -> bool:
        return p[axis] >= bound if keep_ge else p[axis] <= bound

    out: list[tuple[float, float]] = []
    prev = points[-1]
    for cur in points:
        cur_in, prev_in = inside(cur), inside(prev)
        if cur_in != prev_in:
            t = (bound - prev[axis]) / (cur[axis] - prev[axis])
            x = prev[0] + t * (cur[0] - prev[0])
            y = prev[1] + t * (cur[1] - prev[1])
            out.append((bound, y) if axis == 0 else (x, bound))
        if cur_in:
            out.append(cur)
        prev = cur
    return out


def clip_polygon(polygon: PointsPx, width_px: int, height_px: int) -> PointsPx:
    """Clip ``polygon`` to the image rectangle (Sutherland-Hodgman); may return < 3 points."""
    pts: list[tuple[float, float]] = [(float(x), float(y)) for x, y in polygon]
    planes = (
        (0, 0.0, True),
        (0, float(width_px), False),
        (1, 0.0, True),
        (1, float(height_px), False),
    )
    for axis, bound, keep_ge in planes:
        if not pts:
            break
        pts = _clip_half_plane(pts, axis, bound, keep_ge)
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2)


def clip_line(
    a: tuple[float, float], b: tuple[float, float], width_px: int, height_px: int
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Clip the segment ``a``-``b`` to the image (Liang-Barsky); None when wholly outside."""
    (x0, y0), (x1, y1) = a, b
    dx, dy = x1 - x0, y1 - y0
    t0, t1 = 0.0, 1.0
    for p, q in ((-dx, x0), (dx, width_px - x0), (-dy, y0), (dy, height_px - y0)):
        if p == 0:
            if q < 0:
                return None
            continue
        r = q / p
        if p < 0:
            t0 = max(t0, r)
        else:
            t1 = min(t1, r)
        if t0 > t1:
            return None
    return (x0 + t0 * dx, y0 + t0 * dy), (x0 + t1 * dx, y0 + t1 * dy)


class PreparedPolygon:
    """A polygon with its edges precomputed, for repeated point-in-polygon tests."""

    __slots__ = ("_ex", "_ey", "_len2", "_x1", "_x2", "_y1", "_y2", "vertices")

    def __init__(self, polygon: PointsPx) -> None:
        self.vertices = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        x1 = self.vertices[:, 0]
        y1 = self.vertices[:, 1]
        self._x1 = x1[None, :]
        self._y1 = y1[None, :]
        self._x2 = np.roll(x1, -1)[None, :]
        self._y2 = np.roll(y1, -1)[None, :]
        self._ex = self._x2 - self._x1
        self._ey = self._y2 - self._y1
        self._len2 = self._ex * self._ex + self._ey * self._ey

    def contains(self, points: npt.ArrayLike) -> BoolArray:
        """Which ``points`` (N, 2) lie inside the polygon or on its boundary.

        Crossing-number rule, vectorised over points and edges; points on an edge or vertex
        count as inside (closed polygon).
        """
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if len(pts) == 0 or len(self.vertices) < 3:
            return np.zeros(len(pts), dtype=np.bool_)
        px = pts[:, 0:1]
        py = pts[:, 1:2]
        x1, y1, ex, ey = self._x1, self._y1, self._ex, self._ey
        straddles = (y1 > py) != (self._y2 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = x1 + (py - y1) * ex / ey
        crossings = np.count_nonzero(straddles & (px < x_cross), axis=1)
        inside = (crossings % 2) == 1
        # Closed boundary: a point on an edge (collinear and within its extent) is inside.
        dx = px - x1
        dy = py - y1
        cross = ex * dy - ey * dx
        dot = ex * dx + ey * dy
        len2 = self._len2
        on_edge = (np.abs(cross) <= _EDGE_EPS * np.maximum(len2, 1.0)) & (dot >= 0) & (dot <= len2)
        result: BoolArray = inside | on_edge.any(axis=1)
        return result


def points_in_polygon(points: npt.ArrayLike, polygon: PointsPx) -> BoolArray:
    """Which ``points`` (N, 2) lie inside ``polygon`` or on its boundary (closed polygon)."""
    return PreparedPolygon(polygon).contains(points)


class CoverageGrid:
    """One polygon rasterised once; measures the fraction of it covered by a union of boxes.

    The grid is the image scaled by ``scale`` (``min(1, max_side_px / longer image side)``,
    or 1 when the polygon would hold fewer than ``min_cells`` cells at that scale); only the
    polygon's bounding rectangle is stored.
    """

    __slots__ = ("_canvas", "_col0", "_mask", "_ncols", "_nrows", "_row0", "area_cells", "scale")

    def __init__(
        self,
        polygon: PointsPx,
        width_px: int,
        height_px: int,
        max_side_px: int = 640,
        min_cells: int = 400,
    ) -> None:
        scale = min(1.0, max_side_px / max(width_px, height_px))
        self._build(polygon, width_px, height_px, scale)
        if self.area_cells < min_cells and scale < 1.0:
            self._build(polygon, width_px, height_px, 1.0)

    def _build(self, polygon: PointsPx, width_px: int, height_px: int, scale: float) -> None:
        self.scale = scale
        grid_w = math.ceil(width_px * scale)
        grid_h = math.ceil(height_px * scale)
        if len(polygon) >= 3:
            lo = np.floor(polygon.min(axis=0) * scale).astype(int)
            hi = np.ceil(polygon.max(axis=0) * scale).astype(int)
        else:
            lo = hi = np.zeros(2, dtype=int)
        self._col0 = int(np.clip(lo[0], 0, grid_w))
        self._row0 = int(np.clip(lo[1], 0, grid_h))
        col1 = int(np.clip(hi[0], 0, grid_w))
        row1 = int(np.clip(hi[1], 0, grid_h))
        self._ncols = max(col1 - self._col0, 0)
        self._nrows = max(row1 - self._row0, 0)
        cols = (np.arange(self._col0, self._col0 + self._ncols) + 0.5) / scale
        rows = (np.arange(self._row0, self._row0 + self._nrows) + 0.5) / scale
        gx, gy = np.meshgrid(cols, rows)
        centres = np.stack([gx.ravel(), gy.ravel()], axis=1)
        self._mask = points_in_polygon(centres, polygon).reshape(self._nrows, self._ncols)
        self.area_cells = int(np.count_nonzero(self._mask))
        self._canvas = np.zeros_like(self._mask)

    def covered_fraction(self, xyxy: npt.ArrayLike) -> float:
        """Fraction in [0, 1] of the polygon covered by the union of boxes ``xyxy`` (N, 4).

        A cell is covered when its centre lies in ``[x1, x2) x [y1, y2)`` of some box, so
        overlapping boxes count once and the parts of boxes outside the polygon not at all.
        """
        boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        if self.area_cells == 0 or len(boxes) == 0:
            return 0.0
        cells = np.ceil(boxes * self.scale - 0.5).astype(np.int64)
        cells[:, [0, 2]] = np.clip(cells[:, [0, 2]] - self._col0, 0, self._ncols)
        cells[:, [1, 3]] = np.clip(cells[:, [1, 3]] - self._row0, 0, self._nrows)
        keep = (cells[:, 2] > cells[:, 0]) & (cells[:, 3] > cells[:, 1])
        if not keep.any():
            return 0.0
        canvas = self._canvas
        canvas.fill(False)
        for c0, r0, c1, r1 in cells[keep].tolist():
            canvas[r0:r1, c0:c1] = True
        covered = np.count_nonzero(canvas & self._mask)
        return covered / self.area_cells


class RoadAxis:
    """Metres from a stop line, measured linearly along the line's normal.

    The normal points into the segment (towards the polygon vertex farthest from the stop
    line), and that vertex is ``length_m`` metres away: ``metres_per_px`` is ``length_m``
    over its pixel distance. Points behind the stop line get negative distances.
    """

    __slots__ = ("_b", "_normal", "_origin", "metres_per_px")

    def __init__(self, stop_line: PointsPx, polygon: PointsPx, length_m: float) -> None:
        a, b = stop_line[0], stop_line[1]
        self._b = np.asarray(b, dtype=np.float64)
        direction = b - a
        norm = float(np.hypot(direction[0], direction[1]))
        if norm < 1e-9:
            raise DataError("the stop line's two points coincide")
        normal = np.array([-direction[1], direction[0]], dtype=np.float64) / norm
        depths = (polygon - a) @ normal
        far = depths[np.argmax(np.abs(depths))]
        if abs(far) < 1e-9:
            raise DataError("the polygon has no extent away from its stop line")
        if far < 0:
            normal = -normal
        self._origin = a.astype(np.float64)
        self._normal = normal
        self.metres_per_px = length_m / abs(float(far))

    def point_px(self, distance_m: float, along: float = 0.5) -> tuple[float, float]:
        """Return the pixel point ``distance_m`` from the stop line at ``along`` (0..1) of it."""
        base = self._origin + along * (self._b - self._origin)
        point = base + self._normal * (distance_m / self.metres_per_px)
        return float(point[0]), float(point[1])

    @property
    def normal(self) -> tuple[float, float]:
        """Unit vector (px) pointing from the stop line into the segment."""
        return float(self._normal[0]), float(self._normal[1])

    def box_extent_m(
        self, xyxy: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Nearest and farthest distance (N,) each, m, of the corners of boxes (N, 4).

        The box's extent along the road: its front and back seen from the stop line (the
        box's height in the image counts as length, as the camera sees the vehicle from
        above and behind).
        """
        boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        corners = boxes[:, [0, 1, 2, 1, 0, 3, 2, 3]].reshape(-1, 4, 2)
        dist = self.distance_m(corners.reshape(-1, 2)).reshape(-1, 4)
        near: npt.NDArray[np.float64] = dist.min(axis=1)
        far: npt.NDArray[np.float64] = dist.max(axis=1)
        return near, far

    def distance_m(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Signed distance in metres of ``points`` (N, 2) from the stop line."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        out: npt.NDArray[np.float64] = ((pts - self._origin) @ self._normal) * self.metres_per_px
        return out
