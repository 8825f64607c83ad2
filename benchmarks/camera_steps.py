"""The camera benchmark's engine step: run, record, measure (see ``bench_cameras``)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

from atcs.bus import MqttBus
from atcs.config import AtcsConfig, MqttConfig
from atcs.service import Engine, EngineTiming
from atcs.sources import CameraGroup
from atcs.types import CameraState, Detections, Frame, Image, SiteId
from benchmarks.camera_setup import camera_config, clip_fps
from detectors.base import CroppingDetector, Detector, RegionOf, Regions
from detectors.crop import PixelBox
from detectors.letterbox import Placement
from tests.support.mosquitto import Mosquitto

SITE = SiteId("bench")
SUBSCRIBER = "bench-subscriber"
T = TypeVar("T")


class TimedDetector:
    """Delegates to a real detector, counting busy seconds; ``close`` is deferred."""

    def __init__(self, inner: Detector) -> None:
        self.inner = inner
        self.frames = 0

    @property
    def name(self) -> str:
        return self.inner.name

    def placement(self, height_px: int, width_px: int, region: PixelBox | None) -> Placement | None:
        if isinstance(self.inner, CroppingDetector):
            return self.inner.placement(height_px, width_px, region)
        return None

    def detect(self, images: Sequence[Image], regions: Regions | None = None) -> list[Detections]:
        self.frames += len(images)
        return self.inner.detect(images, regions)

    def detect_stream(
        self,
        items: Iterable[T],
        image_of: Callable[[T], Image],
        region_of: RegionOf[T] | None = None,
    ) -> Generator[tuple[T, Detections], None, None]:
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


class Subscriber:
    """A paho subscriber recording (segment, window start, window end, receive time)."""

    def __init__(self, broker: Mosquitto, prefix: str) -> None:
        self.got: list[tuple[str, datetime, datetime, datetime]] = []
        ready = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=SUBSCRIBER
        )
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
        self.client.disconnect()
        self.client.loop_stop()


def thread_cpu() -> dict[str, float]:
    """CPU seconds of the live Python threads by group (see the module docstring)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out = {"capture": 0.0, "detector": 0.0, "engine": 0.0, "bench": 0.0, "other": 0.0}
    for t in psutil.Process().threads():
        name = names.get(t.id)
        if name is None:
            continue
        cpu = t.user_time + t.system_time
        if name.startswith("atcs-camera-"):
            out["capture"] += cpu
        elif name == "atcs-detector":
            out["detector"] += cpu
        elif name == "bench-engine":
            out["engine"] += cpu
        elif name == "MainThread" or SUBSCRIBER in name or name == "drain":
            out["bench"] += cpu
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
    skipped: int
    analysis_cpu_s: float
    output_cpu_s: float
    load: float
    rss_mb: float

    @classmethod
    def take(cls, group: CameraGroup, engine: Engine | None) -> Snap:
        """Read the process, the cameras and the engine now."""
        stats = [r.stats() for r in group.readers.values()]
        es = engine.stats() if engine is not None else None
        return cls(
            at=datetime.now(UTC),
            cpu_s=cpu_s(),
            threads=thread_cpu(),
            decoded=sum(s.frames_received for s in stats),
            queue_dropped=sum(s.frames_dropped for s in stats),
            result_dropped=es.frames_dropped if es else 0,
            skipped=sum(s.keyframes_skipped for s in stats),
            analysis_cpu_s=es.analysis_cpu_s if es else 0.0,
            output_cpu_s=es.output_cpu_s if es else 0.0,
            load=os.getloadavg()[0],
            rss_mb=psutil.Process().memory_info().rss / 2**20,
        )


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step, as printed (``--json`` prints it as it is)."""

    cameras: int
    profile: str
    fps: float
    target_fps: float
    lag_p50_s: float
    lag_p95_s: float
    dropped: int
    dropped_queue: int
    dropped_results: int
    late: int
    skipped: int
    windows: int
    stale_windows: int
    realtime: float
    cpu_decode: float
    cpu_inference: float
    cpu_analysis: float
    cpu_output: float
    cpu_total: float
    cpu_ms_per_frame: float
    inference_ms_per_frame: float
    keyframe_cameras: int
    cropped_cameras: int
    over_budget: bool
    rss_mb: float
    load_start: float
    load_end: float

    def line(self) -> str:
        """The step as one printed line."""
        return (
            f"{self.cameras:>4} {self.fps:6.1f}/{self.target_fps:<6.1f} {self.dropped:>5} "
            f"{self.skipped:>5} "
            f"{self.lag_p50_s:5.2f}/{self.lag_p95_s:5.2f} ({self.windows} w, "
            f"{self.stale_windows} stale)  rt {self.realtime:4.2f}  "
            f"cpu {self.cpu_total:4.2f} = dec {self.cpu_decode:4.2f} inf {self.cpu_inference:4.2f} "
            f"ana {self.cpu_analysis:4.2f} out {self.cpu_output:4.2f}  "
            f"{self.cpu_ms_per_frame:4.1f} ms/frame (inf {self.inference_ms_per_frame:4.1f})  "
            f"kf {self.keyframe_cameras} crop {self.cropped_cameras} "
            f"over {'yes' if self.over_budget else 'no'}  rss {self.rss_mb:5.0f} MB  "
            f"load {self.load_start:.1f}->{self.load_end:.1f}"
        )


def lags(
    records: list[FrameRecord],
    got: list[tuple[str, datetime, datetime, datetime]],
    window_s: float,
    t0: datetime,
    t1: datetime,
) -> tuple[list[float], int]:
    """Lag of every full window that ended in [t0, t1], and how many such windows came."""
    by_cam: dict[str, list[datetime]] = {}
    for r in records:
        if r.counted:
            by_cam.setdefault(r.camera, []).append(r.captured_at)
    out: list[float] = []
    windows = 0
    for seg, start, end, at in got:
        if not t0 <= end <= t1 or abs((end - start).total_seconds() - window_s) > 1e-6:
            continue
        windows += 1
        caps = [c for c in by_cam.get("cam-" + seg.rsplit("-", 1)[1], []) if start <= c < end]
        if caps:
            out.append((at - max(caps)).total_seconds())
    return out, windows


@dataclass(slots=True)
class Bench:
    """What every step shares: options, clips, the broker and the (loaded) detector."""

    args: argparse.Namespace
    clips: list[Path]
    tmp: Path
    broker: Mosquitto | None = None
    detector: TimedDetector | None = None

    def config(self, n: int, state: Path) -> AtcsConfig:
        args = self.args
        service: dict[str, Any] = {"state_dir": str(state), "frame_queue_size": args.queue_size}
        detector = {
            "model": args.model,
            "image_size_px": args.image_size,
            "batch_max_frames": args.batch,
            "crop": not args.no_crop,
        }
        cfg = camera_config(
            n, self.clips, profile=args.profile, sample_fps=args.sample_fps,
            detector=detector, service=service, window_s=args.window_s,
        )  # fmt: skip
        if args.decode:
            cams = [c.model_copy(update={"decode": args.decode}) for c in cfg.cameras]
            cfg = cfg.model_copy(update={"cameras": cams})
        return cfg

    def start_engine(self, n: int) -> tuple[BenchEngine, Subscriber, threading.Thread, float]:
        args, broker, detector = self.args, self.broker, self.detector
        if broker is None or detector is None:
            raise SystemExit("broker and detector must be started first")
        state = self.tmp / f"state-{n}-{time.monotonic_ns()}"
        cfg = self.config(n, state)
        prefix = f"bench/{n}/{time.monotonic_ns()}"
        bus = MqttBus(
            MqttConfig(host=broker.host, port=broker.port, prefix=prefix),
            site_id=SITE, state_dir=state,
        )  # fmt: skip
        sub = Subscriber(broker, prefix)
        engine = BenchEngine(
            cfg, detector=detector, sinks=[bus], timing=EngineTiming(window_grace_s=args.grace_s)
        )
        engine.records = []
        thread = threading.Thread(target=engine.run, name="bench-engine", daemon=True)
        thread.start()
        deadline = time.monotonic() + 300.0
        while time.monotonic() < deadline and (
            len(engine.analyzers) < n or engine.crops is None or engine.crops.checking
        ):
            time.sleep(0.5)
        time.sleep(args.warmup_s)
        return engine, sub, thread, sum(c.sample_fps for c in cfg.cameras)

    def run_step(self, n: int) -> StepResult:
        """Run the engine with n cameras, measure, return the step's numbers."""
        engine, sub, thread, target = self.start_engine(n)
        group = engine.cameras
        assert group is not None
        first = Snap.take(group, engine)
        time.sleep(self.args.duration_s)
        last = Snap.take(group, engine)
        result = self.result(n, engine, first, last, target)
        time.sleep(min(self.args.window_s, 5.0) + 3.0)  # the windows that ended by then
        engine.stop()
        thread.join(60)
        sub.close()
        lag, windows = lags(engine.records, sub.got, self.args.window_s, first.at, last.at)
        return StepResult(
            **{
                **asdict(result),
                "lag_p50_s": round(pct(lag, 50), 3),
                "lag_p95_s": round(pct(lag, 95), 3),
                "windows": windows,
                "stale_windows": windows - len(lag),
            }
        )

    def result(
        self, n: int, engine: BenchEngine, first: Snap, last: Snap, target: float
    ) -> StepResult:
        wall = (last.at - first.at).total_seconds()
        frames = [r for r in engine.records if first.at <= r.analysed_at < last.at]
        counted = sum(r.counted for r in frames)
        threads = {k: (last.threads[k] - first.threads[k]) / wall for k in last.threads}
        total = (last.cpu_s - first.cpu_s) / wall
        native = total - sum(threads.values())
        analysis = (last.analysis_cpu_s - first.analysis_cpu_s) / wall
        output = (last.output_cpu_s - first.output_cpu_s) / wall + threads["other"]
        group = engine.cameras
        assert group is not None
        statuses = group.statuses()
        native_fps = sum(clip_fps(Path(r.camera.source)) for r in group.readers.values())
        crops = engine.crops
        queue = last.queue_dropped - first.queue_dropped
        results = last.result_dropped - first.result_dropped
        inference = threads["detector"] + native
        per_frame = 1000.0 * wall / counted if counted else float("nan")  # x cores: ms/frame
        return StepResult(
            cameras=n,
            profile=self.args.profile,
            fps=round(counted / wall, 2),
            target_fps=target,
            lag_p50_s=float("nan"),
            lag_p95_s=float("nan"),
            dropped=queue + results + len(frames) - counted,
            dropped_queue=queue,
            dropped_results=results,
            late=len(frames) - counted,
            skipped=last.skipped - first.skipped,
            windows=0,
            stale_windows=0,
            realtime=round((last.decoded - first.decoded) / (wall * native_fps), 3),
            cpu_decode=round(threads["capture"], 3),
            cpu_inference=round(inference, 3),
            cpu_analysis=round(analysis, 3),
            cpu_output=round(output, 3),
            cpu_total=round(total - threads["bench"], 3),
            cpu_ms_per_frame=round(per_frame * (total - threads["bench"]), 2),
            inference_ms_per_frame=round(per_frame * inference, 2),
            keyframe_cameras=sum(
                s.decode_mode == "keyframes" and s.state is CameraState.STREAMING for s in statuses
            ),
            cropped_cameras=0
            if crops is None
            else sum(v.use_crop for v in crops.verdicts.values()),
            over_budget=engine.budget.last is not None and engine.budget.last.over,
            rss_mb=round(last.rss_mb, 1),
            load_start=round(first.load, 2),
            load_end=round(last.load, 2),
        )
