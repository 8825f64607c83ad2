"""``delay-balance``: the engine's own phase-by-phase controller.

Every second after the minimum green it weighs the delay it would save by keeping the
green against the delay that keeping it costs everybody else (after Miller's 1963 rule,
with the arrivals a camera sees, in the spirit of SURTRAC's schedules of queues and
platoons):

- **The platoon in green.** From the camera zones of the phase in green, each detected
  vehicle's arrival at the stop line (queued: now; moving: distance / speed) and its
  departure at the saturation headway of its lanes give the platoon still to serve: ``n``
  PCU over the next ``T`` seconds, as long as the lanes never stand idle for more than
  ``gap_s``. A movement does not flow, and its vehicles count as waiting, when its exit
  is jammed back to the junction (spillback guard) or when, after the start-up, a queued
  vehicle still stands at its stop line (a permissive turn that finds no gap, a jam
  ahead the exit camera cannot see).
- **The others.** ``W`` is the PCU on every approach the green does not serve. Cut now,
  the platoon would wait ``R``: a round of the other phases with vehicles (each change
  and the green that clears its detected queue) and the change back.
- **The rule.** Keep the green while ``n x R >= W x T`` (serving the platoon saves more
  than it costs), or while nobody else waits; otherwise serve the phase that clears the
  most PCU per second of change and green. A phase is only wanted for vehicles the green
  in force does not already serve (a left turn that flows permissively with the through
  traffic calls no protected phase).
- **Turn clearance (anti-deadlock).** A green that served a turn permissively and ends
  with a turner still standing at the stop line goes first to the phase that serves
  that turn protected (as the network's own program does). Turners that found no gap
  wait inside the junction, where the cameras cannot see them; cutting straight to the
  crossing street locked cologne1 and cologne3 (SUMO's vehicles in the junction and the
  crossing traffic blocked each other for good).
- **Fairness (anti-gridlock).** A wanted phase one of whose movements has not flowed for
  ``fair_s`` (120 s, the longest cycle allowed) is served next, whatever the balance
  says. Without it, serving the busiest phase again and again let queues between close
  intersections lock (ingolstadt21); 90 s cut the greens of the demo's four split phases
  short under saturation. The signal controller keeps the minimum and maximum greens and the
  clearances; the engine's envelope bounds every wait at the longest cycle (120 s).
"""

from __future__ import annotations

from atcs.types import PhaseId, SegmentId
from controllers.phase.base import PhaseDecision, exit_blocked, green_elapsed_s, target_phase
from controllers.phase.commands import SignalState
from controllers.phase.observe import IntersectionLayout, PhaseLayout, ZoneView
from controllers.phase.timing import SignalTiming, local_greens_s
from controllers.phase.turns import HEAD_M, TurnMemory

DELAY_BALANCE = "delay-balance"
STARTUP_S = 2.0
"""Start-up lost time of a queue at the beginning of green (s)."""
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
    every vehicle detected. Movements in ``stalled`` or with a jammed exit serve nothing.
    """
    served = 0.0
    last = 0.0
    headway = 3600.0 / layout.lane_saturation_pcu_h
    for m in phase.movements:
        zone = view.zones.get(m.segment_id)
        if zone is None or not zone.vehicles or m.segment_id in stalled:
            continue
        share = 1.0 - exit_blocked(layout, view, m)
        if share <= 0:
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
    """Movements of the green in force that do not flow.

    A vehicle stands at the stop line and nothing moves near it (within ``2 x HEAD_M``):
    on a movement of several lanes, one lane held by a turner while the others flow still
    serves.
    """
    out = set()
    for m in phase.movements:
        zone = view.zones.get(m.segment_id)
        if zone is None:
            continue
        near = [v for v in zone.vehicles if v.distance_m <= 2 * HEAD_M]
        if any(v.halted and v.distance_m <= HEAD_M for v in near) and all(v.halted for v in near):
            out.add(m.segment_id)
    return frozenset(out)


class DelayBalance:
    """Keep the green while it saves more delay than it costs (see the module docstring)."""

    name = DELAY_BALANCE

    def __init__(self, gap_s: float = 4.0, fair_s: float | None = 120.0) -> None:
        self.gap_s = gap_s
        self.fair_s = fair_s
        self._served: dict[SegmentId, float] = {}
        self._turners = TurnMemory()
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
        now = state.at_s
        for segment in self._approaches(layout):
            self._served.setdefault(segment, now)
        if not state.in_green:
            return PhaseDecision(current, "change in progress")
        elapsed = green_elapsed_s(state)
        green = layout.phase(current)
        stalled = frozenset[SegmentId]()
        if elapsed > STALL_AFTER_S:
            stalled = _stalled(green, view)
            self._turners.note(green, view, now)
        serving = {m.segment_id for m in green.movements} - stalled
        for segment in serving:
            self._served[segment] = now
        blind = view.blind(layout)
        if current in blind and elapsed < local_greens_s(timing, now)[current] - 1e-6:
            return PhaseDecision(current, "camera down: time-of-day green")
        if elapsed < timing.phase(current).green_floor_s - 1e-6:
            return PhaseDecision(current, "minimum green")
        n, t_ext = _departures(
            layout,
            green,
            view,
            startup_s=max(0.0, STARTUP_S - elapsed),
            gap_s=self.gap_s,
            stalled=stalled,
        )
        waiting = sum(
            zone.pcu
            for seg, zone in view.zones.items()
            if seg not in serving and seg in self._approaches(layout)
        )
        best, best_score, round_s = current, 0.0, 0.0
        overdue: list[tuple[float, PhaseId]] = []
        for p in layout.phases:
            if p.phase_id == current:
                continue
            demand, clear_s = _departures(layout, p, view, startup_s=STARTUP_S, gap_s=None)
            if p.phase_id in blind:
                demand = max(demand, 1.0)
                clear_s = local_greens_s(timing, now)[p.phase_id]
            uncovered = [
                m.segment_id
                for m in p.movements
                if m.segment_id not in serving
                and (m.segment_id not in view.zones or view.zones[m.segment_id].vehicles)
            ]
            if demand <= 0 or not uncovered:
                continue
            wait = max(now - self._served[seg] for seg in uncovered)
            if self.fair_s is not None and wait >= self.fair_s:
                overdue.append((wait, p.phase_id))
            spec = timing.phase(p.phase_id)
            green_s = min(spec.max_green_s, max(spec.green_floor_s, clear_s))
            lost = timing.change(current, p.phase_id).total_s
            round_s += lost + green_s
            score = demand / (lost + green_s)
            if score > best_score:
                best, best_score = p.phase_id, score
        if overdue:
            wait, phase = max(overdue)
            return self._leave(layout, current, phase, view, f"{phase} waited {wait:.0f} s")
        if waiting <= 0 or best == current:
            early = (
                self.change_early(layout, timing, state, view, stalled=stalled) if n <= 0 else None
            )
            if early is not None:
                return self._leave(layout, current, early.phase, view, early.reason)
            return PhaseDecision(current, "nobody else waits")
        round_s += timing.change(best, current).total_s
        if n * min(round_s, timing.recall_wait_s) >= waiting * max(t_ext, 1.0):
            return PhaseDecision(
                current, f"platoon {n:.1f} pcu in {t_ext:.0f} s outweighs {waiting:.1f} waiting"
            )
        target = self._turners.clearing_phase(layout, current, best, now) or best
        held = self.hold_instead(layout, timing, state, view, target=target, stalled=stalled)
        if held is not None:
            return PhaseDecision(current, held)
        return self._leave(
            layout, current, best, view, f"{waiting:.1f} pcu waiting outweigh {n:.1f} in green"
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
        """Return the phase to change to before anybody waits there (None: keep the green).

        Delay-balance never does; a subclass that sees vehicles coming further ahead
        (:mod:`controllers.phase.schedule`) may start the change so that they find green.
        """
        return None

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
        """Why to keep the green after all when the balance says change to ``target``.

        None (change): the balance has the last word here; a subclass that looks further
        ahead (:mod:`controllers.phase.schedule`) may keep the green.
        """
        return None

    def _leave(
        self,
        layout: IntersectionLayout,
        current: PhaseId,
        target: PhaseId,
        view: ZoneView,
        why: str,
    ) -> PhaseDecision:
        """Change to ``target``, through the protected phase of waiting permissive turns."""
        clearing = self._turners.clearing_phase(layout, current, target, view.at_s)
        if clearing is not None:
            return PhaseDecision(clearing, f"{why}; permissive turns of {current} clear first")
        return PhaseDecision(target, why)
