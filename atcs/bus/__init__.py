"""The MQTT bus: topics, payloads, the engine's publisher (a Sink) and a read-only monitor.

See ``docs/mqtt.md`` for the contract and the delivery guarantee.
"""

from __future__ import annotations

from atcs.bus.dedup import Deduplicator
from atcs.bus.messages import (
    AckResult,
    EngineState,
    EngineStatus,
    MessageMeta,
    Override,
    OverrideAction,
    PlanAck,
)
from atcs.bus.monitor import BusMonitor, LiveState, Snapshot
from atcs.bus.publisher import MqttBus
from atcs.bus.topics import DEFAULT_PREFIX, ParsedTopic, TopicKind, Topics

__all__ = [
    "DEFAULT_PREFIX",
    "AckResult",
    "BusMonitor",
    "Deduplicator",
    "EngineState",
    "EngineStatus",
    "LiveState",
    "MessageMeta",
    "MqttBus",
    "Override",
    "OverrideAction",
    "ParsedTopic",
    "PlanAck",
    "Snapshot",
    "TopicKind",
    "Topics",
]
