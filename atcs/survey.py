"""Survey mode (``atcs analyze``): recorded footage, every frame, as fast as the machine allows.

For each camera the survey writes, into the output folder:

- ``frames.csv``: one row per frame and segment (vehicles, pcu, occupancy, per class);
- ``windows.csv``: one row per segment and window, every measure;
- ``crossings.csv``: one row per counted line crossing;
- ``<camera>.png``: the busiest frame annotated (polygons, lines, boxes, counts).

Time offsets are seconds from the start of the recording; windows are aligned to it.

Speed: decoding runs ahead on a background thread and the model in OpenVINO's threads with
several requests in flight, so the main thread only prepares inputs, analyses and writes;
:class:`StageTimes` says where its wall time went. ``repeat`` plays a recording several
times end to end on one timeline (a long run with the memory of a short one, for soak tests).
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from atcs.annotate import annotate
from atcs.config import AtcsConfig
from atcs.detection import build_detector
from atcs.errors import ConfigError, SourceError
from atcs.metrics import CameraAnalyzer, FrameAnalysis
from atcs.sources import iter_recorded_frames, probe_recording, redact_url
from atcs.types import (
    Detections,
    Direction,
    Frame,
    Image,
    LineCrossing,
    SegmentMetrics,
    VehicleClass,
)
from detectors.base import Detector

log = logging.getLogger(__name__)

SURVEY_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
"""Frame times of a survey are this instant plus the offset in the recording."""
REQUESTS_PER_CORE = 2
"""Inference requests a survey keeps in flight per CPU core, plus one (at most 32)."""

CLASS_LABELS = [c.label for c in VehicleClass]
FRAME_COLUMNS = [
    "frame", "offset_s", "camera", "segment", "vehicles", "pcu", "occupancy", "queue_m",
    *CLASS_LABELS,
]  # fmt: skip
WINDOW_COLUMNS = [
    "camera", "segment", "window_start_s", "window_end_s", "window_start", "window_end",
    "frames", "vehicles", *[f"vehicles_{c}" for c in CLASS_LABELS], "pcu",
    "density_pcu_km_lane", "occupancy", "flow_veh_h", *[f"flow_{c}_veh_h" for c in CLASS_LABELS],
    "flow_forward_veh_h", "flow_backward_veh_h", "queue_m", "queue_max_m", "los", "congested",
    "stale",
]  # fmt: skip
CROSSING_COLUMNS = [
    "frame", "offset_s", "camera", "line", "segment", "track_id", "class", "direction",
    "direction_label",
]  # fmt: skip


@dataclass(slots=True)
class StageTimes:
    """Where the survey's main thread spent its wall time, in seconds per stage.

    Decoding runs on a background thread and the model in OpenVINO's own threads: the main
    thread only waits for them, and the detector stream pulls the next frame while the main
    thread waits on it. So ``decode_s`` is the time the main thread waited for a decoded
    frame (decoding fell behind), and ``inference_s`` the rest of its time inside the
    detector stream: letterbox into the request, submitting, waiting for the model, box
    decoding and NMS; ``inference_cpu_s`` is the main thread's own CPU time in it (letterbox,
    NMS), the rest of ``inference_s`` is waiting for the model. ``analysis_s`` is the
    segment analysis, ``output_s`` the CSV rows, windows, progress bar and annotated image.
    The four stages add up to the survey's wall time.
    """

    decode_s: float = 0.0
    inference_s: float = 0.0
    inference_cpu_s: float = 0.0
    analysis_s: float = 0.0
    output_s: float = 0.0

    def total_s(self) -> float:
        """Sum of the stages (``inference_cpu_s`` is part of ``inference_s``), seconds."""
        return self.decode_s + self.inference_s + self.analysis_s + self.output_s


@dataclass(slots=True)
class CameraSurvey:
    """What the survey of one camera gave."""

    camera_id: str
    source: str
    frames: int = 0
    duration_s: float = 0.0
    wall_s: float = 0.0
    crossings: int = 0
    windows: int = 0
    detections_by_class: dict[str, int] = field(default_factory=dict)
    stages: StageTimes = field(default_factory=StageTimes)
    image_path: Path | None = None

    @property
    def fps(self) -> float:
        """Frames processed per second of wall time."""
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


@dataclass(slots=True)
class SurveyReport:
    """The survey of every processed camera and where its files are."""

    out_dir: Path
    cameras: list[CameraSurvey]

    def summary_lines(self) -> list[str]:
        """Human summary, one line per camera plus the output files."""
        out = []
        for cam in self.cameras:
            counts = ", ".join(f"{k} {v}" for k, v in cam.detections_by_class.items() if v)
            out.append(
                f"{cam.camera_id}: {cam.frames} frames ({cam.duration_s:.1f} s of video) in "
                f"{cam.wall_s:.1f} s = {cam.fps:.1f} fps; {cam.windows} window rows, "
                f"{cam.crossings} crossings; detections: {counts or 'none'}"
            )
        out.append(f"wrote {self.out_dir}/frames.csv, windows.csv, crossings.csv and PNGs")
        return out


class _Writers:
    """The three CSV files of a survey, opened once for every camera."""

    def __init__(self, out_dir: Path) -> None:
        self._files: list[TextIO] = []
        self.frames = self._open(out_dir / "frames.csv", FRAME_COLUMNS)
        self.windows = self._open(out_dir / "windows.csv", WINDOW_COLUMNS)
        self.crossings = self._open(out_dir / "crossings.csv", CROSSING_COLUMNS)

    def _open(self, path: Path, columns: list[str]) -> Any:
        handle = path.open("w", newline="", encoding="utf-8")
        self._files.append(handle)
        writer = csv.writer(handle)
        writer.writerow(columns)
        return writer

    def close(self) -> None:
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
        m.los.value,
        int(m.congested),
        int(m.stale),
    ]


class _CameraRun:
    """The survey of one camera: analysis, CSV rows and the busiest annotated frame."""

    def __init__(self, cfg: AtcsConfig, camera_id: str, writers: _Writers, origin: datetime):
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

    def analyse(self, frame: Frame, detections: Detections) -> FrameAnalysis:
        if self.analyzer is None:
            self.analyzer = CameraAnalyzer.from_config(
                self.cfg, self.camera_id, frame.width_px, frame.height_px, self.origin
            )
        return self.analyzer.update(frame.seq, frame.captured_at, frame.offset_s, detections)

    def write(self, frame: Frame, result: FrameAnalysis, survey: CameraSurvey) -> None:
        offset = _fmt(frame.offset_s)
        total = 0
        for seg in result.segments:
            total += seg.vehicles
            self.writers.frames.writerow(
                [frame.seq, offset, self.camera_id, seg.segment_id, seg.vehicles,
                 _fmt(seg.pcu), _fmt(seg.occupancy), _fmt(seg.queue_m, 2),
                 *[seg.vehicles_by_class.get(c, 0) for c in VehicleClass]]
            )  # fmt: skip
        if result.crossings:
            self.write_crossings(result.crossings, survey)
        class_ids = result.detections.class_id
        if len(class_ids):
            self.class_totals += np.bincount(class_ids, minlength=len(CLASS_LABELS))
        if total > self.best_vehicles:
            self.best_vehicles = total
            seg_counts = {str(s.segment_id): f"{s.vehicles} vehicles" for s in result.segments}
            self.best = (frame.image.copy(), result.detections, f"{offset} s", seg_counts)
        self.write_windows(self.analyzer_windows(frame.captured_at, partial=False), survey)

    def write_crossings(self, crossings: Sequence[LineCrossing], survey: CameraSurvey) -> None:
        """Write crossings dated by the first frame on the new side of the line."""
        for c in crossings:
            forward, backward = self.line_labels.get(c.line_id, ("forward", "backward"))
            label = forward if c.direction is Direction.FORWARD else backward
            self.writers.crossings.writerow(
                [c.frame_seq, _fmt(c.offset_s), self.camera_id, c.line_id, c.segment_id,
                 c.track_id, c.vehicle_class.label, c.direction.value, label]
            )  # fmt: skip
            self.line_counts[c.line_id] = self.line_counts.get(c.line_id, 0) + 1
        survey.crossings += len(crossings)

    def finish(self, until: datetime, survey: CameraSurvey) -> None:
        """Count tracks still pending on a line, then close the last (partial) window."""
        if self.analyzer is not None:
            self.write_crossings(self.analyzer.flush(), survey)
        self.write_windows(self.analyzer_windows(until, partial=True), survey)
        survey.detections_by_class = {
            label: int(n) for label, n in zip(CLASS_LABELS, self.class_totals, strict=True) if n
        }

    def analyzer_windows(self, until: datetime, partial: bool) -> list[SegmentMetrics]:
        return [] if self.analyzer is None else self.analyzer.close_windows(until, partial=partial)

    def write_windows(self, metrics: Sequence[SegmentMetrics], survey: CameraSurvey) -> None:
        for m in metrics:
            self.writers.windows.writerow(_window_row(m, self.origin))
        survey.windows += len(metrics)

    def save_image(self, path: Path) -> Path | None:
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
            title=f"{self.camera_id} at {when}",
        )
        if not cv2.imwrite(str(path), img):
            log.error("could not write %s", path)
            return None
        return path


FrameHook = Callable[[CameraSurvey, CameraAnalyzer], None]
"""Called after every frame is written, with the survey so far and the camera's analyzer."""


@dataclass(slots=True)
class _Waits:
    """Main-thread wall and CPU seconds spent waiting for decoded frames."""

    wall_s: float = 0.0
    cpu_s: float = 0.0


def _timed(frames: Iterator[Frame], waits: _Waits) -> Iterator[Frame]:
    wall, cpu = time.perf_counter, time.thread_time
    while True:
        t0, c0 = wall(), cpu()
        try:
            frame = next(frames)
        except StopIteration:
            return
        finally:
            waits.wall_s += wall() - t0
            waits.cpu_s += cpu() - c0
        yield frame


def _replayed(camera_id: str, path: str, repeat: int, fps: float) -> Iterator[Frame]:
    """Yield the recording's frames, played ``repeat`` times end to end on one timeline.

    Pass k is shifted by the frames of the passes before it: ``seq``, ``offset_s`` and
    ``captured_at`` keep increasing, as if the recording were ``repeat`` times longer.
    """
    frames = iter_recorded_frames(camera_id, path, start_at=SURVEY_ORIGIN)
    if repeat <= 1:
        yield from frames
        return
    shift = 0
    for _ in range(repeat):
        last = -1
        for frame in frames:
            last = frame.seq
            shift_s = shift / fps
            yield Frame(
                camera_id=frame.camera_id,
                seq=frame.seq + shift,
                captured_at=frame.captured_at + timedelta(seconds=shift_s),
                image=frame.image,
                offset_s=(frame.offset_s or 0.0) + shift_s,
            )
        shift += last + 1
        frames = iter_recorded_frames(camera_id, path, start_at=SURVEY_ORIGIN)


def _image_of(frame: Frame) -> Image:
    return frame.image


def survey_detector(cfg: AtcsConfig) -> Detector:
    """Build the configured detector with more inference requests in flight than the service.

    A survey has no latency to keep, only throughput: about two requests per core (OpenVINO
    recommends one per stream, the detector keeps one more) keep the model busy while the
    main thread analyses, writes, or loses its core to other work on the machine. Each
    request holds one frame. Detections do not depend on it.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    requests = min(32, REQUESTS_PER_CORE * (cores or 1) + 1)
    return build_detector(cfg.detector, inflight_requests=requests)


def _cameras(cfg: AtcsConfig, camera_ids: Sequence[str] | None, source: str | None) -> list[str]:
    ids = list(camera_ids) if camera_ids else [c.id for c in cfg.cameras if c.enabled]
    for cid in ids:
        cfg.camera(cid)
    if source is not None and len(ids) != 1:
        raise ConfigError("--source replaces one camera's source: name it with --camera ID")
    return ids


@dataclass(frozen=True, slots=True)
class _Options:
    out_dir: Path
    max_frames: int | None
    progress: bool
    repeat: int
    on_frame: FrameHook | None


def _survey_camera(
    cfg: AtcsConfig,
    camera_id: str,
    path: str,
    detector: Detector,
    writers: _Writers,
    *,
    opts: _Options,
) -> CameraSurvey:
    from tqdm import tqdm

    info = probe_recording(path)
    survey = CameraSurvey(camera_id=camera_id, source=redact_url(path))
    stages = survey.stages
    origin = SURVEY_ORIGIN
    run = _CameraRun(cfg, camera_id, writers, origin)
    total = info.frame_count * opts.repeat
    if opts.max_frames is not None:
        total = min(total, opts.max_frames)
    bar = tqdm(total=total or None, desc=camera_id, unit="frame", disable=not opts.progress)
    start = time.perf_counter()
    frames = islice(_replayed(camera_id, path, opts.repeat, info.fps), opts.max_frames)
    decode = _Waits()
    stream = detector.detect_stream(_timed(frames, decode), _image_of)
    last_at = origin
    wall, cpu = time.perf_counter, time.thread_time
    waited = _Waits()
    while True:
        t0, c0 = wall(), cpu()
        item = next(stream, None)
        t1 = wall()
        waited.wall_s += t1 - t0
        waited.cpu_s += cpu() - c0
        if item is None:
            break
        frame, detections = item
        result = run.analyse(frame, detections)
        t2 = wall()
        run.write(frame, result, survey)
        survey.frames += 1
        last_at = frame.captured_at
        if opts.on_frame is not None and run.analyzer is not None:
            opts.on_frame(survey, run.analyzer)
        bar.update(1)
        stages.analysis_s += t2 - t1
        stages.output_s += wall() - t2
    bar.close()
    # the stream pulls frames while the main thread waits on it: decode waits are inside
    stages.decode_s = decode.wall_s
    stages.inference_s = max(0.0, waited.wall_s - decode.wall_s)
    stages.inference_cpu_s = max(0.0, waited.cpu_s - decode.cpu_s)
    survey.duration_s = survey.frames / info.fps if info.fps > 0 else 0.0
    end = max(last_at, origin + timedelta(seconds=survey.duration_s))
    t3 = wall()
    run.finish(end, survey)
    survey.image_path = run.save_image(opts.out_dir / f"{camera_id}.png")
    stages.output_s += wall() - t3
    survey.wall_s = wall() - start
    if survey.frames == 0:
        raise SourceError(f"camera {camera_id}: no frame could be read from the recording")
    return survey


def run_survey(
    cfg: AtcsConfig,
    out_dir: Path,
    *,
    camera_ids: Sequence[str] | None = None,
    source: str | None = None,
    max_frames: int | None = None,
    progress: bool = True,
    detector: Detector | None = None,
    repeat: int = 1,
    on_frame: FrameHook | None = None,
) -> SurveyReport:
    """Process recorded footage of ``camera_ids`` (default: every enabled camera).

    ``source`` replaces the single named camera's configured source for this run;
    ``max_frames`` stops each camera after that many frames; ``detector`` replaces the
    configured one (it is then not closed here); ``repeat`` plays each recording that many
    times end to end on one timeline (frame numbers and offsets keep increasing);
    ``on_frame`` is called after every frame (see :data:`FrameHook`). Raises
    :class:`SourceError` when a recording cannot be read (rows of cameras already processed
    stay written) and :class:`ConfigError` for a bad camera choice or ``repeat`` < 1.
    """
    if repeat < 1:
        raise ConfigError(f"repeat must be at least 1, got {repeat}")
    ids = _cameras(cfg, camera_ids, source)
    out_dir.mkdir(parents=True, exist_ok=True)
    own_detector = detector is None
    det = survey_detector(cfg) if detector is None else detector
    writers = _Writers(out_dir)
    report = SurveyReport(out_dir=out_dir, cameras=[])
    opts = _Options(out_dir, max_frames, progress, repeat, on_frame)
    try:
        for cid in ids:
            path = source if source is not None else cfg.camera(cid).source
            report.cameras.append(_survey_camera(cfg, cid, path, det, writers, opts=opts))
    finally:
        writers.close()
        if own_detector:
            det.close()
    return report
