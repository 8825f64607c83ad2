"""From segment windows to what a controller sees per phase, and when inputs are stale.

:class:`MeasureBoard` keeps, for one intersection, the newest usable window of each segment
its phases use (approach and exit segments; nothing else, so memory is bounded by the
config) and the health of the cameras that see them. Windows flagged ``stale`` (no frame
was seen: the camera was down) carry zeros, not measures, and are skipped.

Per phase, over its approach segments (``PhaseSpec.segments``):

- ``flow_pcu_h``: the highest segment flow (the critical approach, to match the phase's
  saturation flow); a segment's flow is converted to PCU from its line crossings by class
  with the PCU factors of the config (motorcycles by the segment's protected/opposed
  movement), or, without a class breakdown, with the segment's own ``pcu / vehicles``
  ratio, or 1 PCU per vehicle when it saw no vehicle;
- ``queue_pcu``: the sum of the segments' PCU; ``queue_m``: the longest queue (None when no
  segment measures one); ``exit_queue_pcu``: the sum of the PCU on the exit segments that
  have fresh windows;
- ``age_s``: the age of the stalest segment's newest window (now minus its end).

Inputs are stale when an approach segment has no usable window yet, its newest is older
than ``stale_after_s``, or the camera that sees it is reported down. Exit segments only
feed max-pressure's downstream term and never make the inputs stale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
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


def segment_flow_pcu_h(metrics: SegmentMetrics, pcu: PcuConfig, movement: str) -> float:
    """Flow of one window in PCU per hour (see the module docstring for the conversion)."""
    by_class_veh_h = math.fsum(f.flow_veh_h for f in metrics.flows)
    if metrics.flows and by_class_veh_h > 0:
        return math.fsum(
            f.flow_veh_h * pcu.factor(f.vehicle_class, movement) for f in metrics.flows
        )
    if metrics.vehicles > 0:
        return metrics.flow_veh_h * metrics.pcu / metrics.vehicles
    return metrics.flow_veh_h


def _age_s(metrics: SegmentMetrics, now: datetime) -> float:
    return max(0.0, (now - metrics.window_end).total_seconds())


class MeasureBoard:
    """Newest usable window per watched segment and camera health, for one intersection.

    ``movements`` gives each segment's ``protected``/``opposed`` movement (default
    protected); ``segment_cameras`` the camera that sees each segment (default: the camera
    named in its windows).
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
        self._latest: dict[SegmentId, SegmentMetrics] = {}
        self._down: dict[CameraId, str] = {}
        self.stale_windows_skipped = 0

    @property
    def watched(self) -> frozenset[SegmentId]:
        """Segments whose windows this board keeps."""
        return self._watched

    def add(self, metrics: Iterable[SegmentMetrics]) -> int:
        """Keep the newest usable window of each watched segment; return how many were kept."""
        kept = 0
        for m in metrics:
            if m.segment_id not in self._watched:
                continue
            if m.stale or m.frames <= 0:
                self.stale_windows_skipped += 1
                continue
            old = self._latest.get(m.segment_id)
            if old is None or m.window_end >= old.window_end:
                self._latest[m.segment_id] = m
                kept += 1
        return kept

    def camera_of(self, segment: SegmentId) -> CameraId | None:
        """Return the camera that sees ``segment`` (from the config, else from its windows)."""
        camera = self._cameras.get(segment)
        if camera is None and segment in self._latest:
            camera = self._latest[segment].camera_id
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

    def stale_reasons(self, now: datetime) -> list[str]:
        """Why the inputs cannot drive an adaptive plan at ``now`` (empty: they can)."""
        out: list[str] = []
        limit_s = self._spec.stale_after_s
        for seg in self._approach:
            camera = self.camera_of(seg)
            latest = self._latest.get(seg)
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

    def measures(self, now: datetime) -> dict[PhaseId, PhaseMeasure]:
        """Measures per phase at ``now``: phases whose approach segments all have fresh data."""
        out: dict[PhaseId, PhaseMeasure] = {}
        limit_s = self._spec.stale_after_s
        for phase in self._spec.phases:
            windows = [self._latest.get(s) for s in phase.segments]
            fresh = [w for w in windows if w is not None and _age_s(w, now) <= limit_s]
            if not phase.segments or len(fresh) != len(windows):
                continue
            queues = [w.queue_m for w in fresh if w.queue_m is not None]
            exits = [self._latest.get(s) for s in phase.exit_segments]
            out[phase.phase_id] = PhaseMeasure(
                phase_id=phase.phase_id,
                flow_pcu_h=max(
                    segment_flow_pcu_h(w, self._pcu, self._movements.get(w.segment_id, ""))
                    for w in fresh
                ),
                queue_pcu=math.fsum(w.pcu for w in fresh),
                queue_m=max(queues) if queues else None,
                exit_queue_pcu=math.fsum(
                    w.pcu for w in exits if w is not None and _age_s(w, now) <= limit_s
                ),
                age_s=max(_age_s(w, now) for w in fresh),
            )
        return out
