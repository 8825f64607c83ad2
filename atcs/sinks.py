"""Where the service hands its outputs: the :class:`Sink` protocol.

A sink receives segment metrics, camera status and timing plans from the service's
analysis tick. Every ``on_*`` method must enqueue and return at once: a sink never blocks
the tick and never raises into it; its own thread does the I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from atcs.types import CameraStatus, MovementCounts, SegmentMetrics, TimingPlan

MovementListener = Callable[[Sequence[MovementCounts]], None]
"""Called with the turning-movement matrices of finished windows; returns at once.

The MQTT bus and the InfluxDB store have one (``on_movements``); incidents go to
:data:`atcs.incidents.IncidentListener` handlers (``on_incident``)."""


class Sink(Protocol):
    """An output of the engine (MQTT bus, InfluxDB store ...)."""

    def start(self) -> None:
        """Start the sink's background work (connect, replay what waits on disk)."""
        ...

    def on_metrics(self, metrics: Sequence[SegmentMetrics]) -> None:
        """Accept the metrics of one window (enqueue and return)."""
        ...

    def on_camera_status(self, status: CameraStatus) -> None:
        """Accept a camera's health (enqueue and return)."""
        ...

    def on_plan(self, plan: TimingPlan) -> None:
        """Accept a timing plan that passed the safety envelope (enqueue and return)."""
        ...

    def health(self) -> Mapping[str, float | int | str | bool]:
        """Return the connection state, queue and spool sizes and counters."""
        ...

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush what can be flushed within ``timeout_s`` seconds and persist the rest."""
        ...
