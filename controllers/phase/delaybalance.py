"""``delay-balance``: the engine's own phase-by-phase controller.

Every second after the minimum green it weighs the delay it would save by keeping the
green against the delay that keeping it costs everybody else (after Miller's 1963 rule,
with the arrivals a camera sees, in the spirit of SURTRAC's schedules of queues and
platoons):

- **The platoon in green.** From the camera zones of the phase in green, each detected
  vehicle's arrival at the stop line (queued: now; moving: distance / speed) and its
  departure at the saturation headway of its lanes give the platoon still to serve: ``n``
  PCU over the next ``T`` seconds, as long as the lanes never stand idle for more than
  ``gap_s``. Vehicles whose exit is blocked back to the junction (spillback) cannot leave
  and do not count.
- **The others.** ``W`` is the PCU waiting or arriving on every other phase (blocked
  movements excluded). Cut now, the platoon would wait ``R``: the change to the best
  other phase, that phase's green to clear its queue, and the change back.
- **The rule.** Keep the green while ``n x R >= W x T`` (serving the platoon saves more
  than it costs), or while nobody else waits; otherwise serve the phase that clears the
  most PCU per second of change and green, weighted up by how long it has waited, so no
  phase starves. The signal controller keeps the minimum and maximum greens and the
  clearances; the engine's envelope also bounds every phase's wait.
"""

from __future__ import annotations

from atcs.types import PhaseId, SegmentId
from controllers.phase.base import PhaseDecision, exit_blocked, green_elapsed_s, target_phase
from controllers.phase.commands import SignalState
from controllers.phase.observe import IntersectionLayout, PhaseLayout, ZoneView
from controllers.phase.timing import SignalTiming, local_greens_s

DELAY_BALANCE = "delay-balance"
STARTUP_S = 2.0
"""Start-up lost time of a queue at the beginning of green (s)."""
HEAD_M = 10.0
"""Distance (m) from the stop line within which a queued vehicle heads its queue."""
STALL_AFTER_S = 4.0
"""Seconds of green after which a queue head still standing means the movement stalls."""
MIN_SPEED_M_S = 2.0
"""Slowest speed used to turn a moving vehicle's distance into an arrival time (m/s)."""


def _departures(
    layout: IntersectionLayout,
    phase: PhaseLayout,
    view: ZoneView,
    *,
    startup_s: float,
    gap_s: float | None,
    stalled: frozenset[SegmentId] = frozenset(),
) -> tuple[float, float]:
    """PCU the phase serves from green start and the time (s) it needs, per lane discharge.

    With ``gap_s``, stop at the first gap longer than that (the platoon); otherwise serve
    every vehicle detected. Movements in ``stalled`` serve nothing.
    """
    served = 0.0
    last = 0.0
    headway = 3600.0 / layout.lane_saturation_pcu_h
    for m in phase.movements:
        zone = view.zones.get(m.segment_id)
        if zone is None or not zone.vehicles:
            continue
        share = 1.0 - exit_blocked(layout, view, m)
        if share <= 0 or m.segment_id in stalled:
            continue
        arrivals = sorted(
            (0.0 if v.halted else v.distance_m / max(v.speed_m_s, MIN_SPEED_M_S), v.pcu)
            for v in zone.vehicles
        )
        step = headway / (max(1, m.lanes) * max(m.weight, 0.25))
        t = startup_s if arrivals[0][0] <= 0 else 0.0
        for eta, pcu in arrivals:
            if gap_s is not None and eta > t + gap_s:
                break
            t = max(t, eta) + step * pcu
            served += m.weight * share * pcu
        last = max(last, t)
    return served, last


def _stalled(phase: PhaseLayout, view: ZoneView) -> frozenset[SegmentId]:
    """Movements of the green in force whose first vehicle stands at the stop line.

    After the start-up, a queued vehicle within :data:`HEAD_M` of the line means the
    movement does not flow: a permissive turn finds no gap, or the road ahead is full.
    """
    out = set()
    for m in phase.movements:
        zone = view.zones.get(m.segment_id)
        if zone is not None and any(v.halted and v.distance_m <= HEAD_M for v in zone.vehicles):
            out.add(m.segment_id)
    return frozenset(out)


class DelayBalance:
    """Keep the green while it saves more delay than it costs (see the module docstring)."""

    name = DELAY_BALANCE

    def __init__(self, gap_s: float = 4.0, aging_s: float | None = None) -> None:
        self.gap_s = gap_s
        self.aging_s = aging_s
        self._last_green: dict[PhaseId, float] = {}
        self._segments: frozenset[SegmentId] | None = None

    def _approaches(self, layout: IntersectionLayout) -> frozenset[SegmentId]:
        if self._segments is None:
            self._segments = frozenset(m.segment_id for p in layout.phases for m in p.movements)
        return self._segments

    def decide(
        self,
        layout: IntersectionLayout,
        timing: SignalTiming,
        state: SignalState,
        view: ZoneView,
    ) -> PhaseDecision:
        """Hold or change, by the balance of delays."""
        current = target_phase(state)
        if state.in_green:
            self._last_green[current] = state.at_s
        if not state.in_green:
            return PhaseDecision(current, "change in progress")
        elapsed = green_elapsed_s(state)
        blind = view.blind(layout)
        if current in blind and elapsed < local_greens_s(timing, state.at_s)[current] - 1e-6:
            return PhaseDecision(current, "camera down: time-of-day green")
        if elapsed < timing.phase(current).green_floor_s - 1e-6:
            return PhaseDecision(current, "minimum green")
        startup = max(0.0, STARTUP_S - elapsed)
        stalled = _stalled(layout.phase(current), view) if elapsed > STALL_AFTER_S else frozenset()
        n, t_ext = _departures(
            layout,
            layout.phase(current),
            view,
            startup_s=startup,
            gap_s=self.gap_s,
            stalled=stalled,
        )
        serving = {m.segment_id for m in layout.phase(current).movements} - stalled
        waiting = sum(
            zone.pcu
            for seg, zone in view.zones.items()
            if seg not in serving and seg in self._approaches(layout)
        )
        best, best_score, round_s = current, 0.0, 0.0
        for p in layout.phases:
            if p.phase_id == current:
                continue
            demand, clear_s = _departures(layout, p, view, startup_s=STARTUP_S, gap_s=None)
            if p.phase_id in blind:
                demand = max(demand, 1.0)
                clear_s = local_greens_s(timing, state.at_s)[p.phase_id]
            if demand <= 0:
                continue
            spec = timing.phase(p.phase_id)
            green = min(spec.max_green_s, max(spec.green_floor_s, clear_s))
            lost = timing.change(current, p.phase_id).total_s
            round_s += lost + green
            waited = state.at_s - self._last_green.get(p.phase_id, state.at_s)
            aging = 1.0 if self.aging_s is None else 1.0 + waited / self.aging_s
            score = demand * aging / (lost + green)
            if score > best_score:
                best, best_score = p.phase_id, score
        if best != current:
            round_s += timing.change(best, current).total_s
        if waiting <= 0 or best == current:
            return PhaseDecision(current, "nobody else waits")
        if n * min(round_s, timing.recall_wait_s) >= waiting * max(t_ext, 1.0):
            return PhaseDecision(
                current, f"platoon {n:.1f} pcu in {t_ext:.0f} s outweighs {waiting:.1f} waiting"
            )
        return PhaseDecision(best, f"{waiting:.1f} pcu waiting outweigh {n:.1f} in green")
