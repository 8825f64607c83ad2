"""Build an :class:`IntersectionSpec` and its signal states from a SUMO signal program.

Rules (``docs/simulation.md`` explains them):

- The program's green phases (some ``G``/``g``, no amber) become the phases, in program
  order. The yellow and all-red after each are those of the links it ends
  (:mod:`atcs.sim.clearances`: per link by the ITE formula, at least 3 s and 1 s), so a
  program without an all-red gets one; the program's own ambers are not used.
- Each phase's signal states are derived per link: during the change after phase *i*,
  links green in both *i* and *i+1* stay green, links that end show amber then red, links
  that start wait in red.
- The signal links of each approach edge are grouped by the set of phases that serve them
  with priority green (``G``; permissive ``g`` only when never ``G``): each movement group
  is one segment, watched by the approach's emulated camera. Outgoing edges are the exit
  segments.
- Limits: min green 5 s (the program's ``minDur`` when larger) but never above the
  program's own green; max green 60 s or the program's green or ``maxDur`` when larger;
  cycle from the sum of minimum intervals to 120 s (or the program's cycle when longer).
  The program's greens are the fixed-time fallback plan.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import time

from atcs.errors import SimulationError
from atcs.sim.clearances import change_frames, link_clearances
from atcs.sim.network import GREEN_CHARS, LaneInfo, SignalLink, TlsProgram
from atcs.types import IntersectionId, PhaseId, SegmentId
from controllers.phase.clearance import PEDESTRIAN_SPEED_M_S
from controllers.spec import FallbackPlan, IntersectionSpec, PhaseSpec


@dataclass(frozen=True, slots=True)
class SpecOptions:
    """Choices made when turning a SUMO program into an intersection (durations in s).

    ``lane_saturation_pcu_h`` is the saturation flow of one lane (PCU per hour of green);
    ``camera_length_m`` the length of road an emulated camera sees back from the stop
    line (or forward from the junction on exits). ``clearances`` is the policy of
    :mod:`atcs.sim.clearances` (``ite`` or ``minimum``); ``pedestrian_crossing_m`` (0:
    none) gives every phase a crossing of that length with a walk of ``walk_s``.
    """

    min_yellow_s: float = 3.0
    min_all_red_s: float = 1.0
    min_green_s: float = 5.0
    max_green_s: float = 60.0
    cycle_min_s: float = 60.0
    cycle_max_s: float = 120.0
    max_cycle_step_s: float = 15.0
    max_split_step_s: float = 10.0
    stale_after_s: float = 60.0
    lane_saturation_pcu_h: float = 1800.0
    camera_length_m: float = 50.0
    clearances: str = "ite"
    pedestrian_crossing_m: float = 0.0
    walk_s: float = 7.0


@dataclass(frozen=True, slots=True)
class PhaseSignals:
    """SUMO state strings of one phase: its green and the change that follows it."""

    phase_id: PhaseId
    green: str
    yellow: str
    all_red: str


@dataclass(frozen=True, slots=True)
class CameraZone:
    """The road one camera watches on one lane, in metres.

    ``lane_id`` is the lane at the stop line (approaches) or leaving the junction (exits);
    ``lanes`` the consecutive lanes the zone covers, upstream first; the zone runs from
    ``start_m`` on the first to ``end_m`` on the last, ``length_m`` in all.
    """

    lane_id: str
    lanes: tuple[str, ...]
    start_m: float
    end_m: float
    length_m: float


def camera_zone(lane: LaneInfo, camera_m: float, exit_lane: bool) -> CameraZone:
    """Return the zone of ``camera_m`` metres a camera watches on ``lane``.

    The zone is extended along the lane's chain (up- or downstream) when the lane itself
    is shorter.
    """
    chain = lane.downstream if exit_lane else lane.upstream
    path = [(lane.lane_id, lane.length_m)]
    covered = lane.length_m
    for lane_id, length in chain:
        if covered >= camera_m:
            break
        path.append((lane_id, length))
        covered += length
    need = min(camera_m, covered)
    spare = covered - need
    if exit_lane:
        last_len = path[-1][1]
        return CameraZone(
            lane.lane_id, tuple(p[0] for p in path), 0.0, round(last_len - spare, 2), need
        )
    path.reverse()
    return CameraZone(
        lane.lane_id, tuple(p[0] for p in path), round(spare, 2), round(lane.length_m, 2), need
    )


@dataclass(frozen=True, slots=True)
class SegmentLanes:
    """One emulated camera's segment: the lanes it watches, their detector lengths (m).

    An approach segment is a movement group: the vehicles on an approach's ``lanes`` that
    take one of the signal ``links`` of traffic light ``tls_id`` (a camera with tracking
    attributes each vehicle to the exit line it leaves by). ``exit`` is True for a segment
    on an outgoing edge (watched from the junction on, every vehicle counts).
    """

    segment_id: SegmentId
    lanes: tuple[str, ...]
    zones: tuple[CameraZone, ...]
    exit: bool
    tls_id: str = ""
    links: tuple[int, ...] = ()

    @property
    def length_m(self) -> float:
        """Length of road watched, metres (the longest lane's zone)."""
        return max(z.length_m for z in self.zones)

    @property
    def lane_km(self) -> float:
        """Lane-kilometres watched (the sum of the zones' lengths / 1000)."""
        return sum(z.length_m for z in self.zones) / 1000.0


@dataclass(frozen=True, slots=True)
class SimIntersection:
    """A SUMO traffic light as the engine sees it, plus what the bridge needs to drive it."""

    tls_id: str
    spec: IntersectionSpec
    signals: tuple[PhaseSignals, ...]
    segments: tuple[SegmentLanes, ...]
    program: TlsProgram


MAX_ID_CHARS = 48
"""Longer SUMO ids are shortened (prefix and digest) to fit the bus contract's ids."""


def intersection_id_for(tls_id: str) -> IntersectionId:
    """Return the engine's id of SUMO traffic light ``tls_id`` (bus-safe, <= 48 chars)."""
    safe = bus_safe(tls_id)
    if len(safe) <= MAX_ID_CHARS:
        return IntersectionId(safe)
    digest = hashlib.blake2s(tls_id.encode("utf-8"), digest_size=4).hexdigest()
    return IntersectionId(f"{safe[: MAX_ID_CHARS - 9]}~{digest}")


def bus_safe(text: str) -> str:
    """``text`` without the characters MQTT topics reserve (``/``, ``+``, ``#``)."""
    return text.replace("#", "~").replace("/", "|").replace("+", "^")


def _change_states(green: str, following: str) -> tuple[str, str]:
    """Yellow and all-red states between the greens ``green`` and ``following``."""
    yellow: list[str] = []
    red: list[str] = []
    for now, nxt in zip(green, following, strict=True):
        if now in GREEN_CHARS and nxt in GREEN_CHARS and not (now == "G" and nxt == "g"):
            yellow.append(now)
            red.append(now)
        elif now in GREEN_CHARS:
            yellow.append("y")
            red.append("r")
        elif now == nxt and now in "sO":
            yellow.append(now)
            red.append(now)
        else:
            yellow.append("r")
            red.append("r")
    return "".join(yellow), "".join(red)


def build_intersection(program: TlsProgram, options: SpecOptions | None = None) -> SimIntersection:
    """Turn ``program`` into the intersection spec, signal states and camera segments.

    Raises :class:`SimulationError` when the program has fewer than two green phases.
    """
    opt = options or SpecOptions()
    greens = [i for i, ph in enumerate(program.phases) if ph.is_green]
    if len(greens) < 2:
        raise SimulationError(
            f"traffic light {program.tls_id!r} has {len(greens)} green phase(s); "
            "at least two are needed to retime it"
        )
    phase_ids = [PhaseId(f"P{k + 1}") for k in range(len(greens))]
    states = [program.phases[i].state for i in greens]

    # Movement groups: the links of one approach edge served by the same phases.
    groups: dict[tuple[str, frozenset[int]], list[SignalLink]] = defaultdict(list)
    for link in program.links:
        served = frozenset(k for k, st in enumerate(states) if st[link.index] in GREEN_CHARS)
        if served:
            groups[(program.lanes[link.in_lane].edge_id, served)].append(link)

    segments: list[SegmentLanes] = []
    phase_segments: dict[int, list[SegmentId]] = defaultdict(list)
    for (edge, served), group in sorted(
        groups.items(), key=lambda kv: (kv[0][0], sorted(kv[0][1]))
    ):
        lanes = sorted({ln.in_lane for ln in group}, key=lambda ln: program.lanes[ln].index)
        link_ids = {ln.index for ln in group}
        names = "-".join(phase_ids[k] for k in sorted(served))
        seg_id = SegmentId(bus_safe(f"{edge}@{names}"))
        segments.append(
            SegmentLanes(
                segment_id=seg_id,
                lanes=tuple(lanes),
                zones=tuple(
                    camera_zone(program.lanes[ln], opt.camera_length_m, False) for ln in lanes
                ),
                exit=False,
                tls_id=program.tls_id,
                links=tuple(sorted(link_ids)),
            )
        )
        for k in served:
            phase_segments[k].append(seg_id)

    out_lanes: dict[str, list[str]] = defaultdict(list)
    exit_of_phase: dict[int, set[SegmentId]] = defaultdict(set)
    for link in program.links:
        edge = program.lanes[link.out_lane].edge_id
        if link.out_lane not in out_lanes[edge]:
            out_lanes[edge].append(link.out_lane)
        for k, state in enumerate(states):
            if state[link.index] in GREEN_CHARS:
                exit_of_phase[k].add(SegmentId(bus_safe(f"{edge}[out]")))
    for edge, lanes in sorted(out_lanes.items()):
        lanes.sort(key=lambda ln: program.lanes[ln].index)
        segments.append(
            SegmentLanes(
                segment_id=SegmentId(bus_safe(f"{edge}[out]")),
                lanes=tuple(lanes),
                zones=tuple(
                    camera_zone(program.lanes[ln], opt.camera_length_m, True) for ln in lanes
                ),
                exit=True,
                tls_id=program.tls_id,
            )
        )

    phases: list[PhaseSpec] = []
    signals: list[PhaseSignals] = []
    fixed: dict[PhaseId, float] = {}
    clearances = link_clearances(program, opt.clearances)
    crossing = opt.pedestrian_crossing_m if opt.pedestrian_crossing_m > 0 else None
    for k, i in enumerate(greens):
        nxt = greens[(k + 1) % len(greens)]
        ph = program.phases[i]
        change = change_frames(ph.state, program.phases[nxt].state, clearances)
        yellow_state, red_state = _change_states(ph.state, program.phases[nxt].state)
        min_green = min(ph.duration_s, max(opt.min_green_s, ph.min_dur_s or 0.0))
        max_green = max(opt.max_green_s, ph.duration_s, ph.max_dur_s or 0.0)
        phases.append(
            PhaseSpec(
                phase_id=phase_ids[k],
                segments=tuple(phase_segments[k]),
                min_green_s=min_green,
                max_green_s=max_green,
                yellow_s=max(opt.min_yellow_s, change.yellow_s),
                all_red_s=max(opt.min_all_red_s, change.all_red_s),
                saturation_flow_pcu_h=opt.lane_saturation_pcu_h,
                pedestrian_crossing_m=crossing,
                walking_speed_m_s=PEDESTRIAN_SPEED_M_S,
                exit_segments=tuple(sorted(exit_of_phase[k])),
                signal_groups=tuple(
                    str(i)
                    for i in sorted({ln.index for ln in program.links})
                    if ph.state[i] in GREEN_CHARS
                ),
            )
        )
        signals.append(PhaseSignals(phase_ids[k], ph.state, yellow_state, red_state))
        fixed[phase_ids[k]] = ph.duration_s

    sequence = [(sig.phase_id, s) for sig in signals for s in (sig.green, sig.yellow, sig.all_red)]
    for (pid, state), (_, following) in zip(sequence, sequence[1:] + sequence[:1], strict=True):
        if state == following:
            raise SimulationError(
                f"traffic light {program.tls_id!r}: the change after phase {pid} ends no "
                "movement or starts none, so its intervals cannot be told apart"
            )
    lost = sum(p.yellow_s + p.all_red_s for p in phases)
    fixed_cycle = sum(fixed.values()) + lost
    cycle_min = max(sum(p.min_green_s for p in phases) + lost, min(opt.cycle_min_s, fixed_cycle))
    cycle_max = min(max(opt.cycle_max_s, fixed_cycle), sum(p.max_green_s for p in phases) + lost)
    spec = IntersectionSpec(
        intersection_id=intersection_id_for(program.tls_id),
        phases=tuple(phases),
        cycle_min_s=cycle_min,
        cycle_max_s=cycle_max,
        max_cycle_step_s=opt.max_cycle_step_s,
        max_split_step_s=opt.max_split_step_s,
        controller="fixed",
        fallback_plans=(
            FallbackPlan(
                starts_at=time(0, 0),
                greens_s=fixed,
                offset_s=program.offset_s,
                name=f"program {program.program_id}",
            ),
        ),
        stale_after_s=opt.stale_after_s,
        timezone="UTC",
        offset_s=program.offset_s,
    )
    return SimIntersection(
        tls_id=program.tls_id,
        spec=spec,
        signals=tuple(signals),
        segments=tuple(segments),
        program=program,
    )
