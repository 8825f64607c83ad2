"""Actuated control (NEMA-like) with calls and extensions from the camera zones.

- **Calls**: a phase not in green gets a call when its approach zones detect a vehicle; the
  call is kept (locked) until the phase is served. A phase whose camera is down is always
  called (recall).
- **Extension**: after its minimum green, the green is extended while vehicles move in its
  zones toward the stop line (or, in the first ``startup_s`` of green, while a queue
  stands there to start); it **gaps out** once no such vehicle was seen for
  ``passage_s``, and **maxes out** at its maximum green (the signal controller forces
  that). A phase whose camera is down is held for its time-of-day green.
- **Short maximum (option).** With ``max_green_s`` the engine gaps a green out at that
  many seconds even while vehicles keep coming (below the signal controller's own
  maximum, which still holds). For grids of short links under saturation: a link of
  about 190 m stores some 25 vehicles a lane, which a green of 50 s fills, so a longer
  green only pushes vehicles into a jam while every crossing lane waits a longer cycle.
  On arterial4x4 (five phases, 60 s maximums, cycles near 200 s) a 40 s maximum kept
  every vehicle from standing five minutes (registered as ``actuated-max40``).
- **Next phase**: the next one in ring order that has a call; phases without demand are
  skipped. With no call anywhere the green rests.
- **Each movement once a cycle (option).** With ``once_per_cycle`` a phase later in the
  ring than the one in green is served only for a vehicle on an approach zone that has
  not had green since the ring last wrapped round; phases that would only repeat a
  movement already served (a lead-lag pair such as a protected left and the same left
  with its through, or a through served again with the other direction's left) are
  skipped until the next cycle. And the engine hands a green that vehicles keep
  extending over one tick before the signal's maximum: at its own max-out the signal
  controller goes to the next phase in the ring whatever its demand, so under saturation
  plain ``actuated`` runs every phase of the ring, called or not. On arterial4x4 (every
  light lists the same five phases, most movements in two of them) the two together cut
  the mean delay by 7.7 % over ten seeds with no run gridlocked; it is not the default
  (it locked cologne3 on one of two seeds) and is registered as ``actuated-once``.
- **Recall after a long red (option).** A camera can miss a vehicle for all the time it
  stands at the line (the emulated cameras miss 5 % so); with no call its phase may never
  come (arterial4x4: one vehicle stood 1 091 s). With ``recall_after_s`` an approach zone
  that has had no green for that long calls its phases as if a vehicle were seen (and
  passes the once-a-cycle rule while not yet served this cycle); with nothing there the
  green gaps out at its minimum. ``actuated-once-recall`` is ``actuated-once`` with a
  300-s recall (:data:`RECALL_AFTER_S`); see docs/simulation.md for what it costs.
"""

from __future__ import annotations

from atcs.types import PhaseId, SegmentId
from controllers.phase.base import PhaseDecision, green_elapsed_s, phase_pcu, target_phase
from controllers.phase.commands import SignalState
from controllers.phase.observe import IntersectionLayout, PhaseLayout, ZoneView
from controllers.phase.timing import SignalTiming, local_greens_s

ACTUATED = "actuated"
ACTUATED_MAX40 = "actuated-max40"
ACTUATED_ONCE = "actuated-once"
ACTUATED_ONCE_RECALL = "actuated-once-recall"
RECALL_AFTER_S = 300.0
"""How long an approach zone goes without green before ``actuated-once-recall`` calls it (s)."""
SHORT_MAX_GREEN_S = 40.0
"""The short maximum green of ``actuated-max40`` (s); 30 s cost more than it saved."""
HAND_OVER_TICK_S = 1.0
"""How long before the signal's maximum ``once_per_cycle`` hands the green over (s)."""


def has_extension_demand(
    phase: PhaseLayout, view: ZoneView, elapsed_s: float, startup_s: float
) -> bool:
    """Tell whether a vehicle in ``phase``'s zones keeps its green going."""
    for m in phase.movements:
        zone = view.zones.get(m.segment_id)
        if zone is None:
            continue
        for v in zone.vehicles:
            if not v.halted or elapsed_s < startup_s:
                return True
    return False


def has_unserved_demand(
    phase: PhaseLayout, view: ZoneView, served: set[SegmentId] | frozenset[SegmentId]
) -> bool:
    """Tell whether ``phase`` has a vehicle (or a blind zone) on a zone not in ``served``."""
    for m in phase.movements:
        if m.segment_id in served:
            continue
        zone = view.zones.get(m.segment_id)
        if zone is None or zone.vehicles:
            return True
    return False


class Actuated:
    """Gap-out / max-out actuated control with skipping (see the module docstring)."""

    name = ACTUATED

    def __init__(
        self,
        passage_s: float = 2.0,
        startup_s: float = 4.0,
        max_green_s: float | None = None,
        *,
        once_per_cycle: bool = False,
        recall_after_s: float | None = None,
    ) -> None:
        self.passage_s = passage_s
        self.startup_s = startup_s
        self.max_green_s = max_green_s
        self.once_per_cycle = once_per_cycle
        self.recall_after_s = recall_after_s
        if max_green_s is not None:
            self.name = f"{ACTUATED}-max{max_green_s:g}"
        if once_per_cycle:
            self.name = ACTUATED_ONCE if max_green_s is None else f"{self.name}-once"
        if recall_after_s is not None:
            self.name = f"{self.name}-recall"
            if recall_after_s != RECALL_AFTER_S:
                self.name += f"{recall_after_s:g}"
        self._zone_green_s: dict[SegmentId, float] = {}
        self._calls: set[PhaseId] = set()
        self._green: float | None = None
        self._last_demand_s = float("-inf")
        self._served: set[SegmentId] = set()
        self._ring_index = -1

    def _hand_over_s(self, signal_max_s: float) -> float:
        """Green (s) at which the engine ends a green that vehicles keep extending.

        With ``once_per_cycle`` the engine ends it a tick before the signal's maximum:
        the signal's own max-out goes to the next phase in the ring whatever its demand.
        """
        limit = self.max_green_s if self.max_green_s is not None else float("inf")
        if self.once_per_cycle:
            limit = min(limit, signal_max_s - HAND_OVER_TICK_S)
        return limit

    def _stale_zones(self, layout: IntersectionLayout, state: SignalState) -> set[SegmentId]:
        """Approach zones that have had no green for ``recall_after_s`` (none without it).

        Each zone's last green is kept from the first decision on.
        """
        if state.in_green:
            for m in layout.phase(target_phase(state)).movements:
                self._zone_green_s[m.segment_id] = state.at_s
        if self.recall_after_s is None:
            return set()
        stale: set[SegmentId] = set()
        for p in layout.phases:
            for m in p.movements:
                since = self._zone_green_s.setdefault(m.segment_id, state.at_s)
                if state.at_s - since >= self.recall_after_s - 1e-6:
                    stale.add(m.segment_id)
        return stale

    def decide(
        self,
        layout: IntersectionLayout,
        timing: SignalTiming,
        state: SignalState,
        view: ZoneView,
    ) -> PhaseDecision:
        """Hold while vehicles keep coming; then the next called phase in ring order."""
        current = target_phase(state)
        blind = view.blind(layout)
        stale = self._stale_zones(layout, state)
        for p in layout.phases:
            if p.phase_id in blind or phase_pcu(p, view) > 0:
                self._calls.add(p.phase_id)
        # a recall calls only while its zone is still without green: once one phase has
        # served the zone, the others that list it are not called for nobody
        recalled = {
            p.phase_id for p in layout.phases if any(m.segment_id in stale for m in p.movements)
        }
        if not state.in_green:
            return PhaseDecision(current, "change in progress")
        self._calls.discard(current)
        calls = self._calls | recalled
        elapsed = green_elapsed_s(state)
        ids = [p.phase_id for p in timing.phases]
        start = ids.index(current)
        phase = layout.phase(current)
        if state.green_started_s != self._green:
            self._green = state.green_started_s
            self._last_demand_s = state.green_started_s
            if start <= self._ring_index:
                self._served.clear()
            self._ring_index = start
            self._served.update(m.segment_id for m in phase.movements)
        if current in blind:
            if elapsed < local_greens_s(timing, state.at_s)[current] - 1e-6:
                return PhaseDecision(current, "camera down: time-of-day green")
        elif has_extension_demand(phase, view, elapsed, self.startup_s):
            self._last_demand_s = state.at_s
        if elapsed < timing.phase(current).green_floor_s - 1e-6:
            return PhaseDecision(current, "minimum green")
        signal_max_s = timing.phase(current).max_green_s
        short = elapsed >= self._hand_over_s(signal_max_s) - 1e-6
        if (
            state.at_s - self._last_demand_s < self.passage_s - 1e-6
            and current not in blind
            and not short
        ):
            return PhaseDecision(current, "extended: vehicles arriving")
        if not short:
            why = "gap-out"
        elif self.max_green_s is not None and elapsed >= self.max_green_s - 1e-6:
            why = "short maximum"
        else:
            why = "hand-over before the signal's maximum"
        for k in range(1, len(ids)):
            candidate = ids[(start + k) % len(ids)]
            if candidate in calls and (
                not self.once_per_cycle
                or start + k >= len(ids)
                or has_unserved_demand(layout.phase(candidate), view, self._served)
                or any(
                    m.segment_id in stale and m.segment_id not in self._served
                    for m in layout.phase(candidate).movements
                )
            ):
                return PhaseDecision(candidate, f"{why}: {candidate} has a call")
        if calls - {current}:
            return PhaseDecision(current, "calls only for zones served this cycle: rest in green")
        return PhaseDecision(current, "no call elsewhere: rest in green")
