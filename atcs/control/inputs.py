"""From segment windows to what a controller sees per phase, and when inputs are stale.

The one measure aggregation of the engine: the service's supervisor and the closed loop in
SUMO (``atcs simulate``) both use :class:`MeasureBoard`. For one intersection it keeps the
recent usable windows of each segment its phases use (approach and exit segments, at most
:data:`HISTORY_WINDOWS` each; nothing else, so memory is bounded by the config) and the
health of the cameras that see them. Windows flagged ``stale`` (no frame was seen: the
camera was down) carry zeros, not measures, and are skipped; a window older than the
newest kept one is ignored.

Per phase, over its approach segments (``PhaseSpec.segments``), by :func:`phase_measures`:

- ``flow_pcu_h``: the **critical lane flow**: per counting line (one per lane), the PCU
  flow of the phase's segments averaged over the windows of the last ``flow_span_s``
  (:data:`FLOW_SPAN_S`); a segment served by *n* phases counts 1/*n* of its flow in each
  (a permissive left served in the through phase and in its protected phase); the phase's
  value is the largest lane total, so ``flow / saturation flow per lane`` is the critical
  flow ratio Webster wants. Line crossings are converted to PCU by class with the PCU
  factors of the config (motorcycles by the segment's protected/opposed movement); only
  the approach direction of each line counts (``FlowCount.approach``: toward the stop
  line, set per line in config), never the traffic going the other way; windows are
  weighted by their observed time (``observed_s``), so a partial window (engine start,
  camera loss) counts for the part of it that was seen; a window without a class
  breakdown counts as one line with :func:`segment_flow_pcu_h` (the segment's own
  ``pcu / vehicles`` ratio, or 1 PCU per vehicle when it saw no vehicle);
- ``queue_pcu``: PCU present in the approach zones, averaged over the windows of the last
  ``queue_span_s`` (about a cycle; :data:`QUEUE_SPAN_S` until the running cycle is set), so
  that the phase served first in a cycle is not favoured; like flows, a segment served by
  *n* phases counts 1/*n* of its queue in each (counted whole in both, the left-turners of
  a shared lane pulled green to the protected-left phase: +2 s of delay on cologne1);
  ``exit_queue_pcu``: the same on the exit segments that have fresh windows
  (max-pressure's downstream term), each counted whole;
- ``queue_m``: the longest queue in the newest windows (None when no segment measures one);
- ``age_s``: the age of the stalest segment's newest window (now minus its end).

Why (each measured in closed loop, ``docs/simulation.md``): flows of one 10-s window made
Webster's cycle swing between its bounds; a segment flow against a per-approach saturation
flow ignores unequal lane use; queues sampled at the decision instant favour the phase
served first.

Inputs are stale when an approach segment has no usable window yet, its newest is older
than ``stale_after_s``, or the camera that sees it is reported down; a phase gets measures
only when all its approach segments are fresh. Exit segments only feed max-pressure's
downstream term and never make the inputs stale.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from atcs.config import PcuConfig
from atcs.types import (
    CameraId,
    CameraState,
    CameraStatus,
    PhaseId,
    SegmentId,
    SegmentMetrics,
)
from controllers.spec import IntersectionSpec, PhaseMeasure

MAX_DOWN_CAMERAS = 256
"""Bound on the cameras remembered as down (only cameras that see watched segments count)."""

FLOW_SPAN_S = 300.0
"""Flows feeding a decision are averaged over the windows of this many seconds."""

QUEUE_SPAN_S = 90.0
"""Queues are averaged over this many seconds until the running cycle is known."""

HISTORY_WINDOWS = 64
"""Windows kept per segment (enough for :data:`FLOW_SPAN_S` at 10-s windows)."""


def segment_flow_pcu_h(metrics: SegmentMetrics, pcu: PcuConfig, movement: str) -> float:
    """Approach flow of one window in PCU per hour (see the module docstring)."""
    approach = [f for f in metrics.flows if f.approach]
    if approach and math.fsum(f.flow_veh_h for f in approach) > 0:
        return math.fsum(f.flow_veh_h * pcu.factor(f.vehicle_class, movement) for f in approach)
    if metrics.vehicles > 0:
        return metrics.flow_veh_h * metrics.pcu / metrics.vehicles
    return metrics.flow_veh_h


def _age_s(metrics: SegmentMetrics, now: datetime) -> float:
    return max(0.0, (now - metrics.window_end).total_seconds())


def line_flows_pcu_h(
    windows: Sequence[SegmentMetrics], pcu: PcuConfig, movement: str = ""
) -> dict[str, float]:
    """Hourly approach PCU flow per counting line over ``windows``, by observed time.

    Each window weighs as much as the time it was observed (a partial window less), so the
    answer is the approach crossings in PCU per hour of observed time. A window without a
    class breakdown counts as one line named after its segment, with
    :func:`segment_flow_pcu_h`. A line missing from a window counts 0 in it.
    """
    totals: dict[str, float] = defaultdict(float)
    observed_s = 0.0
    for w in windows:
        seen_s = w.observed_or_window_s
        observed_s += seen_s
        approach = [f for f in w.flows if f.approach]
        if approach and math.fsum(f.flow_veh_h for f in approach) > 0:
            for f in approach:
                pcu_h = f.flow_veh_h * pcu.factor(f.vehicle_class, movement)
                totals[f.line_id] += pcu_h * seen_s
        elif w.flow_veh_h > 0:
            totals[f"segment:{w.segment_id}"] += segment_flow_pcu_h(w, pcu, movement) * seen_s
    if observed_s <= 0:
        return {}
    return {line: total / observed_s for line, total in totals.items()}


def _recent(
    windows: Sequence[SegmentMetrics], now: datetime, span_s: float
) -> list[SegmentMetrics]:
    """Windows ending within ``span_s`` seconds before ``now`` (at least the newest one)."""
    recent = [w for w in windows if (now - w.window_end).total_seconds() < span_s - 1e-6]
    return recent or ([windows[-1]] if windows else [])  # a deque cannot be sliced


def _mean_pcu(windows: Sequence[SegmentMetrics]) -> float:
    return math.fsum(w.pcu for w in windows) / len(windows) if windows else 0.0


def phase_measures(
    spec: IntersectionSpec,
    history: Mapping[SegmentId, Sequence[SegmentMetrics]],
    now: datetime,
    *,
    flow_span_s: float = FLOW_SPAN_S,
    queue_span_s: float = QUEUE_SPAN_S,
    pcu: PcuConfig | None = None,
    movements: Mapping[SegmentId, str] | None = None,
) -> dict[PhaseId, PhaseMeasure]:
    """Return the measures per phase of ``spec`` at ``now`` (see the module docstring).

    ``history`` holds each segment's usable windows, oldest first. A phase gets an entry
    only when each of its approach segments has a window no older than
    ``spec.stale_after_s``; exit windows older than that are left out.
    """
    factors = pcu or PcuConfig()
    moves = movements or {}
    limit_s = spec.stale_after_s
    shared = Counter(seg for phase in spec.phases for seg in phase.segments)
    out: dict[PhaseId, PhaseMeasure] = {}
    for phase in spec.phases:
        series = [history.get(s, ()) for s in phase.segments]
        if not phase.segments or any(not w or _age_s(w[-1], now) > limit_s for w in series):
            continue
        lane_flow: dict[str, float] = defaultdict(float)
        for seg_id, windows in zip(phase.segments, series, strict=True):
            recent = _recent(windows, now, flow_span_s)
            for line, flow in line_flows_pcu_h(recent, factors, moves.get(seg_id, "")).items():
                lane_flow[line] += flow / shared[seg_id]
        queues = [w[-1].queue_m for w in series if w[-1].queue_m is not None]
        exits = [history.get(s, ()) for s in phase.exit_segments]
        out[phase.phase_id] = PhaseMeasure(
            phase_id=phase.phase_id,
            flow_pcu_h=max(lane_flow.values(), default=0.0),
            queue_pcu=math.fsum(
                _mean_pcu(_recent(w, now, queue_span_s)) / shared[seg_id]
                for seg_id, w in zip(phase.segments, series, strict=True)
            ),
            queue_m=max(queues) if queues else None,
            exit_queue_pcu=math.fsum(
                _mean_pcu(_recent(w, now, queue_span_s))
                for w in exits
                if w and _age_s(w[-1], now) <= limit_s
            ),
            age_s=max(_age_s(w[-1], now) for w in series),
        )
    return out


class MeasureBoard:
    """Recent usable windows per watched segment and camera health, for one intersection.

    ``flow_span_s`` and ``queue_span_s`` (s) are the spans :func:`phase_measures` averages
    over; the owner may set ``queue_span_s`` to the running cycle. ``movements`` gives each
    segment's ``protected``/``opposed`` movement (default protected); ``segment_cameras``
    the camera that sees each segment (default: the camera named in its windows).
    """

    def __init__(
        self,
        spec: IntersectionSpec,
        pcu: PcuConfig | None = None,
        movements: Mapping[SegmentId, str] | None = None,
        segment_cameras: Mapping[SegmentId, CameraId] | None = None,
    ) -> None:
        self._spec = spec
        self._pcu = pcu or PcuConfig()
        self._movements = dict(movements or {})
        self._cameras = dict(segment_cameras or {})
        approach = [s for p in spec.phases for s in p.segments]
        exits = [s for p in spec.phases for s in p.exit_segments]
        self._approach = tuple(dict.fromkeys(approach))
        self._watched = frozenset(approach) | frozenset(exits)
        self._history: dict[SegmentId, deque[SegmentMetrics]] = {
            seg: deque(maxlen=HISTORY_WINDOWS) for seg in self._watched
        }
        self.flow_span_s = FLOW_SPAN_S
        self.queue_span_s = QUEUE_SPAN_S
        self._down: dict[CameraId, str] = {}
        self.stale_windows_skipped = 0

    @property
    def watched(self) -> frozenset[SegmentId]:
        """Segments whose windows this board keeps."""
        return self._watched

    def add(self, metrics: Iterable[SegmentMetrics]) -> int:
        """Keep the usable windows of watched segments newer than the newest kept one.

        Returns how many were kept; a window ending when the newest kept one ends
        replaces it.
        """
        kept = 0
        for m in metrics:
            if m.segment_id not in self._watched:
                continue
            if m.stale or m.frames <= 0:
                self.stale_windows_skipped += 1
                continue
            history = self._history[m.segment_id]
            if history and m.window_end < history[-1].window_end:
                continue
            if history and m.window_end == history[-1].window_end:
                history.pop()
            history.append(m)
            kept += 1
        return kept

    def camera_of(self, segment: SegmentId) -> CameraId | None:
        """Return the camera that sees ``segment`` (from the config, else from its windows)."""
        camera = self._cameras.get(segment)
        history = self._history.get(segment)
        if camera is None and history:
            camera = history[-1].camera_id
        return camera

    def set_camera_status(self, status: CameraStatus) -> bool:
        """Record a camera's health; return True when its up/down state changed."""
        if status.camera_id not in {self.camera_of(s) for s in self._watched}:
            return False
        was_down = status.camera_id in self._down
        if status.state is CameraState.STREAMING:
            self._down.pop(status.camera_id, None)
            return was_down
        if len(self._down) >= MAX_DOWN_CAMERAS and not was_down:
            return False
        detail = f" ({status.detail})" if status.detail else ""
        self._down[status.camera_id] = f"{status.state.value}{detail}"
        return not was_down

    def camera_down(self, segment: SegmentId) -> bool:
        """Tell whether the camera that sees ``segment`` is reported down."""
        camera = self.camera_of(segment)
        return camera is not None and camera in self._down

    def fresh_window(self, segment: SegmentId, now: datetime) -> SegmentMetrics | None:
        """Return the newest window of ``segment`` if usable at ``now`` (camera up, fresh)."""
        history = self._history.get(segment)
        if not history or self.camera_down(segment):
            return None
        latest = history[-1]
        return latest if _age_s(latest, now) <= self._spec.stale_after_s else None

    def stale_reasons(self, now: datetime) -> list[str]:
        """Why the inputs cannot drive an adaptive plan at ``now`` (empty: they can)."""
        out: list[str] = []
        limit_s = self._spec.stale_after_s
        for seg in self._approach:
            camera = self.camera_of(seg)
            history = self._history.get(seg)
            latest = history[-1] if history else None
            if camera is not None and camera in self._down:
                out.append(f"segment {seg}: camera {camera} is {self._down[camera]}")
            elif latest is None:
                out.append(f"segment {seg}: no measures yet")
            elif _age_s(latest, now) > limit_s:
                out.append(
                    f"segment {seg}: newest measures {_age_s(latest, now):.1f} s old "
                    f"(stale after {limit_s:g} s)"
                )
        return out

    def stale_codes(self, now: datetime) -> list[tuple[str, dict[str, str | float | int]]]:
        """:meth:`stale_reasons` as codes with parameters (for translation)."""
        out: list[tuple[str, dict[str, str | float | int]]] = []
        limit_s = self._spec.stale_after_s
        for seg in self._approach:
            camera = self.camera_of(seg)
            history = self._history.get(seg)
            latest = history[-1] if history else None
            if camera is not None and camera in self._down:
                state = self._down[camera].split(" ", 1)[0]
                out.append(("stale_camera", {"segment": seg, "camera": camera, "state": state}))
            elif latest is None:
                out.append(("stale_no_measures", {"segment": seg}))
            elif _age_s(latest, now) > limit_s:
                age_s = round(_age_s(latest, now), 1)
                out.append(("stale_old", {"segment": seg, "age_s": age_s, "limit_s": limit_s}))
        return out

    def measures(self, now: datetime) -> dict[PhaseId, PhaseMeasure]:
        """Measures per phase at ``now``: phases whose approach segments all have fresh data."""
        return phase_measures(
            self._spec,
            self._history,
            now,
            flow_span_s=self.flow_span_s,
            queue_span_s=self.queue_span_s,
            pcu=self._pcu,
            movements=self._movements,
        )
