"""What the engine needs to know about a SUMO network's traffic lights, as plain data.

:func:`read_programs` reads the ``.net.xml`` with ``sumolib`` (no simulation) and returns one
:class:`TlsProgram` per traffic light: its signal links (link index, incoming lane, outgoing
lane), the phases of the program it runs from the start, and the lanes involved.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atcs.errors import SimulationError

log = logging.getLogger(__name__)

GREEN_CHARS = frozenset("Gg")
"""SUMO signal characters that let a link's vehicles drive (priority and permissive green)."""

TRANSITION_CHARS = frozenset("yYu")
"""SUMO signal characters of change intervals (amber, and red-amber)."""


@dataclass(frozen=True, slots=True)
class LaneInfo:
    """One lane: its id, its edge, its index on the edge (0 = rightmost), length in metres.

    ``upstream`` is the chain of lanes leading into it without a choice (each the only
    lane feeding the next, no traffic light in between), nearest first, as ``(lane id,
    length m)``; ``downstream`` the same chain leading out of it. Both stop after
    :data:`CHAIN_M` metres. ``speed_m_s`` is the lane's speed limit; ``grade`` its slope
    toward the junction (decimal, + uphill; 0 on a network without elevations).
    """

    lane_id: str
    edge_id: str
    index: int
    length_m: float
    upstream: tuple[tuple[str, float], ...] = ()
    downstream: tuple[tuple[str, float], ...] = ()
    speed_m_s: float = 13.89
    grade: float = 0.0


CHAIN_M = 300.0
"""How far (m) lane chains are followed up- and downstream."""


@dataclass(frozen=True, slots=True)
class SignalLink:
    """One signal link: the index into the state string, from ``in_lane`` to ``out_lane``.

    ``path_m`` is the length of its path through the junction (stop line to exit), the
    crossing width of the ITE all-red formula (0 when the network has no internal lanes).
    """

    index: int
    in_lane: str
    out_lane: str
    path_m: float = 0.0


@dataclass(frozen=True, slots=True)
class ProgramPhase:
    """One phase of a SUMO program: state string and durations in seconds.

    ``min_dur_s`` / ``max_dur_s`` are the program's actuated bounds (None when unset).
    """

    state: str
    duration_s: float
    min_dur_s: float | None = None
    max_dur_s: float | None = None

    @property
    def is_green(self) -> bool:
        """A green phase serves some link and shows no amber."""
        chars = set(self.state)
        return bool(chars & GREEN_CHARS) and not chars & TRANSITION_CHARS


@dataclass(frozen=True, slots=True)
class TlsProgram:
    """A traffic light and the program it starts with.

    ``links`` are the controlled connections sorted by index (several may share one; a
    position of the state strings may have none);
    ``lanes`` describes every lane named by a link.
    """

    tls_id: str
    program_id: str
    offset_s: float
    phases: tuple[ProgramPhase, ...]
    links: tuple[SignalLink, ...]
    lanes: Mapping[str, LaneInfo]

    @property
    def cycle_s(self) -> float:
        """Sum of the program's phase durations in seconds."""
        return sum(p.duration_s for p in self.phases)


def _bound(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _signalised(node: Any) -> bool:
    return "traffic_light" in str(node.getType())


def _drivable(lane: Any) -> bool:
    return bool(lane.allows("passenger") or lane.allows("motorcycle"))


def _next(connections: list[Any], upstream: bool) -> Any | None:
    """Return the lane a chain continues to: the only connection, else the only straight one."""
    conns = [
        c
        for c in connections
        if c.getDirection() not in ("t", "T")
        and _drivable(c.getFromLane() if upstream else c.getToLane())
        and not str((c.getFromLane() if upstream else c.getToLane()).getID()).startswith(":")
    ]
    if len(conns) != 1:
        conns = [c for c in conns if c.getDirection() == "s"]
    if len(conns) != 1:
        return None
    return conns[0].getFromLane() if upstream else conns[0].getToLane()


def _chain(lane: Any, upstream: bool) -> tuple[tuple[str, float], ...]:
    """Lanes reached from ``lane`` without a choice, up- or downstream (see LaneInfo)."""
    out: list[tuple[str, float]] = []
    seen = {lane.getID()}
    total = 0.0
    current = lane
    while total < CHAIN_M:
        if upstream:
            node = current.getEdge().getFromNode()
            nxt = _next(current.getIncomingConnections(), upstream=True)
        else:
            node = current.getEdge().getToNode()
            nxt = _next(current.getOutgoing(), upstream=False)
        if nxt is None or _signalised(node) or nxt.getID() in seen:
            break
        current = nxt
        seen.add(current.getID())
        total += float(current.getLength())
        out.append((str(current.getID()), float(current.getLength())))
    return tuple(out)


def _grade(lane: Any) -> float:
    """Slope of ``lane`` along its length (0 without elevations)."""
    shape = lane.getShape(True) if hasattr(lane, "getShape") else []
    length = float(lane.getLength())
    if len(shape) < 2 or len(shape[0]) < 3 or length <= 0:
        return 0.0
    return float(shape[-1][2] - shape[0][2]) / length


def _lane_info(lane: Any) -> LaneInfo:
    return LaneInfo(
        lane_id=str(lane.getID()),
        edge_id=str(lane.getEdge().getID()),
        index=int(lane.getIndex()),
        length_m=float(lane.getLength()),
        upstream=_chain(lane, upstream=True),
        downstream=_chain(lane, upstream=False),
        speed_m_s=float(lane.getSpeed()),
        grade=_grade(lane),
    )


def _path_m(net: Any, in_lane: Any, out_lane: Any) -> float:
    """Length (m) of the internal lanes from ``in_lane`` to ``out_lane`` (0 if none)."""
    for conn in in_lane.getOutgoing():
        if conn.getToLane() is not out_lane:
            continue
        total, via, seen = 0.0, conn.getViaLaneID(), set()
        while via and via not in seen:
            seen.add(via)
            lane = net.getLane(via)
            total += float(lane.getLength())
            nxt = [c.getViaLaneID() or "" for c in lane.getOutgoing()]
            via = next((v for v in nxt if v.startswith(":")), "")
            if not via:
                onward = [c.getToLane() for c in lane.getOutgoing()]
                via = next((o.getID() for o in onward if o.getID().startswith(":")), "")
        return total
    return 0.0


def _program(tls: Any) -> tuple[str, Any]:
    programs: dict[str, Any] = dict(tls.getPrograms())
    if not programs:
        raise SimulationError(f"traffic light {tls.getID()!r} has no signal program")
    program_id = "0" if "0" in programs else sorted(programs)[0]
    return program_id, programs[program_id]


def read_programs(net_file: Path) -> tuple[TlsProgram, ...]:
    """Read every traffic light of the network at ``net_file`` with its starting program."""
    try:
        import sumolib
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise SimulationError("sumolib is missing; install 'atcs[sim]'") from exc
    try:
        net = sumolib.net.readNet(str(net_file), withPrograms=True, withInternal=True)
    except Exception as exc:  # sumolib raises assorted errors on bad files
        raise SimulationError(f"cannot read SUMO network {net_file}: {exc}") from exc
    out: list[TlsProgram] = []
    for tls in net.getTrafficLights():
        program_id, program = _program(tls)
        lanes: dict[str, LaneInfo] = {}
        links: list[SignalLink] = []
        for in_lane, out_lane, index in tls.getConnections():
            lanes[in_lane.getID()] = _lane_info(in_lane)
            lanes[out_lane.getID()] = _lane_info(out_lane)
            links.append(
                SignalLink(
                    int(index),
                    str(in_lane.getID()),
                    str(out_lane.getID()),
                    _path_m(net, in_lane, out_lane),
                )
            )
        phases = tuple(
            ProgramPhase(
                state=str(ph.state),
                duration_s=float(ph.duration),
                min_dur_s=_bound(getattr(ph, "minDur", None)),
                max_dur_s=_bound(getattr(ph, "maxDur", None)),
            )
            for ph in program.getPhases()
        )
        width = len(phases[0].state) if phases else 0
        indices = sorted({link.index for link in links})
        if not indices or indices[-1] >= width:
            log.warning(
                "traffic light %s: links %s do not fit its %d signals; left to its program",
                tls.getID(),
                indices,
                width,
            )
            continue
        out.append(
            TlsProgram(
                tls_id=str(tls.getID()),
                program_id=program_id,
                offset_s=float(getattr(program, "_offset", 0.0) or 0.0),
                phases=phases,
                links=tuple(sorted(links, key=lambda ln: (ln.index, ln.in_lane, ln.out_lane))),
                lanes=lanes,
            )
        )
    return tuple(out)
