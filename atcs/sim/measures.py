"""From segment measures to what a controller sees per phase (pure, no I/O).

Per phase, over the segments that feed it (definitions in ``docs/simulation.md``):

- ``flow_pcu_h``: the critical lane flow: per counting line (one per lane), the PCU flow
  of the phase's segments averaged over the flow span (a segment served by *n* phases
  counts 1/*n* of its flow in each), and the largest lane total. With a saturation flow
  given per lane, ``flow / saturation`` is the phase's critical flow ratio, as Webster's
  method wants.
- ``queue_pcu``: PCU present in the phase's approach zones, averaged over the queue span
  (about one cycle); ``exit_queue_pcu`` the same on its exits (max-pressure's downstream
  term).
- ``queue_m``: the longest queue back from a stop line among the phase's segments, newest
  window.
- ``age_s``: age of the newest window used.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from atcs.config import PcuConfig
from atcs.control.inputs import MeasureBoard
from atcs.types import PhaseId, SegmentId, SegmentMetrics
from controllers.spec import IntersectionSpec, PhaseMeasure

FLOW_SPAN_S = 300.0
"""Flows feeding a decision are averaged over this many seconds (at least)."""

QUEUE_SPAN_S = 90.0
"""Queues feeding a decision are averaged over this many seconds (about one cycle)."""

HISTORY_WINDOWS = 64
"""Windows kept per segment (enough for :data:`FLOW_SPAN_S` at 10-s windows)."""


def flow_pcu_h(metrics: SegmentMetrics, pcu: PcuConfig, movement: str = "protected") -> float:
    """Hourly PCU flow of ``metrics``'s line crossings (classes weighted by ``pcu``)."""
    if not metrics.flows:
        return 0.0
    return sum(f.flow_veh_h * pcu.factor(f.vehicle_class, movement) for f in metrics.flows)


def line_flows_pcu_h(
    windows: Sequence[SegmentMetrics], pcu: PcuConfig, movement: str = "protected"
) -> dict[str, float]:
    """Mean hourly PCU flow per counting line over ``windows`` (classes weighted)."""
    totals: dict[str, float] = defaultdict(float)
    for w in windows:
        for f in w.flows:
            totals[f.line_id] += f.flow_veh_h * pcu.factor(f.vehicle_class, movement)
    n = max(1, len(windows))
    return {line: total / n for line, total in totals.items()}


def _recent(
    windows: Sequence[SegmentMetrics], now: datetime, span_s: float
) -> list[SegmentMetrics]:
    """Windows ending within ``span_s`` seconds before ``now`` (at least the newest one)."""
    recent = [w for w in windows if (now - w.window_end).total_seconds() < span_s - 1e-6]
    return recent or list(windows[-1:])


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def phase_measures(
    spec: IntersectionSpec,
    history: Mapping[SegmentId, Sequence[SegmentMetrics]],
    now: datetime,
    *,
    flow_span_s: float,
    queue_span_s: float,
    pcu: PcuConfig | None = None,
) -> dict[PhaseId, PhaseMeasure]:
    """Return the measures per phase of ``spec`` at ``now``.

    ``history`` holds each segment's recent windows, oldest first. Flows are averaged over
    the windows ending in the last ``flow_span_s`` seconds, queues (PCU in the zones) over
    the last ``queue_span_s`` seconds. Phases none of whose segments has a window yet get
    no entry.
    """
    factors = pcu or PcuConfig()
    shared = Counter(seg for phase in spec.phases for seg in phase.segments)
    out: dict[PhaseId, PhaseMeasure] = {}
    for phase in spec.phases:
        lane_flow: dict[str, float] = defaultdict(float)
        queue_pcu = 0.0
        queue_m: float | None = None
        newest: datetime | None = None
        for seg_id in phase.segments:
            windows = history.get(seg_id, ())
            if not windows:
                continue
            latest = windows[-1]
            newest = latest.window_end if newest is None else max(newest, latest.window_end)
            recent = _recent(windows, now, flow_span_s)
            for line, flow in line_flows_pcu_h(recent, factors).items():
                lane_flow[line] += flow / shared[seg_id]
            queue_pcu += _mean([w.pcu for w in _recent(windows, now, queue_span_s)])
            if latest.queue_m is not None:
                queue_m = latest.queue_m if queue_m is None else max(queue_m, latest.queue_m)
        if newest is None:
            continue
        exit_pcu = 0.0
        for seg_id in phase.exit_segments:
            windows = history.get(seg_id, ())
            if windows:
                exit_pcu += _mean([w.pcu for w in _recent(windows, now, queue_span_s)])
        out[phase.phase_id] = PhaseMeasure(
            phase_id=phase.phase_id,
            flow_pcu_h=max(lane_flow.values(), default=0.0),
            queue_pcu=queue_pcu,
            queue_m=queue_m,
            exit_queue_pcu=exit_pcu,
            age_s=max(0.0, (now - newest).total_seconds()),
        )
    return out


class SimMeasureBoard(MeasureBoard):
    """The service's :class:`MeasureBoard` keeping recent windows for :func:`phase_measures`.

    Staleness and camera health work as in the service; :meth:`measures` aggregates the
    windows of the last :data:`FLOW_SPAN_S` / ``queue_span_s`` seconds instead of the
    newest window alone. ``queue_span_s`` may be updated (the loop sets the running cycle).
    """

    def __init__(self, spec: IntersectionSpec, pcu: PcuConfig | None = None) -> None:
        super().__init__(spec, pcu)
        self._spec_ref = spec
        self._factors = pcu or PcuConfig()
        self._history: dict[SegmentId, deque[SegmentMetrics]] = {
            seg: deque(maxlen=HISTORY_WINDOWS) for seg in self.watched
        }
        self.flow_span_s = FLOW_SPAN_S
        self.queue_span_s = QUEUE_SPAN_S

    def add(self, metrics: Iterable[SegmentMetrics]) -> int:
        """Keep usable windows of watched segments (see :meth:`MeasureBoard.add`)."""
        batch = list(metrics)
        kept = super().add(batch)
        for m in batch:
            history = self._history.get(m.segment_id)
            if history is not None and not m.stale and m.frames > 0:
                history.append(m)
        return kept

    def measures(self, now: datetime) -> dict[PhaseId, PhaseMeasure]:
        """Return the measures per phase at ``now`` (see :func:`phase_measures`)."""
        return phase_measures(
            self._spec_ref,
            self._history,
            now,
            flow_span_s=self.flow_span_s,
            queue_span_s=self.queue_span_s,
            pcu=self._factors,
        )
