"""The survey's output files: CSV rows per frame, window and crossing, and the picture.

``frames.csv`` (one row per frame and segment), ``windows.csv`` (one row per segment and
window, every measure), ``crossings.csv`` (one row per counted crossing, in frame order),
``movements.csv`` and ``incidents.csv`` (:mod:`atcs.survey_events`), with the FIWARE
rendering on ``traffic_flow_observed.jsonl`` (one entity per segment window), and
``<camera>.png`` (the busiest frame annotated, segments tinted by the level of service
of the window that frame fell in). Offsets are seconds from the start of the recording.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from atcs.annotate import annotate
from atcs.bus.fiware import traffic_flow_observed
from atcs.config import AtcsConfig, FiwareConfig
from atcs.metrics import CameraAnalyzer, FrameAnalysis
from atcs.survey_events import INCIDENT_COLUMNS, MOVEMENT_COLUMNS, IncidentLog, movement_rows
from atcs.types import (
    Detections,
    Direction,
    Frame,
    Image,
    LevelOfService,
    LineCrossing,
    SegmentMetrics,
    VehicleClass,
)

log = logging.getLogger(__name__)

CLASS_LABELS = [c.label for c in VehicleClass]
FRAME_COLUMNS = [
    "frame", "offset_s", "camera", "segment", "vehicles", "pcu", "occupancy", "queue_m",
    *CLASS_LABELS,
]  # fmt: skip
WINDOW_COLUMNS = [
    "camera", "segment", "window_start_s", "window_end_s", "window_start", "window_end",
    "observed_s", "partial", "frames", "vehicles", *[f"vehicles_{c}" for c in CLASS_LABELS], "pcu",
    "density_pcu_km_lane", "occupancy", "flow_veh_h", *[f"flow_{c}_veh_h" for c in CLASS_LABELS],
    "flow_forward_veh_h", "flow_backward_veh_h", "queue_m", "queue_max_m", "speed_kmh",
    "speed_p85_kmh", "speed_vehicles", "speed_capped", "los", "congested", "stale",
]  # fmt: skip
CROSSING_COLUMNS = [
    "frame", "offset_s", "camera", "line", "segment", "track_id", "class", "direction",
    "direction_label",
]  # fmt: skip


class Writers:
    """The CSV files of a survey (and the FIWARE lines), opened once for every camera."""

    def __init__(self, out_dir: Path, fiware: FiwareConfig | None = None) -> None:
        self.out_dir = out_dir
        self._files: list[TextIO] = []
        self.frames = self._open(out_dir / "frames.csv", FRAME_COLUMNS)
        self.windows = self._open(out_dir / "windows.csv", WINDOW_COLUMNS)
        self.crossings = self._open(out_dir / "crossings.csv", CROSSING_COLUMNS)
        self.movements = self._open(out_dir / "movements.csv", MOVEMENT_COLUMNS)
        self.incidents = self._open(out_dir / "incidents.csv", INCIDENT_COLUMNS)
        self.fiware = fiware if fiware is not None and fiware.enabled else None
        self.entities: TextIO | None = None
        if self.fiware is not None:
            self.entities = (out_dir / "traffic_flow_observed.jsonl").open("w", encoding="utf-8")
            self._files.append(self.entities)

    def _open(self, path: Path, columns: list[str]) -> Any:
        handle = path.open("w", newline="", encoding="utf-8")
        self._files.append(handle)
        writer = csv.writer(handle)
        writer.writerow(columns)
        return writer

    def close(self) -> None:
        """Close the files."""
        for handle in self._files:
            handle.close()


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}".rstrip("0").rstrip(".") or "0"


def _window_row(m: SegmentMetrics, origin: datetime) -> list[object]:
    by_class_flow = dict.fromkeys(CLASS_LABELS, 0.0)
    forward = backward = 0.0
    for f in m.flows:
        by_class_flow[f.vehicle_class.label] += f.flow_veh_h
        if f.direction is Direction.FORWARD:
            forward += f.flow_veh_h
        else:
            backward += f.flow_veh_h
    return [
        m.camera_id,
        m.segment_id,
        _fmt((m.window_start - origin).total_seconds()),
        _fmt((m.window_end - origin).total_seconds()),
        m.window_start.isoformat(),
        m.window_end.isoformat(),
        _fmt(m.observed_or_window_s, 3),
        int(m.partial),
        m.frames,
        _fmt(m.vehicles),
        *[_fmt(m.vehicles_by_class.get(VehicleClass.from_label(c), 0.0)) for c in CLASS_LABELS],
        _fmt(m.pcu),
        _fmt(m.density_pcu_km_lane),
        _fmt(m.occupancy),
        _fmt(m.flow_veh_h, 1),
        *[_fmt(by_class_flow[c], 1) for c in CLASS_LABELS],
        _fmt(forward, 1),
        _fmt(backward, 1),
        _fmt(m.queue_m, 2),
        _fmt(m.queue_max_m, 2),
        _fmt(m.speed_kmh, 1),
        _fmt(m.speed_p85_kmh, 1),
        m.speed_vehicles,
        m.speed_capped,
        m.los.value,
        int(m.congested),
        int(m.stale),
    ]


class CameraRun:
    """The survey of one camera: analysis, CSV rows and the busiest annotated frame."""

    def __init__(self, cfg: AtcsConfig, camera_id: str, writers: Writers, origin: datetime):
        self.cfg = cfg
        self.camera_id = camera_id
        self.writers = writers
        self.origin = origin
        self.analyzer: CameraAnalyzer | None = None
        self.best_vehicles = -1
        self.best: tuple[Image, Detections, str, dict[str, str]] | None = None
        self.line_labels = {
            ln.id: (ln.forward_label, ln.backward_label) for ln in cfg.lines_of(camera_id)
        }
        self.line_counts: dict[str, int] = dict.fromkeys(self.line_labels, 0)
        self.class_totals = np.zeros(len(CLASS_LABELS), dtype=np.int64)
        self.crossings: list[LineCrossing] = []
        self.best_offset_s: float | None = None
        self.best_los: dict[str, LevelOfService] = {}
        self.incidents = IncidentLog(cfg, camera_id, writers.out_dir, origin)
        self.last_frame: tuple[Image, Detections] | None = None
        self.segment_names = {s.id: s.name for s in cfg.segments_of(camera_id)}

    def analyse(self, frame: Frame, detections: Detections) -> FrameAnalysis:
        """Analyse one frame (the analyzer is built on the first frame)."""
        if self.analyzer is None:
            self.analyzer = CameraAnalyzer.from_config(
                self.cfg, self.camera_id, frame.width_px, frame.height_px, self.origin
            )
        return self.analyzer.update(
            frame.seq, frame.captured_at, frame.offset_s, detections, frame.image
        )

    def write(self, frame: Frame, result: FrameAnalysis, survey: Any) -> None:
        """Write the frame's rows, keep its crossings and the busiest frame, close windows."""
        offset = _fmt(frame.offset_s)
        total = 0
        for seg in result.segments:
            total += seg.vehicles
            self.writers.frames.writerow(
                [frame.seq, offset, self.camera_id, seg.segment_id, seg.vehicles,
                 _fmt(seg.pcu), _fmt(seg.occupancy), _fmt(seg.queue_m, 2),
                 *[seg.vehicles_by_class.get(c, 0) for c in VehicleClass]]
            )  # fmt: skip
        self.crossings += result.crossings
        class_ids = result.detections.class_id
        if len(class_ids):
            self.class_totals += np.bincount(class_ids, minlength=len(CLASS_LABELS))
        if total > self.best_vehicles:
            self.best_vehicles = total
            seg_counts = {str(s.segment_id): f"{s.vehicles} vehicles" for s in result.segments}
            self.best = (frame.image.copy(), result.detections, f"{offset} s", seg_counts)
            self.best_offset_s = (frame.captured_at - self.origin).total_seconds()
            self.best_los = {}
        self.write_windows(self.analyzer_windows(frame.captured_at, partial=False), survey)
        self.last_frame = (frame.image, result.detections)
        self.write_events(frame.image, result.detections)

    def write_events(self, image: Image, detections: Detections) -> None:
        """Write the finished movement matrices; log incidents, picturing ``image``."""
        if self.analyzer is None:
            return
        events = self.analyzer.take_events()
        for counts in events.movements:
            self.writers.movements.writerows(movement_rows(counts, self.origin))
        self.incidents.on_events(events.incidents, image, detections)

    def write_crossings(self, crossings: Sequence[LineCrossing], survey: Any) -> None:
        """Write crossings in frame order (the frame each track was first seen past the line).

        A crossing is often confirmed some frames after it happened (or when its track
        ends), so they are kept until the camera's survey ends and written sorted.
        """
        order = sorted(crossings, key=lambda c: (c.frame_seq, c.line_id, c.track_id))
        for c in order:
            forward, backward = self.line_labels.get(c.line_id, ("forward", "backward"))
            label = forward if c.direction is Direction.FORWARD else backward
            self.writers.crossings.writerow(
                [c.frame_seq, _fmt(c.offset_s), self.camera_id, c.line_id, c.segment_id,
                 c.track_id, c.vehicle_class.label, c.direction.value, label]
            )  # fmt: skip
            self.line_counts[c.line_id] = self.line_counts.get(c.line_id, 0) + 1
        survey.crossings += len(crossings)

    def finish(self, until: datetime, survey: Any) -> None:
        """Count tracks still pending on a line, then close the last (partial) window."""
        if self.analyzer is not None:
            self.crossings += self.analyzer.flush()
        self.write_crossings(self.crossings, survey)
        self.crossings = []
        self.write_windows(self.analyzer_windows(until, partial=True), survey)
        if self.last_frame is not None:
            self.write_events(*self.last_frame)
        self.writers.incidents.writerows(self.incidents.rows())
        survey.incidents = len(self.incidents)
        survey.detections_by_class = {
            label: int(n) for label, n in zip(CLASS_LABELS, self.class_totals, strict=True) if n
        }

    def analyzer_windows(self, until: datetime, partial: bool) -> list[SegmentMetrics]:
        """Windows the analyzer finished by ``until`` (none before the first frame)."""
        return [] if self.analyzer is None else self.analyzer.close_windows(until, partial=partial)

    def write_windows(self, metrics: Sequence[SegmentMetrics], survey: Any) -> None:
        """Write finished windows; remember the LOS of those holding the busiest frame."""
        for m in metrics:
            self.writers.windows.writerow(_window_row(m, self.origin))
            self._write_entity(m)
            start_s = (m.window_start - self.origin).total_seconds()
            end_s = (m.window_end - self.origin).total_seconds()
            best = self.best_offset_s
            if best is not None and start_s <= best < end_s and not m.stale:
                self.best_los[str(m.segment_id)] = m.los
        survey.windows += len(metrics)

    def _write_entity(self, m: SegmentMetrics) -> None:
        fiware, out = self.writers.fiware, self.writers.entities
        if fiware is None or out is None:
            return
        entity = traffic_flow_observed(m, fiware, self.segment_names.get(m.segment_id, ""))
        if entity is not None:
            out.write(json.dumps(entity, allow_nan=False, separators=(",", ":")) + "\n")

    def save_image(self, path: Path) -> Path | None:
        """Write the busiest frame annotated; None when no frame was seen or on failure."""
        if self.best is None:
            return None
        image, detections, when, seg_counts = self.best
        counts = {ln: f"{n} crossed" for ln, n in self.line_counts.items()}
        img = annotate(
            image,
            self.cfg.segments_of(self.camera_id),
            self.cfg.lines_of(self.camera_id),
            detections,
            segment_text=seg_counts,
            line_text=counts,
            segment_los=self.best_los,
            title=f"{self.camera_id} at {when}",
        )
        if not cv2.imwrite(str(path), img):
            log.error("could not write %s", path)
            return None
        return path
