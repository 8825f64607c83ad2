"""Configuration of the phase-by-phase (acyclic) control mode of one intersection.

An intersection runs cycle plans unless it sets ``mode = "phase"`` and a
``[intersections.phase_mode]`` table naming its phase controller. The phases, their min
and max greens, yellows and all-reds, crossings and the time-of-day plans are the
intersection's own (shared with cycle mode); this module adds what only the phase mode
needs and turns a valid intersection into the controller-side
:class:`~controllers.phase.timing.SignalTiming` and the controllers'
:class:`~controllers.phase.observe.IntersectionLayout` (pure, no I/O). Durations in
seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from atcs.config._base import StrictModel
from atcs.types import IntersectionId, PhaseId, SegmentId
from controllers.phase.clearance import (
    WALK_S,
    ite_all_red_s,
    ite_yellow_s,
    pedestrian_clearance_s,
    whole_ticks_s,
)
from controllers.phase.observe import IntersectionLayout, Movement, PhaseLayout
from controllers.phase.registry import phase_controller_names
from controllers.phase.timing import Change, ExecPhase, SignalTiming
from controllers.spec import FallbackPlan

if TYPE_CHECKING:
    from atcs.config import AtcsConfig
    from atcs.config.control import IntersectionConfig, PhaseConfig

LANE_SATURATION_PCU_H = 1800.0
"""Saturation flow of one lane used by the phase controllers, PCU per hour of green."""


class PhaseModeConfig(StrictModel):
    """What the phase-by-phase mode adds to an intersection (``mode = "phase"``)."""

    controller: str = Field(
        description=(
            "Phase controller that decides, every second, which phase is green: "
            + ", ".join(phase_controller_names())
            + "."
        )
    )
    command_ttl_s: float = Field(
        default=5.0,
        ge=1.0,
        le=30.0,
        description=(
            "Validity of each phase command, s: the signal controller returns to its "
            "time-of-day plan this long after the engine stops commanding."
        ),
    )
    state_stale_s: float = Field(
        default=3.0,
        ge=1.0,
        le=60.0,
        description=(
            "Without a state report from the signal controller for this long (s) the engine "
            "stops commanding and reports the intersection in fallback."
        ),
    )
    max_horizon_s: float = Field(
        default=30.0,
        ge=1.0,
        le=300.0,
        description="Furthest deadline a command may carry, s (the controller cuts longer ones).",
    )
    recall_wait_s: float | None = Field(
        default=None,
        gt=0.0,
        le=900.0,
        description=(
            "Longest a phase with demand, or on recall (camera down), waits for its green, "
            "s; none: the intersection's cycle_max_s."
        ),
    )
    frame_stale_s: float = Field(
        default=2.0,
        gt=0.0,
        le=30.0,
        description=(
            "Per-frame vehicles of a segment with a stop line (from the in-process engine, "
            "or from the bus's zone messages on a control node) older than this (s, from the "
            "frame's capture) are not used: the segment's zone comes from its newest window "
            "instead."
        ),
    )

    @field_validator("controller")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in phase_controller_names():
            known = ", ".join(phase_controller_names())
            raise ValueError(f"unknown phase controller {value!r}; known: {known}")
        return value


def effective_yellow_s(phase: PhaseConfig) -> float:
    """Yellow (s) of ``phase``: its ``yellow_s``, or the ITE yellow when longer."""
    if phase.approach_speed_kmh is None:
        return phase.yellow_s
    ite = ite_yellow_s(phase.approach_speed_kmh / 3.6, phase.approach_grade)
    return max(phase.yellow_s, whole_ticks_s(ite, 0.1))


def effective_all_red_s(phase: PhaseConfig) -> float:
    """All-red (s) of ``phase``: its ``all_red_s``, or the ITE all-red when longer."""
    if phase.approach_speed_kmh is None or phase.clearance_width_m is None:
        return phase.all_red_s
    ite = ite_all_red_s(phase.clearance_width_m, phase.approach_speed_kmh / 3.6)
    return max(phase.all_red_s, whole_ticks_s(ite, 0.1))


def walk_and_clearance_s(phase: PhaseConfig) -> tuple[float, float]:
    """Walk and pedestrian clearance (s) of ``phase``: (0, 0) without a crossing."""
    if phase.pedestrian_crossing_m is None:
        return 0.0, 0.0
    walk = WALK_S if phase.walk_s is None else phase.walk_s
    clear = pedestrian_clearance_s(phase.pedestrian_crossing_m, phase.walking_speed_m_s)
    return walk, whole_ticks_s(clear)


def signal_timing(config: IntersectionConfig, default_timezone: str) -> SignalTiming:
    """Return the controller-side timing of ``config`` (changes: the ending phase's clearances).

    ``max_green_s`` is the phase's; its floor is the min green, or walk plus pedestrian
    clearance when longer. Raises nothing: :func:`controllers.phase.timing.timing_problems`
    says what is wrong.
    """
    phases = []
    for p in config.phases:
        walk, clear = walk_and_clearance_s(p)
        groups = frozenset(p.signal_groups) or frozenset({f"phase:{p.id}"})
        phases.append(ExecPhase(PhaseId(p.id), p.min_green_s, p.max_green_s, walk, clear, groups))
    changes = {
        (PhaseId(a.id), PhaseId(b.id)): Change(effective_yellow_s(a), effective_all_red_s(a))
        for a in config.phases
        for b in config.phases
        if a.id != b.id
    }
    mode = config.phase_mode
    plans = tuple(
        FallbackPlan(
            starts_at=f.starts_at,
            greens_s={PhaseId(k): v for k, v in f.greens_s.items()},
            offset_s=f.offset_s,
            name=f.name,
        )
        for f in config.fallback_plans
    )
    recall = mode.recall_wait_s if mode is not None and mode.recall_wait_s else config.cycle_max_s
    return SignalTiming(
        intersection_id=IntersectionId(config.id),
        phases=tuple(phases),
        changes=changes,
        local_plans=plans,
        timezone=config.timezone or default_timezone,
        recall_wait_s=recall,
        max_horizon_s=mode.max_horizon_s if mode is not None else 30.0,
    )


def intersection_layout(
    config: IntersectionConfig, segment_lanes: Mapping[SegmentId, int]
) -> IntersectionLayout:
    """Which segments each phase serves (weight 1) and where they discharge (exit lanes)."""
    phases = []
    exit_lanes: dict[SegmentId, int] = {}
    for p in config.phases:
        exits = tuple(SegmentId(s) for s in p.exit_segments)
        for seg in exits:
            exit_lanes[seg] = segment_lanes.get(seg, 1)
        movements = tuple(
            Movement(SegmentId(s), 1.0, segment_lanes.get(SegmentId(s), 1), exits)
            for s in p.segments
        )
        phases.append(PhaseLayout(PhaseId(p.id), movements))
    return IntersectionLayout(
        IntersectionId(config.id), tuple(phases), exit_lanes, LANE_SATURATION_PCU_H
    )


def phase_segments(cfg: AtcsConfig) -> dict[IntersectionId, tuple[SegmentId, ...]]:
    """Return the approach and exit segments of each phase-mode intersection, in order."""
    out: dict[IntersectionId, tuple[SegmentId, ...]] = {}
    for ix in cfg.intersections:
        if ix.mode == "phase":
            segs = [s for p in ix.phases for s in (*p.segments, *p.exit_segments)]
            out[IntersectionId(ix.id)] = tuple(SegmentId(s) for s in dict.fromkeys(segs))
    return out


def zone_feed_segments(cfg: AtcsConfig) -> frozenset[SegmentId]:
    """Return the segments whose per-frame zone goes on the bus.

    Those with a stop line among a phase-mode intersection's approaches and exits, in
    ``cfg``'s whole city (not one node's share).
    """
    stop_lines = {SegmentId(s.id) for s in cfg.segments if s.stop_line is not None}
    return frozenset(s for segs in phase_segments(cfg).values() for s in segs if s in stop_lines)


def windows_only_segments(cfg: AtcsConfig) -> dict[IntersectionId, tuple[SegmentId, ...]]:
    """Return each phase-mode intersection's approach and exit segments without a stop line.

    Their controllers see windows, never a frame's vehicles; intersections with none are
    left out.
    """
    stop_lines = {SegmentId(s.id) for s in cfg.segments if s.stop_line is not None}
    segments = phase_segments(cfg).items()
    out = {ix: tuple(s for s in segs if s not in stop_lines) for ix, segs in segments}
    return {ix: segs for ix, segs in out.items() if segs}
