"""What a controller sees: the intersection's fixed description and the measures per phase.

These are plain frozen dataclasses (no I/O); ``atcs.config`` builds them from the config
file and the SUMO bridge builds them from a network's signal programs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Protocol

from atcs.types import IntersectionId, PhaseId, SegmentId, TimingPlan


@dataclass(frozen=True, slots=True)
class PhaseSpec:
    """One phase of an intersection and its limits (all durations in seconds).

    ``segments`` feed the phase (approach measures); ``exit_segments`` are the segments
    the phase's movements discharge into (used by max-pressure; may be empty).
    ``saturation_flow_pcu_h`` is the phase's saturation flow in PCU per hour of green.
    ``pedestrian_crossing_m`` is the crossing that runs with this phase (None: none), cleared
    at ``walking_speed_m_s``. ``signal_groups`` names the signal groups the phase serves.
    """

    phase_id: PhaseId
    segments: tuple[SegmentId, ...]
    min_green_s: float
    max_green_s: float
    yellow_s: float = 3.0
    all_red_s: float = 2.0
    saturation_flow_pcu_h: float = 1800.0
    pedestrian_crossing_m: float | None = None
    walking_speed_m_s: float = 1.2
    exit_segments: tuple[SegmentId, ...] = ()
    signal_groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FallbackPlan:
    """A fixed plan that runs from ``starts_at`` (local time of day) until the next one.

    ``greens_s`` maps each phase id to its green in seconds.
    """

    starts_at: time
    greens_s: Mapping[PhaseId, float]
    offset_s: float = 0.0
    name: str = ""


@dataclass(frozen=True, slots=True)
class IntersectionSpec:
    """An intersection: phases in ring order, cycle bounds and the allowed step per update.

    ``max_cycle_step_s`` bounds the change of cycle length between consecutive plans and
    ``max_split_step_s`` the change of each green. ``stale_after_s``: measures older than
    this switch the intersection to its time-of-day fallback plan. ``timezone`` is an IANA
    name used to pick the fallback plan by local time.
    """

    intersection_id: IntersectionId
    phases: tuple[PhaseSpec, ...]
    cycle_min_s: float
    cycle_max_s: float
    max_cycle_step_s: float
    max_split_step_s: float
    controller: str
    fallback_plans: tuple[FallbackPlan, ...]
    stale_after_s: float = 60.0
    timezone: str = "UTC"
    offset_s: float = 0.0


@dataclass(frozen=True, slots=True)
class PhaseMeasure:
    """Measures aggregated over the segments feeding (or fed by) one phase.

    ``flow_pcu_h`` is the arrival flow in PCU per hour; ``queue_pcu`` the PCU waiting;
    ``queue_m`` the longest queue in metres (None where unknown); ``exit_queue_pcu`` the
    PCU on the phase's exit segments; ``age_s`` the age of the newest measure in seconds.
    """

    phase_id: PhaseId
    flow_pcu_h: float
    queue_pcu: float
    queue_m: float | None = None
    exit_queue_pcu: float = 0.0
    age_s: float = 0.0


@dataclass(frozen=True, slots=True)
class ControlInput:
    """Everything a controller may use at one decision time (``now``, aware UTC)."""

    now: datetime
    measures: Mapping[PhaseId, PhaseMeasure]
    running: TimingPlan | None = None
    extra: Mapping[str, float] = field(default_factory=dict)


class Controller(Protocol):
    """A signal-timing algorithm: a pure function of the spec, measures and time."""

    name: str

    def propose(self, spec: IntersectionSpec, inputs: ControlInput) -> TimingPlan:
        """Return the plan this controller wants next (the safety envelope checks it)."""
        ...
