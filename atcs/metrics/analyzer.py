"""Per-camera segment analysis: detections in, per-frame values and window metrics out.

:class:`CameraAnalyzer` is pure code (no threads, no I/O). Per frame it drops duplicate
boxes (a box lying inside a larger one of the same class, :mod:`atcs.metrics.duplicates`),
tracks the detections, assigns each vehicle to the segments holding its anchor (bottom centre of the
box), measures vehicles, PCU, occupancy and queue per segment, confirms line crossings,
and adds everything to the open window; :meth:`CameraAnalyzer.close_windows` returns the
finished :class:`SegmentMetrics`. The geometry is converted to pixels once.

Line crossings (:mod:`atcs.metrics.lines`) are confirmed when the track has held the new
side for ``crossing_confirm_frames`` frames, or earlier when the track ends while pending
on the new side (it expired after ``track_max_age_s`` or was dropped by the bound; seen
on the frame that drops it) or the analyzer is flushed (:meth:`CameraAnalyzer.flush`, also
done by ``close_windows(partial=True)``). A :class:`LineCrossing` is dated by the frame
where the track was first seen on the new side (``frame_seq``, ``at``, ``offset_s``), not
by the frame that confirmed it; it is counted in the window of that time while the window
is open, otherwise in the window of the frame (or flush) that confirmed it.

On a camera with a ground calibration every track gets a smoothed ground speed
(:mod:`atcs.metrics.speed`) and the windows a mean and 85th-percentile speed; zones give
turning movements (:mod:`atcs.metrics.movements`) and the incident state machines
(:mod:`atcs.metrics.incidents`) run on every frame and window. Movement matrices and
incident events wait in the analyzer until :meth:`CameraAnalyzer.take_events`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from atcs.config import (
    AnalysisConfig,
    AtcsConfig,
    CalibrationConfig,
    IncidentsConfig,
    LineConfig,
    PcuConfig,
    SegmentConfig,
    ZoneConfig,
)
from atcs.errors import DataError
from atcs.incidents import Incident, IncidentEvent
from atcs.metrics.duplicates import DEFAULT_NESTED_FRACTION, drop_duplicates
from atcs.metrics.geometry import BoolArray
from atcs.metrics.incidents import SegmentVehicles
from atcs.metrics.layout import SegmentGeometry, build_line, build_segment
from atcs.metrics.lines import CrossingEvent, LineCounter, LineGeometry
from atcs.metrics.measures import queue_members
from atcs.metrics.speed import TrackSpeeds
from atcs.metrics.static_objects import StaticFilter
from atcs.metrics.tracking import FrameTracker, Tracker
from atcs.metrics.vehicles import VehicleMeasures
from atcs.metrics.windows import (
    FrameValues,
    SegmentSpec,
    WindowAggregator,
    WindowCrossing,
    WindowMovement,
)
from atcs.types import (
    CameraId,
    Detections,
    Image,
    LineCrossing,
    LineId,
    MovementCounts,
    SegmentId,
    SegmentMetrics,
    SiteId,
    VehicleClass,
)

log = logging.getLogger(__name__)

_CLASSES = tuple(VehicleClass)
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SegmentFrame:
    """One segment in one frame.

    ``vehicles`` counts vehicles whose anchor lies in the polygon, ``vehicles_by_class``
    splits them by class (every class present, zeros included), ``pcu`` weights them,
    ``occupancy`` is the covered fraction of the polygon in [0, 1], ``queue_m`` the queue
    in metres (None without a stop line), and ``members`` (N,) marks the rows of
    :attr:`FrameAnalysis.detections` inside the segment.

    Per member (M,), in the order of its rows in the detections: ``member_pcu`` its PCU
    factor on this segment; with a stop line, ``near_m`` the distance of the box's nearest
    corner from the stop line (m, along the segment's axis: the front of a vehicle that
    drives toward the line, the back of one that drives away; negative just behind the
    line) and ``speed_m_s`` its anchor's speed in the image scaled by the axis's metres
    per pixel (m/s, the speed the queue measure uses; NaN while unknown). Both are None
    without a stop line. The phase-by-phase control reads these as the camera zone's
    vehicles of the frame (:mod:`atcs.control.frame_zones`).
    """

    segment_id: SegmentId
    vehicles: int
    vehicles_by_class: Mapping[VehicleClass, int]
    pcu: float
    occupancy: float
    queue_m: float | None
    members: BoolArray
    member_pcu: FloatArray = field(default_factory=lambda: np.zeros(0, np.float64))
    near_m: FloatArray | None = None
    speed_m_s: FloatArray | None = None


@dataclass(frozen=True, slots=True)
class FrameAnalysis:
    """What one frame gave: tracked detections, per-segment values, crossings confirmed now.

    ``crossings`` are those this frame confirmed, by holding the new side or by ending
    tracks; each is dated by the (possibly earlier) frame where its track crossed.
    ``counted`` is False when the frame was older than the open window (late) and so did
    not enter any window (nor did its crossings).
    """

    camera_id: CameraId
    frame_seq: int
    at: datetime
    offset_s: float | None
    detections: Detections
    segments: tuple[SegmentFrame, ...]
    crossings: tuple[LineCrossing, ...]
    counted: bool = True
    static: BoolArray | None = None
    """Per detection, True for a static false positive kept out of the measures (None: off)."""


@dataclass(frozen=True, slots=True)
class _FrameStamp:
    """The frame a line crossing is dated by: sequence number, time, clip offset (s)."""

    frame_seq: int
    at: datetime
    offset_s: float | None


@dataclass(frozen=True, slots=True)
class AnalyzerEvents:
    """What the analyzer raised since it was last asked: movement matrices, incident events."""

    movements: tuple[MovementCounts, ...]
    incidents: tuple[IncidentEvent, ...]


class CameraAnalyzer:
    """Segment analysis of one camera (see the module docstring); not thread-safe.

    ``origin`` (aware datetime) aligns the windows: ``origin + k * window_s``. Frame times
    must not go backwards by more than the open window. The analyzer is built for one image
    size; build a new one when a camera's resolution changes. ``nested_fraction``: a box
    with at least this fraction of its area inside a larger box of the same class is a
    duplicate detection and is dropped before tracking (None keeps every box).
    ``class_confidence``: a box of a class named here under its threshold is dropped before
    tracking (``[cameras.detection] class_confidence``).
    """

    def __init__(
        self,
        *,
        site_id: str,
        camera_id: str,
        segments: Sequence[SegmentConfig],
        lines: Sequence[LineConfig],
        analysis: AnalysisConfig,
        pcu: PcuConfig,
        width_px: int,
        height_px: int,
        origin: datetime,
        occupancy_max_side_px: int = 640,
        nested_fraction: float | None = DEFAULT_NESTED_FRACTION,
        tracker: FrameTracker | None = None,
        zones: Sequence[ZoneConfig] = (),
        calibration: CalibrationConfig | None = None,
        incidents: IncidentsConfig | None = None,
        class_confidence: Mapping[VehicleClass, float] | None = None,
    ) -> None:
        if origin.tzinfo is None:
            raise DataError("the window origin must be a timezone-aware datetime")
        self.camera_id = CameraId(camera_id)
        self.width_px = width_px
        self.height_px = height_px
        self._analysis = analysis
        self._origin = origin
        self._nested_fraction = nested_fraction
        self._min_confidence = np.zeros(len(VehicleClass), dtype=np.float32)
        for vehicle_class, threshold in (class_confidence or {}).items():
            self._min_confidence[int(vehicle_class)] = threshold
        self._static = (
            StaticFilter(analysis.static_after_s, analysis.static_history_s, analysis.static_change)
            if analysis.static_after_s > 0
            else None
        )
        built = [
            build_segment(s, pcu, width_px, height_px, occupancy_max_side_px) for s in segments
        ]
        self.segments: tuple[SegmentGeometry, ...] = tuple(g for g in built if g is not None)
        seg_index = {g.segment_id: i for i, g in enumerate(self.segments)}
        lines_px = [build_line(ln, width_px, height_px) for ln in lines if ln.segment in seg_index]
        self.lines: tuple[LineGeometry, ...] = tuple(ln for ln in lines_px if ln is not None)
        self._line_segment = {ln.line_id: seg_index[ln.segment_id] for ln in self.lines}
        approach = {LineId(ln.id): ln.approach_direction for ln in lines}
        self._tracker: FrameTracker = (
            tracker if tracker is not None else Tracker.from_config(analysis, (width_px, height_px))
        )
        self._counter: LineCounter[_FrameStamp] = LineCounter(
            self.lines, analysis.crossing_confirm_frames, analysis.track_max_count
        )
        self._vehicles: VehicleMeasures[_FrameStamp] = VehicleMeasures(
            site_id=site_id,
            camera_id=camera_id,
            size_px=(width_px, height_px),
            segments=self.segments,
            lines=self.lines,
            approach=approach,
            analysis=analysis,
            zones=zones,
            calibration=calibration,
            incidents=incidents,
        )
        specs = [
            SegmentSpec(
                segment_id=g.segment_id,
                length_m=g.length_m,
                lanes=g.lanes,
                has_stop_line=g.axis is not None,
                line_ids=tuple(ln.line_id for ln in self.lines if ln.segment_id == g.segment_id),
                approach=tuple(
                    approach[ln.line_id] for ln in self.lines if ln.segment_id == g.segment_id
                ),
            )
            for g in self.segments
        ]
        self._windows = WindowAggregator(
            site_id=SiteId(site_id),
            camera_id=self.camera_id,
            segments=specs,
            analysis=analysis,
            origin=origin,
            movements=self._vehicles.movement_specs,
        )

    @classmethod
    def from_config(
        cls,
        cfg: AtcsConfig,
        camera_id: str,
        width_px: int,
        height_px: int,
        origin: datetime,
        *,
        occupancy_max_side_px: int = 640,
        nested_fraction: float | None = DEFAULT_NESTED_FRACTION,
        tracker: FrameTracker | None = None,
    ) -> CameraAnalyzer:
        """Build the analyzer of ``camera_id`` from the whole configuration."""
        cfg.camera(camera_id)  # raises ConfigError for an unknown camera
        return cls(
            site_id=cfg.site.id,
            camera_id=camera_id,
            segments=cfg.segments_of(camera_id),
            lines=cfg.lines_of(camera_id),
            analysis=cfg.analysis,
            pcu=cfg.pcu,
            width_px=width_px,
            height_px=height_px,
            origin=origin,
            occupancy_max_side_px=occupancy_max_side_px,
            nested_fraction=nested_fraction,
            tracker=tracker,
            zones=cfg.zones_of(camera_id),
            calibration=cfg.calibration_of(camera_id),
            incidents=cfg.incidents,
            class_confidence={
                VehicleClass.from_label(label): threshold
                for label, threshold in cfg.camera(camera_id).detection.class_confidence.items()
            },
        )

    @property
    def live_tracks(self) -> int:
        """Number of live tracks (bounded by ``track_max_count``)."""
        return len(self._tracker)

    @property
    def late_frames(self) -> int:
        """Frames that arrived after their window was closed and were not counted."""
        return self._windows.late_frames

    @property
    def calibrated(self) -> bool:
        """True when the camera has a usable ground calibration (speeds are measured)."""
        return self._vehicles.calibrated

    def update(
        self,
        frame_seq: int,
        at: datetime,
        offset_s: float | None,
        detections: Detections,
        image: Image | None = None,
    ) -> FrameAnalysis:
        """Analyse one frame's detections seen at ``at`` (aware UTC datetime).

        The frame's ``image`` (BGR), when given, lets the tracker compare colours.
        """
        if at.tzinfo is None:
            raise DataError("frame time must be a timezone-aware datetime")
        detections = self._clean(frame_seq, detections)
        t_s = (at - self._origin).total_seconds()
        tracked = self._tracker.update(t_s, detections, image)
        dets = tracked.detections
        track_ids = dets.tracker_id if dets.tracker_id is not None else np.zeros(0, np.int64)
        anchors = dets.anchors()
        static = None if self._static is None else self._static.update(t_s, image, dets)
        stamp = _FrameStamp(frame_seq, at, offset_s)
        self._counter.forget(tracked.merged)
        events = self._counter.end(tracked.removed)
        events += self._counter.update(track_ids, anchors, dets.class_id, stamp)
        crossings = self._crossings(events)
        moves, speeds = self._vehicles.tracks(t_s, tracked, anchors, stamp)
        frames: list[SegmentFrame] = []
        values: list[FrameValues] = []
        vehicles: list[SegmentVehicles] = []
        for geom in self.segments:
            frame, value, veh = self._measure(
                geom, dets, anchors, tracked.speeds_px_s, speeds, static=static
            )
            frames.append(frame)
            values.append(value)
            vehicles.append(veh)
        window_moves = [WindowMovement(m.key, m.stamp.at) for m in moves]
        counted = self._windows.add_frame(
            at, values, self._window_crossings(crossings), window_moves
        )
        self._vehicles.frame_incidents(at, tracked, vehicles, crossings, anchors)
        return FrameAnalysis(
            camera_id=self.camera_id,
            frame_seq=frame_seq,
            at=at,
            offset_s=offset_s,
            detections=dets,
            segments=tuple(frames),
            crossings=crossings,
            counted=counted,
            static=static,
        )

    def _clean(self, frame_seq: int, detections: Detections) -> Detections:
        """Drop non-finite boxes, boxes under their class's threshold, duplicates of one vehicle."""
        finite: BoolArray = np.asarray(np.isfinite(detections.xyxy).all(axis=1), dtype=np.bool_)
        if not finite.all():
            dropped = int(np.count_nonzero(~finite))
            log.debug(
                "camera %s frame %d: %d non-finite boxes dropped",
                self.camera_id,
                frame_seq,
                dropped,
            )
            detections = detections[finite]
        if self._min_confidence.any() and len(detections):
            confident = detections.confidence >= self._min_confidence[detections.class_id]
            detections = detections[confident]
        if self._nested_fraction is not None:
            detections = drop_duplicates(detections, self._nested_fraction)
        return detections

    def flush(self) -> tuple[LineCrossing, ...]:
        """Confirm every pending crossing and movement now (the end of a recording or service).

        Tracks pending on the new side of a line count their crossing, dated by the frame
        where they crossed and added to the open window (likewise a track arriving in a
        zone); tracks are kept, and a flushed crossing is final. ``close_windows(partial=True)``
        calls this first: call it yourself before that to get the crossings it confirms.
        """
        crossings = self._crossings(self._counter.flush())
        moves = [WindowMovement(m.key, m.stamp.at) for m in self._vehicles.flush_movements()]
        if crossings:
            log.debug("camera %s: %d pending crossings flushed", self.camera_id, len(crossings))
        self._windows.add_crossings(self._window_crossings(crossings), moves)
        self._vehicles.wrong_way(crossings, None, np.zeros((0, 2), np.float32))
        return crossings

    def take_events(self) -> AnalyzerEvents:
        """Return the finished windows' movement matrices and the incident events since."""
        movements = tuple(self._windows.take_movements())
        return AnalyzerEvents(movements, tuple(self._vehicles.take_incidents()))

    def open_incidents(self) -> list[Incident]:
        """Return the camera's open incidents, oldest first."""
        return self._vehicles.open_incidents()

    def _crossings(self, events: Sequence[CrossingEvent[_FrameStamp]]) -> tuple[LineCrossing, ...]:
        return tuple(
            LineCrossing(
                camera_id=self.camera_id,
                line_id=self.lines[e.line_index].line_id,
                segment_id=self.lines[e.line_index].segment_id,
                track_id=e.track_id,
                vehicle_class=e.vehicle_class,
                direction=e.direction,
                frame_seq=e.stamp.frame_seq,
                at=e.stamp.at,
                offset_s=e.stamp.offset_s,
            )
            for e in events
        )

    def _window_crossings(self, crossings: Sequence[LineCrossing]) -> list[WindowCrossing]:
        return [
            WindowCrossing(
                self._line_segment[c.line_id], c.line_id, c.vehicle_class, c.direction, c.at
            )
            for c in crossings
        ]

    def _measure(
        self,
        geom: SegmentGeometry,
        dets: Detections,
        anchors: npt.NDArray[np.float32],
        speeds_px_s: npt.NDArray[np.float32],
        ground: TrackSpeeds | None,
        *,
        static: BoolArray | None = None,
    ) -> tuple[SegmentFrame, FrameValues, SegmentVehicles]:
        members = geom.prepared.contains(anchors)
        if static is not None:
            members &= ~static  # scenery: not a vehicle of the segment
        by_class = np.bincount(dets.class_id[members], minlength=len(_CLASSES)).astype(np.int64)
        pcu = float(by_class @ geom.pcu_factors)
        occupancy = geom.grid.covered_fraction(dets.xyxy[members])
        queue: float | None = None
        in_queue = np.zeros(int(members.sum()), dtype=np.bool_)
        near: FloatArray | None = None
        speed_m_s: FloatArray | None = None
        if geom.axis is not None:
            near, far = geom.axis.box_extent_m(dets.xyxy[members])
            speed_m_s = speeds_px_s[members].astype(np.float64) * geom.axis.metres_per_px
            slow = speed_m_s < self._analysis.queue_speed_m_s  # NaN (unknown) is not slow
            queue, in_queue = queue_members(near, far, slow, self._analysis.queue_max_gap_m)
        frame = SegmentFrame(
            segment_id=geom.segment_id,
            vehicles=int(by_class.sum()),
            vehicles_by_class={c: int(by_class[c]) for c in _CLASSES},
            pcu=pcu,
            occupancy=occupancy,
            queue_m=queue,
            members=members,
            member_pcu=geom.pcu_factors[dets.class_id[members]],
            near_m=near,
            speed_m_s=speed_m_s,
        )
        seg_speeds = None if ground is None else ground[members]
        veh = self._vehicles.segment_vehicles(
            geom, dets, members, speeds_px_s, seg_speeds, in_queue=in_queue, queue_m=queue
        )
        return frame, FrameValues(by_class, pcu, occupancy, queue, seg_speeds), veh

    def close_windows(self, until: datetime, *, partial: bool = False) -> list[SegmentMetrics]:
        """Return the metrics of every window ending at or before ``until``, oldest first.

        Windows with no frame come out ``stale`` with zeros. With ``partial`` the open
        window is also closed, ending at ``until`` (the end of a recorded clip), after the
        pending crossings are confirmed (:meth:`flush`). The windows also run the density
        jump detection and finish their movement matrices (see :meth:`take_events`).
        """
        if until.tzinfo is None:
            raise DataError("until must be a timezone-aware datetime")
        if partial:
            self.flush()
        metrics = self._windows.close(until, partial=partial)
        self._vehicles.window_incidents(metrics)
        return metrics
