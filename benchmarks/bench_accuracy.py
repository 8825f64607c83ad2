"""Detection accuracy and CPU cost per configuration on the labelled frames, in one run.

    python -m benchmarks.bench_accuracy [--rounds 3] [--config survey.toml] [--model M]

``--model`` takes any model the engine takes (default: ``ATCS_MODEL``, else the shared
YOLO11n INT8 OpenVINO export): a ``.pt`` file or name (ultralytics engine: the crop and tile
rows, which place their own inputs on the OpenVINO runner, are left out) or an OpenVINO
export folder (every row).

Every configuration detects the 55 labelled frames of the shared clips
(``tests/data/groundtruth/boxes.coco.json``) and is scored against the labels, per class:
precision and recall at the engine's confidence threshold (0.25) and AP50 (detections down
to 0.05), inside the camera's segments (a box's anchor, its bottom-centre, inside one of
them, as the engine measures) and on the whole frame. Configurations:

- ``naive-640``: the plain ultralytics loop, one ``model(frame, imgsz=640)`` call per frame
  (the baseline row);
- ``whole-640`` / ``whole-960`` / ``whole-1280``: the engine's OpenVINO runner on whole
  frames at that input size;
- ``crop-native``: one window around the camera's segments and lines at native resolution
  (scale 1.0: one image pixel per model pixel; :func:`detectors.crop.plan_window`);
- ``tiles-1.0`` / ``tiles-1.5`` / ``tiles-2.0`` / ``tiles-3.0``: the whole frame at 640
  plus 640-px tiles of the far field at scale 1.0 / 1.5 / 2.0 / 3.0, merged by cross-tile
  NMS (:mod:`detectors.tiles`). The far field is the upper half of the camera's measured
  region (where its vehicles are smallest).

Precision and recall count the boxes the engine measures: those at or above the threshold,
then the duplicate filter every camera's analyzer applies before tracking
(:func:`atcs.metrics.duplicates.drop_duplicates`: a box nested in a larger one of its class,
and the less confident of two classes on one vehicle, are dropped). AP50 is computed on the
detector's own boxes; one table shows their precision and recall before the filter.

A class with no labelled box in scope still counts when it was reported falsely there (a
car seen as a truck): it is printed with its false alarms and fails the targets.

CPU is the process CPU time (OpenVINO's threads included) per frame, the median over
``--rounds`` rounds; configurations run one after the other in each round. Run it alone
(under the shared CPU lock) for numbers worth quoting.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from atcs.config import AtcsConfig, load_config
from atcs.measured_region import MeasuredRegion
from atcs.metrics.duplicates import DEFAULT_NESTED_FRACTION, drop_duplicates
from atcs.metrics.geometry import PreparedPolygon, to_pixels
from atcs.types import Detections, Image, VehicleClass
from benchmarks.accuracy import ClassScore, Scope, Scorer, whole_frame
from benchmarks.common import DEFAULT_MODEL, MEDIA_DIR, REPO_DIR
from benchmarks.labelled_frames import LabelledFrame, load_labels, read_labelled_frames
from detectors.classes import MODEL_NAMES
from detectors.crop import PixelBox, plan_window
from detectors.letterbox import Placement
from detectors.settings import Engine, YoloSettings
from detectors.tiled import TiledDetector
from detectors.tiles import TileSettings, scaled_frame
from detectors.ultralytics_yolo import import_ultralytics
from detectors.yolo import YoloDetector

LOW_CONFIDENCE = 0.05
"""Detections kept for AP50."""
THRESHOLD = 0.25
"""The engine's confidence threshold: precision and recall are counted at it."""
TARGETS = {
    VehicleClass.MOTORCYCLE: 0.90,
    VehicleClass.CAR: 0.95,
    VehicleClass.BUS: 0.95,
    VehicleClass.TRUCK: 0.95,
}
"""Recall and precision each must reach this inside the segments (the issue's targets)."""

THRESHOLDS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
"""Confidence thresholds tried per class (a per-class threshold is one of these)."""
HEIGHT_EDGES_PX = (0.0, 16.0, 24.0, 32.0, 48.0, 64.0, 1e9)
"""Bins of labelled box height (image px) for the recall-by-size table."""

Frames = list[tuple[LabelledFrame, Image]]
Run = Callable[[Frames], list[Detections]]


@dataclass(frozen=True, slots=True)
class Camera:
    """A labelled clip's camera: its segments (scope) and measured region (image px)."""

    scope: Scope
    region: PixelBox | None


def camera_of(cfg: AtcsConfig, clip: str, width: int, height: int) -> Camera:
    """The camera of ``cfg`` reading ``clip``; a whole-frame scope when there is none."""
    for camera in cfg.cameras:
        if str(camera.source).endswith(clip):
            polygons = [
                PreparedPolygon(to_pixels(s.polygon, width, height))
                for s in cfg.segments_of(camera.id)
            ]
            region = MeasuredRegion.of_camera(cfg, camera.id)

            def scope(
                points: npt.NDArray[np.float64], polygons: list[PreparedPolygon] = polygons
            ) -> npt.NDArray[np.bool_]:
                inside = np.zeros(len(points), dtype=bool)
                for polygon in polygons:
                    inside |= polygon.contains(points)
                return inside

            return Camera(scope, None if region is None else region.pixels(width, height))
    return Camera(whole_frame, None)


def far_field(region: PixelBox | None, width: int, height: int) -> PixelBox:
    """The upper half of the measured region (the whole image's when there is none)."""
    box = region or PixelBox(0.0, 0.0, float(width), float(height))
    return PixelBox(box.x0, box.y0, box.x1, box.y0 + box.height_px / 2)


def naive_run(model_path: str, size: int) -> Run:
    """Plain ultralytics, one call per frame."""
    model = import_ultralytics().YOLO(model_path, task="detect")
    names: dict[int, str] = model.names

    def run(frames: Frames) -> list[Detections]:
        out = []
        for _, image in frames:
            boxes = model(image, imgsz=size, conf=LOW_CONFIDENCE, verbose=False)[0].boxes
            classes = [MODEL_NAMES.get(names[int(c)]) for c in boxes.cls.tolist()]
            keep = [k for k, c in enumerate(classes) if c is not None]
            out.append(
                Detections(
                    xyxy=boxes.xyxy.numpy()[keep],
                    confidence=boxes.conf.numpy()[keep],
                    class_id=np.array([int(c) for c in classes if c is not None], np.int64),
                )
            )
        return out

    return run


def _settings(model: str, size: int) -> YoloSettings:
    return YoloSettings(model=model, image_size_px=size, confidence=LOW_CONFIDENCE)


def whole_run(detector: YoloDetector) -> Run:
    """The engine on whole frames."""
    return lambda frames: detector.detect([image for _, image in frames])


def crop_run(detector: YoloDetector, cameras: dict[str, Camera]) -> Run:
    """One window around the measured region at native resolution."""
    runner = detector.runner()

    def placement(frame: LabelledFrame) -> Placement:
        native = scaled_frame(frame.height_px, frame.width_px, 1.0, runner.stride)
        region = cameras[frame.clip].region
        window = None if region is None else plan_window(native, region, margin_px=32, step_px=32)
        return native if window is None else window

    return lambda frames: runner.detect_placed([(image, placement(f)) for f, image in frames])


def tiled_run(detector: YoloDetector, cameras: dict[str, Camera], scale: float) -> Run:
    """The whole frame plus tiles of the far field at ``scale``."""
    tiled = TiledDetector(detector.runner(), TileSettings(scale=scale))

    def run(frames: Frames) -> list[Detections]:
        fields = [far_field(cameras[f.clip].region, f.width_px, f.height_px) for f, _ in frames]
        return tiled.detect([image for _, image in frames], fields)

    return run


@dataclass(frozen=True, slots=True)
class Result:
    """One configuration on one clip: CPU ms per frame (median of rounds) and scores."""

    cpu_ms: float
    in_segments: list[ClassScore]
    whole: list[ClassScore]
    by_height: list[tuple[float, float, int, int]]
    by_threshold: dict[float, list[ClassScore]]
    """Scores inside the segments at every threshold of :data:`THRESHOLDS`."""
    raw: list[ClassScore]
    """Scores inside the segments of the detector's own boxes (before the engine's filter)."""


def measure(run: Run, frames: Frames, cameras: dict[str, Camera], rounds: int) -> Result:
    """Time ``rounds`` passes over ``frames``; score the first."""
    cpu: list[float] = []
    found: list[Detections] = []
    for k in range(rounds):
        start = time.process_time()
        out = run(frames)
        cpu.append((time.process_time() - start) * 1000 / len(frames))
        if k == 0:
            found = out
    raw = Scorer()
    at = {t: (Scorer(), Scorer()) for t in (THRESHOLD, *THRESHOLDS)}  # segments, whole frame
    for (frame, _), detections in zip(frames, found, strict=True):
        scope = cameras[frame.clip].scope
        raw.add(frame, detections, scope)
        for t, (segments, whole) in at.items():
            measured = as_measured(detections, t)
            segments.add(frame, measured, scope)
            whole.add(frame, measured)
    ap50 = {s.vehicle_class: s.ap50 for s in raw.scores(THRESHOLD)}

    def scores(scorer: Scorer, t: float) -> list[ClassScore]:
        return [replace(s, ap50=ap50[s.vehicle_class]) for s in scorer.scores(t)]

    segments, whole = at[THRESHOLD]
    return Result(
        statistics.median(cpu),
        scores(segments, THRESHOLD),
        scores(whole, THRESHOLD),
        segments.recall_by_height(THRESHOLD, HEIGHT_EDGES_PX),
        {t: scores(at[t][0], t) for t in THRESHOLDS},
        raw.scores(THRESHOLD),
    )


def as_measured(found: Detections, threshold: float) -> Detections:
    """The boxes the engine measures at ``threshold``: kept by confidence, then de-duplicated."""
    kept = found[found.confidence >= threshold]
    return drop_duplicates(kept, DEFAULT_NESTED_FRACTION)


def counted(score: ClassScore) -> bool:
    """Tell whether a class counts: it is labelled, or the detector reported it falsely.

        Boxes are scored as the engine measures them: after the duplicate filter every camera's
    analyzer applies before tracking (:func:`atcs.metrics.duplicates.drop_duplicates`: a box
    nested in a larger one of its class, and the less confident of two classes on one vehicle,
    are dropped). One table shows the detector's own boxes, before that filter, for comparison.

    A class with no labelled box in scope still counts when detections of it were false
        alarms (a car seen as a truck adds a heavy vehicle to the density): its precision is 0.
    """
    return score.labelled > 0 or score.false > 0


def _cell(score: ClassScore) -> str:
    if not score.labelled:
        return f"{score.false} false, none labelled" if score.false else "-"
    return f"{score.precision:.2f} / {score.recall:.2f} / {score.ap50:.2f}"


def meets_targets(scores: Sequence[ClassScore]) -> bool:
    """Tell whether every counted class reaches its recall and precision target."""
    return all(
        s.recall >= TARGETS[s.vehicle_class] and s.precision >= TARGETS[s.vehicle_class]
        for s in scores
        if counted(s) and s.vehicle_class in TARGETS
    )


def _reaches(score: ClassScore) -> bool:
    target = TARGETS.get(score.vehicle_class)
    return target is None or (score.recall >= target and score.precision >= target)


def best_thresholds(result: Result) -> dict[VehicleClass, tuple[float, ClassScore]]:
    """Return, per counted class, the threshold with the best min(precision, recall)."""
    out: dict[VehicleClass, tuple[float, ClassScore]] = {}
    for t, scores in result.by_threshold.items():
        for s in scores:
            if not counted(s) and s.vehicle_class not in out:
                continue
            kept = out.get(s.vehicle_class)
            if kept is None or min(s.precision, s.recall) > min(kept[1].precision, kept[1].recall):
                out[s.vehicle_class] = (t, s)
    return out


def meets_targets_per_class(result: Result) -> bool:
    """Tell whether every counted class reaches its targets at its own best threshold."""
    return all(_reaches(s) for _, s in best_thresholds(result).values())


def print_thresholds(results: dict[str, Result]) -> None:
    """Print, per configuration, each class's best threshold and its P / R there."""
    classes = _classes([list(best_thresholds(r)) for r in results.values()])
    print("\nAll clips, inside the segments: per-class confidence threshold (best min(P, R))\n")
    print("| configuration | " + " | ".join(f"{c.label} t: P / R" for c in classes) + " |")
    print("| --- |" + " --- |" * len(classes))
    for name, result in results.items():
        best = best_thresholds(result)
        cells = " | ".join(
            f"{best[c][0]:.2f}: {best[c][1].precision:.2f} / {best[c][1].recall:.2f}"
            if c in best
            else "-"
            for c in classes
        )
        print(f"| {name} | {cells} |")


def print_table(title: str, results: dict[str, Result], pick: str, base: str) -> None:
    """Print one markdown table: a row per configuration, P / R / AP50 per class."""
    first = {s.vehicle_class: s for s in getattr(next(iter(results.values())), pick)}
    classes = _classes(
        [[s.vehicle_class for s in getattr(r, pick) if counted(s)] for r in results.values()]
    )
    print(f"\n{title}\n")
    head = " | ".join(f"{c.label} P / R / AP50 (n={first[c].labelled})" for c in classes)
    print(f"| configuration | CPU ms/frame | x naive | {head} |")
    print("| --- | ---: | ---: |" + " --- |" * len(classes))
    for name, result in results.items():
        cells = " | ".join(_cell(s) for s in getattr(result, pick) if s.vehicle_class in classes)
        ratio = result.cpu_ms / results[base].cpu_ms
        print(f"| {name} | {result.cpu_ms:.0f} | {ratio:.2f} | {cells} |")


def _classes(found: Sequence[Sequence[VehicleClass]]) -> list[VehicleClass]:
    """The classes any configuration counts, in :class:`VehicleClass` order."""
    union = {c for row in found for c in row}
    return [c for c in VehicleClass if c in union]


def print_by_height(results: dict[str, Result]) -> None:
    """Print recall inside the segments by labelled box height, all classes, all clips."""
    bins = next(iter(results.values())).by_height
    names = [f"{lo:.0f}-{hi:.0f} px" if hi < 1e8 else f">= {lo:.0f} px" for lo, hi, _, _ in bins]
    print("\nAll clips, inside the segments: recall by labelled box height (image px)\n")
    print(
        "| configuration | "
        + " | ".join(f"{n} (n={b[2]})" for n, b in zip(names, bins, strict=True))
        + " |"
    )
    print("| --- |" + " ---: |" * len(bins))
    for name, result in results.items():
        cells = " | ".join(f"{f / n:.2f}" if n else "-" for _, _, n, f in result.by_height)
        print(f"| {name} | {cells} |")


def main(argv: list[str] | None = None) -> int:
    """Run every configuration on the labelled frames and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--config", type=Path, default=REPO_DIR / "survey.toml")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--media", type=Path, default=MEDIA_DIR)
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    frames: Frames = list(read_labelled_frames(load_labels(), args.media))
    cameras = {
        f.clip: camera_of(cfg, f.clip, f.width_px, f.height_px) for f, _ in frames
    }  # fmt: skip
    det = {size: YoloDetector(_settings(args.model, size)) for size in (640, 960, 1280)}
    native = YoloDetector(_settings(args.model, 640))
    configs: dict[str, Run] = {
        "naive-640": naive_run(args.model, 640),
        "whole-640": whole_run(det[640]),
        "whole-960": whole_run(det[960]),
        "whole-1280": whole_run(det[1280]),
    }
    if det[640].engine is Engine.OPENVINO:  # crops and tiles place their own model inputs
        configs["crop-native"] = crop_run(native, cameras)
        for scale in (1.0, 1.5, 2.0, 3.0):
            configs[f"tiles-{scale:.1f}"] = tiled_run(det[640], cameras, scale)
    else:
        print(f"{det[640].name}: crop and tile rows need an OpenVINO export; left out")
    clips = sorted(cameras)
    per_clip = {c: [fi for fi in frames if fi[0].clip == c] for c in clips}
    for run in configs.values():  # warm-up: compile every input shape once
        for clip in clips:
            run(per_clip[clip][:1])
    results: dict[str, Result] = {}
    clip_results: dict[str, dict[str, Result]] = {c: {} for c in clips}
    for name, run in configs.items():
        for clip in clips:
            clip_results[clip][name] = measure(run, per_clip[clip], cameras, args.rounds)
        results[name] = measure(run, frames, cameras, 1)
        cpu = sum(clip_results[c][name].cpu_ms * len(per_clip[c]) for c in clips) / len(frames)
        first = results[name]
        results[name] = Result(
            cpu, first.in_segments, first.whole, first.by_height, first.by_threshold, first.raw
        )
    print(
        f"{len(frames)} labelled frames of {len(clips)} clips; P / R at confidence "
        f"{THRESHOLD}, AP50 from {LOW_CONFIDENCE}; CPU: median of {args.rounds} rounds"
    )
    print_table("All clips, inside the segments", results, "in_segments", "naive-640")
    print_table("All clips, whole frame", results, "whole", "naive-640")
    print_table(
        "All clips, inside the segments, the detector's boxes before the engine's duplicate filter",
        results,
        "raw",
        "naive-640",
    )
    for clip in clips:
        print_table(f"{clip}, inside the segments", clip_results[clip], "in_segments", "naive-640")
    print_by_height(results)
    print_thresholds(results)
    print("\nCheapest configuration reaching the targets inside the segments, per clip")
    print("(at confidence 0.25 / with each class at its own best threshold):")
    for clip in clips:
        runs = clip_results[clip].items()
        cells = []
        for check in (lambda r: meets_targets(r.in_segments), meets_targets_per_class):
            ok = [(r.cpu_ms, n) for n, r in runs if check(r)]
            cells.append(f"{min(ok)[1]} ({min(ok)[0]:.0f} ms/frame)" if ok else "none")
        print(f"- {clip}: {cells[0]} / {cells[1]}")
    for d in (*det.values(), native):
        d.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
