"""Detection speed: a naive ultralytics loop beside the engine's detector, per clip.

Naive loop: decode each frame with OpenCV, call ``ultralytics.YOLO(model)(frame,
imgsz=...)`` on it, count the vehicle boxes. Engine: the same frames decoded on a background
thread and fed to :meth:`detectors.yolo.YoloDetector.detect_stream`. Same model, same image
size, same thresholds, in the same invocation; the two alternate ``--rounds`` times per clip
and the best round of each is kept (other load on the machine only ever slows a round down).
Prints frames per second, their ratio, CPU time per frame (all threads) and the vehicle
counts by class of both, which must be equal.

    python -m benchmarks.bench_detector                      # every shared clip
    python -m benchmarks.bench_detector --clips pontianak_motorcycles.mp4 --rounds 3
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atcs.types import Image, VehicleClass
from benchmarks.common import DEFAULT_MODEL, find_clips, prefetch, read_frames
from detectors.classes import MODEL_NAMES
from detectors.settings import Engine, YoloSettings
from detectors.ultralytics_yolo import import_ultralytics
from detectors.yolo import YoloDetector


@dataclass(frozen=True, slots=True)
class Run:
    """One timed pass over a clip: frames, wall seconds, CPU seconds, counts by class."""

    frames: int
    wall_s: float
    cpu_s: float
    counts: Counter[str]

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


def _timed(body: Callable[[], tuple[int, Counter[str]]]) -> Run:
    wall, cpu = time.perf_counter(), time.process_time()
    frames, counts = body()
    return Run(frames, time.perf_counter() - wall, time.process_time() - cpu, counts)


def naive_run(model: Any, clip: Path, args: argparse.Namespace) -> Run:
    names: dict[int, str] = model.names

    def body() -> tuple[int, Counter[str]]:
        counts: Counter[str] = Counter()
        frames = 0
        for frame in read_frames(clip, args.frames):
            result = model(
                frame, imgsz=args.image_size, conf=args.confidence, iou=args.nms_iou, verbose=False
            )[0]
            frames += 1
            for cls in result.boxes.cls.tolist():
                vehicle = MODEL_NAMES.get(names[int(cls)])
                if vehicle is not None:
                    counts[vehicle.label] += 1
        return frames, counts

    return _timed(body)


def engine_run(detector: YoloDetector, clip: Path, args: argparse.Namespace) -> Run:
    def same(image: Image) -> Image:
        return image

    def body() -> tuple[int, Counter[str]]:
        counts: Counter[str] = Counter()
        frames = 0
        stream = prefetch(read_frames(clip, args.frames), depth=args.prefetch)
        for _, found in detector.detect_stream(stream, same):
            frames += 1
            for class_id in found.class_id.tolist():
                counts[VehicleClass(class_id).label] += 1
        return frames, counts

    return _timed(body)


def _counts_text(counts: Counter[str]) -> str:
    return " ".join(f"{c.label}={counts.get(c.label, 0)}" for c in VehicleClass)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model name or path")
    parser.add_argument("--clips", nargs="*", help="clip file names in the media folder")
    parser.add_argument("--frames", type=int, default=None, help="most frames per clip")
    parser.add_argument("--image-size", type=int, default=640, help="inference size, px")
    parser.add_argument("--confidence", type=float, default=0.25)
    parser.add_argument("--nms-iou", type=float, default=0.7)
    parser.add_argument("--batch", type=int, default=4, help="engine batch_max_frames")
    parser.add_argument("--inflight", type=int, default=None, help="engine requests in flight")
    parser.add_argument("--prefetch", type=int, default=8, help="decoded frames queued ahead")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per clip")
    parser.add_argument(
        "--engine", choices=[e.value for e in Engine], default="auto", help="engine detector"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    naive_model = import_ultralytics().YOLO(args.model, task="detect")
    detector = YoloDetector(
        YoloSettings(
            model=args.model,
            image_size_px=args.image_size,
            confidence=args.confidence,
            nms_iou=args.nms_iou,
            batch_max_frames=args.batch,
            inflight_requests=args.inflight,
            engine=Engine(args.engine),
        )
    )
    print(f"model {args.model}\nengine detector: {detector.name}, batch {args.batch}")
    header = f"{'clip':36} {'frames':>6} {'naive':>7} {'engine':>7} {'ratio':>6}"
    print(f"{header} {'cpu ms/f naive':>14} {'engine':>7}  counts")
    total_naive = total_engine = 0.0
    total_frames = 0
    all_equal = True
    for clip in find_clips(args.clips):
        first = next(read_frames(clip, 1))
        naive_model(first, imgsz=args.image_size, verbose=False)  # warm-up, not timed
        detector.detect([first])
        naive_runs, engine_runs = [], []
        for _ in range(max(1, args.rounds)):
            naive_runs.append(naive_run(naive_model, clip, args))
            engine_runs.append(engine_run(detector, clip, args))
        naive = max(naive_runs, key=lambda r: r.fps)
        engine = max(engine_runs, key=lambda r: r.fps)
        equal = naive.counts == engine.counts and naive.frames == engine.frames
        all_equal &= equal
        total_frames += naive.frames
        total_naive += naive.wall_s
        total_engine += engine.wall_s
        print(
            f"{clip.name[:36]:36} {naive.frames:6d} {naive.fps:7.1f} {engine.fps:7.1f} "
            f"{engine.fps / naive.fps:5.2f}x {1000 * naive.cpu_s / naive.frames:14.1f} "
            f"{1000 * engine.cpu_s / engine.frames:7.1f}  "
            f"{'same' if equal else 'DIFFERENT'}: {_counts_text(engine.counts)}"
        )
        if not equal:
            print(f"{'':36} naive counts: {_counts_text(naive.counts)}")
    if total_frames:
        naive_fps, engine_fps = total_frames / total_naive, total_frames / total_engine
        print(
            f"{'all clips':36} {total_frames:6d} {naive_fps:7.1f} {engine_fps:7.1f} "
            f"{engine_fps / naive_fps:5.2f}x  counts {'all equal' if all_equal else 'DIFFER'}"
        )
    detector.close()
    return 0 if all_equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
