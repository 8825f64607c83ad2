"""Crops of several cameras in one inference request, or one image per request?

The live detector worker takes up to ``batch_max_frames`` (16) of the cameras' latest frames
at a time, sorts them by model input size and streams them through the detector (requests
stay in flight across batches), each cropped to its camera's segments and lines; images of
one input size next to each other can share an OpenVINO request. This
benchmark feeds the very same mixed stream (the shared clips' frames interleaved camera by
camera, every clip with the regions ``survey.toml`` draws on it, every ``--every``-th
frame) through the real detector twice per round, with 1 and with 2 images of one size per
request (each with the detector's own number of requests in flight), alternating
``--rounds`` times so that load from elsewhere hits both alike. Printed per variant: best
and median frames/s, CPU ms per frame (the whole process), and whether every image's boxes,
classes and confidences are identical to the first variant's.

    python -m benchmarks.bench_batching                    # crops, as the live engine
    python -m benchmarks.bench_batching --no-crop          # whole frames
    python -m benchmarks.bench_batching --per-request 1,2,4 --rounds 5
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atcs.config import load_config
from atcs.measured_region import MeasuredRegion
from atcs.types import Detections, Image
from benchmarks.common import DEFAULT_MODEL, MEDIA_DIR, REPO_DIR, read_frames
from detectors.crop import PixelBox
from detectors.settings import YoloSettings
from detectors.yolo import YoloDetector


@dataclass(frozen=True, slots=True)
class Round:
    """One timed pass over the stream: wall and CPU seconds."""

    frames: int
    wall_s: float
    cpu_s: float

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s

    @property
    def cpu_ms(self) -> float:
        return 1000.0 * self.cpu_s / self.frames


def mixed_stream(
    survey: Path, every: int, most: int, crop: bool
) -> tuple[list[Image], list[PixelBox | None], list[str]]:
    """Frames of every camera of ``survey``, interleaved camera by camera, with regions."""
    cfg = load_config(survey, {**os.environ, "ATCS_MEDIA_DIR": str(MEDIA_DIR)})
    per_camera: list[list[tuple[Image, PixelBox | None, str]]] = []
    for cam in cfg.cameras:
        region = MeasuredRegion.of_camera(cfg, cam.id)
        frames = itertools.islice(read_frames(Path(cam.source), None), 0, None, every)
        rows = []
        for image in itertools.islice(frames, most):
            box = None
            if crop and region is not None:
                box = region.pixels(int(image.shape[1]), int(image.shape[0]))
            rows.append((image, box, cam.id))
        per_camera.append(rows)
    mixed = [row for group in itertools.zip_longest(*per_camera) for row in group if row]
    return [m[0] for m in mixed], [m[1] for m in mixed], [m[2] for m in mixed]


def run(
    detector: YoloDetector,
    images: Sequence[Image],
    regions: Sequence[PixelBox | None],
    batch: int,
) -> tuple[Round, list[Detections]]:
    """Stream the frames through the detector as the detector worker does.

    The stream is taken ``batch`` frames at a time, each batch sorted by model input size
    (frames of one size can share a request), and every batch fed into one
    ``detect_stream``, so requests stay in flight across batches.
    """

    def shape(index: int) -> tuple[int, int]:
        image = images[index]
        placement = detector.placement(int(image.shape[0]), int(image.shape[1]), regions[index])
        return (0, 0) if placement is None else placement.input_shape

    order = [
        index
        for start in range(0, len(images), batch)
        for index in sorted(range(start, min(start + batch, len(images))), key=shape)
    ]
    wall, cpu = time.perf_counter(), time.process_time()
    found: list[Detections] = [Detections.empty()] * len(images)
    for index, detections in detector.detect_stream(order, images.__getitem__, regions.__getitem__):
        found[index] = detections
    return Round(len(images), time.perf_counter() - wall, time.process_time() - cpu), found


def identical(a: list[Detections], b: list[Detections]) -> bool:
    """True when every image has the very same boxes, classes and confidences."""
    return all(
        np.array_equal(x.xyxy, y.xyxy)
        and np.array_equal(x.class_id, y.class_id)
        and np.array_equal(x.confidence, y.confidence)
        for x, y in zip(a, b, strict=True)
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("--model", default=DEFAULT_MODEL, help="model path (ATCS_MODEL)")
    add("--survey", default=str(REPO_DIR / "survey.toml"), help="config with the clips' regions")
    add("--per-request", default="1,2", help="images per request to compare, comma-separated")
    add("--batch", type=int, default=16, help="frames sorted together (batch_max_frames)")
    add("--every", type=int, default=4, help="keep every n-th frame of each clip")
    add("--frames", type=int, default=40, help="most frames per clip")
    add("--rounds", type=int, default=3, help="alternating rounds")
    add("--no-crop", action="store_true", help="detect whole frames")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Compare the variants and print one line per variant."""
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING)
    images, regions, cameras = mixed_stream(
        Path(args.survey), args.every, args.frames, not args.no_crop
    )
    variants = [int(v) for v in args.per_request.split(",") if v]
    detectors = {
        n: YoloDetector(
            YoloSettings(model=args.model, batch_max_frames=args.batch, images_per_request=n)
        )
        for n in variants
    }
    placements = [
        detectors[variants[0]].placement(int(i.shape[0]), int(i.shape[1]), r)
        for i, r in zip(images, regions, strict=True)
    ]
    shapes = sorted({p.input_shape for p in placements if p is not None})
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; {len(images)} frames "
        f"of {len(set(cameras))} cameras interleaved, {args.batch} sorted together, streamed, "
        f"{'whole frames' if args.no_crop else 'cropped'}; input sizes (h, w): {shapes}",
        flush=True,
    )
    for detector in detectors.values():  # compile every shape once, untimed
        run(detector, images, regions, args.batch)
    rounds: dict[int, list[Round]] = {n: [] for n in variants}
    outputs: dict[int, list[Detections]] = {}
    for _ in range(args.rounds):
        for n, detector in detectors.items():
            timed, found = run(detector, images, regions, args.batch)
            rounds[n].append(timed)
            outputs.setdefault(n, found)
    base = variants[0]
    for n in variants:
        best = max(rounds[n], key=lambda r: r.fps)
        median = statistics.median(r.fps for r in rounds[n])
        ratio = best.fps / max(rounds[base], key=lambda r: r.fps).fps
        same = "same boxes" if identical(outputs[n], outputs[base]) else "BOXES DIFFER"
        print(
            f"{n} image(s)/request: best {best.fps:6.1f} frames/s (median {median:6.1f}), "
            f"{best.cpu_ms:5.1f} ms CPU/frame, {ratio:4.2f}x of {base}/request; {same}",
            flush=True,
        )
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    for detector in detectors.values():
        detector.close()


if __name__ == "__main__":
    main()
