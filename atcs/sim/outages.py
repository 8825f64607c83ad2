"""Camera outages injected into a closed-loop run (pure).

A share of the approach cameras (segments) goes down once each, for ``duration_s``, at a
start drawn from the seed within the run. While down, a camera sees nothing: its windows
close ``stale``, the phase-by-phase controllers get no snapshot of it, and the signal
controller puts the phases it feeds on recall (as it would on a detector fault).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from atcs.types import SegmentId


@dataclass(frozen=True, slots=True)
class CameraOutage:
    """One camera down from ``start_s`` to ``end_s`` (SUMO seconds)."""

    segment_id: SegmentId
    start_s: float
    end_s: float


def plan_outages(
    segments: Iterable[SegmentId],
    begin_s: float,
    end_s: float,
    *,
    share: float,
    duration_s: float,
    seed: int,
) -> tuple[CameraOutage, ...]:
    """Take ``share`` (0..1) of ``segments`` down once each for ``duration_s`` seconds."""
    ids = sorted(set(segments))
    rng = random.Random(f"outages-{seed}")
    chosen = rng.sample(ids, round(share * len(ids))) if ids else []
    latest = max(begin_s, end_s - duration_s)
    out = []
    for seg in sorted(chosen):
        start = rng.uniform(begin_s, latest)
        out.append(CameraOutage(seg, start, start + duration_s))
    return tuple(out)


def down_at(outages: Sequence[CameraOutage], now_s: float) -> frozenset[SegmentId]:
    """Segments whose camera is down at ``now_s``."""
    return frozenset(o.segment_id for o in outages if o.start_s <= now_s < o.end_s)
