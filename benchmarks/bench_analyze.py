"""Survey speed and memory: ``atcs analyze`` beside a naive ultralytics loop, per clip.

For every clip a temporary config gets one camera reading it, one segment covering most of
the image and a counting line across it. Two worker processes, started once, alternate
``--rounds`` times per clip (naive, survey, naive, survey ...), so load from elsewhere on
the machine hits both alike; the best round of each gives the fps, and the median ratio is
printed beside the best one.

- naive: decode each frame with OpenCV, call ``ultralytics.YOLO(model)(frame, imgsz=...)``
  on it (same model, image size and thresholds), count the vehicle boxes by class;
- survey: :func:`atcs.survey.run_survey` on the config (the code behind ``atcs analyze``),
  CSV files and annotated image included, with the detector it builds itself, wrapped to
  count the boxes it returns by class.

Counts match when, in every round, the per-class box totals of the detector (before the
survey drops nested duplicates and tracks) equal the naive loop's, frame count included.
Time shares are the survey's :class:`atcs.survey.StageTimes` (main-thread wall time: decode
wait / inference (letterbox and NMS on the main thread) / analysis / output). CPU ms per
frame is split by thread: main, OpenVINO (threads that outlive the run: the model alone)
and decode (threads born and gone during the run: the decoder and FFmpeg's); "cores" is
CPU time over wall time. The model alone (least over the rounds) bounds the survey at
cores x 1000 / ms frames per second even if decoding, NMS and analysis were free; beside
it, the CPU ms per frame that twice the naive fps would allow. Peak memory is the RSS
high-water mark of each worker process during its best round (reset before every round).

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

from atcs.config import AtcsConfig, parse_config
from atcs.metrics import CameraAnalyzer
from atcs.survey import CameraSurvey, run_survey, survey_detector
from atcs.types import Detections, Image, VehicleClass
from benchmarks.common import DEFAULT_MODEL, REPO_DIR, find_clips, read_frames
from detectors.base import CroppingDetector, Detector, RegionOf, Regions
from detectors.crop import PixelBox
from detectors.letterbox import Placement

T = TypeVar("T")
CAMERA = "bench"
CLASS_LABELS = tuple(c.label for c in VehicleClass)
STAGES = ("decode", "inference", "analysis", "output")


def bench_config(clip: Path, model: str, image_size_px: int) -> AtcsConfig:
    """A one-camera config on ``clip``: a segment over most of the image, a line across it."""
    raw: dict[str, Any] = {
        "site": {"id": "bench", "name": "benchmark", "timezone": "UTC"},
        "detector": {"model": model, "image_size_px": image_size_px, "device": "cpu"},
        "cameras": [{"id": CAMERA, "source": str(clip.resolve())}],
        "segments": [
            {
                "id": "road",
                "camera": CAMERA,
                "polygon": [[0.02, 0.02], [0.98, 0.02], [0.98, 0.98], [0.02, 0.98]],
                "length_m": 60.0,
                "lanes": 3,
            }
        ],
        "lines": [
            {
                "id": "across",
                "camera": CAMERA,
                "segment": "road",
                "points": [[0.02, 0.5], [0.98, 0.5]],
            }
        ],
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

    def __init__(self, model: str, image_size_px: int) -> None:
        self.model, self.image_size_px = model, image_size_px
        cfg = bench_config(REPO_DIR / "any.mp4", model, image_size_px)
        self.detector = CountingDetector(survey_detector(cfg))  # the one run_survey builds
        self.out = Path(tempfile.mkdtemp(prefix="bench-analyze-"))

    def run(self, clip: Path, max_frames: int | None) -> Round:
        cfg = bench_config(clip, self.model, self.image_size_px)
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
        )


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
        NaiveWorker(model, image_size_px) if kind == "naive" else SurveyWorker(model, image_size_px)
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


def _report(clip: Path, rounds: list[tuple[Round, Round]], cores: int) -> bool:
    """Print the two lines of one clip; True when every round's counts matched."""
    best_n = max((r[0] for r in rounds), key=lambda r: r.fps)
    best_s = max((r[1] for r in rounds), key=lambda r: r.fps)
    median_ratio = statistics.median(s.fps / n.fps for n, s in rounds)
    equal = all(n.counts == s.counts and n.frames == s.frames for n, s in rounds)
    print(
        f"{clip.name[:30]:30} {best_n.frames:6d} {best_n.fps:6.1f} {best_s.fps:6.1f} "
        f"{best_s.fps / best_n.fps:5.2f}x {median_ratio:5.2f}x  {_shares(best_s):17} "
        f"{best_n.peak_mb:5.0f}/{best_s.peak_mb:<4.0f}  "
        f"{'same' if equal else 'DIFFERENT'}: {_counts_text(best_s.counts)}"
    )
    if not equal:
        for n, s in rounds:
            print(f"{'':30} naive {n.frames} {_counts_text(n.counts)} / survey {s.frames}")
    cm = best_s.cpu_ms
    n_ms, s_ms = 1000 * best_n.cpu_s / best_n.frames, sum(cm.values())
    model_ms = min(r[1].cpu_ms["openvino"] for r in rounds)
    print(
        f"{'':30} cpu ms/frame: naive {n_ms:.1f} on {best_n.cpu_s / best_n.wall_s:.2f} cores; "
        f"survey {s_ms:.1f} = main {cm['main']:.1f} + openvino {cm['openvino']:.1f} + decode "
        f"{cm['decode']:.1f} on {best_s.cpu_s / best_s.wall_s:.2f} cores; model alone "
        f"{model_ms:.1f} -> at most {cores * 1000 / model_ms:.0f} fps on {cores} cores; 2x "
        f"naive needs <= {cores * 1000 / (2 * best_n.fps):.1f}"
    )
    print(f"{'':30} survey counts after nested duplicates: {_counts_text(best_s.counted)}")
    return equal


def compare(args: argparse.Namespace) -> int:
    naive = Remote("naive", args.model, args.image_size)
    survey = Remote("survey", args.model, args.image_size)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    print(
        f"model {args.model}, image size {args.image_size}, {cores} cores, best of "
        f"{args.rounds} alternating rounds; load average {os.getloadavg()[0]:.2f} before"
    )
    print(
        f"{'clip':30} {'frames':>6} {'naive':>6} {'survey':>6} {'ratio':>6} {'median':>6}  "
        f"{'% dec/inf(pp)/an/out':17} {'RSS MB n/s':10}  detector counts"
    )
    all_equal = True
    total_frames, naive_s, survey_s = 0, 0.0, 0.0
    for clip in find_clips(args.clips):
        naive.run(clip, 8)  # warm-up: compile, caches
        survey.run(clip, 8)
        rounds: list[tuple[Round, Round]] = []
        for _ in range(max(1, args.rounds)):
            rounds.append((naive.run(clip, args.frames), survey.run(clip, args.frames)))
        all_equal &= _report(clip, rounds, cores)
        total_frames += rounds[0][0].frames
        naive_s += min(r[0].wall_s for r in rounds)
        survey_s += min(r[1].wall_s for r in rounds)
    if total_frames:
        n_fps, s_fps = total_frames / naive_s, total_frames / survey_s
        print(
            f"{'all clips':30} {total_frames:6d} {n_fps:6.1f} {s_fps:6.1f} "
            f"{s_fps / n_fps:5.2f}x  counts {'all equal' if all_equal else 'DIFFER'}"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    naive.close()
    survey.close()
    return 0 if all_equal else 1


# --- the long looped run -------------------------------------------------------------------


def soak(args: argparse.Namespace) -> int:
    from atcs.sources import probe_recording

    clip = find_clips(args.clips)[0]
    cfg = bench_config(clip, args.model, args.image_size)
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
