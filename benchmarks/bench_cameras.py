"""How many live cameras one machine sustains at 1 analysed frame/s each, and the lag.

Each camera is a shared clip (``ATCS_MEDIA_DIR``, default ``../shared/media`` beside the
repo) played at its own frame rate and looped, so it behaves as a live feed; clips are
reused round-robin for more cameras. Per step the real :class:`atcs.service.Engine` runs
(capture threads, the batching detector worker, the analysis tick) with one segment per
camera covering the whole image and an :class:`atcs.bus.MqttBus` publishing to a local
Mosquitto the benchmark starts; a paho subscriber records when each metrics message
arrives. After every camera's first analysed frame and then ``--warmup-s``, the step is
measured for ``--duration-s`` seconds.

Printed per step (definitions in ``docs/benchmarks-bus.md``):

- ``fps``: frames analysed (counted in a window) per second vs the target (cameras x
  ``--sample-fps``); ``drop q/r/late``: frames sampled but not analysed, because a
  camera's queue overflowed (q), the detector's result queue overflowed (r), or the frame
  was analysed after its window had been closed by time and was not counted (late);
  ``rt``: decoded footage speed (1.0: the capture threads keep up with the clips' own
  frame rate; below 1.0 a real camera would be showing stale frames);
- ``lag``: p50/p95 of (receive time of a window's MQTT metrics message) minus (capture
  time of the last frame counted in that window), over the full windows that ended in the
  measured interval (with the count of such windows, of stale ones without any counted
  frame, and of missing ones); ``end``: p50/p95 of receive time minus window end;
  ``ana``: p50/p95 of capture -> analysis done per frame;
- ``batch ms/frame``: mean detector batch and detector wall time per frame; ``cpu``: cores
  used by the process, split into the Python threads (capture, detector worker, main,
  other) and ``native``: the inference library's and video decoders' own threads.

    python -m benchmarks.bench_cameras --steps 5,10,20,30
    python -m benchmarks.bench_cameras --steps 30 --image-size 320 --duration-s 30
    python -m benchmarks.bench_cameras --decode-only --steps 10,30   # capture cost alone
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import cv2
import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

from atcs.bus import MqttBus
from atcs.config import AtcsConfig, MqttConfig
from atcs.detection import build_detector
from atcs.service import Engine, EngineTiming
from atcs.sources import CameraGroup
from atcs.types import Detections, Frame, Image, SiteId
from detectors.base import CroppingDetector, Detector, RegionOf, Regions
from detectors.crop import PixelBox
from detectors.letterbox import Placement
from tests.support.mosquitto import Mosquitto

SITE = SiteId("bench")
T = TypeVar("T")
REPO_DIR = Path(__file__).resolve().parents[1]
MEDIA_DIR = Path(os.environ.get("ATCS_MEDIA_DIR", REPO_DIR.parent / "shared" / "media"))
DEFAULT_MODEL = os.environ.get(
    "ATCS_MODEL", str(REPO_DIR.parent / "shared" / "models" / "yolo11n_int8_openvino_model")
)
CLIP_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")


def find_clips(names: list[str] | None) -> list[Path]:
    """The clips named (in the media folder, or paths), or every clip there."""
    if names:
        return [Path(n) if Path(n).exists() else MEDIA_DIR / n for n in names]
    if not MEDIA_DIR.is_dir():
        raise SystemExit(f"no media folder at {MEDIA_DIR}; set ATCS_MEDIA_DIR")
    return sorted(p for p in MEDIA_DIR.iterdir() if p.suffix.lower() in CLIP_SUFFIXES)


class TimedDetector:
    """Delegates to a real detector; records batch sizes and seconds; ``close`` is deferred."""

    def __init__(self, inner: Detector) -> None:
        self.inner = inner
        self.batches: list[tuple[int, float]] = []

    @property
    def name(self) -> str:
        """The real detector's name."""
        return self.inner.name

    def placement(self, height_px: int, width_px: int, region: PixelBox | None) -> Placement | None:
        """Where the real detector puts such an image."""
        if isinstance(self.inner, CroppingDetector):
            return self.inner.placement(height_px, width_px, region)
        return None

    def detect(self, images: Sequence[Image], regions: Regions | None = None) -> list[Detections]:
        """Detect with the real detector, timing the call."""
        started = time.perf_counter()
        out = self.inner.detect(images, regions)
        self.batches.append((len(images), time.perf_counter() - started))
        return out

    def detect_stream(
        self,
        items: Iterable[T],
        image_of: Callable[[T], Image],
        region_of: RegionOf[T] | None = None,
    ) -> Generator[tuple[T, Detections], None, None]:
        """Not timed (the service does not use it)."""
        yield from self.inner.detect_stream(items, image_of, region_of)

    def close(self) -> None:
        """Kept open across steps; the benchmark closes ``inner`` at the end."""


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """One analysed frame: camera, capture and analysis-done times, counted in a window."""

    camera: str
    captured_at: datetime
    analysed_at: datetime
    counted: bool


class BenchEngine(Engine):
    """The engine, recording each analysed frame's capture and analysis times."""

    records: list[FrameRecord]

    def _analyse(self, frame: Frame, detections: Detections) -> None:
        analyzer = self.analyzers.get(frame.camera_id)
        late_before = analyzer.late_frames if analyzer is not None else 0
        super()._analyse(frame, detections)
        counted = self.analyzers[frame.camera_id].late_frames == late_before
        now = datetime.now(UTC)
        self.records.append(FrameRecord(frame.camera_id, frame.captured_at, now, counted))

    def dropped_results(self) -> int:
        """Detections the worker dropped because the analysis did not take them in time."""
        worker = self._worker
        return worker.dropped if worker is not None else 0


class Subscriber:
    """A paho subscriber recording (segment, window start, window end, receive time)."""

    def __init__(self, broker: Mosquitto, prefix: str) -> None:
        self.got: list[tuple[str, datetime, datetime, datetime]] = []
        ready = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: ready.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(f"{prefix}/segments/+/metrics", qos=1)
        self.client.loop_start()
        if not ready.wait(10):
            raise SystemExit("benchmark subscriber could not subscribe")

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        now = datetime.now(UTC)
        doc = json.loads(msg.payload)
        start = datetime.fromisoformat(doc["window_start"])
        end = datetime.fromisoformat(doc["window_end"])
        self.got.append((doc["segment"], start, end, now))

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def make_config(args: argparse.Namespace, clips: list[Path], n: int, state: Path) -> AtcsConfig:
    """n cameras (clips round-robin), one whole-image segment each."""
    cameras = [
        {"id": f"cam-{i:02d}", "source": str(clips[i % len(clips)]), "sample_fps": args.sample_fps}
        for i in range(n)
    ]
    segments = [
        {
            "id": f"seg-{i:02d}",
            "camera": f"cam-{i:02d}",
            "polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
            "length_m": 60.0,
            "lanes": 2,
        }
        for i in range(n)
    ]
    detector = {
        "model": args.model,
        "image_size_px": args.image_size,
        "batch_max_frames": args.batch,
    }
    return AtcsConfig.model_validate(
        {
            "site": {"id": SITE},
            "detector": detector,
            "analysis": {"window_s": args.window_s},
            "service": {"state_dir": str(state), "frame_queue_size": args.queue_size},
            "cameras": cameras,
            "segments": segments,
        }
    )


def thread_cpu() -> dict[str, float]:
    """CPU seconds of the live Python threads by group: capture, detector worker, main, other.

    The rest of the process's time (``cpu_s() - sum``) is native threads (the inference
    library's, the video decoders') and threads that have ended (a looping clip reopens its
    decoder, whose worker threads end with it).
    """
    names = {t.native_id: t.name for t in threading.enumerate()}
    out = {"capture": 0.0, "detector": 0.0, "main": 0.0, "other": 0.0}
    for t in psutil.Process().threads():
        name = names.get(t.id)
        if name is None:
            continue
        cpu = t.user_time + t.system_time
        if name.startswith("atcs-camera-"):
            out["capture"] += cpu
        elif name == "atcs-detector":
            out["detector"] += cpu
        elif name in {"MainThread", "bench-engine"}:
            out["main"] += cpu
        else:
            out["other"] += cpu
    return out


def pct(values: Sequence[float], q: int) -> float:
    """The q-th percentile (inclusive method); NaN without values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def clip_fps(clips: list[Path]) -> dict[Path, float]:
    """Each clip's own frame rate."""
    out = {}
    for clip in clips:
        cap = cv2.VideoCapture(str(clip))
        out[clip] = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
        cap.release()
    return out


def cpu_s() -> float:
    """CPU seconds of this process so far (all threads)."""
    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


@dataclass(frozen=True, slots=True)
class Snap:
    """Counters at one instant of a step."""

    at: datetime
    cpu_s: float
    threads: dict[str, float]
    decoded: int
    queue_dropped: int
    result_dropped: int
    batches: int
    load: float

    @classmethod
    def take(cls, group: CameraGroup, engine: BenchEngine | None, batches: int) -> Snap:
        """Read the process, the cameras and the engine now."""
        stats = [r.stats() for r in group.readers.values()]
        return cls(
            at=datetime.now(UTC),
            cpu_s=cpu_s(),
            threads=thread_cpu(),
            decoded=sum(s.frames_received for s in stats),
            queue_dropped=sum(s.frames_dropped for s in stats),
            result_dropped=engine.dropped_results() if engine is not None else 0,
            batches=batches,
            load=os.getloadavg()[0],
        )


@dataclass(frozen=True, slots=True)
class Seen:
    """What a step recorded: analysed frames, metrics messages received, detector batches."""

    records: list[FrameRecord]
    got: list[tuple[str, datetime, datetime, datetime]]
    batches: list[tuple[int, float]]


@dataclass(slots=True)
class Bench:
    """What every step shares: options, clips, the broker and the (loaded) detector."""

    args: argparse.Namespace
    clips: list[Path]
    fps_of: dict[Path, float]
    tmp: Path
    broker: Mosquitto | None = None
    detector: TimedDetector | None = None

    def native_fps(self, n: int) -> float:
        """Frames per second n cameras produce at their own rates."""
        return sum(self.fps_of[self.clips[i % len(self.clips)]] for i in range(n))

    def run_step(self, n: int) -> None:
        """Run the engine with n cameras, measure, print one line."""
        args, broker, detector = self.args, self.broker, self.detector
        if broker is None or detector is None:
            raise SystemExit("broker and detector must be started first")
        cfg = make_config(args, self.clips, n, self.tmp / f"state-{n}")
        prefix = f"bench/{n}/{time.monotonic_ns()}"
        bus_cfg = MqttConfig(host=broker.host, port=broker.port, prefix=prefix)
        bus = MqttBus(bus_cfg, site_id=SITE, state_dir=self.tmp / f"state-{n}")
        sub = Subscriber(broker, prefix)
        engine = BenchEngine(
            cfg, detector=detector, sinks=[bus], timing=EngineTiming(window_grace_s=args.grace_s)
        )
        engine.records = []
        thread = threading.Thread(target=engine.run, name="bench-engine", daemon=True)
        thread.start()
        # analyzers are built on the first frame of each camera (on the tick's thread)
        deadline = time.monotonic() + 120.0
        while len(engine.analyzers) < n and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(args.warmup_s)
        group = engine.cameras
        if group is None:
            raise SystemExit("the engine did not start its cameras")
        first = Snap.take(group, engine, len(detector.batches))
        time.sleep(args.duration_s)
        last = Snap.take(group, engine, len(detector.batches))
        time.sleep(min(args.window_s, 5.0) + 3.0)  # let the windows that ended by then arrive
        engine.stop()
        thread.join(60)
        sub.close()
        seen = Seen(engine.records, sub.got, detector.batches[first.batches :])
        self.report(n, first, last, seen)

    def report(self, n: int, first: Snap, last: Snap, seen: Seen) -> None:
        """Print one step's line (see the module docstring for the columns)."""
        records, got, batches = seen.records, seen.got, seen.batches
        args = self.args
        t0, t1 = first.at, last.at
        wall = (t1 - t0).total_seconds()
        frames = [r for r in records if t0 <= r.analysed_at < t1]
        counted = [r for r in frames if r.counted]
        queue_drops = last.queue_dropped - first.queue_dropped
        result_drops = last.result_dropped - first.result_dropped
        late = len(frames) - len(counted)
        ana = [(r.analysed_at - r.captured_at).total_seconds() for r in counted]
        end_lags: list[float] = []
        by_cam: dict[str, list[datetime]] = {}
        for r in records:
            if r.counted:
                by_cam.setdefault(r.camera, []).append(r.captured_at)
        lags: list[float] = []
        in_range = 0
        for seg, start, end, at in got:
            if not t0 <= end <= t1 or abs((end - start).total_seconds() - args.window_s) > 1e-6:
                continue  # outside the interval, or the partial window of the shutdown
            in_range += 1
            end_lags.append((at - end).total_seconds())
            caps = [c for c in by_cam.get("cam-" + seg[4:], []) if start <= c < end]
            if caps:
                lags.append((at - max(caps)).total_seconds())
        first_k = -int(-t0.timestamp() // args.window_s)  # ceil
        last_k = int(t1.timestamp() // args.window_s)
        missing = n * max(0, last_k - first_k + 1) - in_range
        rt = (last.decoded - first.decoded) / (wall * self.native_fps(n))
        cores = (last.cpu_s - first.cpu_s) / wall
        split = {k: (last.threads[k] - first.threads[k]) / wall for k in last.threads}
        native = cores - sum(split.values())
        det_frames = sum(b for b, _ in batches)
        det_ms = 1000 * sum(s for _, s in batches) / max(det_frames, 1)
        print(
            f"{n:>4}  {len(counted) / wall:5.1f}/{n * args.sample_fps:<5.1f} "
            f"{queue_drops:>3}/{result_drops}/{late:<3}  "
            f"{rt:4.2f}  {pct(lags, 50):5.2f}/{pct(lags, 95):5.2f} "
            f"({len(lags)} w, {in_range - len(lags)} stale, {missing} miss)  "
            f"{pct(end_lags, 50):5.2f}/{pct(end_lags, 95):5.2f}  "
            f"{pct(ana, 50):5.2f}/{pct(ana, 95):5.2f}  "
            f"{det_frames / max(len(batches), 1):4.1f} {det_ms:5.1f}  "
            f"{cores:4.2f} (cap {split['capture']:.2f} det {split['detector']:.2f} "
            f"main {split['main']:.2f} oth {split['other']:.2f} native {native:.2f})  "
            f"load {first.load:.1f}->{last.load:.1f}",
            flush=True,
        )

    def decode_only(self, n: int) -> None:
        """Capture threads alone (no detector): what reading n live clips costs."""
        cfg = make_config(self.args, self.clips, n, self.tmp / f"dec-{n}")
        stop = threading.Event()
        group = CameraGroup(cfg.cameras, queue_size=self.args.queue_size, stop_event=stop)
        group.start()
        taken = [0]

        def drain() -> None:
            while not stop.is_set():
                taken[0] += len(group.next_batch(64, timeout_s=0.2))

        threading.Thread(target=drain, name="drain", daemon=True).start()
        time.sleep(self.args.warmup_s)
        first, taken0 = Snap.take(group, None, 0), taken[0]
        time.sleep(self.args.duration_s)
        last, taken1 = Snap.take(group, None, 0), taken[0]
        group.stop()
        group.join(10)
        wall = (last.at - first.at).total_seconds()
        native = self.native_fps(n)
        decoded = (last.decoded - first.decoded) / wall
        cores = (last.cpu_s - first.cpu_s) / wall
        capture = (last.threads["capture"] - first.threads["capture"]) / wall
        print(
            f"{n:>4} decode-only: decoded {decoded:6.1f} fps of {native:6.1f} native "
            f"(rt {decoded / native:4.2f}), sampled {(taken1 - taken0) / wall:5.1f} fps, "
            f"cpu {cores:4.2f} cores (capture threads {capture:.2f}, native decoder "
            f"threads {cores - capture:.2f}), load {first.load:.1f}->{last.load:.1f}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    """Parse the options and run every step."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--steps", default="5,10,20,30", help="camera counts, comma-separated")
    parser.add_argument("--duration-s", type=float, default=30.0, help="measured seconds/step")
    parser.add_argument(
        "--warmup-s",
        type=float,
        default=8.0,
        help="unmeasured seconds after every camera's first frame",
    )
    parser.add_argument("--sample-fps", type=float, default=1.0, help="analysed fps per camera")
    parser.add_argument("--window-s", type=float, default=5.0, help="metrics window, s")
    parser.add_argument("--image-size", type=int, default=640, help="detector input size, px")
    parser.add_argument("--batch", type=int, default=4, help="detector batch_max_frames")
    parser.add_argument(
        "--queue-size", type=int, default=2, help="service.frame_queue_size (frames per camera)"
    )
    parser.add_argument("--grace-s", type=float, default=2.0, help="engine window_grace_s")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model path (ATCS_MODEL)")
    parser.add_argument("--clips", nargs="*", help="clip names in ATCS_MEDIA_DIR (default all)")
    parser.add_argument("--decode-only", action="store_true", help="capture threads only")
    args = parser.parse_args(argv)
    for key, value in (("YOLO_OFFLINE", "1"), ("YOLO_AUTOINSTALL", "False")):
        os.environ.setdefault(key, value)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    clips = find_clips(args.clips)
    steps = [int(s) for s in args.steps.split(",") if s]
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; clips: "
        f"{', '.join(c.name for c in clips)}; sample {args.sample_fps} fps/camera, "
        f"window {args.window_s} s, image {args.image_size} px, batch {args.batch}, "
        f"queue {args.queue_size}, grace {args.grace_s} s",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="atcs-bench-cams-") as tmp:
        bench = Bench(args, clips, clip_fps(clips), Path(tmp))
        if args.decode_only:
            for n in steps:
                bench.decode_only(n)
            return
        bench.broker = Mosquitto(Path(tmp) / "mosquitto")
        bench.broker.start()
        probe = make_config(args, clips, 1, Path(tmp) / "probe")
        bench.detector = TimedDetector(build_detector(probe.detector))
        try:
            print(
                "cams  fps/target drop q/r/late  rt   lag p50/p95 s (windows)          "
                "end p50/p95 s  ana p50/p95 s  batch ms/frame  cpu cores"
            )
            for n in steps:
                bench.run_step(n)
        finally:
            bench.detector.inner.close()
            bench.broker.kill()


if __name__ == "__main__":
    main()
