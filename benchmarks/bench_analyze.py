"""Survey speed and memory: ``atcs analyze`` beside a naive ultralytics loop, per clip.

For every clip a temporary config gets one camera reading it with the segments and counting
lines ``survey.toml`` draws on that clip. Three worker processes, started once, alternate
``--rounds`` times per clip (naive, whole, crop, naive ...), so load from elsewhere on the
machine hits them alike; the best round of each gives the fps, and the median crop/naive
ratio is printed beside the best one.

- naive: decode each frame with OpenCV, call ``ultralytics.YOLO(model)(frame, imgsz=...)``
  on it (same model, image size and thresholds), count the vehicle boxes by class;
- whole: :func:`atcs.survey.run_survey` on the config (the code behind ``atcs analyze``),
  CSV files and annotated image included, with ``[detector] crop = false``;
- crop: the same with the default ``crop = true``: each camera's frames cropped to its
  segments and lines once its crop check (``atcs.crop_check``) allows it.

The whole-frame boxes match the naive loop when, in every round, the per-class box totals
of the detector equal the naive loop's, frame count included. The crop's counts match the
whole frame's when, in every round, the line crossings by line, direction and class are
equal; the vehicles inside the segments summed over all frames are printed beside them.
Time shares are the crop survey's :class:`atcs.survey.StageTimes` (main-thread wall time:
decode wait / inference (letterbox and NMS on the main thread) / analysis / output). CPU ms
per frame is split by thread: main, OpenVINO (threads that outlive the run) and decode
(threads born and gone during the run). The whole-frame model alone (least over the rounds)
bounds a whole-frame survey at cores x 1000 / ms frames per second even if decoding, NMS
and analysis were free: the crop's fps over that limit is printed as "/limit". Peak memory
is the RSS high-water mark of each worker process during its best round.

``--loop-minutes M`` (or ``--repeat N``) instead runs the survey over the first clip played
end to end many times (``run_survey(repeat=...)``) and prints RSS and live tracks every
``--every`` frames (default: once per pass, always at the same frame of the clip, so the
samples see the same scene), then the growth from the first to the last quarter of the run.

    python -m benchmarks.bench_analyze                                   # every shared clip
    python -m benchmarks.bench_analyze --clips pontianak_motorcycles.mp4 --rounds 5
    python -m benchmarks.bench_analyze --clips pontianak_motorcycles.mp4 --loop-minutes 10
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import multiprocessing as mp
import os
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from atcs.config import AtcsConfig, load_config, parse_config
from atcs.metrics import CameraAnalyzer
from atcs.survey import CameraSurvey, run_survey, survey_detector
from atcs.types import Detections, Image, VehicleClass
from benchmarks.common import DEFAULT_MODEL, REPO_DIR, find_clips, read_frames
from detectors.base import CroppingDetector, Detector, RegionOf, Regions
from detectors.crop import PixelBox
from detectors.letterbox import Placement

SURVEY_CONFIG = REPO_DIR / "survey.toml"

T = TypeVar("T")
CAMERA = "bench"
CLASS_LABELS = tuple(c.label for c in VehicleClass)


def bench_config(clip: Path, model: str, image_size_px: int, *, crop: bool = True) -> AtcsConfig:
    """A one-camera config on ``clip`` with the segments and lines ``survey.toml`` draws on it.

    A clip the survey configuration does not cover gets a segment over most of the image and
    a line across it. ``crop``: ``[detector] crop``.
    """
    survey = load_config(SURVEY_CONFIG)
    drawn = [c for c in survey.cameras if Path(c.source).name == clip.name]
    segments: list[dict[str, Any]]
    lines: list[dict[str, Any]]
    if drawn:
        segments = [{**s.model_dump(), "camera": CAMERA} for s in survey.segments_of(drawn[0].id)]
        lines = [{**ln.model_dump(), "camera": CAMERA} for ln in survey.lines_of(drawn[0].id)]
    else:
        box = [[0.02, 0.02], [0.98, 0.02], [0.98, 0.98], [0.02, 0.98]]
        segments = [{"id": "road", "camera": CAMERA, "polygon": box, "length_m": 60.0, "lanes": 3}]
        lines = [
            {
                "id": "across",
                "camera": CAMERA,
                "segment": "road",
                "points": [[0.02, 0.5], [0.98, 0.5]],
            }
        ]
    raw: dict[str, Any] = {
        "site": {"id": "bench", "name": "benchmark", "timezone": "UTC"},
        "detector": {"model": model, "image_size_px": image_size_px, "device": "cpu", "crop": crop},
        "cameras": [{"id": CAMERA, "source": str(clip.resolve()), "profile": "counting"}],
        "segments": segments,
        "lines": lines,
    }
    return parse_config(raw, REPO_DIR, environ={})


# --- memory -------------------------------------------------------------------------------


def _status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """Resident set size now, MiB (0 where /proc is missing)."""
    return (_status_kb("VmRSS") or 0) / 1024


def reset_peak() -> bool:
    """Reset the RSS high-water mark (Linux ``clear_refs``); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_mb() -> float:
    """RSS high-water mark since the last reset (or process start), MiB."""
    kb = _status_kb("VmHWM")
    if kb is None:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024


# --- one round ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Round:
    """One timed pass over a clip by one worker.

    ``counts``: detector boxes by class label; ``cpu_ms``: CPU ms per frame by thread group
    (survey only); ``shares``: fraction of wall time per stage (survey only).
    """

    frames: int
    wall_s: float
    cpu_s: float
    peak_mb: float
    counts: dict[str, int]
    cpu_ms: dict[str, float] = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)
    counted: dict[str, int] = field(default_factory=dict)
    crossings: dict[str, int] = field(default_factory=dict)
    vehicle_frames: float = 0.0
    crop: str = ""

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


class CountingDetector:
    """A detector passing everything through, counting the boxes it returns by class."""

    def __init__(self, inner: Detector) -> None:
        self.inner = inner
        self.totals = np.zeros(len(CLASS_LABELS), dtype=np.int64)

    @property
    def name(self) -> str:
        return self.inner.name

    def placement(self, height_px: int, width_px: int, region: PixelBox | None) -> Placement | None:
        """Where the real detector puts such an image."""
        if isinstance(self.inner, CroppingDetector):
            return self.inner.placement(height_px, width_px, region)
        return None

    def detect(self, images: Sequence[Image], regions: Regions | None = None) -> list[Detections]:
        found = self.inner.detect(images, regions)
        for d in found:
            self._count(d)
        return found

    def detect_stream(
        self,
        items: Iterable[T],
        image_of: Callable[[T], Image],
        region_of: RegionOf[T] | None = None,
    ) -> Generator[tuple[T, Detections], None, None]:
        for item, found in self.inner.detect_stream(items, image_of, region_of):
            self._count(found)
            yield item, found

    def _count(self, found: Detections) -> None:
        if len(found.class_id):
            self.totals += np.bincount(found.class_id, minlength=len(CLASS_LABELS))

    def counts(self) -> dict[str, int]:
        return {c: int(n) for c, n in zip(CLASS_LABELS, self.totals, strict=True)}

    def close(self) -> None:
        self.inner.close()


def _thread_cpu() -> dict[int, float]:
    import psutil

    return {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}


class SurveyWorker:
    """Runs ``run_survey`` on one clip's config with a detector kept across rounds."""

    def __init__(self, model: str, image_size_px: int, *, crop: bool) -> None:
        self.model, self.image_size_px, self.crop = model, image_size_px, crop
        cfg = bench_config(REPO_DIR / "any.mp4", model, image_size_px, crop=crop)
        self.detector = CountingDetector(survey_detector(cfg))  # the one run_survey builds
        self.out = Path(tempfile.mkdtemp(prefix="bench-analyze-"))

    def run(self, clip: Path, max_frames: int | None) -> Round:
        cfg = bench_config(clip, self.model, self.image_size_px, crop=self.crop)
        self.detector.totals[:] = 0
        main_id = threading.get_native_id()
        before = _thread_cpu()
        reset_peak()
        cpu0, main0 = time.process_time(), time.thread_time()
        report = run_survey(
            cfg, self.out, max_frames=max_frames, progress=False, detector=self.detector
        )
        cpu_s, main_s = time.process_time() - cpu0, time.thread_time() - main0
        after = _thread_cpu()
        cam = report.cameras[0]
        lasting = sum(v - before[t] for t, v in after.items() if t in before and t != main_id)
        per = 1000 / max(1, cam.frames)
        cpu_ms = {
            "main": main_s * per,
            "openvino": lasting * per,
            "decode": max(0.0, cpu_s - main_s - lasting) * per,
        }
        st = cam.stages
        wall = max(cam.wall_s, 1e-9)
        shares = {
            "decode": st.decode_s / wall,
            "inference": st.inference_s / wall,
            "analysis": st.analysis_s / wall,
            "output": st.output_s / wall,
            "pre/post": st.inference_cpu_s / wall,
        }
        return Round(
            cam.frames,
            cam.wall_s,
            cpu_s,
            peak_mb(),
            self.detector.counts(),
            cpu_ms,
            shares,
            dict(cam.detections_by_class),
            crossings=_crossings(self.out / "crossings.csv"),
            vehicle_frames=_vehicle_frames(self.out / "frames.csv"),
            crop="" if cam.crop is None else cam.crop.describe(),
        )


def _crossings(path: Path) -> dict[str, int]:
    """Line crossings by line, direction and class."""
    if not path.exists():
        return {}
    with path.open(newline="") as handle:
        rows = csv.DictReader(handle)
        return dict(Counter(f"{r['line']}/{r['direction']}/{r['class']}" for r in rows))


def _vehicle_frames(path: Path) -> float:
    """Vehicles inside the segments summed over every frame (frames.csv)."""
    with path.open(newline="") as handle:
        return sum(float(r["vehicles"]) for r in csv.DictReader(handle))


class NaiveWorker:
    """The naive loop: OpenCV decode, ``YOLO(model)(frame, imgsz=...)`` on every frame."""

    def __init__(self, model: str, image_size_px: int) -> None:
        from detectors.classes import MODEL_NAMES
        from detectors.ultralytics_yolo import import_ultralytics

        self.yolo = import_ultralytics().YOLO(model, task="detect")
        self.image_size_px = image_size_px
        self.vehicle_of = MODEL_NAMES
        self.conf, self.iou = 0.25, 0.7  # DetectorConfig defaults, as in bench_config

    def run(self, clip: Path, max_frames: int | None) -> Round:
        names: dict[int, str] = self.yolo.names
        counts: Counter[str] = Counter()
        frames = 0
        reset_peak()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for frame in read_frames(clip, max_frames):
            result = self.yolo(
                frame, imgsz=self.image_size_px, conf=self.conf, iou=self.iou, verbose=False
            )[0]
            frames += 1
            for cls in result.boxes.cls.tolist():
                vehicle = self.vehicle_of.get(names[int(cls)])
                if vehicle is not None:
                    counts[vehicle.label] += 1
        wall_s, cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
        return Round(frames, wall_s, cpu_s, peak_mb(), {c: counts[c] for c in CLASS_LABELS})


def _serve(kind: str, model: str, image_size_px: int, conn: Connection) -> None:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    logging.basicConfig(level=logging.WARNING)
    worker = (
        NaiveWorker(model, image_size_px)
        if kind == "naive"
        else SurveyWorker(model, image_size_px, crop=kind == "crop")
    )
    conn.send("ready")
    while (job := conn.recv()) is not None:
        clip, max_frames = job
        try:
            conn.send(worker.run(Path(clip), max_frames))
        except Exception as exc:  # reported by the parent, which stops
            conn.send(f"{type(exc).__name__}: {exc}")


class Remote:
    """A worker process of one kind, asked for rounds one at a time."""

    def __init__(self, kind: str, model: str, image_size_px: int) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(kind, model, image_size_px, child))
        self.proc.start()
        self.kind = kind
        self._answer()

    def _answer(self) -> Any:
        answer = self.conn.recv()
        if isinstance(answer, str) and answer != "ready":
            raise SystemExit(f"{self.kind} worker failed: {answer}")
        return answer

    def run(self, clip: Path, max_frames: int | None) -> Round:
        self.conn.send((str(clip), max_frames))
        found: Round = self._answer()
        return found

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join(timeout=30)


# --- the comparison table ----------------------------------------------------------------


def _counts_text(counts: dict[str, int]) -> str:
    return " ".join(f"{c}={counts.get(c, 0)}" for c in CLASS_LABELS)


def _shares(best: Round) -> str:
    sh = best.shares
    return (
        f"{100 * sh['decode']:.0f}/{100 * sh['inference']:.0f}({100 * sh['pre/post']:.0f})/"
        f"{100 * sh['analysis']:.0f}/{100 * sh['output']:.0f}"
    )


def _best(rounds: list[Round]) -> Round:
    return max(rounds, key=lambda r: r.fps)


def _report(clip: Path, rounds: list[tuple[Round, Round, Round]], cores: int) -> tuple[bool, bool]:
    """Print the lines of one clip; (whole-frame boxes = naive, crop counts = whole-frame)."""
    naive, whole, crop = (_best([r[k] for r in rounds]) for k in range(3))
    ratio = statistics.median(c.fps / n.fps for n, _, c in rounds)
    exact = all(n.counts == w.counts and n.frames == w.frames for n, w, _ in rounds)
    same = all(c.crossings == w.crossings for _, w, c in rounds)
    share = crop.vehicle_frames / whole.vehicle_frames - 1 if whole.vehicle_frames else 0.0
    model_ms = min(r[1].cpu_ms["openvino"] for r in rounds)
    limit = cores * 1000 / model_ms
    print(
        f"{clip.name[:30]:30} {naive.frames:6d} {naive.fps:6.1f} {whole.fps:6.1f} {crop.fps:6.1f} "
        f"{whole.fps / naive.fps:5.2f}x {crop.fps / naive.fps:5.2f}x ({ratio:4.2f}x) "
        f"{crop.fps / limit:5.2f}  {_shares(crop):17} "
        f"{naive.peak_mb:5.0f}/{whole.peak_mb:4.0f}/{crop.peak_mb:<4.0f}"
    )
    print(
        f"{'':30} whole-frame boxes {'same as naive' if exact else 'DIFFERENT from naive'}: "
        f"{_counts_text(whole.counts)}"
    )
    print(
        f"{'':30} crop: {crop.crop or 'not cropped (no smaller window, or too few frames)'}"
        f"; crossings {'equal' if same else 'DIFFERENT'} "
        f"({sum(crop.crossings.values())} vs {sum(whole.crossings.values())}); vehicles in "
        f"the segments over all frames {crop.vehicle_frames:.0f} vs {whole.vehicle_frames:.0f} "
        f"({100 * share:+.1f} %)"
    )
    if not same:
        print(f"{'':30} crop {crop.crossings} / whole {whole.crossings}")
    cm = crop.cpu_ms
    n_ms = 1000 * naive.cpu_s / naive.frames
    print(
        f"{'':30} cpu ms/frame: naive {n_ms:.1f} on {naive.cpu_s / naive.wall_s:.2f} cores; "
        f"whole {sum(whole.cpu_ms.values()):.1f}; crop {sum(cm.values()):.1f} = main "
        f"{cm['main']:.1f} + openvino {cm['openvino']:.1f} + decode {cm['decode']:.1f}; whole-"
        f"frame model alone {model_ms:.1f} -> at most {limit:.0f} fps on {cores} cores"
    )
    return exact, same


def compare(args: argparse.Namespace) -> int:
    workers = [Remote(kind, args.model, args.image_size) for kind in ("naive", "whole", "crop")]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    print(
        f"model {args.model}, image size {args.image_size}, {cores} cores, best of "
        f"{args.rounds} alternating rounds; load average {os.getloadavg()[0]:.2f} before"
    )
    print(
        f"{'clip':30} {'frames':>6} {'naive':>6} {'whole':>6} {'crop':>6} {'whole':>6} "
        f"{'crop (median)':>14} {'/limit':>6}  {'% dec/inf(pp)/an/out':17} {'RSS MB n/w/c':12}"
    )
    all_exact = all_same = True
    total, wall = 0, [0.0, 0.0, 0.0]
    for clip in find_clips(args.clips):
        for worker in workers:
            worker.run(clip, 8)  # warm-up: compile, caches
        rounds: list[tuple[Round, Round, Round]] = []
        for _ in range(max(1, args.rounds)):
            n, w, c = (worker.run(clip, args.frames) for worker in workers)
            rounds.append((n, w, c))
        exact, same = _report(clip, rounds, cores)
        all_exact &= exact
        all_same &= same
        total += rounds[0][0].frames
        for k in range(3):
            wall[k] += min(r[k].wall_s for r in rounds)
    if total:
        n_fps, w_fps, c_fps = (total / w for w in wall)
        print(
            f"{'all clips':30} {total:6d} {n_fps:6.1f} {w_fps:6.1f} {c_fps:6.1f} "
            f"{w_fps / n_fps:5.2f}x {c_fps / n_fps:5.2f}x; whole-frame boxes "
            f"{'all equal to naive' if all_exact else 'DIFFER'}; crop crossings "
            f"{'all equal to whole-frame' if all_same else 'DIFFER'}"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    for worker in workers:
        worker.close()
    return 0 if all_exact and all_same else 1


# --- the long looped run -------------------------------------------------------------------


def soak(args: argparse.Namespace) -> int:
    from atcs.sources import probe_recording

    clip = find_clips(args.clips)[0]
    cfg = bench_config(clip, args.model, args.image_size, crop=not args.no_crop)
    info = probe_recording(str(clip))
    samples: list[tuple[int, float]] = []
    max_tracks = 0
    every = 1
    start = time.perf_counter()

    def sample(cam: CameraSurvey, analyzer: CameraAnalyzer) -> None:
        nonlocal max_tracks
        max_tracks = max(max_tracks, analyzer.live_tracks)
        if cam.frames % every == 0:
            samples.append((cam.frames, rss_mb()))
            fps = cam.frames / (time.perf_counter() - start)
            print(
                f"frame {cam.frames:7d}  rss {samples[-1][1]:7.1f} MB  live tracks "
                f"{analyzer.live_tracks:4d}  {fps:5.1f} fps",
                flush=True,
            )

    detector = survey_detector(cfg)
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as out:
        first = run_survey(cfg, Path(out), progress=False, detector=detector).cameras[0]
        repeat = args.repeat or max(2, math.ceil(args.loop_minutes * 60 * first.fps / first.frames))
        every = args.every or first.frames  # default: once per pass, at the same scene
        print(
            f"{clip.name}: {info.frame_count} frames, one pass at {first.fps:.1f} fps; "
            f"playing it {repeat} times, RSS every {every} frames "
            f"(after the first pass: {rss_mb():.1f} MB)"
        )
        start = time.perf_counter()
        cam = run_survey(
            cfg, Path(out), progress=False, detector=detector, repeat=repeat, on_frame=sample
        ).cameras[0]
    detector.close()
    print(
        f"{cam.frames} frames ({cam.duration_s / 60:.1f} min of video) in "
        f"{cam.wall_s / 60:.1f} min = {cam.fps:.1f} fps; {cam.windows} windows, "
        f"{cam.crossings} crossings"
    )
    if len(samples) < 4:
        print("too few samples for the quarters: lower --every")
        return 1
    q = len(samples) // 4
    quarters = [[r for _, r in samples[k * q : (k + 1) * q]] for k in range(4)]
    medians = [statistics.median(x) for x in quarters]
    print(
        "RSS by quarter of the run, median (max) MB: "
        + ", ".join(f"{m:.1f} ({max(x):.1f})" for m, x in zip(medians, quarters, strict=True))
    )
    growth = medians[3] - medians[0]
    print(
        f"growth first to last quarter: {growth:+.1f} MB ({100 * growth / medians[0]:+.1f} %) "
        f"median, {max(quarters[3]) - max(quarters[0]):+.1f} MB max; peak {peak_mb():.1f} MB; "
        f"most live tracks {max_tracks}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model name or path")
    parser.add_argument("--clips", nargs="*", help="clip file names in the media folder")
    parser.add_argument("--frames", type=int, default=None, help="most frames per clip")
    parser.add_argument("--image-size", type=int, default=640, help="inference size, px")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per clip")
    parser.add_argument("--no-crop", action="store_true", help="soak run: whole frames")
    parser.add_argument("--loop-minutes", type=float, default=None, help="soak run length")
    parser.add_argument("--repeat", type=int, default=None, help="soak run: clip passes")
    parser.add_argument(
        "--every", type=int, default=0, help="soak run: RSS every N frames (0: every pass)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    logging.basicConfig(level=logging.WARNING)
    if args.loop_minutes is not None or args.repeat is not None:
        args.loop_minutes = args.loop_minutes or 0.0
        return soak(args)
    return compare(args)


if __name__ == "__main__":
    raise SystemExit(main())
