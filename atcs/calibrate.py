"""``atcs calibrate``: check a camera's ground calibration and draw a metre grid on a frame.

It fits the configured points (:mod:`atcs.homography`), prints how well they agree (the
reprojection error in pixels and the ground error in metres, per point and overall), the
metre scale across the image and, for each segment of the camera, the length of road its
polygon spans on the calibrated ground next to the configured ``length_m``; then it draws
on a frame of the camera the ground grid (lines every few metres across and along the
road), each calibration point (green: where it was clicked, red: where the fit puts its
ground position) and the segments. Where the grid does not lie on the road markings the
points or their metres are wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from atcs.config import AtcsConfig, CalibrationConfig, SegmentConfig
from atcs.errors import ConfigError, SourceError
from atcs.homography import F64, GroundHomography
from atcs.metrics.geometry import to_pixels
from atcs.sources import make_grabber, redact_url, resolve_kind
from atcs.types import Image

GRID_COLOUR = (0, 255, 255)
AXIS_COLOUR = (255, 255, 0)
CLICKED_COLOUR = (0, 200, 0)
FITTED_COLOUR = (0, 0, 255)
SEGMENT_COLOUR = (255, 0, 255)
TILE_COLOUR = (255, 255, 255)
_GRID_LINES = 12  # about this many lines each way


@dataclass(frozen=True, slots=True)
class CalibrationReport:
    """What ``atcs calibrate`` found: the fit, its errors and the picture's path."""

    camera_id: str
    homography: GroundHomography
    lines: tuple[str, ...]
    image_path: Path | None


def read_frame(cfg: AtcsConfig, camera_id: str, source: str | None, frame: int) -> Image:
    """Return frame number ``frame`` (0: the first) of the camera's source (or ``source``)."""
    camera = cfg.camera(camera_id)
    path = source or camera.source
    grabber = make_grabber(path, resolve_kind(path, camera.kind), timeout_s=15.0)
    grabber.open()
    try:
        for _ in range(frame + 1):
            if not grabber.grab():
                raise SourceError(f"{redact_url(path)}: has fewer than {frame + 1} frames")
        return grabber.retrieve()
    finally:
        grabber.close()


def _step_m(extent_m: float) -> float:
    for step in (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0):
        if extent_m / step <= _GRID_LINES:
            return step
    return 100.0


def _grid_box(
    h: GroundHomography, cal: CalibrationConfig, width: int, height: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Return the ground ranges (x, y) the grid covers.

    Across: the image's bottom row and the calibration points; along: from that row to as
    far again beyond the farthest calibration point.
    """
    bottom = np.stack([np.linspace(0, width, 17), np.full(17, height - 1.0)], axis=1)
    bottom = bottom[h.on_ground_side(bottom)]
    known = np.asarray(cal.ground_points_m, dtype=np.float64)
    near = h.to_ground(bottom) if len(bottom) else known
    x_lo = float(min(near[:, 0].min(), known[:, 0].min()))
    x_hi = float(max(near[:, 0].max(), known[:, 0].max()))
    y_lo = float(min(near[:, 1].min(), known[:, 1].min()))
    y_far = float(known[:, 1].max())
    return (x_lo, x_hi), (y_lo, y_far + (y_far - y_lo))


def _polyline(h: GroundHomography, ground: F64, width: int, height: int) -> list[np.ndarray]:
    """Image pieces (pixels, int) of a ground polyline, cut at the horizon and far outside."""
    visible = h.ground_visible(ground)
    img = np.full((len(ground), 2), np.nan)
    if visible.any():
        img[visible] = h.to_image(ground[visible])
    pieces: list[np.ndarray] = []
    current: list[tuple[int, int]] = []
    for ok, (x, y) in zip(visible.tolist(), img.tolist(), strict=True):
        if ok and -width <= x <= 2 * width and -height <= y <= 2 * height:
            current.append((round(x), round(y)))
        elif current:
            pieces.append(np.array(current, dtype=np.int32))
            current = []
    if current:
        pieces.append(np.array(current, dtype=np.int32))
    return [p for p in pieces if len(p) >= 2]


def draw_grid(
    image: Image, h: GroundHomography, cal: CalibrationConfig
) -> tuple[Image, tuple[float, float]]:
    """Return a copy of ``image`` with the ground grid and the points, and the steps (m)."""
    out: Image = image.copy()
    height, width = image.shape[:2]
    (gx0, gx1), (gy0, gy1) = _grid_box(h, cal, width, height)
    sx, sy = _step_m(gx1 - gx0), _step_m(gy1 - gy0)
    x0, x1 = math.floor(gx0 / sx) * sx, math.ceil(gx1 / sx) * sx
    y0, y1 = math.floor(gy0 / sy) * sy, math.ceil(gy1 / sy) * sy
    samples = np.linspace(0.0, 1.0, 200)
    grids = ((0, (x0, x1), (y0, y1), sx), (1, (y0, y1), (x0, x1), sy))
    for axis, (a0, a1), (b0, b1), step in grids:
        for k, value in enumerate(np.arange(a0, a1 + step / 2, step).tolist()):
            along = b0 + samples * (b1 - b0)
            fixed = np.full_like(along, value)
            ground = np.stack([fixed, along] if axis == 0 else [along, fixed], axis=1)
            colour = AXIS_COLOUR if abs(value) < 1e-9 else GRID_COLOUR
            for piece in _polyline(h, ground, width, height):
                cv2.polylines(out, [piece], False, colour, 1, cv2.LINE_AA)
                if k % 2 == 0:
                    label = f"{'x' if axis == 0 else 'y'}={value:g} m"
                    x, y = piece[len(piece) // 2]
                    cv2.putText(
                        out, label, (int(x) + 3, int(y) - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        colour, 1, cv2.LINE_AA,
                    )  # fmt: skip
    clicked = to_pixels(cal.image_points, width, height)
    fitted = h.to_image(np.asarray(cal.ground_points_m, dtype=np.float64))
    for (cx, cy), (fx, fy) in zip(clicked.tolist(), fitted.tolist(), strict=True):
        cv2.circle(out, (round(cx), round(cy)), 5, CLICKED_COLOUR, 2)
        cv2.drawMarker(out, (round(fx), round(fy)), FITTED_COLOUR, cv2.MARKER_CROSS, 10, 2)
    return out, (sx, sy)


def segment_length_m(h: GroundHomography, seg: SegmentConfig, width: int, height: int) -> float:
    """Length of road (m) the segment's polygon spans on the ground, along the calibration's y.

    The calibration's second ground axis runs along the road; the length is the spread of
    the polygon's corners along it (corners above the horizon are left out).
    """
    corners = to_pixels(seg.polygon, width, height)
    corners = corners[h.on_ground_side(corners)]
    if len(corners) < 2:
        return 0.0
    along = h.to_ground(corners)[:, 1]
    return float(along.max() - along.min())


def draw_tiles(picture: Image, cfg: AtcsConfig, camera_id: str, width: int, height: int) -> int:
    """Draw the camera's detection tiles (image pixels) on ``picture``; return how many.

    ``picture`` may be the frame scaled (the grid picture): boxes are scaled to its size.
    """
    from atcs.camera_tiles import far_field_of, tile_settings
    from detectors.tiles import plan_tiles, scaled_frame

    camera = cfg.camera(camera_id)
    if camera.detection.mode != "tiles":
        return 0
    settings = tile_settings(camera)
    frame = scaled_frame(height, width, settings.scale, settings.stride)
    tiles = plan_tiles(frame, far_field_of(cfg, camera_id).pixels(width, height), settings)
    fx, fy = picture.shape[1] / width, picture.shape[0] / height
    for tile in tiles:
        box = tile.source_box()
        if box is not None:
            top_left = (round(box.x0 * fx), round(box.y0 * fy))
            bottom_right = (round(box.x1 * fx) - 1, round(box.y1 * fy) - 1)
            cv2.rectangle(picture, top_left, bottom_right, TILE_COLOUR, 1)
    return len(tiles)


def calibrate(
    cfg: AtcsConfig,
    camera_id: str,
    *,
    out: Path | None = None,
    source: str | None = None,
    frame: int = 0,
) -> CalibrationReport:
    """Fit, report and draw the calibration of ``camera_id`` (module docstring).

    Raises :class:`ConfigError` for a camera without a calibration and
    :class:`SourceError` when its frame cannot be read.
    """
    cal = cfg.calibration_of(camera_id)
    if cal is None:
        raise ConfigError(
            f"camera {camera_id!r} has no [[calibrations]] entry: add image_points and "
            f"ground_points_m for it (docs/measures.md, Ground calibration)"
        )
    image = read_frame(cfg, camera_id, source, frame)
    height, width = image.shape[:2]
    h = GroundHomography(to_pixels(cal.image_points, width, height), cal.ground_points_m)
    err = h.errors()
    lines = [
        f"camera {camera_id}: {err.points} points on a {width}x{height} frame",
        f"reprojection error: rms {err.image_rms_px:.2f} px, max {err.image_max_px:.2f} px "
        f"(ground: rms {err.ground_rms_m:.3f} m, max {err.ground_max_m:.3f} m)",
    ]
    if err.points == 4:
        lines.append("four points fit exactly: add a fifth to measure the error")
    clicked = to_pixels(cal.image_points, width, height)
    fitted = h.to_image(np.asarray(cal.ground_points_m, dtype=np.float64))
    for i, ((cx, cy), (fx, fy), (gx, gy)) in enumerate(
        zip(clicked.tolist(), fitted.tolist(), cal.ground_points_m, strict=True)
    ):
        lines.append(
            f"  point {i}: image ({cx:.1f}, {cy:.1f}) px, ground ({gx:g}, {gy:g}) m, "
            f"off by {math.hypot(fx - cx, fy - cy):.2f} px"
        )
    for y_frac in (0.9, 0.6, 0.3):
        point = (width / 2, height * y_frac)
        if h.on_ground_side(np.array([point]))[0]:
            lines.append(
                f"scale at ({point[0]:.0f}, {point[1]:.0f}) px: {h.metres_per_px(point):.3f} m/px"
            )
    for seg in cfg.segments_of(camera_id):
        spans = segment_length_m(h, seg, width, height)
        lines.append(
            f"segment {seg.id}: polygon spans {spans:.1f} m of road on the calibrated ground "
            f"(configured length_m {seg.length_m:g} m)"
        )
    path = out
    if path is not None:
        picture, (sx, sy) = draw_grid(image, h, cal)
        for seg in cfg.segments_of(camera_id):
            poly = np.round(to_pixels(seg.polygon, width, height)).astype(np.int32)
            cv2.polylines(picture, [poly], True, SEGMENT_COLOUR, 1)
        tiles = draw_tiles(picture, cfg, camera_id, width, height)
        if tiles:
            lines.append(f"detection: {tiles} tiles of the far field drawn (white)")
        if not cv2.imwrite(str(path), picture):
            raise SourceError(f"cannot write {path}")
        lines.append(f"wrote {path}: grid every {sx:g} m across (x), {sy:g} m along (y)")
    return CalibrationReport(camera_id, h, tuple(lines), path)
