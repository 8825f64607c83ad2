"""Ground speed, turning movements and incidents: what one camera's tracks give beyond counts.

Wired for :class:`~atcs.metrics.analyzer.CameraAnalyzer`.

Pure code, one per camera, not thread-safe. The analyzer calls :meth:`VehicleMeasures.tracks`
after tracking each frame, :meth:`VehicleMeasures.stop_flags` per segment while measuring,
:meth:`VehicleMeasures.frame_incidents` at the end of the frame and
:meth:`VehicleMeasures.window_incidents` when windows close.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from atcs.config import AnalysisConfig, CalibrationConfig, IncidentsConfig, ZoneConfig
from atcs.incidents import Incident, IncidentEvent
from atcs.metrics.geometry import BoolArray
from atcs.metrics.incidents import CameraIncidents, SegmentIncidentSpec, SegmentVehicles
from atcs.metrics.layout import SegmentGeometry, build_homography, build_zones
from atcs.metrics.lines import LineGeometry
from atcs.metrics.movements import MovementCounter, MovementEvent, MovementSpec
from atcs.metrics.speed import KMH_PER_M_S, GroundSpeeds, TrackSpeeds
from atcs.metrics.tracking import TrackedFrame
from atcs.types import Detections, Direction, LineCrossing, LineId, SegmentMetrics

S = TypeVar("S")

BORDER_MARGIN_PX = 2.0
"""A box this close to the image border is cut by it: its bottom is not on the road."""


class VehicleMeasures(Generic[S]):
    """Ground speed, movements and incidents of one camera (module docstring).

    ``segments`` and ``lines`` are the analyzer's (in pixels); ``approach`` maps each line
    to its approach direction; ``S`` is the analyzer's frame stamp type.
    """

    def __init__(
        self,
        *,
        site_id: str,
        camera_id: str,
        size_px: tuple[int, int],
        segments: Sequence[SegmentGeometry],
        lines: Sequence[LineGeometry],
        approach: Mapping[LineId, str],
        analysis: AnalysisConfig,
        zones: Sequence[ZoneConfig] = (),
        calibration: CalibrationConfig | None = None,
        incidents: IncidentsConfig | None = None,
    ) -> None:
        self._width, self._height = size_px
        self._segments = {g.segment_id: g for g in segments}
        self._lines = {ln.line_id: ln for ln in lines}
        self._approach = approach
        zone_px = build_zones(zones, *size_px)
        self.movement_specs = MovementSpec.of(zone_px)
        self._movements: MovementCounter[S] = MovementCounter(
            zone_px, analysis.crossing_confirm_frames, analysis.track_max_count
        )
        homography = None if calibration is None else build_homography(calibration, *size_px)
        self._speeds = (
            None
            if homography is None or calibration is None
            else GroundSpeeds(
                homography,
                smoothing_s=calibration.smoothing_s,
                max_speed_m_s=calibration.max_speed_kmh / KMH_PER_M_S,
                max_tracks=analysis.track_max_count,
            )
        )
        self._cfg = incidents or IncidentsConfig()
        self._incidents = CameraIncidents(
            site_id=site_id,
            camera_id=camera_id,
            segments=[self._incident_spec(g) for g in segments],
            config=self._cfg,
            max_tracks=analysis.track_max_count,
        )

    @property
    def calibrated(self) -> bool:
        """True when the camera has a usable ground calibration (speeds are measured)."""
        return self._speeds is not None

    def normalised(self, point_px: tuple[float, float]) -> tuple[float, float]:
        """``point_px`` as normalised [x, y] image coordinates."""
        return (float(point_px[0]) / self._width, float(point_px[1]) / self._height)

    def _incident_spec(self, geom: SegmentGeometry) -> SegmentIncidentSpec:
        spill = None
        if geom.axis is not None and geom.spillback_m is not None:
            spill = self.normalised(geom.axis.point_px(geom.spillback_m))
        centre = geom.polygon_px.mean(axis=0)
        return SegmentIncidentSpec(
            geom.segment_id,
            geom.spillback_m,
            spill,
            self.normalised((float(centre[0]), float(centre[1]))),
        )

    # -- per frame -------------------------------------------------------------------------

    def tracks(
        self,
        t_s: float,
        tracked: TrackedFrame,
        anchors: npt.NDArray[np.float32],
        stamp: S,
    ) -> tuple[list[MovementEvent[S]], TrackSpeeds | None]:
        """Return the movements counted by this frame and the ground speed of its vehicles."""
        dets = tracked.detections
        track_ids = dets.tracker_id if dets.tracker_id is not None else np.zeros(0, np.int64)
        moves: list[MovementEvent[S]] = []
        if self._movements.zones:
            self._movements.forget(tracked.merged)
            moves = self._movements.end(tracked.removed)
            moves += self._movements.update(track_ids, anchors, dets.class_id, stamp)
        if self._speeds is None:
            return moves, None
        self._speeds.forget([*tracked.removed, *tracked.merged])
        xyxy, margin = dets.xyxy, BORDER_MARGIN_PX
        whole = (
            (xyxy[:, 0] > margin)
            & (xyxy[:, 1] > margin)
            & (xyxy[:, 2] < self._width - margin)
            & (xyxy[:, 3] < self._height - margin)
        )
        return moves, self._speeds.update(t_s, track_ids, anchors, whole)

    def flush_movements(self) -> list[MovementEvent[S]]:
        """Confirm every pending movement now (the end of the input)."""
        return self._movements.flush()

    def segment_vehicles(
        self,
        geom: SegmentGeometry,
        dets: Detections,
        members: BoolArray,
        speeds_px_s: npt.NDArray[np.float32],
        ground: TrackSpeeds | None,
        *,
        in_queue: BoolArray,
        queue_m: float | None,
    ) -> SegmentVehicles:
        """Return what incident detection needs of a segment's vehicles (``members``).

        ``ground`` holds the members' ground speeds (None: not calibrated); a vehicle is
        stopped or moving by its speed in m/s from the ground calibration, else from the
        stop line's metre scale, else in its own box heights per second.
        """
        px = speeds_px_s[members].astype(np.float64)
        if ground is not None:
            speed, limit = ground.speeds_m_s.astype(np.float64), self._cfg.stopped_speed_m_s
        elif geom.axis is not None:
            speed, limit = px * geom.axis.metres_per_px, self._cfg.stopped_speed_m_s
        else:
            heights = np.maximum(dets.xyxy[members, 3] - dets.xyxy[members, 1], 1.0)
            speed, limit = px / heights, self._cfg.stopped_box_heights_s
        stopped: BoolArray = speed < limit  # NaN compares False: unknown
        moving: BoolArray = speed >= 2.0 * limit
        anchors = dets.anchors()[members].astype(np.float64)
        return SegmentVehicles(
            segment_id=geom.segment_id,
            track_ids=(
                dets.tracker_id[members] if dets.tracker_id is not None else np.zeros(0, np.int64)
            ),
            class_ids=dets.class_id[members],
            known=~np.isnan(speed),
            stopped=stopped,
            moving=moving,
            in_queue=in_queue,
            locations=anchors / (self._width, self._height),
            queue_m=queue_m,
        )

    def frame_incidents(
        self,
        at: datetime,
        tracked: TrackedFrame,
        vehicles: Sequence[SegmentVehicles],
        crossings: Sequence[LineCrossing],
        anchors: npt.NDArray[np.float32],
    ) -> None:
        """Run the incident machines on one frame: ended tracks, stops, queues, wrong way."""
        self._incidents.tracks_ended(at, [*tracked.removed, *tracked.merged])
        self._incidents.on_frame(at, vehicles)
        self.wrong_way(crossings, tracked.detections.tracker_id, anchors)

    def wrong_way(
        self,
        crossings: Sequence[LineCrossing],
        track_ids: npt.NDArray[np.int64] | None,
        anchors: npt.NDArray[np.float32],
    ) -> None:
        """Raise a wrong-way incident for crossings against a one-way segment's lines."""
        for c in crossings:
            geom = self._segments.get(c.segment_id)
            wanted = self._approach.get(c.line_id, "forward")
            if geom is None or not geom.one_way or wanted in ("both", c.direction.value):
                continue
            where = None
            if track_ids is not None:
                rows = np.flatnonzero(track_ids == int(c.track_id))
                if len(rows):
                    where = self.normalised(
                        (float(anchors[rows[0], 0]), float(anchors[rows[0], 1]))
                    )
            line = self._lines[c.line_id]
            label = line.forward_label if c.direction is Direction.FORWARD else line.backward_label
            detail = (
                f"{c.vehicle_class.label} (track {c.track_id}) crossed {c.line_id} {label}, "
                f"against the one-way traffic"
            )
            self._incidents.on_wrong_way(
                c.at, c.segment_id, c.track_id, c.vehicle_class, location=where, detail=detail
            )

    # -- per window and on demand ----------------------------------------------------------

    def window_incidents(self, metrics: Sequence[SegmentMetrics]) -> None:
        """Run the density-jump machine on finished windows."""
        self._incidents.on_windows(metrics)

    def take_incidents(self) -> list[IncidentEvent]:
        """Return the incident events raised since the last call, in order."""
        return self._incidents.take()

    def open_incidents(self) -> list[Incident]:
        """Return the camera's open incidents, oldest first."""
        return self._incidents.open_incidents()
