"""``schedule``: delay-balance that charges every change its yellow and all-red.

``delay-balance`` ends a green when the vehicles waiting elsewhere outweigh the platoon
still to come (Miller's rule, one round ahead). It never sees that the change it starts,
and the change back later, serve nobody for their yellow and all-red: with the ITE
clearances (about 7 s a change) its lights changed about 150 times an hour on cologne3,
25-30 % of the hour in clearances. ``schedule`` keeps every delay-balance rule (minimum
and maximum green, pedestrian intervals, the spillback guard, stalled movements, turn
clearance, fairness, camera-down recall) and, when the balance says "change", checks the
change against a short rolling-horizon schedule in the spirit of SURTRAC:

- **The queues ahead.** Per approach zone: the PCU queued now, the detected moving
  vehicles at their arrival second (distance / speed), and beyond the camera the arrival
  flow learned while the approach was in red (:class:`ArrivalRates`), over the next
  :data:`HORIZON_S` seconds.
- **The schedules.** "Change now" and "hold ``d`` more seconds, then change" for each
  ``d`` in :data:`HOLDS_S` (within the maximum green). After that first change each
  schedule continues by the same rule: a green serves its approaches at the saturation
  flow of their lanes (after :data:`~controllers.phase.delaybalance.STARTUP_S` of
  start-up) until their queues are served, at least its minimum green and at most its
  maximum, then changes to the phase that serves the most queued PCU per second of
  change and green. During every change, yellow plus all-red, nobody is served.
- **The cost.** PCU-seconds queued over the horizon, plus each PCU still queued at its end
  times the longest change interval. The green is kept when a hold schedule costs less
  than changing now; otherwise the change goes ahead as delay-balance decided.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from atcs.types import PhaseId, SegmentId
from controllers.phase.base import PhaseDecision, exit_blocked, green_elapsed_s, target_phase
from controllers.phase.commands import SignalState
from controllers.phase.delaybalance import MIN_SPEED_M_S, STARTUP_S, DelayBalance
from controllers.phase.observe import Feeder, IntersectionLayout, Movement, ZoneSnapshot, ZoneView
from controllers.phase.timing import SignalTiming

SCHEDULE = "schedule"
HORIZON_S = 90
"""Seconds a schedule looks ahead."""
HOLDS_S = (2, 4, 8)
"""Extensions (s) of the green in force weighed against changing now."""
BATCHES_PCU = (0.5, 3.0)
"""Queues (PCU) another phase must have before a schedule changes to it, once the green
in force has served its own: each hold and change-now schedule is costed with each."""
RATE_MEMORY_S = 180.0
"""Time constant (s) of the arrival flow learned per approach."""
FREE_SPEED_M_S = 12.0
"""Speed (m/s) at which a vehicle just beyond the camera is assumed to come on."""
VEHICLE_SPACING_M = 7.5
"""Road length (m) one queued vehicle takes."""
CLEARED_PCU = 0.5
"""A queue below this (PCU) counts as served."""
MIN_WEIGHT = 0.25
"""Smallest share of the saturation flow a permissive movement gets."""


def moving_flow(zone: ZoneSnapshot) -> float | None:
    """Flow (PCU/s) of the vehicles moving toward the stop line, over the zone's free part.

    The part of the zone behind the queue is where arrivals are seen; None when the queue
    leaves too little of it (less than two vehicle spacings) to tell.
    """
    halted = [v.distance_m for v in zone.vehicles if v.halted]
    queue_end = max(halted) + VEHICLE_SPACING_M if halted else 0.0
    free = zone.length_m - queue_end
    if free < 2 * VEHICLE_SPACING_M:
        return None
    return sum(v.pcu * v.speed_m_s for v in zone.vehicles if not v.halted) / free


class ArrivalRates:
    """Arrival flow (PCU/s) per approach zone, an exponential average over its red time.

    Only approaches in red are updated: in green the moving vehicles are mostly the queue
    leaving, not new arrivals. One entry per approach zone of the intersection.
    """

    def __init__(self, memory_s: float = RATE_MEMORY_S) -> None:
        self.memory_s = memory_s
        self._rate: dict[SegmentId, float] = {}
        self._seen: dict[SegmentId, float] = {}

    def note(self, view: ZoneView, red: Iterable[SegmentId]) -> None:
        """Update the approaches in ``red`` from ``view``."""
        for seg in red:
            zone = view.zones.get(seg)
            flow = None if zone is None else moving_flow(zone)
            if flow is None:
                continue
            last = self._seen.get(seg)
            self._seen[seg] = view.at_s
            if last is None:
                self._rate[seg] = flow
                continue
            share = min(1.0, max(0.0, min(view.at_s - last, 2.0)) / self.memory_s)
            self._rate[seg] += share * (flow - self._rate[seg])

    def rate(self, seg: SegmentId) -> float:
        """Learned arrival flow of ``seg`` (PCU/s; 0 before its first red)."""
        return self._rate.get(seg, 0.0)


class Fluid:
    """The approaches as queues over the horizon (PCU; capacities in PCU/s).

    ``queued`` per approach now; ``arrivals`` per approach and second of the horizon;
    ``capacity`` per phase, the approaches it serves and their saturation flow.
    """

    def __init__(
        self,
        queued: dict[SegmentId, float],
        arrivals: dict[SegmentId, list[float]],
        capacity: dict[PhaseId, dict[SegmentId, float]],
    ) -> None:
        self.queued = queued
        self.arrivals = arrivals
        self.capacity = capacity


def fluid_now(
    layout: IntersectionLayout,
    view: ZoneView,
    rates: ArrivalRates,
    stalled: Mapping[PhaseId, frozenset[SegmentId]],
    horizon_s: int = HORIZON_S,
) -> Fluid:
    """Return the queues and arrivals the cameras and the learned flows give now.

    A movement in ``stalled`` (per phase) or with a jammed exit serves nothing.
    """
    headway = 3600.0 / layout.lane_saturation_pcu_h
    capacity: dict[PhaseId, dict[SegmentId, float]] = {}
    segments: set[SegmentId] = set()
    for p in layout.phases:
        served: dict[SegmentId, float] = {}
        for m in p.movements:
            segments.add(m.segment_id)
            if m.segment_id in stalled.get(p.phase_id, frozenset()):
                continue
            share = 1.0 - exit_blocked(layout, view, m)
            flow = max(1, m.lanes) * max(m.weight, MIN_WEIGHT) * share / headway
            if flow > 0:
                served[m.segment_id] = max(served.get(m.segment_id, 0.0), flow)
        capacity[p.phase_id] = served
    feeders = {m.segment_id: m.feeders for p in layout.phases for m in p.movements}
    queued: dict[SegmentId, float] = {}
    arrivals: dict[SegmentId, list[float]] = {}
    for seg in sorted(segments):
        zone = view.zones.get(seg)
        coming = [0.0] * horizon_s
        waiting = 0.0
        seen_m = 0.0
        if zone is not None:
            for v in zone.vehicles:
                if v.halted:
                    waiting += v.pcu
                    continue
                k = int(v.distance_m / max(v.speed_m_s, MIN_SPEED_M_S))
                if k < horizon_s:
                    coming[k] += v.pcu
            seen_m = zone.length_m
        unseen = _fed(coming, view, feeders.get(seg, ()), seen_m)
        flow = rates.rate(seg)
        for k in range(int(seen_m / FREE_SPEED_M_S), horizon_s):
            if k not in unseen:
                coming[k] += flow
        queued[seg] = waiting
        arrivals[seg] = coming
    return Fluid(queued, arrivals, capacity)


def _fed(coming: list[float], view: ZoneView, feeders: Iterable[Feeder], seen_m: float) -> range:
    """Add the vehicles an upstream exit zone sees coming to ``coming`` (PCU per second).

    Returns the seconds of the horizon that zone covers (no learned flow is added there);
    vehicles already inside this approach's own zone (``seen_m``) are not counted twice.
    """
    for feeder in feeders:
        zone = view.zones.get(feeder.segment_id)
        if zone is None:
            continue
        for v in zone.vehicles:
            distance = feeder.offset_m - v.distance_m
            if distance <= seen_m:
                continue
            k = int(distance / max(v.speed_m_s, MIN_SPEED_M_S))
            if k < len(coming):
                coming[k] += v.pcu * feeder.share
        start = max(seen_m, feeder.offset_m - zone.length_m)
        return range(int(start / FREE_SPEED_M_S), int(feeder.offset_m / FREE_SPEED_M_S))
    return range(0)


def _next_phase(
    fluid: Fluid,
    timing: SignalTiming,
    now: PhaseId,
    queue: Mapping[SegmentId, float],
    batch_pcu: float,
) -> PhaseId | None:
    """Return the phase serving the most queued PCU per second of change and green.

    None (keep the green): no phase has ``batch_pcu`` queued that ``now`` does not serve.
    """
    serving = fluid.capacity[now]
    best, best_score = None, 0.0
    for p in timing.phases:
        if p.phase_id == now:
            continue
        cap = fluid.capacity.get(p.phase_id, {})
        pending = [(queue[s], c) for s, c in cap.items() if s not in serving]
        demand = sum(q for q, _ in pending)
        if demand < max(batch_pcu, CLEARED_PCU):
            continue
        clear_s = STARTUP_S + max(q / c for q, c in pending)
        green_s = min(p.max_green_s, max(p.green_floor_s, clear_s))
        score = demand / (timing.change(now, p.phase_id).total_s + green_s)
        if score > best_score:
            best, best_score = p.phase_id, score
    return best


def schedule_cost(
    fluid: Fluid,
    timing: SignalTiming,
    current: PhaseId,
    *,
    hold_s: int,
    target: PhaseId,
    batch_pcu: float = CLEARED_PCU,
    horizon_s: int = HORIZON_S,
) -> float:
    """PCU-seconds queued over the horizon: hold ``current`` ``hold_s`` s, then ``target``.

    After ``target`` the schedule goes on by :func:`_next_phase` (see the module
    docstring); PCU still queued at the end cost the longest change interval each.
    """
    queue = dict(fluid.queued)
    phase, green_from, serve_from = current, -1e9, -1e9
    going: PhaseId | None = None
    change_end = 0.0
    cost = 0.0
    for k in range(horizon_s):
        if going is None:
            nxt: PhaseId | None = None
            if green_from < 0:
                nxt = target if k >= hold_s else None
            else:
                spec = timing.phase(phase)
                green = k - green_from
                cleared = all(queue[s] < CLEARED_PCU for s in fluid.capacity[phase])
                if green >= spec.max_green_s or (green >= spec.green_floor_s and cleared):
                    nxt = _next_phase(fluid, timing, phase, queue, batch_pcu)
            if nxt is not None and nxt != phase:
                going, change_end = nxt, k + timing.change(phase, nxt).total_s
        if going is not None and k >= change_end:
            phase, going = going, None
            green_from, serve_from = k, k + STARTUP_S
        cap = fluid.capacity[phase] if going is None and k >= serve_from else {}
        for seg, coming in fluid.arrivals.items():
            q = queue[seg] + coming[k]
            c = cap.get(seg)
            if c is not None:
                q = max(0.0, q - c)
            queue[seg] = q
            cost += q
    longest = max(c.total_s for c in timing.changes.values())
    return cost + longest * sum(queue.values())


class Schedule(DelayBalance):
    """Delay-balance whose changes must also pay for their clearances (see the module)."""

    name = SCHEDULE

    def __init__(
        self,
        gap_s: float = 4.0,
        fair_s: float | None = 120.0,
        *,
        holds_s: tuple[int, ...] = HOLDS_S,
        batches_pcu: tuple[float, ...] = BATCHES_PCU,
        horizon_s: int = HORIZON_S,
        early: bool = False,
    ) -> None:
        super().__init__(gap_s, fair_s)
        self.early = early
        self.holds_s = holds_s
        self.batches_pcu = batches_pcu
        self.horizon_s = horizon_s
        self.rates = ArrivalRates()

    def decide(
        self,
        layout: IntersectionLayout,
        timing: SignalTiming,
        state: SignalState,
        view: ZoneView,
    ) -> PhaseDecision:
        """Learn the arrival flows of the approaches in red, then decide as delay-balance."""
        if state.in_green:
            green = {m.segment_id for m in layout.phase(target_phase(state)).movements}
            red = self._approaches(layout) - green
            self.rates.note(view, sorted(red))
        return super().decide(layout, timing, state, view)

    def hold_instead(
        self,
        layout: IntersectionLayout,
        timing: SignalTiming,
        state: SignalState,
        view: ZoneView,
        *,
        target: PhaseId,
        stalled: frozenset[SegmentId],
    ) -> str | None:
        """Keep the green when holding it a few seconds more schedules less delay."""
        current = target_phase(state)
        room = timing.phase(current).max_green_s - green_elapsed_s(state)
        holds = [d for d in self.holds_s if d <= room]
        if not holds:
            return None
        fluid = fluid_now(layout, view, self.rates, {current: stalled}, self.horizon_s)

        def cost(hold_s: int, batch_pcu: float) -> float:
            return schedule_cost(
                fluid,
                timing,
                current,
                hold_s=hold_s,
                target=target,
                batch_pcu=batch_pcu,
                horizon_s=self.horizon_s,
            )

        now = min(cost(0, b) for b in self.batches_pcu)
        best, best_cost = 0, now
        for d in holds:
            for b in self.batches_pcu:
                c = cost(d, b)
                if c < best_cost - 1e-6:
                    best, best_cost = d, c
        if best == 0:
            return None
        return (
            f"schedule: holding {best} s more queues {now - best_cost:.0f} pcu-s less "
            f"than changing to {target}"
        )

    def change_early(
        self,
        layout: IntersectionLayout,
        timing: SignalTiming,
        state: SignalState,
        view: ZoneView,
        *,
        stalled: frozenset[SegmentId],
    ) -> PhaseDecision | None:
        """Change now when vehicles seen coming to another phase make that cheaper.

        Only while the green in force has no platoon and only for phases with a vehicle
        seen (by their own cameras or an upstream exit zone): changing now is weighed
        against holding each of :data:`HOLDS_S` seconds and then changing to the same phase.
        """
        if not self.early:
            return None
        current = target_phase(state)
        serving = {m.segment_id for m in layout.phase(current).movements}
        fluid: Fluid | None = None
        best: tuple[float, PhaseId] | None = None
        for p in layout.phases:
            if p.phase_id == current or not _seen_coming(p.movements, serving, view):
                continue
            if fluid is None:
                fluid = fluid_now(layout, view, self.rates, {current: stalled}, self.horizon_s)
            saving = self._saving(fluid, timing, current, p.phase_id)
            if saving > 0 and (best is None or saving > best[0]):
                best = (saving, p.phase_id)
        if best is None:
            return None
        return PhaseDecision(
            best[1],
            f"schedule: vehicles coming to {best[1]}, changing now saves {best[0]:.0f} pcu-s",
        )

    def _saving(self, fluid: Fluid, timing: SignalTiming, current: PhaseId, to: PhaseId) -> float:
        """PCU-seconds changing to ``to`` now saves against the best later change (<= 0: none)."""

        def cost(hold_s: int) -> float:
            return schedule_cost(
                fluid, timing, current, hold_s=hold_s, target=to, horizon_s=self.horizon_s
            )

        room = timing.phase(current).max_green_s
        later = [cost(d) for d in self.holds_s if d <= room]
        return min(later) - cost(0) if later else 0.0


def _seen_coming(movements: Iterable[Movement], serving: set[SegmentId], view: ZoneView) -> bool:
    """Tell whether a camera sees a vehicle for one of ``movements`` the green does not serve."""
    for m in movements:
        if m.segment_id in serving:
            continue
        for zone_id in (m.segment_id, *(f.segment_id for f in m.feeders)):
            zone = view.zones.get(zone_id)
            if zone is not None and zone.vehicles:
                return True
    return False
