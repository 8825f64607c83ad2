"""What journaling a window costs the engine's tick: the durable outbox against memory queues.

For ``--windows`` windows of ``--segments`` segments, times on the calling thread:

- **outbox** (this engine): ``with journal.group(): bus.on_metrics(w); store.on_metrics(w)``,
  the real :class:`atcs.bus.MqttBus` and :class:`atcs.storage.InfluxSink`, one SQLite
  transaction per window in ``<state_dir>/outbox.sqlite3``;
- **memory** (the design before it, the peer): the same window handed to the bus's
  in-memory inbox (``Sender.enqueue``) and the store's memory queue (line protocol encoded
  on the tick, as before), with no disk write on the tick.

The broker and the database are unreachable ports, so nothing is sent and the workers stay
idle apart from their retries. Prints the median, p95 and max per window (ms) and the ratio.

    python -m benchmarks.bench_outbox --windows 2000 --segments 3
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from atcs.bus import MqttBus
from atcs.bus.outbox import NewMessage
from atcs.bus.payloads import encode_segment_metrics
from atcs.bus.topics import TopicKind
from atcs.config.bus import MqttConfig
from atcs.config.storage import InfluxConfig
from atcs.journal import group
from atcs.storage import InfluxSink, encode, metrics_point
from atcs.types import SiteId
from tests.support.net import free_port
from tests.support.samples import sample_metrics


def _timed(runs: int, step: Callable[[int], None]) -> list[float]:
    out = []
    for i in range(runs):
        started = time.perf_counter()
        step(i)
        out.append((time.perf_counter() - started) * 1000.0)
    return out


def _summary(label: str, ms: list[float]) -> float:
    ms = sorted(ms)
    median = statistics.median(ms)
    p95 = ms[int(0.95 * (len(ms) - 1))]
    print(f"{label:8s} median {median:.3f} ms  p95 {p95:.3f} ms  max {ms[-1]:.3f} ms per window")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=2000)
    parser.add_argument("--segments", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        mqtt = MqttConfig(port=free_port(), queue_max_messages=10**7)
        influx = InfluxConfig(url=f"http://127.0.0.1:{free_port()}", spool_max_bytes=2**34)
        bus = MqttBus(mqtt, site_id=SiteId("bench"), state_dir=state)
        store = InfluxSink(influx, SiteId("bench"), state)
        bus.start()
        store.start()
        windows = [
            [sample_metrics(i * args.segments + s) for s in range(args.segments)]
            for i in range(args.windows)
        ]

        def journaled(i: int) -> None:
            with group():
                bus.on_metrics(windows[i])
                store.on_metrics(windows[i])

        sender = bus._sender
        assert sender is not None

        def in_memory(i: int) -> None:
            batch = [
                NewMessage(
                    TopicKind.SEGMENT_METRICS,
                    f"atcs/v1/segments/{m.segment_id}/metrics",
                    functools.partial(encode_segment_metrics, m),
                )
                for m in windows[i]
            ]
            sender.enqueue(batch)
            lines = [encode(metrics_point(m), "ms") for m in windows[i]]
            store._to_memory([line for line in lines if line is not None])
            sender._inbox.clear()  # the peer's worker would write these; not timed here
            store._queue.take(10**6)

        outbox = _summary("outbox", _timed(args.windows, journaled))
        memory = _summary("memory", _timed(args.windows, in_memory))
        print(f"outbox / memory (median): {outbox / memory:.1f}x")
        print(f"journaled: {len(sender.outbox)} messages, {store.status().spool_points} points")
        bus.close(timeout_s=0.5)
        store.close(timeout_s=0.5)


if __name__ == "__main__":
    main()
