"""RESCO's MaxPressure and Greedy (MaxWave), implemented from their published rules.

The peers observe SUMO directly, as RESCO does (the engine only sees its cameras):

- every ``step_s`` (10 s; 5 s on the arterial maps) each light's lanes are observed up to
  ``distance_m`` before the stop line (200 m for MaxPressure, 50 m for Greedy): a vehicle
  is *queued* once it has been seen stopped (SUMO waiting time > 0) at an observation
  while in range, and stays so until it leaves the range; the others are *approaching*;
- **MaxPressure**: per green phase, over its movements (incoming lane -> outgoing lane of
  its green links), queued on the incoming lane minus queued on the outgoing lane where
  that lane leads to another light (observed there); the largest wins;
- **Greedy (MaxWave)**: per green phase, queued plus approaching on its incoming lanes;
- the chosen phase, if new, follows RESCO's yellow on the links that lose green (3 s;
  2 s on the arterial maps, its ``yellow_length`` there), no all-red
  (:class:`RescoSignal`), or, "inside the engine's envelope", is sent to the
  signal controller as a command (:class:`~atcs.sim.phase_site.PhaseBridge`).

Ties go to the phase listed first. Green phases are the program's phases with some
``g``/``G`` and no amber, as RESCO finds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType

from atcs.sim.network import GREEN_CHARS
from atcs.sim.specs import SimIntersection

RESCO_MAX_PRESSURE = "resco-max-pressure"
RESCO_GREEDY = "resco-greedy"
ENVELOPE_SUFFIX = "-envelope"
PEERS = (
    RESCO_MAX_PRESSURE,
    RESCO_GREEDY,
    RESCO_MAX_PRESSURE + ENVELOPE_SUFFIX,
    RESCO_GREEDY + ENVELOPE_SUFFIX,
)
ARTERIAL_MAPS = ("arterial4x4",)
RESCO_YELLOW_S = 3.0
"""RESCO's yellow (s), its ``yellow_length``, on every map but :data:`ARTERIAL_MAPS`."""


@dataclass(frozen=True, slots=True)
class RescoTiming:
    """RESCO's decision step and yellow on a map (s): its ``step_length`` and ``yellow_length``.

    Its peers run the yellow with no all-red (outside the envelope).
    """

    step_s: float = 10.0
    yellow_s: float = RESCO_YELLOW_S


ARTERIAL_TIMING = RescoTiming(step_s=5.0, yellow_s=2.0)
"""RESCO's timing on :data:`ARTERIAL_MAPS` (``resco_benchmark/config/map_config.py``)."""


@dataclass(frozen=True, slots=True)
class PeerRule:
    """One peer: its choice rule, its observation range (m), and whether it is enveloped."""

    name: str
    pressure: bool
    distance_m: float
    enveloped: bool


def peer_rule(name: str) -> PeerRule:
    """Return the rule of the peer called ``name`` (KeyError when it is not one)."""
    if name not in PEERS:
        raise KeyError(name)
    pressure = name.startswith(RESCO_MAX_PRESSURE)
    return PeerRule(name, pressure, 200.0 if pressure else 50.0, name.endswith(ENVELOPE_SUFFIX))


def resco_timing(scenario: str) -> RescoTiming:
    """RESCO's decision step and yellow on ``scenario``."""
    return ARTERIAL_TIMING if scenario in ARTERIAL_MAPS else RescoTiming()


class RescoObserver:
    """RESCO's per-lane observation of every light, read from SUMO (queued, approaching).

    Each incoming lane of a light is observed together with the lanes that lead into it
    without a choice (RESCO's hand-made lane sets follow an approach over such short
    edges too); :attr:`lanes` maps the incoming lane to its counts.
    """

    def __init__(self, intersections: Sequence[SimIntersection], distance_m: float) -> None:
        self.distance_m = distance_m
        self._lanes: dict[str, dict[str, tuple[str, ...]]] = {}
        for ix in intersections:
            incoming = sorted({link.in_lane for link in ix.program.links})
            self._lanes[ix.tls_id] = {
                lane: (lane, *(up for up, _ in ix.program.lanes[lane].upstream))
                for lane in incoming
            }
        self._waiting: dict[str, set[str]] = {tls: set() for tls in self._lanes}
        self.lanes: dict[str, tuple[int, int]] = {}

    def observe(self, sumo: ModuleType) -> None:
        """Observe every light now; :attr:`lanes` maps lane id -> (queued, approaching)."""
        out: dict[str, tuple[int, int]] = {}
        for tls, approaches in self._lanes.items():
            seen: set[str] = set()
            waiting = self._waiting[tls]
            for lane, covered in approaches.items():
                queued = approaching = 0
                for each in covered:
                    for vid in sumo.lane.getLastStepVehicleIDs(each):
                        path = sumo.vehicle.getNextTLS(vid)
                        if not path or path[0][0] != tls or path[0][2] > self.distance_m:
                            continue
                        seen.add(vid)
                        if vid in waiting or sumo.vehicle.getWaitingTime(vid) > 0:
                            waiting.add(vid)
                            queued += 1
                        else:
                            approaching += 1
                out[lane] = (queued, approaching)
            waiting.intersection_update(seen)
        self.lanes = out


def downstream_lanes(intersections: Sequence[SimIntersection]) -> dict[str, str]:
    """Map every lane that leads into a light's incoming lane to that incoming lane."""
    out: dict[str, str] = {}
    for ix in intersections:
        for link in ix.program.links:
            out.setdefault(link.in_lane, link.in_lane)
            for up, _ in ix.program.lanes[link.in_lane].upstream:
                out.setdefault(up, link.in_lane)
    return out


def phase_scores(
    ix: SimIntersection,
    rule: PeerRule,
    lanes: Mapping[str, tuple[int, int]],
    downstream: Mapping[str, str],
) -> list[float]:
    """Score of each green phase of ``ix`` under ``rule`` (program order).

    ``downstream`` maps an outgoing lane to the incoming lane of the light it leads to.
    """
    scores = []
    for sig in ix.signals:
        green = [link for link in ix.program.links if sig.green[link.index] in GREEN_CHARS]
        if rule.pressure:
            moves = {(link.in_lane, link.out_lane) for link in green}
            scores.append(
                float(
                    sum(
                        lanes.get(i, (0, 0))[0] - lanes.get(downstream.get(o, ""), (0, 0))[0]
                        for i, o in moves
                    )
                )
            )
        else:
            incoming = {link.in_lane for link in green}
            scores.append(float(sum(sum(lanes.get(i, (0, 0))) for i in incoming)))
    return scores


def best_phase(scores: Sequence[float]) -> int:
    """Return the index of the largest score (the first on ties)."""
    return max(range(len(scores)), key=lambda k: (scores[k], -k))


def resco_yellow(green: str, following: str) -> str:
    """RESCO's yellow between two greens: links green now and red next show amber."""
    return "".join(
        "y" if a in GREEN_CHARS and b in "rs" else a for a, b in zip(green, following, strict=True)
    )


class RescoSignal:
    """A light run as RESCO runs it: the chosen phase after ``yellow_s`` of yellow, no all-red."""

    def __init__(self, ix: SimIntersection, yellow_s: float = RESCO_YELLOW_S) -> None:
        self._greens = [sig.green for sig in ix.signals]
        self._yellow_s = yellow_s
        self.phase = 0
        self._yellow_until = float("-inf")
        self._yellow = ""

    def choose(self, phase: int, now_s: float) -> None:
        """Switch to ``phase`` at ``now_s`` (``yellow_s`` of yellow first if it is a change)."""
        if phase != self.phase:
            self._yellow = resco_yellow(self._greens[self.phase], self._greens[phase])
            self._yellow_until = now_s + self._yellow_s
            self.phase = phase

    def state(self, now_s: float) -> str:
        """State string to show from ``now_s``."""
        if now_s < self._yellow_until - 1e-6:
            return self._yellow
        return self._greens[self.phase]
