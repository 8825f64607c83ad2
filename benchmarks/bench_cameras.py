"""How many live cameras one node holds, per profile, with the lag and where the CPU goes.

Each camera plays a shared clip (``ATCS_MEDIA_DIR``) at its own frame rate, looped, as a
live feed; by default the clips are first re-encoded with a keyframe every second (the
camera settings ``docs/cameras.md`` asks for; ``--native-gop`` keeps their own 3-12 s
GOPs). Camera ``i`` plays clip ``i mod 6`` with that clip's segments and counting lines
from ``survey.toml``. Per step the real :class:`atcs.service.Engine` runs (capture
threads, detector worker with crops, analysis tick, CPU budget) with an
:class:`atcs.bus.MqttBus` publishing to a Mosquitto the benchmark starts; a paho
subscriber records when each metrics message arrives. After every camera's first analysed
frame, every camera's crop check and ``--warmup-s``, the step is measured for
``--duration-s`` seconds (definitions: ``docs/benchmarks-cameras.md``).

Printed per step (``--json``: one JSON object per step instead, with at least
``cameras``, ``fps``, ``target_fps``, ``lag_p95_s``, ``dropped``):

- analysed frames/s against the target (cameras x sample rate); frames dropped (camera
  queue + result queue + analysed after their window closed); sampled keyframes skipped
  undecoded because the camera's previous frame still waited for the detector;
- lag p50/p95: receive time of a window's MQTT message minus the capture time of the last
  frame counted in it (full windows ending in the measured interval);
- CPU in cores per stage: decode (camera threads), inference (detector worker and the
  inference library's threads), analysis, output (handing metrics and statuses to the
  bus, and the bus's threads); the benchmark's own subscriber is left out;
- cameras decoding keyframes only, cameras cropped, the engine's over-budget verdict,
  RSS, and the machine's 1-minute load average.

    python -m benchmarks.bench_cameras --steps 40,60,80,100          # density, 1 fps
    python -m benchmarks.bench_cameras --profile counting --steps 2,4,6,8
    python -m benchmarks.bench_cameras --steps 60 --soak-minutes 20 # memory on a long run
    python -m benchmarks.bench_cameras --decode-only --steps 60     # capture cost alone
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

from atcs.detection import build_detector
from atcs.sources import CameraGroup
from benchmarks.camera_setup import clip_fps, prepare_clips
from benchmarks.camera_steps import Bench, Snap, TimedDetector
from benchmarks.common import DEFAULT_MODEL, find_clips
from tests.support.mosquitto import Mosquitto

HEADER = (
    "cams fps/target   drop  skip lag p50/p95 s (windows)      realtime  cpu cores per stage"
    "                              keyframes/crop  budget   memory    load avg"
)


def soak(bench: Bench, n: int, minutes: float, every_s: float) -> None:
    """One step held for ``minutes``: RSS, analysed frames/s and drops every ``every_s``."""
    engine, sub, thread, target = bench.start_engine(n)
    group = engine.cameras
    assert group is not None
    samples: list[float] = []
    start = prev = Snap.take(group, engine)
    frames_prev = len(engine.records)
    end = time.monotonic() + minutes * 60.0
    print(f"soak: {n} cameras, target {target:.1f} frames/s, RSS every {every_s:g} s", flush=True)
    while time.monotonic() < end:
        time.sleep(every_s)
        snap = Snap.take(group, engine)
        wall = (snap.at - prev.at).total_seconds()
        analysed = (len(engine.records) - frames_prev) / wall
        dropped = (
            snap.queue_dropped - prev.queue_dropped + snap.result_dropped - prev.result_dropped
        )
        skipped = snap.skipped - prev.skipped
        samples.append(snap.rss_mb)
        minute = (snap.at - start.at).total_seconds() / 60
        print(
            f"  {minute:5.1f} min  rss {snap.rss_mb:7.1f} MB  {analysed:6.1f} frames/s  "
            f"dropped {dropped:4d}  skipped {skipped:4d}  load {snap.load:.1f}",
            flush=True,
        )
        prev, frames_prev = snap, len(engine.records)
        engine.records.clear()  # the benchmark's own record list must not grow either
        frames_prev = 0
    engine.stop()
    thread.join(60)
    sub.close()
    q = max(1, len(samples) // 4)
    first, last = samples[:q], samples[-q:]
    print(
        f"RSS first quarter median {sorted(first)[len(first) // 2]:.1f} MB (max {max(first):.1f}), "
        f"last quarter median {sorted(last)[len(last) // 2]:.1f} MB (max {max(last):.1f}); "
        f"growth {sorted(last)[len(last) // 2] - sorted(first)[len(first) // 2]:+.1f} MB",
        flush=True,
    )


def decode_only(bench: Bench, n: int) -> None:
    """Capture threads alone (no detector): what reading n live clips costs."""
    cfg = bench.config(n, bench.tmp / f"dec-{n}")
    stop = threading.Event()
    group = CameraGroup(cfg.cameras, queue_size=bench.args.queue_size, stop_event=stop)
    group.start()
    taken = [0]

    def drain() -> None:
        while not stop.is_set():
            taken[0] += len(group.next_batch(64, timeout_s=0.2))

    threading.Thread(target=drain, name="drain", daemon=True).start()
    time.sleep(bench.args.warmup_s)
    first, taken0 = Snap.take(group, None), taken[0]
    time.sleep(bench.args.duration_s)
    last, taken1 = Snap.take(group, None), taken[0]
    statuses = group.statuses()
    group.stop()
    group.join(10)
    wall = (last.at - first.at).total_seconds()
    native = sum(clip_fps(Path(c.source)) for c in cfg.cameras)
    read = (last.decoded - first.decoded) / wall
    cores = (last.cpu_s - first.cpu_s) / wall
    capture = (last.threads["capture"] - first.threads["capture"]) / wall
    keyframes = sum(s.decode_mode == "keyframes" for s in statuses)
    print(
        f"{n:>4} decode-only: read {read:6.1f} of {native:6.1f} native frames/s "
        f"(rt {read / native:4.2f}), handed out {(taken1 - taken0) / wall:5.1f} frames/s, "
        f"{keyframes} cameras on keyframes; cpu {cores:4.2f} cores (camera threads "
        f"{capture:.2f}); load {first.load:.1f}->{last.load:.1f}",
        flush=True,
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("--steps", default="20,40,60,80,100", help="camera counts, comma-separated")
    add("--profile", choices=("density", "counting"), default="density", help="camera profile")
    add("--sample-fps", type=float, help="analysed fps per camera (default: the profile's)")
    add("--decode", choices=("auto", "keyframes", "full"), help="override every camera's decode")
    add("--duration-s", type=float, default=30.0, help="measured seconds per step")
    add("--warmup-s", type=float, default=8.0, help="unmeasured seconds after the start")
    add("--window-s", type=float, default=5.0, help="metrics window, s")
    add("--image-size", type=int, default=640, help="detector input size, px")
    add("--batch", type=int, default=16, help="detector batch_max_frames")
    add("--queue-size", type=int, default=2, help="service.frame_queue_size")
    add("--grace-s", type=float, default=2.0, help="engine window_grace_s")
    add("--model", default=DEFAULT_MODEL, help="model path (ATCS_MODEL)")
    add("--clips", nargs="*", help="clip names in ATCS_MEDIA_DIR (default all)")
    add("--gop-s", type=float, default=1.0, help="re-encode the clips with this GOP, s")
    add("--native-gop", action="store_true", help="play the clips with their own GOPs")
    add("--no-crop", action="store_true", help="detect on whole frames")
    add("--json", action="store_true", help="one JSON object per step")
    add("--decode-only", action="store_true", help="camera threads only, no detector")
    add("--soak-minutes", type=float, help="hold the first step this long, printing RSS")
    add("--every-s", type=float, default=30.0, help="soak: seconds between samples")
    add("--per-request", type=int, help="images of one size per inference request")
    add("--inflight", type=int, help="inference requests kept in flight")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Parse the options and run every step."""
    args = parse(argv)
    for key, value in (("YOLO_OFFLINE", "1"), ("YOLO_AUTOINSTALL", "False")):
        os.environ.setdefault(key, value)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("atcs.budget").setLevel(logging.ERROR)  # the step line says it
    logging.getLogger("atcs.sources.reader").setLevel(logging.ERROR)  # kf column says it
    steps = [int(s) for s in args.steps.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="atcs-bench-cams-") as tmp:
        clips = prepare_clips(find_clips(args.clips), None if args.native_gop else args.gop_s,
                              Path(tmp))  # fmt: skip
        if not args.json:
            print(
                f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
                f"{args.profile} cameras at {args.sample_fps or 'the profile'} fps; clips "
                f"{'as they are' if args.native_gop else f're-encoded, GOP {args.gop_s:g} s'}; "
                f"window {args.window_s} s, image {args.image_size} px, "
                f"crop {'off' if args.no_crop else 'on'}",
                flush=True,
            )
        bench = Bench(args, clips, Path(tmp))
        if args.decode_only:
            for n in steps:
                decode_only(bench, n)
            return
        bench.broker = Mosquitto(Path(tmp) / "mosquitto")
        bench.broker.start()
        probe = bench.config(1, Path(tmp) / "probe")
        bench.detector = TimedDetector(
            build_detector(
                probe.detector,
                images_per_request=args.per_request,
                inflight_requests=args.inflight,
            )
        )
        try:
            if args.soak_minutes:
                soak(bench, steps[0], args.soak_minutes, args.every_s)
                return
            if not args.json:
                print(HEADER, flush=True)
            for n in steps:
                result = bench.run_step(n)
                if args.json:
                    doc = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                           for k, v in asdict(result).items()}  # fmt: skip
                    print(json.dumps(doc), flush=True)
                else:
                    print(result.line(), flush=True)
        finally:
            bench.detector.inner.close()
            bench.broker.kill()


if __name__ == "__main__":
    main()
