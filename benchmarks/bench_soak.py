"""Soak: ``atcs run`` for an hour on the demo site; is its memory flat after warm-up?

The benchmark starts a real Mosquitto and a real InfluxDB 1.x on free loopback ports
(the test suite's server helpers in ``tests/support``), then runs the engine as its own
process, exactly as an operator does: ``python -m atcs.cli run --config config.toml``
(by default the demo site: three cameras looping the shared clips at their own frame
rate, 5 analysed frames/s each, signal control of the demo intersection and the
dashboard on a free port). A subscriber counts what reaches the broker.

Every ``--sample-s`` seconds (default 60) it prints the engine's resident memory (RSS,
MB), thread count, CPU use (cores) and the metrics and plan messages received in that
interval. At the end it stops the engine with SIGTERM, counts the rows InfluxDB holds,
and fits a straight line (least squares) to RSS over the samples after
``--warmup-minutes``: the slope in MB/hour with its 95 % confidence interval. Memory is
called flat when the slope is at most ``--flat-mb-h`` (default 5 MB/hour, i.e. at most
120 MB a day).

    nice -n 10 python -m benchmarks.bench_soak                       # one hour
    python -m benchmarks.bench_soak --minutes 5 --warmup-minutes 2    # a quick look

Exit code 1 when the engine died, stopped badly, or nothing reached the broker.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.common import DEFAULT_MODEL, MEDIA_DIR, REPO_DIR
from tests.support.influxdb import InfluxServer
from tests.support.mosquitto import Collector, Mosquitto

T_95 = 1.96
"""Two-sided 95 % quantile of the normal distribution (the fit has tens of samples)."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of the engine process."""

    minute: float
    rss_mb: float
    threads: int
    cpu_cores: float
    metrics_msgs: int
    plan_msgs: int


@dataclass(frozen=True, slots=True)
class Fit:
    """A least-squares line through (minute, RSS): slope in MB/hour and its 95 % half-width."""

    slope_mb_h: float
    half_width_mb_h: float
    samples: int


def fit_rss(samples: list[Sample]) -> Fit | None:
    """Fit RSS against time over ``samples``; None with fewer than three."""
    if len(samples) < 3:
        return None
    xs = [s.minute / 60.0 for s in samples]  # hours
    ys = [s.rss_mb for s in samples]
    slope, intercept = statistics.linear_regression(xs, ys)
    residual = sum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys, strict=True))
    spread = sum((x - statistics.fmean(xs)) ** 2 for x in xs)
    stderr = math.sqrt(residual / (len(xs) - 2) / spread) if spread > 0 else math.inf
    return Fit(slope, T_95 * stderr, len(xs))


def _engine_env(broker: Mosquitto, influx: InfluxServer, state_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ATCS_MQTT_PORT": str(broker.port),
        "ATCS_INFLUX_URL": influx.url,
        "ATCS_STATE_DIR": str(state_dir),
        "ATCS_DASHBOARD_PORT": "0",
        "ATCS_MEDIA_DIR": str(MEDIA_DIR),
        "ATCS_MODEL": DEFAULT_MODEL,
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "False",
        "YOLO_VERBOSE": "False",
        "PYTHONPATH": str(REPO_DIR),
    }


def _count(collector: Collector, seen: int) -> tuple[Counter[str], int]:
    """Kinds of the messages (metrics, plan, ...) that arrived after the first ``seen``."""
    messages = collector.snapshot()
    kinds = Counter(m.topic.rsplit("/", 1)[-1] for m in messages[seen:])
    return kinds, len(messages)


def soak(args: argparse.Namespace, root: Path) -> int:
    """Run the engine under observation; print samples and the fit; return the exit code."""
    broker = Mosquitto(root / "mosquitto")
    influx = InfluxServer(root / "influxdb")
    broker.start()
    influx.start()
    collector = Collector(broker, "atcs/v1/#")
    log_path = root / "engine.log"
    cmd = [sys.executable, "-m", "atcs.cli", "run", "--config", str(args.config)]
    with log_path.open("wb") as log:
        engine = subprocess.Popen(
            cmd, env=_engine_env(broker, influx, root / "state"), stdout=log, stderr=log,
            stdin=subprocess.DEVNULL, cwd=REPO_DIR,
        )  # fmt: skip
    proc = psutil.Process(engine.pid)
    proc.cpu_percent(None)
    print(f"engine pid {engine.pid}, log {log_path}; sampling every {args.sample_s:g} s")
    print(" minute   rss MB  threads  cpu cores  metrics  plans")
    samples: list[Sample] = []
    started = time.monotonic()
    seen = 0
    died = False
    try:
        while time.monotonic() - started < args.minutes * 60:
            left_s = args.minutes * 60 - (time.monotonic() - started)
            time.sleep(min(args.sample_s, max(0.0, left_s)))
            if engine.poll() is not None:
                died = True
                tail = log_path.read_text(errors="replace")[-2000:]
                print(f"engine exited early with code {engine.returncode}:\n{tail}")
                break
            kinds, seen = _count(collector, seen)
            sample = Sample(
                minute=(time.monotonic() - started) / 60.0,
                rss_mb=proc.memory_info().rss / 1e6,
                threads=proc.num_threads(),
                cpu_cores=proc.cpu_percent(None) / 100.0,
                metrics_msgs=kinds["metrics"],
                plan_msgs=kinds["plan"],
            )
            samples.append(sample)
            print(
                f"{sample.minute:7.1f}  {sample.rss_mb:7.1f}  {sample.threads:7d}  "
                f"{sample.cpu_cores:9.2f}  {sample.metrics_msgs:7d}  {sample.plan_msgs:5d}",
                flush=True,
            )
    finally:
        if engine.poll() is None:
            engine.send_signal(signal.SIGTERM)
        try:
            code = engine.wait(timeout=120)
        except subprocess.TimeoutExpired:
            engine.kill()
            code = engine.wait()
        collector.close()
    rows = len(influx.rows("SELECT * FROM segment_metrics", "atcs")) if not died else 0
    broker.stop()
    influx.stop()
    return _report(args, samples, code, rows, died)


def _report(
    args: argparse.Namespace, samples: list[Sample], code: int, rows: int, died: bool
) -> int:
    after = [s for s in samples if s.minute >= args.warmup_minutes]
    total_metrics = sum(s.metrics_msgs for s in samples)
    print(f"engine stopped with code {code}; metrics messages {total_metrics}; "
          f"segment_metrics rows in InfluxDB {rows}")  # fmt: skip
    if samples:
        threads = sorted({s.threads for s in after or samples})
        print(f"threads after warm-up: {threads[0]}..{threads[-1]}")
    fit = fit_rss(after)
    if fit is None:
        print(f"too few samples after the {args.warmup_minutes:g}-minute warm-up to fit RSS")
    else:
        rss = [s.rss_mb for s in after]
        flat = fit.slope_mb_h <= args.flat_mb_h
        print(
            f"RSS after warm-up ({fit.samples} samples, minutes {after[0].minute:.0f}-"
            f"{after[-1].minute:.0f}): median {statistics.median(rss):.1f} MB, "
            f"min {min(rss):.1f}, max {max(rss):.1f}"
        )
        print(
            f"RSS slope after warm-up: {fit.slope_mb_h:+.2f} MB/hour "
            f"(95 % CI +/- {fit.half_width_mb_h:.2f}); "
            f"{'flat' if flat else 'NOT flat'} (limit {args.flat_mb_h:g} MB/hour)"
        )
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 1 if died or code != 0 or total_metrics == 0 else 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the soak in a throwaway folder, return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="how long the engine runs")
    parser.add_argument(
        "--warmup-minutes", type=float, default=10.0, help="samples before this are not fitted"
    )
    parser.add_argument("--sample-s", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--flat-mb-h", type=float, default=5.0, help="flat: slope at most this")
    parser.add_argument(
        "--config", type=Path, default=REPO_DIR / "config.toml", help="engine configuration"
    )
    args = parser.parse_args(argv)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"soak: {args.minutes:g} min of atcs run --config {args.config}; "
          f"{os.cpu_count()} CPUs, load {load}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="atcs-soak-") as tmp:
        return soak(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
