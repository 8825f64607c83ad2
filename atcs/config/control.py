"""Configuration of signalised intersections: phases, limits, controller, fallback plans.

Validation does no I/O. An intersection whose phases cannot satisfy their own limits (a
min green above its max green, min greens plus yellows and all-reds longer than the longest
cycle, a pedestrian clearance longer than the max green, a fallback plan outside the
limits, ...) is rejected with the field path of each problem;
:func:`intersection_spec` turns a valid intersection into the
:class:`controllers.spec.IntersectionSpec` the controllers and the safety envelope use.
"""

from __future__ import annotations

from datetime import time
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from atcs.config._base import Name, StrictModel, TimeZoneName
from atcs.config.core import Identifier
from atcs.config.phase_mode import (
    PhaseModeConfig,
    effective_all_red_s,
    effective_yellow_s,
    signal_timing,
)
from atcs.config.room import LatLon
from atcs.types import IntersectionId, PhaseId, SegmentId
from controllers.limits import MIN_ALL_RED_S, MIN_YELLOW_S, spec_problems
from controllers.phase.timing import timing_problems
from controllers.registry import controller_names
from controllers.spec import FallbackPlan, IntersectionSpec, PhaseSpec

MAX_GREEN_S = 600.0
"""Longest green (and cycle step) accepted, s."""

MAX_CYCLE_S = 900.0
"""Longest cycle accepted, s."""

Seconds = Annotated[float, Field(gt=0.0, le=MAX_CYCLE_S)]
"""A positive, finite duration of at most :data:`MAX_CYCLE_S` seconds."""

GreenSeconds = Annotated[float, Field(gt=0.0, le=MAX_GREEN_S)]
"""A positive, finite green time of at most :data:`MAX_GREEN_S` seconds."""


class PhaseConfig(StrictModel):
    """One phase: the signal groups it serves, the segments feeding it, and its limits."""

    id: Identifier = Field(description="Phase id, unique within the intersection.")
    name: Name = Field(default="", description="Human name, e.g. 'north-south through'.")
    signal_groups: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(
        default_factory=list,
        max_length=64,
        description="Signal groups (heads) this phase turns green.",
    )
    segments: list[Identifier] = Field(
        default_factory=list,
        max_length=64,
        description=(
            "Segments whose measures feed the phase (its approaches); none: the phase is "
            "not measured and gets its min green from adaptive controllers."
        ),
    )
    exit_segments: list[Identifier] = Field(
        default_factory=list,
        max_length=64,
        description="Segments the phase's movements discharge into (max-pressure), may be empty.",
    )
    min_green_s: GreenSeconds = Field(description="Shortest green, s.")
    max_green_s: GreenSeconds = Field(description="Longest green, s.")
    yellow_s: float = Field(
        default=3.0,
        ge=MIN_YELLOW_S,
        le=10.0,
        description="Yellow (amber) after the green, s; at least 3.",
    )
    all_red_s: float = Field(
        default=2.0,
        ge=MIN_ALL_RED_S,
        le=10.0,
        description="All-red clearance after the yellow, s; at least 1.",
    )
    saturation_flow_pcu_h: float = Field(
        default=1800.0,
        gt=0.0,
        le=20_000.0,
        description="Saturation flow of the phase's critical approach, PCU per hour of green.",
    )
    pedestrian_crossing_m: float | None = Field(
        default=None,
        gt=0.0,
        le=200.0,
        description="Length of the crossing that runs with this phase, m; none: no crossing.",
    )
    walking_speed_m_s: float = Field(
        default=1.2,
        gt=0.0,
        le=3.0,
        description="Walking speed used for the pedestrian clearance, m/s.",
    )
    walk_s: float | None = Field(
        default=None,
        ge=0.0,
        le=60.0,
        description=(
            "Walk interval at the start of the green, s (phase mode, with a crossing); "
            "none: 7 s (use 4 where pedestrians are few)."
        ),
    )
    approach_speed_kmh: float | None = Field(
        default=None,
        gt=0.0,
        le=130.0,
        description=(
            "Approach speed (85th percentile or limit), km/h: yellow and all-red become at "
            "least the ITE values; none: yellow_s and all_red_s as given."
        ),
    )
    approach_grade: float = Field(
        default=0.0,
        ge=-0.15,
        le=0.15,
        description="Approach grade for the ITE yellow, decimal (+ uphill), e.g. -0.02.",
    )
    clearance_width_m: float | None = Field(
        default=None,
        ge=0.0,
        le=200.0,
        description=(
            "Distance from the stop line to the far side of the last conflicting lane, m "
            "(ITE all-red, with approach_speed_kmh); none: all_red_s as given."
        ),
    )


class FallbackPlanConfig(StrictModel):
    """A fixed time-of-day plan: runs from its start (local time) until the next plan starts."""

    starts_at: time = Field(description="Local time of day it starts, 'HH:MM' (site time zone).")
    name: Name = Field(default="", description="Human name, e.g. 'morning peak'.")
    greens_s: dict[Identifier, Annotated[float, Field(ge=0.0, le=MAX_GREEN_S)]] = Field(
        max_length=64, description="Green of every phase, s, keyed by phase id."
    )
    offset_s: float = Field(
        default=0.0, ge=0.0, le=MAX_CYCLE_S, description="Cycle offset, s (coordination)."
    )

    @field_validator("starts_at")
    @classmethod
    def _local(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("give a local time of day without a time zone, e.g. '07:00'")
        return value


class IntersectionConfig(StrictModel):
    """One signalised intersection: phases in ring order, limits, controller, fallbacks."""

    id: Identifier
    name: Name = Field(default="", description="Human name of the intersection.")
    controller: str = Field(
        default="webster",
        description="Controller that proposes plans: " + ", ".join(controller_names()) + ".",
    )
    phases: list[PhaseConfig] = Field(
        min_length=2, max_length=16, description="Phases in ring order."
    )
    cycle_min_s: Seconds = Field(description="Shortest cycle, s.")
    cycle_max_s: Seconds = Field(description="Longest cycle, s.")
    max_cycle_step_s: Seconds = Field(
        default=10.0, description="Largest change of cycle length from one plan to the next, s."
    )
    max_split_step_s: Seconds = Field(
        default=5.0, description="Largest change of any green from one plan to the next, s."
    )
    stale_after_s: float = Field(
        default=60.0,
        gt=0.0,
        le=86400.0,
        description="Measures older than this (s) switch the intersection to its fallback plan.",
    )
    offset_s: float = Field(
        default=0.0, ge=0.0, le=MAX_CYCLE_S, description="Cycle offset of adaptive plans, s."
    )
    timezone: TimeZoneName | None = Field(
        default=None,
        description="IANA time zone of the fallback plans' times; none: the site's time zone.",
    )
    fallback_plans: list[FallbackPlanConfig] = Field(
        min_length=1,
        max_length=96,
        description="Time-of-day plans: the baseline and what runs when measures are stale.",
    )
    location: LatLon | None = Field(
        default=None,
        description="Centre of the junction, [latitude, longitude] in degrees (city map).",
    )
    mode: Literal["cycle", "phase"] = Field(
        default="cycle",
        description=(
            "'cycle': timing plans for the controller (default); 'phase': phase-by-phase "
            "commands to a signal controller that takes them (needs [intersections.phase_mode])."
        ),
    )
    phase_mode: PhaseModeConfig | None = Field(
        default=None, description="Phase-by-phase settings; only with mode = 'phase'."
    )

    @field_validator("controller")
    @classmethod
    def _known_controller(cls, value: str) -> str:
        if value not in controller_names():
            raise ValueError(
                f"unknown controller {value!r}; known: {', '.join(controller_names())}"
            )
        return value

    @model_validator(mode="after")
    def _satisfiable(self) -> IntersectionConfig:
        problems = [_config_path(p) for p in spec_problems(intersection_spec(self, "UTC"))]
        if self.mode == "phase" and self.phase_mode is None:
            problems.append(
                "phase_mode: mode = 'phase' needs a [intersections.phase_mode] table naming "
                "its controller"
            )
        elif self.mode == "cycle" and self.phase_mode is not None:
            problems.append(
                "phase_mode: only used with mode = 'phase' (set it or remove the table)"
            )
        elif self.mode == "phase" and not problems:
            timing = signal_timing(self, "UTC")
            problems += [f"phase mode: {_config_path(p)}" for p in timing_problems(timing)]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def reference_problems(self, at: str, segment_ids: set[str]) -> list[str]:
        """Unknown segment ids in the phases; each message starts with its field path."""
        out: list[str] = []
        for i, phase in enumerate(self.phases):
            for kind in ("segments", "exit_segments"):
                for j, seg in enumerate(getattr(phase, kind)):
                    if seg not in segment_ids:
                        out.append(f"{at}.phases[{i}].{kind}[{j}]: unknown segment {seg!r}")
        return out


def _config_path(problem: str) -> str:
    """Rename spec field paths in ``problem`` to the config's names (``phase_id`` -> ``id``)."""
    return problem.replace(".phase_id:", ".id:", 1)


def intersection_spec(config: IntersectionConfig, default_timezone: str) -> IntersectionSpec:
    """Build the controllers' view of ``config``; ``default_timezone`` is the site's zone."""
    phases = tuple(
        PhaseSpec(
            phase_id=PhaseId(p.id),
            segments=tuple(SegmentId(s) for s in p.segments),
            min_green_s=p.min_green_s,
            max_green_s=p.max_green_s,
            yellow_s=effective_yellow_s(p),
            all_red_s=effective_all_red_s(p),
            saturation_flow_pcu_h=p.saturation_flow_pcu_h,
            pedestrian_crossing_m=p.pedestrian_crossing_m,
            walking_speed_m_s=p.walking_speed_m_s,
            exit_segments=tuple(SegmentId(s) for s in p.exit_segments),
            signal_groups=tuple(p.signal_groups),
        )
        for p in config.phases
    )
    fallbacks = tuple(
        FallbackPlan(
            starts_at=f.starts_at,
            greens_s={PhaseId(k): v for k, v in f.greens_s.items()},
            offset_s=f.offset_s,
            name=f.name,
        )
        for f in config.fallback_plans
    )
    return IntersectionSpec(
        intersection_id=IntersectionId(config.id),
        phases=phases,
        cycle_min_s=config.cycle_min_s,
        cycle_max_s=config.cycle_max_s,
        max_cycle_step_s=config.max_cycle_step_s,
        max_split_step_s=config.max_split_step_s,
        controller=config.controller,
        fallback_plans=fallbacks,
        stale_after_s=config.stale_after_s,
        timezone=config.timezone or default_timezone,
        offset_s=config.offset_s,
    )
