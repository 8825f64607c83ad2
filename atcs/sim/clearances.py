"""Clearances per signal link and the change intervals between any two phases (pure).

Each link (one movement from an approach lane) gets its own yellow and all-red:

- policy ``ite`` (the default): the ITE kinematic formula
  (:mod:`controllers.phase.clearance`) from the approach lane's speed limit and grade and
  the link's path through the junction as the crossing width, never below 3 s / 1 s;
- policy ``minimum``: 3 s yellow and 1 s all-red on every link (the envelope of RESCO's
  peers "inside the engine's envelope", kept to compare with published numbers).

Both are rounded up to whole controller ticks. A change from phase *a* to phase *b*
shows, on each link that loses its green (a protected green becoming permissive counts as
lost), amber for that link's yellow and then red; links green in both stay green; the next
green starts when every ending link has had its yellow and its all-red. The change's
yellow is the longest yellow of its ending links; its all-red the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from atcs.errors import SimulationError
from atcs.sim.network import GREEN_CHARS, TlsProgram
from controllers.phase.clearance import (
    ALL_RED_FLOOR_S,
    YELLOW_FLOOR_S,
    ite_all_red_s,
    ite_yellow_s,
    whole_ticks_s,
)

ITE = "ite"
MINIMUM = "minimum"
CLEARANCE_POLICIES = (ITE, MINIMUM)


@dataclass(frozen=True, slots=True)
class LinkClearance:
    """Yellow and all-red (s, whole ticks) of one signal link."""

    yellow_s: float
    all_red_s: float


@dataclass(frozen=True, slots=True)
class ChangeFrames:
    """A change between two phases: its yellow and all-red (s) and the state of each tick."""

    yellow_s: float
    all_red_s: float
    frames: tuple[str, ...]


def link_clearances(
    program: TlsProgram, policy: str = ITE, tick_s: float = 1.0
) -> tuple[LinkClearance, ...]:
    """Clearance of every link of ``program`` (by link index) under ``policy``.

    Where several connections share a link index, the longest yellow and all-red count; a
    position of the state string with no connection gets 3 s / 1 s.
    """
    if policy not in CLEARANCE_POLICIES:
        raise SimulationError(
            f"unknown clearance policy {policy!r}; known: {', '.join(CLEARANCE_POLICIES)}"
        )
    by_index: dict[int, LinkClearance] = {}
    for link in program.links:
        if policy == MINIMUM:
            yellow, red = YELLOW_FLOOR_S, ALL_RED_FLOOR_S
        else:
            lane = program.lanes[link.in_lane]
            yellow = ite_yellow_s(lane.speed_m_s, lane.grade)
            red = ite_all_red_s(link.path_m, lane.speed_m_s)
        mine = LinkClearance(whole_ticks_s(yellow, tick_s), whole_ticks_s(red, tick_s))
        seen = by_index.get(link.index, mine)
        by_index[link.index] = LinkClearance(
            max(seen.yellow_s, mine.yellow_s), max(seen.all_red_s, mine.all_red_s)
        )
    width = len(program.phases[0].state) if program.phases else 0
    floor = LinkClearance(
        whole_ticks_s(YELLOW_FLOOR_S, tick_s), whole_ticks_s(ALL_RED_FLOOR_S, tick_s)
    )
    out = [by_index.get(i, floor) for i in range(width)]
    return tuple(out)


def _ends(now: str, nxt: str) -> bool:
    return now in GREEN_CHARS and (nxt not in GREEN_CHARS or (now == "G" and nxt == "g"))


def change_frames(
    green: str, following: str, clearances: Sequence[LinkClearance], tick_s: float = 1.0
) -> ChangeFrames:
    """Return the change from the state ``green`` to the state ``following``, tick by tick."""
    ending = [i for i, (a, b) in enumerate(zip(green, following, strict=True)) if _ends(a, b)]
    if not ending:
        return ChangeFrames(0.0, 0.0, ())
    yellow = max(clearances[i].yellow_s for i in ending)
    total = max(clearances[i].yellow_s + clearances[i].all_red_s for i in ending)
    frames = []
    for k in range(round(total / tick_s)):
        t = k * tick_s
        chars = []
        for i, (a, b) in enumerate(zip(green, following, strict=True)):
            if i in ending:
                chars.append("y" if t < clearances[i].yellow_s - 1e-9 else "r")
            elif (a in GREEN_CHARS and b in GREEN_CHARS) or (a == b and a in "sO"):
                chars.append(a)
            else:
                chars.append("r")
        frames.append("".join(chars))
    return ChangeFrames(yellow, total - yellow, tuple(frames))
