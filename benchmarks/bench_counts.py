"""Counting accuracy against the hand counts, per sampling rate, for three trackers.

For every shared clip that has hand counts (``tests/data/groundtruth/<clip>.csv``) and a
camera in the survey configuration (``survey.toml``: the demo cameras plus the
other shared clips), the clip is sampled at each ``--rates`` value (frames per second of
footage, the way ``atcs analyze --sample-fps`` and the live service sample it) and its
counting lines are counted by :class:`atcs.metrics.CameraAnalyzer` (duplicate boxes
dropped, tracks, confirmed crossings, flushed at the end) with each tracker:

- ``ours``: the engine's tracker (:mod:`atcs.metrics.tracking`), fed the boxes at the
  configured confidence and the frame (for colour);
- ``bytetrack`` and ``botsort``: ultralytics' trackers with the library's default
  settings (``benchmarks/peer_trackers.py`` says the two changes), fed the same boxes
  down to their low threshold (0.1);
- ``crop`` (on request): the engine's tracker fed the boxes the detector finds when it
  crops each frame to the camera's segments and lines (``[detector] crop``), to hold the
  crop's counts to the whole frame's (``ours``) and to the hand counts.

The model runs once per clip at the full frame rate with confidence 0.1; its boxes are
cached in ``--cache`` (keyed by clip, model and image size), so later runs only track.
Printed per clip, rate, line, direction and class: true count, each tracker's count and
its error in percent; then per tracker and rate, how many (line, direction) totals meet the
target (within 5 % or 1 vehicle of the hand count).

    python -m benchmarks.bench_counts                       # every clip, 30 10 5 2 fps
    python -m benchmarks.bench_counts --rates 5 --clips pontianak_motorcycles.mp4
    python -m benchmarks.bench_counts --rates 30,5 --trackers ours,crop   # crop vs whole frame
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np

from atcs.config import AtcsConfig, load_config
from atcs.detection import build_detector
from atcs.measured_region import MeasuredRegion
from atcs.metrics import CameraAnalyzer
from atcs.metrics.tracking import FrameTracker
from atcs.sources import FootageSampler
from atcs.survey import SURVEY_ORIGIN
from atcs.types import Detections, Image, LineCrossing
from benchmarks.common import REPO_DIR, read_frames
from benchmarks.peer_trackers import PEERS, PeerTracker
from detectors.crop import PixelBox

GROUND_TRUTH_DIR = REPO_DIR / "tests" / "data" / "groundtruth"
SURVEY_CONFIG = REPO_DIR / "survey.toml"
CACHE_CONFIDENCE = 0.1
TRACKERS = ("ours", *PEERS)
CROP = "crop"

Key = tuple[str, str, str]  # line, direction, class


@dataclass(frozen=True, slots=True)
class Clip:
    """A clip with hand counts: its camera in the survey config and its frame rate."""

    path: Path
    camera_id: str
    fps: float
    truth: Counter[Key]


def read_truth(path: Path) -> Counter[Key]:
    """Hand counts of one clip by (line, direction, class)."""
    with path.open(newline="", encoding="utf-8") as handle:
        return Counter((r["line"], r["direction"], r["class"]) for r in csv.DictReader(handle))


def find_clips(cfg: AtcsConfig, names: Sequence[str] | None) -> list[Clip]:
    """The survey cameras whose clip has hand counts (only ``names`` when given)."""
    import cv2

    clips: list[Clip] = []
    for cam in cfg.cameras:
        path = Path(cam.source)
        truth_file = GROUND_TRUTH_DIR / f"{path.stem}.csv"
        if not truth_file.exists() or (names and path.name not in names):
            continue
        capture = cv2.VideoCapture(str(path))
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        capture.release()
        clips.append(Clip(path, cam.id, fps, read_truth(truth_file)))
    return clips


def cached_detections(
    cfg: AtcsConfig, clip: Path, cache_dir: Path, region: MeasuredRegion | None = None
) -> list[Detections]:
    """Boxes of every frame of ``clip`` at confidence 0.1, from the cache or the model.

    With ``region`` the detector crops each frame to it (``[detector] crop_margin_px``).
    """
    det_cfg = cfg.detector.model_copy(update={"confidence": CACHE_CONFIDENCE})
    stat = clip.stat()
    key = f"{clip.name}|{stat.st_size}|{det_cfg.model}|{det_cfg.image_size_px}|{det_cfg.nms_iou}"
    if region is not None:
        key += f"|crop {region}|{det_cfg.crop_margin_px}"
    name = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = cache_dir / f"{clip.stem}-{name}.npz"
    if path.exists():
        data = np.load(path)
        rows, bounds = data["rows"], data["bounds"]
    else:
        detector = build_detector(det_cfg, inflight_requests=3)
        per_frame: list[np.ndarray] = []
        try:
            frames = list(read_frames(clip, None))

            def region_of(image: Image) -> PixelBox | None:
                return None if region is None else region.pixels(image.shape[1], image.shape[0])

            for _, dets in detector.detect_stream(frames, lambda image: image, region_of):
                per_frame.append(
                    np.column_stack([dets.xyxy, dets.confidence, dets.class_id]).astype(np.float64)
                )
        finally:
            detector.close()
        bounds = np.cumsum([0, *[len(r) for r in per_frame]])
        rows = np.concatenate(per_frame) if per_frame else np.zeros((0, 6))
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, rows=rows, bounds=bounds)
    out = []
    for k in range(len(bounds) - 1):
        r = rows[bounds[k] : bounds[k + 1]]
        out.append(Detections(r[:, :4], r[:, 4], r[:, 5].astype(np.int64)))
    return out


@dataclass(slots=True)
class _Run:
    """One (rate, tracker) pass over a clip: its sampler, analyzer and crossings."""

    rate: float
    tracker: str
    sampler: FootageSampler
    analyzer: CameraAnalyzer | None = None
    crossings: list[LineCrossing] | None = None


def _tracker(name: str, rate: float) -> FrameTracker | None:
    return None if name in ("ours", CROP) else PeerTracker(name, rate)


@dataclass(frozen=True, slots=True)
class Jitter:
    """Noise added to the cached boxes, to see how much a count depends on the exact boxes.

    ``box_px``: standard deviation of the normal noise on each box coordinate, pixels;
    ``confidence``: half-width of the uniform noise on each confidence; ``seed``: the
    random generator's seed (one seed, one repeatable perturbation of the whole clip).
    """

    box_px: float
    confidence: float
    seed: int

    def apply(self, frames: Sequence[Detections]) -> list[Detections]:
        """The same detections with noise on every box and confidence."""
        rng = np.random.default_rng(self.seed)
        out = []
        for dets in frames:
            xyxy = dets.xyxy + rng.normal(0.0, self.box_px, dets.xyxy.shape)
            xyxy[:, 2:] = np.maximum(xyxy[:, 2:], xyxy[:, :2] + 1.0)  # keep boxes valid
            noise = rng.uniform(-self.confidence, self.confidence, len(dets))
            confidence = np.clip(dets.confidence + noise, 0.0, 1.0)
            out.append(
                Detections(xyxy.astype(np.float32), confidence.astype(np.float32), dets.class_id)
            )
        return out


def count_clip(
    cfg: AtcsConfig,
    clip: Clip,
    rates: Sequence[float],
    trackers: Sequence[str],
    cache_dir: Path,
    *,
    jitter: Jitter | None = None,
) -> dict[tuple[float, str], Counter[Key]]:
    """Counts by (line, direction, class) for every rate and tracker, decoding once.

    With ``jitter`` every tracker gets the same perturbed boxes.
    """
    detections = cached_detections(cfg, clip.path, cache_dir)
    cropped = detections
    if CROP in trackers:
        region = MeasuredRegion.of_camera(cfg, clip.camera_id)
        cropped = cached_detections(cfg, clip.path, cache_dir, region)
    if jitter is not None:
        detections = jitter.apply(detections)
        cropped = detections if cropped is detections else jitter.apply(cropped)
    runs = [_Run(r, t, FootageSampler(min(r, clip.fps))) for r in rates for t in trackers]
    for run in runs:
        run.crossings = []
    floor = cfg.detector.confidence
    for index, image in enumerate(_frames(clip.path, len(detections))):
        offset_s = index / clip.fps
        at = SURVEY_ORIGIN + timedelta(seconds=offset_s)
        for run in runs:
            dets = cropped[index] if run.tracker == CROP else detections[index]
            if not run.sampler.take(offset_s):
                continue
            if run.analyzer is None:
                height, width = image.shape[:2]
                run.analyzer = CameraAnalyzer.from_config(
                    cfg, clip.camera_id, width, height, SURVEY_ORIGIN,
                    tracker=_tracker(run.tracker, min(run.rate, clip.fps)),
                )  # fmt: skip
            fed = dets[dets.confidence >= floor] if run.tracker in ("ours", CROP) else dets
            assert run.crossings is not None
            run.crossings += run.analyzer.update(index, at, offset_s, fed, image).crossings
    out: dict[tuple[float, str], Counter[Key]] = {}
    for run in runs:
        assert run.crossings is not None
        if run.analyzer is not None:
            run.crossings += run.analyzer.flush()
        out[run.rate, run.tracker] = Counter(
            (c.line_id, c.direction.value, c.vehicle_class.label) for c in run.crossings
        )
    return out


def _frames(path: Path, limit: int) -> Iterator[Image]:
    yield from read_frames(path, limit)


def error_pct(counted: int, true: int) -> str:
    """Signed error in percent of the true count (``+n`` vehicles when the truth is 0)."""
    if true == 0:
        return "0" if counted == 0 else f"+{counted} veh"
    return f"{100.0 * (counted - true) / true:+.0f} %"


def on_target(counted: int, true: int) -> bool:
    """Within 5 % or 1 vehicle of the hand count."""
    return abs(counted - true) <= max(1.0, 0.05 * true)


def totals(counts: Counter[Key]) -> Counter[tuple[str, str]]:
    """Counts by (line, direction), every class together."""
    out: Counter[tuple[str, str]] = Counter()
    for (line, direction, _), n in counts.items():
        out[line, direction] += n
    return out


def print_report(
    clips: Sequence[Clip],
    results: dict[str, dict[tuple[float, str], Counter[Key]]],
    rates: Sequence[float],
    trackers: Sequence[str],
) -> None:
    """The per-class table, then per-line totals and the target summary."""
    head = " | ".join(f"{t:>16}" for t in trackers)
    for rate in rates:
        print(f"\n=== {rate:g} frames/s: counted (error) per tracker ===")
        print(f"{'clip / line':<44} {'dir':<8} {'class':<10} {'true':>4} | {head}")
        for clip in clips:
            res = results[clip.camera_id]
            keys = set(clip.truth)
            for t in trackers:
                keys |= set(res[rate, t])
            for key in sorted(keys):
                true = clip.truth[key]
                cells = " | ".join(
                    f"{res[rate, t][key]:>4} ({error_pct(res[rate, t][key], true):>7})"
                    for t in trackers
                )
                name = f"{clip.path.stem[:18]} / {key[0]}"
                print(f"{name:<44} {key[1]:<8} {key[2]:<10} {true:>4} | {cells}")
            truth_totals = totals(clip.truth)
            tot_keys = set(truth_totals)
            for t in trackers:
                tot_keys |= set(totals(res[rate, t]))
            for line, direction in sorted(tot_keys):
                true = truth_totals[line, direction]
                cells = " | ".join(
                    f"{totals(res[rate, t])[line, direction]:>4} "
                    f"({error_pct(totals(res[rate, t])[line, direction], true):>7})"
                    for t in trackers
                )
                name = f"{clip.path.stem[:18]} / {line}"
                print(f"{name:<44} {direction:<8} {'ALL':<10} {true:>4} | {cells}")
    print("\n=== (line, direction) totals within 5 % or 1 vehicle of the hand count ===")
    for rate in rates:
        parts = []
        for t in trackers:
            hit = total = 0
            for clip in clips:
                counted = totals(results[clip.camera_id][rate, t])
                truth = totals(clip.truth)
                for pair in set(truth) | set(counted):
                    total += 1
                    hit += on_target(counted[pair], truth[pair])
            parts.append(f"{t} {hit}/{total}")
        print(f"{rate:>4g} fps: " + ", ".join(parts))


def counting_parser(doc: str, rates: str, trackers: str) -> argparse.ArgumentParser:
    """The options of the counting benchmarks, with these default rates and trackers.

    Also sets the offline model environment defaults.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rates", default=rates, help="frames per second, comma-separated")
    parser.add_argument("--clips", nargs="*", help="clip file names (default: every one counted)")
    parser.add_argument("--trackers", default=trackers, help="ours,bytetrack,botsort")
    parser.add_argument("--config", type=Path, default=SURVEY_CONFIG, help="survey configuration")
    parser.add_argument(
        "--cache", type=Path, default=REPO_DIR / "var" / "bench-counts", help="detection cache"
    )
    return parser


def counting_setup(args: argparse.Namespace) -> tuple[list[float], list[str], list[Clip]]:
    """Rates, trackers and clips from the parsed options; exits when no clip is found."""
    rates = [float(r) for r in args.rates.split(",")]
    trackers = [t for t in args.trackers.split(",") if t]
    clips = find_clips(load_config(args.config), args.clips)
    if not clips:
        raise SystemExit("no clip with hand counts found (check ATCS_MEDIA_DIR and --clips)")
    return rates, trackers, clips


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (see the module docstring)."""
    parser = counting_parser(__doc__ or "", "30,10,5,2", ",".join(TRACKERS))
    args = parser.parse_args(argv)
    rates, trackers, clips = counting_setup(args)
    cfg = load_config(args.config)
    results = {}
    for clip in clips:
        print(f"{clip.path.name}: camera {clip.camera_id}, {clip.fps:.2f} fps", flush=True)
        results[clip.camera_id] = count_clip(cfg, clip, rates, trackers, args.cache)
    print_report(clips, results, rates, trackers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
