"""Count hostile payloads tried and crashes for every inbound MQTT decoder (not a test).

A crash is any exception other than the documented :class:`atcs.errors.PayloadError`
(for the decoders) or any exception at all (for the paho ``on_message`` paths of the
engine's control inbox and of ``atcs watch``). ``tests/test_bus_fuzz.py`` asserts zero
crashes with fewer examples; this script prints the counts per decoder::

    python -m benchmarks.fuzz_inbound --examples 2000
"""

from __future__ import annotations

import argparse
import collections
import logging
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from hypothesis import HealthCheck, given, settings

from atcs.bus.control import ControlInbox
from atcs.bus.monitor import LiveState
from atcs.bus.topics import Topics
from atcs.errors import PayloadError
from atcs.types import SegmentId
from tests.support.fuzz import INBOUND, hostile_payloads

TOPICS = Topics()


def _message(topic: str, payload: bytes) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(mid=1, topic=topic.encode())
    msg.payload = payload
    msg.qos = 1
    return msg


def _callbacks() -> list[tuple[str, Callable[[bytes], object], bytes, bool]]:
    inbox = ControlInbox(TOPICS)
    inbox.add_override_handler(lambda _ov: None)
    inbox.add_ack_handler(lambda _ack: None)
    state = LiveState(TOPICS)
    by_name = {i.name: i for i in INBOUND}
    out: list[tuple[str, Callable[[bytes], object], bytes, bool]] = [
        (i.name, i.decode, i.valid, True) for i in INBOUND
    ]
    out += [
        (
            "engine on_message (override)",
            lambda p: inbox.handle(None, None, _message(TOPICS.override("ix-1"), p)),  # type: ignore[arg-type]
            by_name["override"].valid,
            False,
        ),
        (
            "engine on_message (plan ack)",
            lambda p: inbox.handle(None, None, _message(TOPICS.plan_ack("ix-1"), p)),  # type: ignore[arg-type]
            by_name["plan_ack"].valid,
            False,
        ),
        (
            "watch on_message (metrics)",
            lambda p: state.handle(TOPICS.segment_metrics(SegmentId("seg-a")), p),
            by_name["segment_metrics"].valid,
            False,
        ),
    ]
    return out


def run(name: str, call: Callable[[bytes], object], valid: bytes, allow: bool, n: int) -> None:
    """Fuzz one decoder with ``n`` examples and print tried / crashed / crash kinds."""
    tried = 0
    crashes: collections.Counter[str] = collections.Counter()

    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(hostile_payloads(valid))
    def one(payload: bytes) -> None:
        nonlocal tried
        tried += 1
        try:
            call(payload)
        except PayloadError:
            if not allow:
                crashes["PayloadError"] += 1
        except Exception as exc:  # what we count
            crashes[type(exc).__name__] += 1

    start = time.perf_counter()
    one()
    took = time.perf_counter() - start
    kinds = ", ".join(f"{k} {v}" for k, v in crashes.most_common()) or "-"
    crashed = sum(crashes.values())
    print(f"{name:<32} tried {tried:>6}  crashed {crashed:>5}  {took:6.1f} s  {kinds}")


def main() -> None:
    """Fuzz every inbound decoder and callback."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000, help="examples per decoder")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    for name, call, valid, allow in _callbacks():
        run(name, call, valid, allow, args.examples)


if __name__ == "__main__":
    main()
