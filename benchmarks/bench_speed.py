"""Vehicle speeds on the calibrated motorway clip: the engine against a constant-scale peer.

    YOLO_OFFLINE=1 .venv/bin/python -m benchmarks.bench_speed [--rates 5 10 30]

The real model detects every frame of ``motorway_overpass.mp4`` once; at each sampling rate
the engine's analyzer tracks the sampled frames, and the same tracks are timed by:

- ``engine``: the ground homography of ``seeds/demo-site.toml`` and the engine's one-second
  least-squares slope of ground positions (:class:`atcs.metrics.speed.GroundSpeeds`), one
  mean per vehicle (what a window reports);
- ``homography, no smoothing``: the same homography, speed from one frame to the next;
- ``ultralytics rule``: ultralytics' ``SpeedEstimator`` (8.4) as published: the distance in
  pixels between the box centre's first and fifth position of a track, times a constant
  ``meter_per_pixel``, over the time between them, capped at ``max_speed`` (120 km/h),
  locked once; with its default scale (0.05 m/px) and with the scale the homography gives
  at the image centre (the best single constant a user could pick).

There is no radar truth for the clip; a motorway's traffic (Dutch limit 100 km/h by day)
runs at 80 to 130 km/h, and a method that sees perspective as speed gives far vehicles
other speeds than near ones. The report prints, per method and rate, the median and the
15th/85th percentiles of the per-vehicle speeds, the share of vehicles outside 60-140 km/h,
the median far/near ratio (each vehicle timed on the first half of its track, farther from
the camera, and on the second, nearer; 1.0 when perspective is handled: a vehicle keeps its
speed over 50 m of motorway) and the median's ratio to the engine's.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from atcs.config import AtcsConfig, load_config
from atcs.detection import build_detector
from atcs.homography import GroundHomography
from atcs.metrics import CameraAnalyzer
from atcs.metrics.geometry import to_pixels
from atcs.metrics.speed import KMH_PER_M_S, GroundSpeeds
from atcs.types import Detections
from benchmarks.common import DEFAULT_MODEL, MEDIA_DIR, REPO_DIR, read_frames

CLIP = "motorway_overpass.mp4"
CAMERA = "motorway"
ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
PEER_HISTORY = 5  # SpeedEstimator's max_hist
PEER_MAX_KMH = 120.0  # SpeedEstimator's max_speed
PEER_DEFAULT_MPP = 0.05  # SpeedEstimator's meter_per_pixel
BAND_KMH = (60.0, 140.0)
_BORDER_PX = 2.0


@dataclass(slots=True)
class Track:
    """One vehicle's observations: time (s), anchor and box centre (px)."""

    times: list[float] = field(default_factory=list)
    anchors: list[tuple[float, float]] = field(default_factory=list)
    centres: list[tuple[float, float]] = field(default_factory=list)


def tracks_at(cfg: AtcsConfig, frames: list[Detections], fps: float, rate: float) -> list[Track]:
    """Track the frames sampled at ``rate`` frames/s; whole boxes only."""
    step = max(1, round(fps / rate))
    analyzer = CameraAnalyzer.from_config(cfg, CAMERA, 960, 540, ORIGIN)
    by_id: dict[int, Track] = defaultdict(Track)
    for k in range(0, len(frames), step):
        t = k / fps
        result = analyzer.update(k, ORIGIN + timedelta(seconds=t), t, frames[k])
        dets = result.detections
        if dets.tracker_id is None:
            continue
        for box, tid in zip(dets.xyxy.tolist(), dets.tracker_id.tolist(), strict=True):
            x1, y1, x2, y2 = box
            if x1 <= _BORDER_PX or y1 <= _BORDER_PX or x2 >= 958 or y2 >= 538:
                continue
            track = by_id[tid]
            track.times.append(t)
            track.anchors.append(((x1 + x2) / 2, y2))
            track.centres.append(((x1 + x2) / 2, (y1 + y2) / 2))
    return [t for t in by_id.values() if len(t.times) >= 2 and t.times[-1] - t.times[0] >= 1.0]


def engine_speed(h: GroundHomography, track: Track) -> float | None:
    speeds = GroundSpeeds(h, smoothing_s=1.0, max_speed_m_s=200 / KMH_PER_M_S, max_tracks=1)
    known = []
    for t, anchor in zip(track.times, track.anchors, strict=True):
        frame = speeds.update(t, np.array([1]), np.array([anchor], np.float32), np.array([True]))
        value = float(frame.speeds_m_s[0])
        if not math.isnan(value):
            known.append(value * KMH_PER_M_S)
    return statistics.mean(known) if known else None


def frame_to_frame_speed(h: GroundHomography, track: Track) -> float:
    ground = h.to_ground(np.array(track.anchors))
    steps = np.hypot(*np.diff(ground, axis=0).T) / np.diff(track.times)
    return float(np.mean(steps)) * KMH_PER_M_S


def peer_speed(track: Track, mpp: float) -> float | None:
    """ultralytics SpeedEstimator's rule (see the module docstring)."""
    if len(track.centres) < PEER_HISTORY:
        return None
    (x0, y0), (x1, y1) = track.centres[0], track.centres[PEER_HISTORY - 1]
    dt = track.times[PEER_HISTORY - 1] - track.times[0]
    return min(math.hypot(x1 - x0, y1 - y0) * mpp / dt * KMH_PER_M_S, PEER_MAX_KMH)


def _halves(track: Track) -> tuple[Track, Track]:
    """The first half of a track in time (the vehicle farther away) and the second (nearer)."""
    mid = (track.times[0] + track.times[-1]) / 2
    far, near = Track(), Track()
    for t, anchor, centre in zip(track.times, track.anchors, track.centres, strict=True):
        half = far if t < mid else near
        half.times.append(t)
        half.anchors.append(anchor)
        half.centres.append(centre)
    return far, near


def _long_enough(track: Track) -> bool:
    return len(track.times) >= PEER_HISTORY and track.times[-1] - track.times[0] >= 0.5


def report(rate: float, h: GroundHomography, tracks: list[Track], centre_mpp: float) -> None:
    """Print one rate's table (module docstring)."""
    methods: dict[str, Callable[[Track], float | None]] = {
        "engine (homography, 1 s fit)": lambda tr: engine_speed(h, tr),
        "homography, no smoothing": lambda tr: frame_to_frame_speed(h, tr),
        f"ultralytics rule, {PEER_DEFAULT_MPP} m/px": lambda tr: peer_speed(tr, PEER_DEFAULT_MPP),
        f"ultralytics rule, {centre_mpp:.3f} m/px": lambda tr: peer_speed(tr, centre_mpp),
    }
    engine_median = None
    halves = [_halves(tr) for tr in tracks]
    both = [(f, n) for f, n in halves if _long_enough(f) and _long_enough(n)]
    print(
        f"\n{rate:g} frames/s: {len(tracks)} vehicles tracked for a second or more, "
        f"{len(both)} of them long enough to be timed on each half of their track"
    )
    print(
        f"{'method':<34} {'n':>3} {'median':>7} {'p15':>6} {'p85':>6} {'out of band':>11} "
        f"{'far/near':>8} {'vs engine':>9}"
    )
    for name, timed in methods.items():
        speeds = [v for tr in tracks if (v := timed(tr)) is not None]
        if not speeds:
            print(f"{name:<34} no vehicle timed")
            continue
        median = statistics.median(speeds)
        engine_median = engine_median or median
        p15, p85 = np.percentile(speeds, [15, 85]).tolist()
        out = sum(1 for v in speeds if not BAND_KMH[0] <= v <= BAND_KMH[1]) / len(speeds)
        ratios = [
            vf / vn
            for f, n in both
            if (vf := timed(f)) is not None and (vn := timed(n)) is not None and vn > 0
        ]
        ratio = statistics.median(ratios) if ratios else math.nan
        print(
            f"{name:<34} {len(speeds):>3} {median:>7.1f} {p15:>6.1f} {p85:>6.1f} "
            f"{out:>10.0%} {ratio:>8.2f} {median / engine_median:>9.2f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (module docstring); return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[5.0, 10.0, 30.0])
    args = parser.parse_args(argv)
    for name, value in (
        ("YOLO_OFFLINE", "1"), ("YOLO_AUTOINSTALL", "False"), ("YOLO_VERBOSE", "False"),
        ("ATCS_MODEL", DEFAULT_MODEL), ("ATCS_MEDIA_DIR", str(MEDIA_DIR)),
    ):  # fmt: skip
        os.environ.setdefault(name, value)
    cfg = load_config(REPO_DIR / "config.toml")
    cal = cfg.calibration_of(CAMERA)
    assert cal is not None, "the demo configuration calibrates the motorway camera"
    h = GroundHomography(to_pixels(cal.image_points, 960, 540), cal.ground_points_m)
    centre_mpp = h.metres_per_px((480.0, 270.0))
    detector = build_detector(cfg.detector)
    try:
        stream = detector.detect_stream(read_frames(MEDIA_DIR / CLIP, None), lambda im: im)
        frames = [dets for _, dets in stream]
    finally:
        detector.close()
    fps = 29.97
    print(f"{CLIP}: {len(frames)} frames; reprojection error {h.errors().image_rms_px:.2f} px")
    for rate in args.rates:
        report(rate, h, tracks_at(cfg, frames, fps, rate), centre_mpp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
