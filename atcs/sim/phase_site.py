"""A SUMO traffic light in the phase-by-phase mode: its timing, layout and signal bridge.

:func:`phase_setup` derives, from a :class:`~atcs.sim.specs.SimIntersection` (pure):

- the controller-side :class:`~controllers.phase.timing.SignalTiming`: per phase the
  spec's min and max green (walk and pedestrian clearance where the phase has a
  crossing), per ordered pair of phases the change interval of the links it ends
  (:mod:`atcs.sim.clearances`), the fixed-time plan as the local time-of-day plan,
  ``recall_wait_s`` the spec's longest cycle;
- the state strings of every change, tick by tick;
- the :class:`~controllers.phase.observe.IntersectionLayout`: each phase's approach
  segments (weight 1 where one of its links is a protected green ``G``, 0.5 where all are
  permissive ``g``), their lanes and the exit segments their green links lead to.

:class:`PhaseBridge` stands where the field signal controller stands: it runs a
:class:`~controllers.phase.executor.SignalExecutor`, takes commands and gives, each tick,
the SUMO state string of the interval in force.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass

from atcs.bus.phase_payloads import POSIX, Clock, decode_phase_command, encode_signal_state
from atcs.errors import PayloadError
from atcs.sim.clearances import ChangeFrames, change_frames, link_clearances
from atcs.sim.network import GREEN_CHARS
from atcs.sim.specs import SegmentLanes, SimIntersection, SpecOptions, bus_safe
from atcs.types import PhaseId, SegmentId
from controllers.phase.clearance import whole_ticks_s
from controllers.phase.commands import CommandVerdict, PhaseCommand, SignalState
from controllers.phase.executor import SignalExecutor
from controllers.phase.observe import Feeder, IntersectionLayout, Movement, PhaseLayout
from controllers.phase.timing import Change, ExecPhase, Interval, SignalTiming

log = logging.getLogger(__name__)

PERMISSIVE_WEIGHT = 1.0
"""Weight of a movement a phase serves only permissively (it yields to opposing traffic)."""


@dataclass(frozen=True, slots=True)
class PhaseSetup:
    """What the phase-by-phase mode needs for one light (see the module docstring)."""

    timing: SignalTiming
    layout: IntersectionLayout
    greens: dict[PhaseId, str]
    changes: dict[tuple[PhaseId, PhaseId], ChangeFrames]


def _groups(state: str) -> frozenset[str]:
    return frozenset(f"{i}{c}" for i, c in enumerate(state) if c in GREEN_CHARS)


def _feeders(ix: SimIntersection, seg: SegmentLanes) -> tuple[Feeder, ...]:
    """Return the exit zones upstream that would see ``seg``'s vehicles first.

    Along each lane of ``seg`` and the lanes leading into it without a choice, the exit
    zone a light upstream would have on that road (``<edge>[out]``; used only where such
    a light exists), at the road's distance from this stop line. The vehicles in it are
    shared among this light's approach zones on the same road by lane count.
    """
    lanes_on: dict[str, int] = defaultdict(int)
    for other in ix.segments:
        if not other.exit:
            for ln in other.lanes:
                lanes_on[ix.program.lanes[ln].edge_id] += 1
    out: dict[SegmentId, Feeder] = {}
    for ln in seg.lanes:
        info = ix.program.lanes[ln]
        share = sum(1 for x in seg.lanes if ix.program.lanes[x].edge_id == info.edge_id) / max(
            1, lanes_on[info.edge_id]
        )
        offset = 0.0
        for lane_id, length in ((ln, info.length_m), *info.upstream):
            offset += length
            exit_id = SegmentId(bus_safe(f"{lane_id.rsplit('_', 1)[0]}[out]"))
            out.setdefault(exit_id, Feeder(exit_id, round(offset, 2), share))
    return tuple(out.values())


def _layout(ix: SimIntersection, opts: SpecOptions) -> IntersectionLayout:
    program = ix.program
    by_id = {s.segment_id: s for s in ix.segments}
    phases = []
    exit_lanes: dict[SegmentId, int] = {}
    for seg in ix.segments:
        if seg.exit:
            exit_lanes[seg.segment_id] = len(seg.lanes)
    for spec, sig in zip(ix.spec.phases, ix.signals, strict=True):
        movements = []
        for seg_id in spec.segments:
            seg = by_id[seg_id]
            chars = [sig.green[i] for i in seg.links]
            green = [i for i, c in zip(seg.links, chars, strict=True) if c in GREEN_CHARS]
            exits = sorted(
                {
                    SegmentId(bus_safe(f"{program.lanes[link.out_lane].edge_id}[out]"))
                    for link in program.links
                    if link.index in green and link.in_lane in seg.lanes
                }
            )
            weight = 1.0 if "G" in chars else PERMISSIVE_WEIGHT
            movements.append(
                Movement(
                    seg_id,
                    weight,
                    len(seg.lanes),
                    tuple(exits),
                    "g" in chars,
                    _feeders(ix, seg),
                )
            )
        phases.append(PhaseLayout(spec.phase_id, tuple(movements)))
    return IntersectionLayout(
        ix.spec.intersection_id, tuple(phases), exit_lanes, opts.lane_saturation_pcu_h
    )


def phase_setup(ix: SimIntersection, options: SpecOptions | None = None) -> PhaseSetup:
    """Return the timing, layout and change states of ``ix`` for the phase-by-phase mode."""
    opts = options or SpecOptions()
    clearances = link_clearances(ix.program, opts.clearances)
    greens = {sig.phase_id: sig.green for sig in ix.signals}
    phases = []
    for spec in ix.spec.phases:
        clear = 0.0
        if spec.pedestrian_crossing_m:
            clear = whole_ticks_s(spec.pedestrian_crossing_m / spec.walking_speed_m_s)
        walk = opts.walk_s if clear else 0.0
        floor = max(spec.min_green_s, walk + clear)
        phases.append(
            ExecPhase(
                spec.phase_id,
                spec.min_green_s,
                max(spec.max_green_s, floor),
                walk,
                clear,
                _groups(greens[spec.phase_id]),
            )
        )
    changes: dict[tuple[PhaseId, PhaseId], ChangeFrames] = {}
    for a in ix.signals:
        for b in ix.signals:
            if a.phase_id != b.phase_id:
                changes[(a.phase_id, b.phase_id)] = change_frames(a.green, b.green, clearances)
    timing = SignalTiming(
        intersection_id=ix.spec.intersection_id,
        phases=tuple(phases),
        changes={k: Change(v.yellow_s, v.all_red_s) for k, v in changes.items()},
        local_plans=ix.spec.fallback_plans,
        timezone=ix.spec.timezone,
        recall_wait_s=ix.spec.cycle_max_s,
    )
    return PhaseSetup(timing, _layout(ix, opts), greens, changes)


class PhaseBridge:
    """The emulated phase-by-phase signal controller of one light (SUMO time, seconds).

    The engine reaches it only through ``atcs.phase_command/1`` payloads
    (:meth:`receive_payload`) and hears from it only through ``atcs.signal_state/1``
    payloads (:meth:`state_payload`), both with SUMO seconds mapped by ``clock``.
    """

    def __init__(
        self, setup: PhaseSetup, start_s: float, tick_s: float = 1.0, clock: Clock = POSIX
    ) -> None:
        self.setup = setup
        self.executor = SignalExecutor(setup.timing, start_s)
        self._tick_s = tick_s
        self._clock = clock
        self.accepted = 0
        self.refused = 0
        self.device_id = f"sim-controller:{setup.timing.intersection_id}"[:128]

    def receive_payload(self, payload: bytes, now_s: float) -> CommandVerdict:
        """Decode a command payload and hand it to the controller (bad payloads refused)."""
        try:
            command = decode_phase_command(payload, self.setup.timing.intersection_id, self._clock)
        except PayloadError as exc:
            log.warning("%s: command payload refused: %s", self.device_id, exc)
            self.refused += 1
            return CommandVerdict(False, str(exc))
        return self.receive(command, now_s)

    def state_payload(self, state: SignalState) -> bytes:
        """Return the ``atcs.signal_state/1`` payload of ``state``."""
        return encode_signal_state(state, self._clock, self.device_id)

    def receive(self, command: PhaseCommand, now_s: float) -> CommandVerdict:
        """Hand ``command`` to the controller."""
        verdict = self.executor.receive(command, now_s)
        if verdict.accepted:
            self.accepted += 1
        else:
            self.refused += 1
        return verdict

    def step(self, now_s: float) -> tuple[str, SignalState]:
        """Advance the controller to ``now_s``; the state string to show and the state."""
        state = self.executor.tick(now_s)
        return self.render(state, now_s), state

    def render(self, state: SignalState, now_s: float) -> str:
        """SUMO state string of ``state`` at ``now_s``."""
        if state.interval.vehicle_green or state.next_phase is None:
            return self.setup.greens[state.phase]
        frames = self.setup.changes[(state.phase, state.next_phase)]
        k = math.floor((now_s - state.interval_started_s) / self._tick_s + 1e-6)
        if state.interval is Interval.ALL_RED:
            k += round(frames.yellow_s / self._tick_s)
        return frames.frames[min(max(k, 0), len(frames.frames) - 1)]
