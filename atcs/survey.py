"""Survey mode (``atcs analyze``): recorded footage, every frame, as fast as the machine allows.

For each camera the survey writes, into the output folder:

- ``frames.csv``: one row per frame and segment (vehicles, pcu, occupancy, per class);
- ``windows.csv``: one row per segment and window, every measure;
- ``crossings.csv``: one row per counted line crossing;
- ``movements.csv``: turning movements per intersection, window, zone pair and class;
- ``incidents.csv``: one row per incident, with ``incidents/<id>.jpg`` the frame that
  raised it;
- ``traffic_flow_observed.jsonl``: the FIWARE rendering of each window (when enabled);
- ``<camera>.png``: the busiest frame annotated (polygons, lines, boxes, counts).

Time offsets are seconds from the start of the recording; windows are aligned to it.

Speed: decoding runs ahead on a background thread and the model in OpenVINO's threads with
several requests in flight, so the main thread only prepares inputs, analyses and writes;
:class:`StageTimes` says where its wall time went. ``repeat`` plays a recording several
times end to end on one timeline (a long run with the memory of a short one, for soak tests).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Literal

from atcs.camera_tiles import CameraTiles
from atcs.config import AtcsConfig
from atcs.crop_check import CameraCrops, CropVerdict, checked, job_image, job_region
from atcs.detection import build_detector
from atcs.errors import ConfigError, SourceError
from atcs.metrics import CameraAnalyzer
from atcs.sources import FootageSampler, iter_recorded_frames, probe_recording, redact_url
from atcs.sources.recorded import DEFAULT_FOLDER_FPS
from atcs.survey_rows import (
    CLASS_LABELS,
    CROSSING_COLUMNS,
    FRAME_COLUMNS,
    WINDOW_COLUMNS,
    CameraRun,
    Writers,
)
from atcs.types import Detections, Frame
from detectors.base import Detector

log = logging.getLogger(__name__)

__all__ = [
    "CLASS_LABELS",
    "CROSSING_COLUMNS",
    "FRAME_COLUMNS",
    "SURVEY_ORIGIN",
    "WINDOW_COLUMNS",
    "CameraSurvey",
    "StageTimes",
    "SurveyReport",
    "run_survey",
    "survey_detector",
]

SURVEY_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
"""Frame times of a survey are this instant plus the offset in the recording."""
REQUESTS_PER_CORE = 2
"""Inference requests a survey keeps in flight per CPU core, plus one (at most 32)."""


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
    incidents: int = 0
    detections_by_class: dict[str, int] = field(default_factory=dict)
    stages: StageTimes = field(default_factory=StageTimes)
    image_path: Path | None = None
    crop: CropVerdict | None = None

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
                f"{cam.crossings} crossings, {cam.incidents} incidents; "
                f"detections: {counts or 'none'}"
                + ("" if cam.crop is None else f"; {cam.crop.describe()}")
            )
        out.append(
            f"wrote {self.out_dir}/frames.csv, windows.csv, crossings.csv, movements.csv, "
            f"incidents.csv and PNGs"
        )
        return out


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


def _replayed(
    camera_id: str, path: str, repeat: int, fps: float, folder_fps: float
) -> Iterator[Frame]:
    """Yield the recording's frames, played ``repeat`` times end to end on one timeline.

    Pass k is shifted by the frames of the passes before it: ``seq``, ``offset_s`` and
    ``captured_at`` keep increasing, as if the recording were ``repeat`` times longer.
    Images of a folder are ``1 / folder_fps`` s apart.
    """

    def read() -> Iterator[Frame]:
        return iter_recorded_frames(camera_id, path, start_at=SURVEY_ORIGIN, folder_fps=folder_fps)

    frames = read()
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
        frames = read()


def _sampled(frames: Iterator[Frame], sample_fps: float | None) -> Iterator[Frame]:
    """Keep one frame per ``1 / sample_fps`` s of footage (all of them when None)."""
    if sample_fps is None:
        yield from frames
        return
    sampler = FootageSampler(sample_fps)
    for frame in frames:
        if sampler.take(frame.offset_s or 0.0):
            yield frame


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
    sample_fps: float | None = None
    folder_fps: float = DEFAULT_FOLDER_FPS


def _expected_frames(frame_count: int, fps: float, opts: _Options) -> int:
    """Frames the survey of one recording will analyse (for the progress bar)."""
    total = frame_count * opts.repeat
    if opts.sample_fps is not None and fps > opts.sample_fps:
        total = math.ceil(total * opts.sample_fps / fps)
    if opts.max_frames is not None:
        total = min(total, opts.max_frames)
    return total


def _detected(
    cfg: AtcsConfig, camera_id: str, detector: Detector, frames: Iterator[Frame], crops: CameraCrops
) -> Iterator[tuple[Frame, Detections]]:
    """Detect ``frames`` as the live engine does: tiled, or streamed.

    Streamed frames are cropped once accepted; a crop check's second detections go in the
    same stream.
    """
    tiles = CameraTiles(cfg, detector)
    if camera_id in tiles:  # each frame whole plus its far-field tiles, merged
        return ((f, tiles.detect(f)) for f in frames)
    jobs = (job for frame in frames for job in crops.jobs(frame))
    return checked(detector.detect_stream(jobs, job_image, job_region), crops)


def _survey_camera(
    cfg: AtcsConfig,
    camera_id: str,
    path: str,
    detector: Detector,
    writers: Writers,
    *,
    opts: _Options,
) -> CameraSurvey:
    from tqdm import tqdm

    info = probe_recording(path, folder_fps=opts.folder_fps)
    survey = CameraSurvey(camera_id=camera_id, source=redact_url(path))
    stages = survey.stages
    origin = SURVEY_ORIGIN
    run = CameraRun(cfg, camera_id, writers, origin)
    bar = tqdm(
        total=_expected_frames(info.frame_count, info.fps, opts) or None,
        desc=camera_id, unit="frame", disable=not opts.progress,
    )  # fmt: skip
    start = time.perf_counter()
    replayed = _replayed(camera_id, path, opts.repeat, info.fps, opts.folder_fps)
    frames = islice(_sampled(replayed, opts.sample_fps), opts.max_frames)
    decode = _Waits()
    crops = CameraCrops(
        cfg, detector, frames_expected=_expected_frames(info.frame_count, info.fps, opts) or None
    )
    stream = _detected(cfg, camera_id, detector, _timed(frames, decode), crops)
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
    # the recording up to the end of its last analysed frame's period
    period_s = 1.0 / info.fps if info.fps > 0 else 0.0
    survey.duration_s = (last_at - origin).total_seconds() + period_s if survey.frames else 0.0
    end = origin + timedelta(seconds=survey.duration_s)
    t3 = wall()
    run.finish(end, survey)
    survey.image_path = run.save_image(opts.out_dir / f"{camera_id}.png")
    survey.crop = crops.verdicts.get(camera_id)
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
    sample_fps: float | Literal["camera"] | None = None,
    folder_fps: float | None = None,
) -> SurveyReport:
    """Process recorded footage of ``camera_ids`` (default: every enabled camera).

    ``source`` replaces the single named camera's configured source for this run;
    ``max_frames`` stops each camera after that many frames; ``detector`` replaces the
    configured one (it is then not closed here); ``repeat`` plays each recording that many
    times end to end on one timeline (frame numbers and offsets keep increasing);
    ``on_frame`` is called after every frame (see :data:`FrameHook`). Raises
    :class:`SourceError` when a recording cannot be read (rows of cameras already processed
    stay written) and :class:`ConfigError` for a bad camera choice or ``repeat`` < 1.

    ``sample_fps`` analyses one frame per ``1 / sample_fps`` s of footage, as the live
    service does (``"camera"``: each camera's configured ``sample_fps``; None: every
    frame). ``folder_fps`` is the rate at which an image folder's pictures were taken
    (None: the camera's ``sample_fps``, as the live service reads folders).
    """
    if repeat < 1:
        raise ConfigError(f"repeat must be at least 1, got {repeat}")
    ids = _cameras(cfg, camera_ids, source)
    out_dir.mkdir(parents=True, exist_ok=True)
    own_detector = detector is None
    det = survey_detector(cfg) if detector is None else detector
    writers = Writers(out_dir, cfg.fiware)
    report = SurveyReport(out_dir=out_dir, cameras=[])
    for rate in (sample_fps, folder_fps):
        if isinstance(rate, float | int) and not rate > 0:
            raise ConfigError(f"frame rates must be positive, got {rate}")
    try:
        for cid in ids:
            camera = cfg.camera(cid)
            path = source if source is not None else camera.source
            rate = camera.sample_fps if sample_fps == "camera" else sample_fps
            opts = _Options(
                out_dir, max_frames, progress, repeat, on_frame,
                sample_fps=None if rate is None else float(rate),
                folder_fps=camera.sample_fps if folder_fps is None else folder_fps,
            )  # fmt: skip
            report.cameras.append(_survey_camera(cfg, cid, path, det, writers, opts=opts))
    finally:
        writers.close()
        if own_detector:
            det.close()
    return report
