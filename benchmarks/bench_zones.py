"""Per-frame zones on the bus as a control node receives them, against segment metrics windows.

Starts its own Mosquitto (the suite's helper in ``tests/support``), the control side in a
process of its own (a real :class:`atcs.bus.feed.BusFeed` with ``on_zone`` and
``on_metrics`` handlers) and, in this process, the edge side: one real
:class:`atcs.bus.MqttBus`. Then two phases of ``--seconds`` each, one after the other:

- **zones**: ``--segments`` stop-line segments, each sending one frame's zone
  (``atcs.segment_zone/1`` with ``--vehicles`` vehicles) once a second through
  :meth:`MqttBus.send_zone` (QoS 0, not retained), the segments spread evenly over the second;
- **metrics windows**, the peer (what the control node reads without phase mode): the same
  segments, one ``segment_metrics`` window each per ``--window-s`` through
  :meth:`MqttBus.on_metrics` (disk queue, QoS 1, retained), spread evenly over the window.

Printed per phase: messages sent (handed to the bus and accepted) and the rate they went
out at (below the target when the sender fell behind), received by the handler, dropped
(sent - received: zones are QoS 0, nothing resends them), payload bytes as received
(median, max), the receiving process's CPU seconds per 1000 messages and its share
of a core (``time.process_time`` over the phase: paho's network loop, decoding and
validation, the handler), and the latency from the time stamped on the message (the zone's
capture time ``at``, the window's ``window_end``: both the wall clock when it was handed to
the bus) to the handler in the receiving process, median and p95. Last, the encoding alone
and the decoding and validation alone of one such message (``encode_segment_zone`` /
``decode_segment_zone``, ``encode_segment_metrics`` / ``decode_segment_metrics`` in a loop
in this process), in microseconds of CPU per message.

    python -m benchmarks.bench_zones                         # 300 segments, 20 vehicles, 30 s
    python -m benchmarks.bench_zones --vehicles 500          # the largest zone allowed
    python -m benchmarks.bench_zones --segments 8 --seconds 2 --window-s 1 --json
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from atcs.bus import MqttBus
from atcs.bus.feed import BusFeed
from atcs.bus.messages import MessageMeta
from atcs.bus.payloads import decode_segment_metrics, encode_segment_metrics
from atcs.bus.zone_payloads import decode_segment_zone, encode_segment_zone
from atcs.config import MqttConfig
from atcs.control.zones import MAX_ZONE_VEHICLES
from atcs.types import CameraId, FrameVehicle, FrameZone, SegmentId, SegmentMetrics, SiteId
from benchmarks.bench_bus import wait_until
from benchmarks.bench_scale import SITE, window
from tests.support.mosquitto import Mosquitto

ZONE_EVERY_S = 1.0
"""Seconds between two zones of one segment (what an edge node's ``ZoneOut`` sends)."""
ZONES, METRICS = "zones", "metrics"


@dataclass(slots=True)
class Tally:
    """What the receiving side saw of one kind: latencies (s) and payload sizes (bytes)."""

    latencies: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)


class TimedFeed(BusFeed):
    """A :class:`BusFeed` that also notes each zone and metrics payload's size."""

    def __init__(self, config: MqttConfig, tallies: Callable[[], dict[str, Tally]]) -> None:
        super().__init__(config, client_id="bench-zones-control")
        self._tallies = tallies

    def handle(self, topic: str, payload: bytes) -> None:
        """Note the payload's size, then decode and hand it on as the feed does."""
        kind = ZONES if topic.endswith("/zone") else METRICS if topic.endswith("/metrics") else ""
        if kind:
            self._tallies()[kind].sizes.append(len(payload))
        super().handle(topic, payload)


def receiver_main(host: str, port: int, conn: Connection) -> None:
    """The control side (a process): a feed with zone and metrics handlers, run on commands.

    Commands on ``conn``: ``count KIND`` (handled so far in this phase), ``start`` (new phase:
    counts and CPU from now), ``stop`` (the phase's CPU seconds and tallies), ``quit``.
    """
    lock = threading.Lock()
    tallies = {ZONES: Tally(), METRICS: Tally()}

    def current() -> dict[str, Tally]:
        with lock:
            return tallies

    def on_zone(zone: FrameZone) -> None:
        current()[ZONES].latencies.append((datetime.now(UTC) - zone.at).total_seconds())

    def on_metrics(windows: Sequence[SegmentMetrics]) -> None:
        now = datetime.now(UTC)
        current()[METRICS].latencies.extend((now - m.window_end).total_seconds() for m in windows)

    feed = TimedFeed(MqttConfig(host=host, port=port), current)
    feed.on_zone(on_zone)
    feed.on_metrics(on_metrics)
    feed.start()
    conn.send(feed.wait_connected(30))
    cpu0 = time.process_time()
    while True:
        command, *rest = conn.recv()
        if command == "count":
            conn.send(len(current()[rest[0]].latencies))
        elif command == "start":
            with lock:
                tallies = {ZONES: Tally(), METRICS: Tally()}
            cpu0 = time.process_time()
            conn.send(True)
        elif command == "stop":
            cpu = time.process_time() - cpu0
            conn.send((cpu, current(), feed.malformed))
        else:
            break
    feed.close()


@dataclass(slots=True)
class PhaseResult:
    """One phase: counts, payload bytes, receiver CPU and latency (s), decode alone (µs)."""

    phase: str
    sent: int
    send_s: float
    span_s: float
    received: int
    malformed: int
    bytes_median: float
    bytes_max: int
    receiver_cpu_s: float
    latency_p50_s: float
    latency_p95_s: float
    encode_us: float = math.nan
    decode_us: float = math.nan

    @property
    def dropped(self) -> int:
        """Sent but never handed to the handler."""
        return self.sent - self.received

    @property
    def cpu_s_per_1000(self) -> float:
        """Receiving process's CPU seconds per 1000 messages received."""
        return 1000 * self.receiver_cpu_s / self.received if self.received else math.nan

    @property
    def cpu_share(self) -> float:
        """Receiving process's CPU over the phase, in cores."""
        return self.receiver_cpu_s / self.span_s

    def as_json(self) -> dict[str, object]:
        """Every field plus the derived numbers."""
        return {**asdict(self), "dropped": self.dropped, "cpu_s_per_1000": self.cpu_s_per_1000,
                "cpu_share": self.cpu_share}  # fmt: skip


def zone_vehicles(segments: int, vehicles: int, seed: int = 1) -> list[tuple[FrameVehicle, ...]]:
    """Per segment, a plausible queue of ``vehicles`` vehicles, nearest the stop line first."""
    rng = random.Random(seed)
    out = []
    for _ in range(segments):
        distances = sorted(rng.uniform(0.0, 7.0 * vehicles) for _ in range(vehicles))
        speeds = [None if rng.random() < 0.1 else rng.uniform(0.0, 15.0) for _ in distances]
        pcus = [rng.choice((1.0, 0.3, 2.0)) for _ in distances]
        out.append(tuple(map(FrameVehicle, distances, speeds, pcus)))
    return out


def paced(
    segments: int, period_s: float, seconds: float, send: Callable[[int], bool]
) -> tuple[int, float]:
    """Call ``send(segment)`` for every segment once per ``period_s``, evenly spread.

    Returns how many were sent and the seconds the sending took (longer than ``seconds``
    when the sender fell behind).
    """
    step = period_s / segments
    t0 = time.monotonic()
    sent = 0
    for k in range(round(seconds / step)):
        delay = t0 + k * step - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent += send(k % segments)
    return sent, max(time.monotonic() - t0, seconds)


def ask(conn: Connection, *command: str) -> Any:
    """Send one command to the receiving process and return its answer."""
    conn.send(command)
    if not conn.poll(60):
        raise SystemExit(f"the receiving process did not answer {command[0]!r}")
    return conn.recv()


def drain(conn: Connection, kind: str, sent: int, quiet_s: float = 2.0) -> None:
    """Wait until every message sent was handled, or none arrived for ``quiet_s``."""
    seen, since = -1, time.monotonic()
    while time.monotonic() - since < quiet_s:
        now = int(ask(conn, "count", kind))
        if now >= sent:
            return
        if now != seen:
            seen, since = now, time.monotonic()
        time.sleep(0.05)


def phase(
    conn: Connection, kind: str, period_s: float, args: argparse.Namespace, *,
    send: Callable[[int], bool], settle: Callable[[int], None] = lambda _sent: None,
) -> PhaseResult:  # fmt: skip
    """Send for ``args.seconds``, wait for the rest to arrive, ask the receiver what it saw."""
    ask(conn, "start")
    started = time.monotonic()
    sent, send_s = paced(args.segments, period_s, args.seconds, send)
    settle(sent)
    drain(conn, kind, sent)
    span = time.monotonic() - started
    cpu, tallies, malformed = ask(conn, "stop")
    tally: Tally = tallies[kind]
    lat, sizes = tally.latencies, tally.sizes
    return PhaseResult(
        kind, sent, send_s, span, len(lat), malformed,
        statistics.median(sizes) if sizes else math.nan, max(sizes, default=0), cpu,
        statistics.median(lat) if lat else math.nan,
        statistics.quantiles(lat, n=20, method="inclusive")[-1] if len(lat) > 1 else math.nan,
    )  # fmt: skip


def cpu_us(work: Callable[[], object], repeats: int = 300) -> float:
    """Microseconds of CPU per call of ``work`` (after one call to warm up)."""
    work()
    cpu0 = time.process_time()
    for _ in range(repeats):
        work()
    return 1e6 * (time.process_time() - cpu0) / repeats


def measure(args: argparse.Namespace) -> list[PhaseResult]:
    """Start the broker and both sides, run the zones phase then the metrics phase."""
    cams = [CameraId(f"cam-{s // 2:03d}") for s in range(args.segments)]
    segs = [SegmentId(f"cam-{s // 2:03d}-s{s % 2}") for s in range(args.segments)]
    queues = zone_vehicles(args.segments, args.vehicles)
    site = SiteId(SITE)

    def zone(s: int) -> FrameZone:
        return FrameZone(cams[s], segs[s], datetime.now(UTC), queues[s])

    def metrics(s: int) -> SegmentMetrics:
        return window(cams[s], segs[s], datetime.now(UTC), args.window_s)

    with tempfile.TemporaryDirectory(prefix="atcs-bench-zones-") as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto")
        broker.start()
        parent, child = mp.get_context("spawn").Pipe()
        receiver = mp.get_context("spawn").Process(
            target=receiver_main, args=(broker.host, broker.port, child), daemon=True
        )
        receiver.start()
        cfg = MqttConfig(host=broker.host, port=broker.port, client_id="bench-zones-edge")
        bus = MqttBus(cfg, site_id=site, state_dir=Path(tmp) / "edge")
        bus.start()
        try:
            up = parent.poll(120) and parent.recv()
            if not (up and wait_until(lambda: bus.health()["connected"] is True, 30)):
                raise SystemExit("the bus or the feed did not connect to the benchmark broker")
            for _ in range(200):  # the feed's subscription is in place once a zone arrives
                bus.send_zone(zone(0))
                if int(ask(parent, "count", ZONES)):
                    break
                time.sleep(0.05)
            time.sleep(0.5)  # the warm-up's last zones arrive before the phase starts
            zones = phase(parent, ZONES, ZONE_EVERY_S, args, send=lambda s: bus.send_zone(zone(s)))

            def accepted(s: int) -> bool:
                bus.on_metrics([metrics(s)])
                return True

            def acked(sent: int) -> None:
                deadline = time.monotonic() + 30
                while int(bus.health()["published"]) < sent and time.monotonic() < deadline:
                    time.sleep(0.05)

            windows = phase(parent, METRICS, args.window_s, args, send=accepted, settle=acked)
        finally:
            parent.send(("quit",))
            receiver.join(10)
            bus.close(5.0)
            broker.stop()
    one_zone, one_window = zone(0), metrics(0)
    zone_payload = encode_segment_zone(site, one_zone)
    window_payload = encode_segment_metrics(one_window, MessageMeta("bench", 1))
    zones.encode_us = cpu_us(lambda: encode_segment_zone(site, one_zone))
    zones.decode_us = cpu_us(lambda: decode_segment_zone(zone_payload, segs[0]))
    windows.encode_us = cpu_us(lambda: encode_segment_metrics(one_window, MessageMeta("b", 1)))
    windows.decode_us = cpu_us(lambda: decode_segment_metrics(window_payload, segs[0]))
    return [zones, windows]


def report(args: argparse.Namespace, results: list[PhaseResult], load: float) -> None:
    """Print the table and what zones add over windows."""
    print(f"{args.segments} segments, {args.vehicles} vehicles per zone, zones every "
          f"{ZONE_EVERY_S:g} s against windows every {args.window_s:g} s, {args.seconds:g} s "
          f"per phase; load average {load:.2f} before, {os.getloadavg()[0]:.2f} after, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    head = ("phase", "sent", "sent/s", "received", "dropped", "bytes p50", "bytes max",
            "CPU s/1000", "CPU core", "lat p50 ms", "lat p95 ms", "encode µs",
            "decode µs")  # fmt: skip
    print("  ".join(f"{h:>10}" for h in head))
    for r in results:
        row = (r.phase, r.sent, f"{r.sent / r.send_s:.1f}", r.received, r.dropped,
               f"{r.bytes_median:.0f}", r.bytes_max, f"{r.cpu_s_per_1000:.3f}",
               f"{100 * r.cpu_share:.1f} %", f"{1000 * r.latency_p50_s:.1f}",
               f"{1000 * r.latency_p95_s:.1f}", f"{r.encode_us:.0f}",
               f"{r.decode_us:.0f}")  # fmt: skip
        print("  ".join(f"{v:>10}" for v in row))
    zones, windows = results
    print(f"zones add {100 * (zones.cpu_share - windows.cpu_share):.1f} % of a core at the "
          f"receiver and {zones.sent / zones.send_s * zones.bytes_median / 1000:.0f} kB/s "
          f"over the windows' {windows.sent / windows.send_s * windows.bytes_median / 1000:.1f}"
          " kB/s")  # fmt: skip
    if any(r.malformed for r in results):
        print("malformed: " + ", ".join(f"{r.phase} {r.malformed}" for r in results))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run both phases, print the table (or one JSON object)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--segments", type=int, default=300, help="stop-line segments (zones/s)")
    p.add_argument("--vehicles", type=int, default=20,
                   help=f"vehicles per zone (at most {MAX_ZONE_VEHICLES})")  # fmt: skip
    p.add_argument("--seconds", type=float, default=30.0, help="length of each phase, s")
    p.add_argument("--window-s", type=float, default=10.0, help="metrics window (peer), s")
    p.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = p.parse_args(argv)
    if not 0 < args.vehicles <= MAX_ZONE_VEHICLES or args.segments < 1:
        p.error(f"--vehicles must be 1..{MAX_ZONE_VEHICLES} and --segments at least 1")
    load = os.getloadavg()[0]
    results = measure(args)
    if args.json:
        print(json.dumps({"segments": args.segments, "vehicles": args.vehicles,
                          "seconds": args.seconds, "window_s": args.window_s, "load": load,
                          "phases": [r.as_json() for r in results]}))  # fmt: skip
    else:
        report(args, results, load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
