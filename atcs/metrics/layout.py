"""A camera's configured geometry in pixels: segments, counting lines, zones, calibration.

Built once per camera and image size from the normalised configuration: polygons are
clipped to the image, lines clipped, zones and the ground calibration scaled to pixels.
Parts that end up outside the image are skipped with a warning; the rest keeps running.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from atcs.config import CalibrationConfig, LineConfig, PcuConfig, SegmentConfig, ZoneConfig
from atcs.errors import DataError
from atcs.homography import GroundHomography
from atcs.metrics.geometry import (
    CoverageGrid,
    PointsPx,
    PreparedPolygon,
    RoadAxis,
    clip_line,
    clip_polygon,
    polygon_area_px2,
    to_pixels,
)
from atcs.metrics.lines import LineGeometry
from atcs.metrics.movements import ZoneGeometry
from atcs.types import IntersectionId, LineId, SegmentId, VehicleClass, ZoneId

log = logging.getLogger(__name__)

_CLASSES = tuple(VehicleClass)


@dataclass(frozen=True, slots=True, eq=False)
class SegmentGeometry:
    """A segment in pixels: the polygon clipped to the image, stop line, PCU factors.

    ``pcu_factors`` (len(VehicleClass),) holds the PCU of each class on this segment;
    ``axis`` maps pixels to metres from the stop line (None without a stop line);
    ``spillback_m`` is the spillback point's distance from the stop line (m, None: none);
    ``one_way``: crossings against a line's approach direction are wrong-way.
    """

    segment_id: SegmentId
    name: str
    polygon_px: PointsPx
    prepared: PreparedPolygon
    stop_line_px: PointsPx | None
    length_m: float
    lanes: int
    pcu_factors: npt.NDArray[np.float64]
    grid: CoverageGrid
    axis: RoadAxis | None
    spillback_m: float | None = None
    one_way: bool = False


def build_segment(
    seg: SegmentConfig, pcu: PcuConfig, width_px: int, height_px: int, max_side_px: int
) -> SegmentGeometry | None:
    """Return the segment in pixels, or None (with a warning) when it lies outside the image."""
    raw = to_pixels(seg.polygon, width_px, height_px)
    polygon = clip_polygon(raw, width_px, height_px)
    if len(polygon) < 3 or polygon_area_px2(polygon) <= 0.0:
        log.warning("segment %s: polygon wholly outside the image; segment skipped", seg.id)
        return None
    stop_line = None
    axis = None
    if seg.stop_line is not None:
        stop_line = to_pixels(seg.stop_line, width_px, height_px)
        try:
            axis = RoadAxis(stop_line, raw, seg.length_m)
        except DataError as exc:
            log.warning("segment %s: stop line unusable (%s); no queue measured", seg.id, exc)
    spillback_m = None
    if axis is not None and seg.spillback_point is not None:
        point = to_pixels([seg.spillback_point], width_px, height_px)
        spillback_m = max(0.0, float(axis.distance_m(point)[0]))
    factors = np.array([pcu.factor(c, seg.movement) for c in _CLASSES], dtype=np.float64)
    return SegmentGeometry(
        segment_id=SegmentId(seg.id),
        name=seg.name,
        polygon_px=polygon,
        prepared=PreparedPolygon(polygon),
        stop_line_px=stop_line,
        length_m=seg.length_m,
        lanes=seg.lanes,
        pcu_factors=factors,
        grid=CoverageGrid(polygon, width_px, height_px, max_side_px=max_side_px),
        axis=axis,
        spillback_m=spillback_m,
        one_way=seg.one_way,
    )


def build_line(line: LineConfig, width_px: int, height_px: int) -> LineGeometry | None:
    """Return the counting line in pixels clipped to the image; None when it lies outside."""
    pts = to_pixels(line.points, width_px, height_px)
    a = (float(pts[0, 0]), float(pts[0, 1]))
    b = (float(pts[1, 0]), float(pts[1, 1]))
    clipped = clip_line(a, b, width_px, height_px)
    if clipped is None or clipped[0] == clipped[1]:
        log.warning("line %s: wholly outside the image; line skipped", line.id)
        return None
    return LineGeometry(
        line_id=LineId(line.id),
        segment_id=SegmentId(line.segment),
        a_px=clipped[0],
        b_px=clipped[1],
        forward_label=line.forward_label,
        backward_label=line.backward_label,
    )


def build_zones(zones: Sequence[ZoneConfig], width_px: int, height_px: int) -> list[ZoneGeometry]:
    """Return the zones in pixels (clipped to the image); zones outside it are skipped."""
    out: list[ZoneGeometry] = []
    for zone in zones:
        polygon = clip_polygon(to_pixels(zone.polygon, width_px, height_px), width_px, height_px)
        if len(polygon) < 3 or polygon_area_px2(polygon) <= 0.0:
            log.warning("zone %s: polygon wholly outside the image; zone skipped", zone.id)
            continue
        out.append(
            ZoneGeometry(
                zone_id=ZoneId(zone.id),
                intersection_id=IntersectionId(zone.intersection_id),
                polygon=PreparedPolygon(polygon),
                starts=zone.role in ("entry", "both"),
                ends=zone.role in ("exit", "both"),
            )
        )
    return out


def build_homography(
    cal: CalibrationConfig, width_px: int, height_px: int
) -> GroundHomography | None:
    """Return the ground calibration in pixels, or None (with a warning) when unusable."""
    try:
        return GroundHomography(
            to_pixels(cal.image_points, width_px, height_px), cal.ground_points_m
        )
    except DataError as exc:  # validated in config; an odd image size may still break it
        log.warning("camera %s: calibration unusable (%s); no speed measured", cal.camera, exc)
        return None
