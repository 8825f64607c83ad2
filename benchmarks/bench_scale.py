"""A 300-camera city on one bridged broker pair: message rates, broker CPU, room latency.

Starts two Mosquitto brokers bridged both ways on ``atcs/#`` (the suite's helpers), then:

- ``--edges`` simulated edge nodes, each a process with a real :class:`atcs.bus.MqttBus`
  (disk queue, QoS 1, retained) and a real :class:`atcs.bus.nodes.NodeAnnouncer`, half on
  broker A and half on broker B, sharing ``--cameras`` cameras: at every ``--window-s``
  boundary each publishes one window per segment of its cameras (``window_end`` = the
  boundary) and every 10 s each camera's status, as an edge node does (no video: the
  detection cost per camera is the README's camera benchmark);
- the real control node (``atcs run --role control``, a process on broker A) for one
  intersection per four cameras;
- the real room node (:class:`atcs.roles.room.RoomNode`, in this process, on broker B,
  dashboard, alarms and all): a handler after the dashboard's records, for every window,
  the time from its ``window_end`` to its arrival on the room's board (the room update
  latency: queue, broker, bridge, feed, board).

Prints message rates (published, received by the room), the CPU of each broker, the room
and the control node over the measured span, and latency percentiles.

    python -m benchmarks.bench_scale --cameras 300 --edges 10 --seconds 60
    python -m benchmarks.bench_scale --cameras 300 --edges 30 --window-s 1   # 10x the rate
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event
from pathlib import Path

from atcs.bus import MqttBus
from atcs.bus.nodes import NodeAnnouncer, NodeRole, node_status_of
from atcs.config import load_config
from atcs.config.bus import MqttConfig
from atcs.roles.room import RoomNode
from atcs.types import (
    CameraId,
    CameraState,
    CameraStatus,
    Direction,
    FlowCount,
    LevelOfService,
    LineId,
    SegmentId,
    SegmentMetrics,
    SiteId,
    VehicleClass,
)
from tests.support.mosquitto import Mosquitto, bridge_to
from tests.support.net import free_port

SITE = "scale"
SEGMENTS_PER_CAMERA = 2
STATUS_EVERY_S = 10.0


def city_toml(cameras: int, window_s: float, state: Path, port: int, dashboard: int) -> str:
    """A city of ``cameras`` cameras, two segments each, an intersection per four cameras."""
    out = [
        f'[site]\nid = "{SITE}"\n[analysis]\nwindow_s = {window_s}\n',
        f'[service]\nstate_dir = "{state}"\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\n',
        "[mqtt.control_auth]\ninsecure_allow_unsigned = true\n",
        f'[dashboard]\nhost = "127.0.0.1"\nport = {dashboard}\nallow_anonymous_viewers = true\n',
    ]
    for c in range(cameras):
        out.append(f'[[cameras]]\nid = "cam-{c:03d}"\nsource = "cam-{c:03d}.mp4"\n')
        for s in range(SEGMENTS_PER_CAMERA):
            out.append(
                f'[[segments]]\nid = "cam-{c:03d}-s{s}"\ncamera = "cam-{c:03d}"\n'
                "polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]\nlength_m = 50.0\nlanes = 2\n"
            )
    for i in range(cameras // 4):
        out.append(
            f'[[intersections]]\nid = "ix-{i:03d}"\ncontroller = "webster"\n'
            f"cycle_min_s = 40.0\ncycle_max_s = 120.0\nstale_after_s = {max(3 * window_s, 30)}\n"
        )
        for p in range(4):
            out.append(
                f'[[intersections.phases]]\nid = "p{p}"\nsegments = ["cam-{4 * i + p:03d}-s0"]\n'
                "min_green_s = 8.0\nmax_green_s = 40.0\nyellow_s = 3.0\nall_red_s = 2.0\n"
            )
        greens = ", ".join(f"p{p} = 15.0" for p in range(4))
        out.append(
            f'[[intersections.fallback_plans]]\nstarts_at = "00:00"\nname = "day"\n'
            f"greens_s = {{ {greens} }}\n"
        )
    return "\n".join(out)


def window(camera: str, segment: str, end: datetime, window_s: float) -> SegmentMetrics:
    """One plausible window of ``segment`` ending at ``end``."""
    return SegmentMetrics(
        site_id=SiteId(SITE),
        camera_id=CameraId(camera),
        segment_id=SegmentId(segment),
        window_start=end - timedelta(seconds=window_s),
        window_end=end,
        frames=int(window_s),
        vehicles=4.0,
        vehicles_by_class={VehicleClass.CAR: 1.0, VehicleClass.MOTORCYCLE: 3.0},
        pcu=1.75,
        density_pcu_km_lane=17.5,
        occupancy=0.2,
        flow_veh_h=720.0,
        flows=(FlowCount(LineId("l1"), VehicleClass.CAR, Direction.FORWARD, 2, 720.0),),
        queue_m=12.0,
        queue_max_m=18.0,
        los=LevelOfService.C,
        congested=False,
        stale=False,
    )


def edge_main(spec: EdgeSpec, out: mp.Queue, stop: Event) -> None:  # type: ignore[type-arg]
    """One simulated edge node (a process): windows and statuses through a real bus."""
    name, cameras, window_s = spec.name, spec.cameras, spec.window_s
    cfg = MqttConfig(host="127.0.0.1", port=spec.port, client_id=f"atcs-{SITE}-edge-{name}")
    bus = MqttBus(cfg, site_id=SiteId(SITE), state_dir=spec.state)
    node = NodeAnnouncer(cfg, node_status_of(name, NodeRole.EDGE, SITE, cameras), keepalive_s=5)
    bus.start()
    node.start()
    out.put(("ready", name))
    next_status = 0.0
    while not stop.is_set():
        now = time.time()
        boundary = (now // window_s + 1) * window_s
        time.sleep(max(boundary - now, 0.0))
        end = datetime.fromtimestamp(boundary, UTC)
        bus.on_metrics(
            [
                window(c, f"{c}-s{s}", end, window_s)
                for c in cameras
                for s in range(SEGMENTS_PER_CAMERA)
            ]
        )
        if boundary >= next_status:
            for c in cameras:
                bus.on_camera_status(CameraStatus(CameraId(c), CameraState.STREAMING, 1.0, end))
            next_status = boundary + STATUS_EVERY_S
    published = int(bus.health()["published"])
    node.close(5.0)
    bus.close(10.0)
    out.put((name, published))


def cpu_s(pid: int) -> float:
    """CPU time (user + system, s) of process ``pid`` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


@dataclass(frozen=True, slots=True)
class EdgeSpec:
    """One simulated edge node: its name, broker port, cameras, window (s) and state folder."""

    name: str
    port: int
    cameras: tuple[str, ...]
    window_s: float
    state: str


@dataclass(slots=True)
class Measured:
    """What one measured span gave."""

    span_s: float
    cpu: dict[str, float]
    received: int
    nodes: int
    online: int
    latencies: list[float] = field(default_factory=list)
    published: list[int] = field(default_factory=list)


def start_city(
    args: argparse.Namespace, tmp: Path
) -> tuple[Mosquitto, Mosquitto, subprocess.Popen[bytes], RoomNode]:
    """The bridged brokers, the control node (a process) and the room node (here)."""
    broker_a = Mosquitto(tmp / "broker-a")
    broker_a.start()
    broker_b = Mosquitto(tmp / "broker-b", extra=bridge_to(broker_a, "bridge-b-to-a"))
    broker_b.start()
    path = tmp / "city.toml"
    path.write_text(
        city_toml(args.cameras, args.window_s, tmp / "room", broker_b.port, free_port())
    )
    text = city_toml(args.cameras, args.window_s, tmp / "control", broker_a.port, free_port())
    control_cfg = tmp / "control.toml"
    control_cfg.write_text(text.replace('id = "scale"', 'id = "scale"\n[node]\nid = "control"', 1))
    control = subprocess.Popen(
        [sys.executable, "-m", "atcs.cli", "run", "--config", str(control_cfg), "--role",
         "control"],
        stdout=(tmp / "control.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    return broker_a, broker_b, control, RoomNode(load_config(path))


def measure(args: argparse.Namespace, tmp: Path) -> Measured:
    """Run the city, measure ``args.seconds`` after the warm-up, stop everything."""
    broker_a, broker_b, control, room = start_city(args, tmp)
    latencies: list[float] = []
    measuring = threading.Event()

    def on_board(metrics: Sequence[SegmentMetrics]) -> None:
        if measuring.is_set():
            now = datetime.now(UTC)
            latencies.extend((now - m.window_end).total_seconds() for m in metrics)

    room.feed.on_metrics(on_board)
    room.start()
    cams = [f"cam-{c:03d}" for c in range(args.cameras)]
    ctx = mp.get_context("spawn")
    results: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    stop = ctx.Event()
    edges = []
    for e in range(args.edges):
        spec = EdgeSpec(
            f"edge-{e:02d}", broker_a.port if e % 2 == 0 else broker_b.port,
            tuple(cams[e :: args.edges]), args.window_s, str(tmp / f"edge-{e}"),
        )  # fmt: skip
        edges.append(ctx.Process(target=edge_main, args=(spec, results, stop)))
        edges[-1].start()
    for _ in edges:
        results.get(timeout=300)  # every edge connected and publishing
    time.sleep(args.warmup_s)
    pids = {"broker A": broker_a.pid, "broker B": broker_b.pid, "control node": control.pid}
    cpu0 = {k: cpu_s(v) for k, v in pids.items()}
    room0, received0 = time.process_time(), room.feed.received
    measuring.set()
    t0 = time.monotonic()
    time.sleep(args.seconds)
    span = time.monotonic() - t0
    measuring.clear()
    cpu = {k: (cpu_s(v) - cpu0[k]) / span for k, v in pids.items()}
    cpu["room node (this process)"] = (time.process_time() - room0) / span
    nodes = room.feed.nodes.nodes()
    out = Measured(span, cpu, room.feed.received - received0, len(nodes),
                   sum(n.online for n in nodes), list(latencies))  # fmt: skip
    stop.set()
    out.published = sorted(int(results.get(timeout=60)[1]) for _ in edges)
    for proc in edges:
        proc.join(30)
    room.stop()
    room.shutdown()
    control.terminate()
    control.wait(30)
    broker_b.stop()
    broker_a.stop()
    return out


def report(args: argparse.Namespace, m: Measured) -> None:
    """Print what was measured."""
    expected = args.cameras * SEGMENTS_PER_CAMERA / args.window_s
    print(f"\n{args.cameras} cameras, {args.cameras * SEGMENTS_PER_CAMERA} segments, "
          f"{args.edges} edge publishers on 2 bridged brokers, {args.window_s:g} s windows, "
          f"{m.span_s:.0f} s measured; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"nodes seen by the room: {m.nodes} ({m.online} online)")
    print(f"windows expected {expected:.1f}/s; room received {m.received / m.span_s:.1f} msg/s "
          f"(windows, statuses, plans, node status); windows timed {len(m.latencies)}")  # fmt: skip
    print("edge messages acknowledged: " + ", ".join(str(p) for p in m.published))
    for name, cores in m.cpu.items():
        print(f"CPU {name}: {100 * cores:.1f} % of one core")
    if m.latencies:
        lat = m.latencies
        print(
            "room update latency (window end -> room board), s: "
            f"p50 {statistics.median(lat):.3f}  p95 {pct(lat, 0.95):.3f}  "
            f"p99 {pct(lat, 0.99):.3f}  max {max(lat):.3f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run the city, print the numbers."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cameras", type=int, default=300)
    p.add_argument("--edges", type=int, default=10)
    p.add_argument("--window-s", type=float, default=10.0)
    p.add_argument("--seconds", type=float, default=60.0, help="measured span")
    p.add_argument("--warmup-s", type=float, default=15.0)
    args = p.parse_args(argv)
    report(args, measure(args, Path(tempfile.mkdtemp(prefix="atcs-scale-"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
