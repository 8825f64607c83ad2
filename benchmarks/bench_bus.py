"""Sustained publish and write throughput of the engine's outputs against real local servers.

Starts its own Mosquitto, InfluxDB 1.x and nginx (the v2-API proxy) on free loopback ports
with throwaway folders (the test suite's helpers in ``tests/support``), then measures:

- MQTT: segment metrics messages per second through :class:`atcs.bus.MqttBus` (disk queue,
  QoS 1, retained), counted when the broker's PUBACK arrived (``health()["published"]``),
  with a producer that keeps the bus's memory queue fed but never over its bound; and the
  same through a bare paho client (QoS 1, same in-flight window, no disk queue) for scale.
- InfluxDB: ``segment_metrics`` points per second through :class:`atcs.storage.InfluxSink`
  (encoding on the caller's thread, batching, HTTP), counted when the server acknowledged
  them (``points_written``): the v1 API straight to influxd and the v2 API
  (influxdb-client) through nginx.

    python -m benchmarks.bench_bus                       # defaults: 20 000 messages, 100 000 points
    python -m benchmarks.bench_bus --messages 5000 --points 20000 --inflight 32
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from atcs.bus import MqttBus
from atcs.bus.messages import MessageMeta
from atcs.bus.payloads import encode_segment_metrics
from atcs.config import InfluxConfig, MqttConfig
from atcs.storage import InfluxSink
from atcs.types import (
    CameraId,
    Direction,
    FlowCount,
    LevelOfService,
    LineId,
    SegmentId,
    SegmentMetrics,
    SiteId,
    VehicleClass,
)
from tests.support.influxdb import InfluxServer, NginxProxy
from tests.support.mosquitto import Mosquitto

SITE = SiteId("bench")
T0 = datetime(2025, 3, 1, tzinfo=UTC)
SEGMENTS_PER_CAMERA = 3


def sample(i: int, cameras: int = 30) -> SegmentMetrics:
    """The ``i``-th record: camera and segment cycle, one 10 s window per round."""
    cam = i % cameras
    seg = (i // cameras) % SEGMENTS_PER_CAMERA
    start = T0 + timedelta(seconds=10 * (i // (cameras * SEGMENTS_PER_CAMERA)))
    return SegmentMetrics(
        site_id=SITE,
        camera_id=CameraId(f"cam-{cam:02d}"),
        segment_id=SegmentId(f"cam-{cam:02d}-seg-{seg}"),
        window_start=start,
        window_end=start + timedelta(seconds=10),
        frames=10,
        vehicles=3.3 + i % 7,
        vehicles_by_class={VehicleClass.CAR: 1.1, VehicleClass.MOTORCYCLE: 2.2 + i % 7},
        pcu=1.43,
        density_pcu_km_lane=12.5,
        occupancy=0.21,
        flow_veh_h=720.0,
        flows=(FlowCount(LineId("l1"), VehicleClass.CAR, Direction.FORWARD, 2, 720.0),),
        queue_m=12.0,
        queue_max_m=18.0,
        los=LevelOfService.C,
        congested=False,
        stale=False,
    )


def wait_until(cond: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def bench_mqtt_bus(broker: Mosquitto, state_dir: Path, n: int, inflight: int) -> float:
    """Messages/s through MqttBus, from the first enqueue to the last PUBACK."""
    cfg = MqttConfig(host=broker.host, port=broker.port, inflight_max=inflight)
    bus = MqttBus(cfg, site_id=SITE, state_dir=state_dir)
    bus.start()
    if not wait_until(lambda: bus.health()["connected"] is True, 10):
        raise SystemExit("MqttBus did not connect to the benchmark broker")
    records = [sample(i) for i in range(n)]
    chunk = 200
    high_water = cfg.memory_queue_max // 2  # never reach the bound (it would drop the oldest)
    started = time.perf_counter()
    for i in range(0, n, chunk):
        while int(bus.health()["memory_queue"]) > high_water:
            time.sleep(0.001)
        bus.on_metrics(records[i : i + chunk])
    if not wait_until(lambda: int(bus.health()["published"]) >= n, 600):
        raise SystemExit(f"MqttBus published only {bus.health()['published']} of {n}")
    elapsed = time.perf_counter() - started
    lost = {k: v for k, v in bus.health().items() if k.startswith("dropped_") and v}
    bus.close(5.0)
    if lost:
        raise SystemExit(f"MqttBus dropped messages: {lost}")
    return n / elapsed


def bench_paho(broker: Mosquitto, n: int, inflight: int) -> float:
    """Messages/s through a bare paho client, QoS 1, same payloads, ``inflight`` window."""
    payloads = [encode_segment_metrics(sample(i), MessageMeta("raw", i + 1)) for i in range(n)]
    window = threading.Semaphore(inflight)  # a slot per unacknowledged message
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-raw")
    client.max_inflight_messages_set(inflight)
    client.on_publish = lambda *_args: window.release()
    client.connect(broker.host, broker.port)
    client.loop_start()
    started = time.perf_counter()
    for i, payload in enumerate(payloads):
        window.acquire()
        client.publish(f"bench/raw/{i % 90}", payload, qos=1, retain=True)
    for _ in range(inflight):  # every slot back: every message acknowledged
        window.acquire()
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return n / elapsed


def bench_influx(cfg: InfluxConfig, state_dir: Path, n: int) -> float:
    """Points/s through InfluxSink, from the first enqueue to the last acknowledged write."""
    sink = InfluxSink(cfg, SITE, state_dir)
    sink.start()
    sink.on_metrics([sample(10**7)])  # warm up: database created, connection open
    if not wait_until(lambda: int(sink.health()["points_written"]) >= 1, 30):
        raise SystemExit(f"InfluxDB not writable: {sink.health()['last_error']}")
    records = [sample(i) for i in range(n)]
    chunk = 500
    started = time.perf_counter()
    for i in range(0, n, chunk):
        while int(sink.health()["queue_points"]) > cfg.queue_max_points // 2:
            time.sleep(0.001)
        sink.on_metrics(records[i : i + chunk])
    if not wait_until(lambda: int(sink.health()["points_written"]) >= n + 1, 600):
        raise SystemExit(f"InfluxSink wrote only {sink.health()['points_written']} of {n}")
    elapsed = time.perf_counter() - started
    health = sink.health()
    sink.close(5.0)
    if int(health["points_spooled"]) or int(health["points_refused_queue_full"]):
        print(
            f"  note: spooled {health['points_spooled']}, "
            f"refused {health['points_refused_queue_full']}"
        )
    return n / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="MQTT messages per run")
    parser.add_argument("--points", type=int, default=100_000, help="InfluxDB points per run")
    parser.add_argument("--inflight", type=int, default=32, help="MQTT in-flight window")
    parser.add_argument("--batch-size", type=int, default=1000, help="InfluxDB points per write")
    args = parser.parse_args(argv)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="atcs-bench-bus-") as tmp:
        root = Path(tmp)
        broker = Mosquitto(root / "mosquitto")
        influx = InfluxServer(root / "influxdb")
        try:
            broker.start()
            influx.start()
            proxy = NginxProxy(root / "nginx", influx.port)
            proxy.start()
            try:
                rate = bench_mqtt_bus(broker, root / "state-bus", args.messages, args.inflight)
                print(f"MQTT  MqttBus (disk queue, QoS 1, acked)  {args.messages:>7} msgs  "
                      f"{rate:9.0f} msg/s")  # fmt: skip
                rate = bench_paho(broker, args.messages, args.inflight)
                print(f"MQTT  bare paho (QoS 1, no disk queue)     {args.messages:>7} msgs  "
                      f"{rate:9.0f} msg/s")  # fmt: skip
                common = {"batch_size": args.batch_size, "flush_interval_s": 0.2}
                v1 = InfluxConfig.model_validate(
                    {"api": "v1", "url": influx.url, "database": "bench_v1", **common}
                )
                rate = bench_influx(v1, root / "state-v1", args.points)
                print(f"Influx v1 /write -> influxd 1.6            {args.points:>7} pts   "
                      f"{rate:9.0f} points/s")  # fmt: skip
                influx.query('CREATE DATABASE "bench_v2"', method="POST")
                v2 = InfluxConfig.model_validate(
                    {"api": "v2", "url": proxy.url, "bucket": "bench_v2", **common}
                )
                rate = bench_influx(v2, root / "state-v2", args.points)
                print(f"Influx v2 influxdb-client -> nginx -> 1.6  {args.points:>7} pts   "
                      f"{rate:9.0f} points/s")  # fmt: skip
            finally:
                proxy.stop()
        finally:
            broker.kill()
            influx.stop()
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
