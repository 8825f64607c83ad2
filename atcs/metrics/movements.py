"""Turning movements: which tracks went from which zone to which, once each.

Each intersection seen by a camera has named zones (polygons in pixels) where movements
start (``entry`` or ``both``) and where they end (``exit`` or ``both``). Per track the
counter keeps its *origin*: the last start zone its anchor (bottom centre of the box) was
in before the track was first seen outside every zone (in the intersection); from then on
the origin is fixed, so a vehicle crossing a start zone on its way (a left turn through
the far arm's zone) keeps the arm it came from, and a track first seen inside the
intersection has no origin. When the anchor is in an end zone other than the origin, the
arrival is *pending*;
it counts once the track has held that zone for ``confirm_frames`` consecutive frames, or
when the track ends (or the counter is flushed) while pending there, as line crossings
do (:mod:`atcs.metrics.lines`). A track counts one movement at most: it never counts again,
whatever zones it enters afterwards (a vehicle crosses an intersection once; a track that
seems to cross twice is a box jumping between vehicles). A track without an origin never
counts; a return into the origin zone counts nothing (U-turns count when the arm's inbound
and outbound lanes are separate zones).

Every :class:`MovementEvent` carries the caller's stamp of the frame where the track was
first seen in the end zone. State is bounded by ``max_tracks`` (least recently seen dropped,
its pending arrival confirmed).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

import numpy as np

from atcs.metrics.geometry import PreparedPolygon
from atcs.types import (
    CameraId,
    FloatArray,
    IntArray,
    IntersectionId,
    MovementCount,
    MovementCounts,
    SiteId,
    TrackId,
    VehicleClass,
    ZoneId,
)

S = TypeVar("S")

MovementKey = tuple[IntersectionId, ZoneId, ZoneId, VehicleClass]
"""Intersection, start zone, end zone and class of a movement."""


@dataclass(frozen=True, slots=True, eq=False)
class ZoneGeometry:
    """A zone in pixels: its intersection, whether movements start or end in it."""

    zone_id: ZoneId
    intersection_id: IntersectionId
    polygon: PreparedPolygon
    starts: bool
    ends: bool


@dataclass(frozen=True, slots=True)
class MovementEvent(Generic[S]):
    """One counted movement of one track; ``stamp`` is the frame it reached the end zone."""

    intersection_id: IntersectionId
    from_zone: ZoneId
    to_zone: ZoneId
    track_id: TrackId
    vehicle_class: VehicleClass
    stamp: S

    @property
    def key(self) -> MovementKey:
        """Intersection, zones and class: what a window counts."""
        return (self.intersection_id, self.from_zone, self.to_zone, self.vehicle_class)


@dataclass(slots=True)
class _TrackState(Generic[S]):
    class_id: int
    origin: int = -1  # zone index of the last start zone the track was in
    inside: bool = False  # seen outside every zone: the origin is fixed
    pending: int = -1  # zone index the track is arriving in
    held: int = 0  # frames held in the pending zone
    stamp: S | None = None  # frame it was first seen in the pending zone
    counted: bool = False


class MovementCounter(Generic[S]):
    """Counts turning movements of one camera's zones (module docstring); not thread-safe."""

    def __init__(self, zones: Sequence[ZoneGeometry], confirm_frames: int, max_tracks: int) -> None:
        self.zones = tuple(zones)
        self._confirm = max(1, confirm_frames)
        self._max_tracks = max(1, max_tracks)
        self._state: OrderedDict[int, _TrackState[S]] = OrderedDict()

    def __len__(self) -> int:
        """Return the number of tracks with state."""
        return len(self._state)

    def forget(self, track_ids: Iterable[int]) -> None:
        """Drop tracks without counting what they had pending (duplicates of another)."""
        for tid in track_ids:
            self._state.pop(int(tid), None)

    def end(self, track_ids: Iterable[int]) -> list[MovementEvent[S]]:
        """Tracks that ended: drop them; return the pending arrivals this confirms."""
        events: list[MovementEvent[S]] = []
        for tid in track_ids:
            state = self._state.pop(int(tid), None)
            if state is not None:
                events += self._settle(int(tid), state)
        return events

    def flush(self) -> list[MovementEvent[S]]:
        """Confirm every pending arrival now (the end of the input); tracks are kept."""
        events: list[MovementEvent[S]] = []
        for tid, state in self._state.items():
            events += self._settle(tid, state)
        return events

    def _zone_of(self, anchors: FloatArray) -> IntArray:
        """Index of the first zone holding each anchor (N, 2), -1 for none."""
        out = np.full(len(anchors), -1, dtype=np.int64)
        for index in range(len(self.zones) - 1, -1, -1):
            out[self.zones[index].polygon.contains(anchors)] = index
        return out

    def update(
        self, track_ids: IntArray, anchors: FloatArray, class_ids: IntArray, stamp: S
    ) -> list[MovementEvent[S]]:
        """Feed one frame's tracked anchors (N, 2); return the movements counted now."""
        if not self.zones or len(track_ids) == 0:
            return []
        inside = self._zone_of(anchors)
        events: list[MovementEvent[S]] = []
        for row, tid in enumerate(track_ids.tolist()):
            state = self._state.get(tid)
            if state is None:
                state = _TrackState[S](int(class_ids[row]))
                self._state[tid] = state
                while len(self._state) > self._max_tracks:
                    old_tid, old = self._state.popitem(last=False)
                    events += self._settle(old_tid, old)
            else:
                state.class_id = int(class_ids[row])
                self._state.move_to_end(tid)
            if not state.counted:
                event = self._step(tid, state, int(inside[row]), stamp)
                if event is not None:
                    events.append(event)
        return events

    def _step(
        self, tid: int, state: _TrackState[S], zone: int, stamp: S
    ) -> MovementEvent[S] | None:
        if state.pending >= 0:
            if zone == state.pending:
                state.held += 1
                return self._confirm_pending(tid, state) if state.held >= self._confirm else None
            state.pending, state.held, state.stamp = -1, 0, None
        if zone < 0:
            state.inside = True
            return None
        geom = self.zones[zone]
        origin_ok = state.origin >= 0 and zone != state.origin
        if (
            geom.ends
            and origin_ok
            and self.zones[state.origin].intersection_id == (geom.intersection_id)
        ):
            state.pending, state.held, state.stamp = zone, 1, stamp
            return self._confirm_pending(tid, state) if self._confirm <= 1 else None
        if geom.starts and not state.inside:
            state.origin = zone
        return None

    def _confirm_pending(self, tid: int, state: _TrackState[S]) -> MovementEvent[S] | None:
        stamp = state.stamp
        if stamp is None or state.origin < 0 or state.pending < 0:
            return None
        origin, dest = self.zones[state.origin], self.zones[state.pending]
        state.counted = True
        state.pending, state.held, state.stamp = -1, 0, None
        return MovementEvent(
            origin.intersection_id,
            origin.zone_id,
            dest.zone_id,
            TrackId(tid),
            VehicleClass(state.class_id),
            stamp,
        )

    def _settle(self, tid: int, state: _TrackState[S]) -> list[MovementEvent[S]]:
        if state.counted or state.pending < 0:
            return []
        event = self._confirm_pending(tid, state)
        return [] if event is None else [event]


@dataclass(frozen=True, slots=True)
class MovementSpec:
    """The movements of one intersection a window reports: every start/end zone pair."""

    intersection_id: IntersectionId
    pairs: tuple[tuple[ZoneId, ZoneId], ...]

    @classmethod
    def of(cls, zones: Sequence[ZoneGeometry]) -> list[MovementSpec]:
        """One spec per intersection of ``zones``, pairs in zone order (no zone to itself)."""
        out: list[MovementSpec] = []
        for ix in dict.fromkeys(z.intersection_id for z in zones):
            mine = [z for z in zones if z.intersection_id == ix]
            pairs = tuple(
                (a.zone_id, b.zone_id)
                for a in mine
                if a.starts
                for b in mine
                if b.ends and b.zone_id != a.zone_id
            )
            out.append(cls(ix, pairs))
        return out


@dataclass(frozen=True, slots=True)
class MovementWindow:
    """What the camera's window gives a movement matrix: its span, frames, observed time."""

    site_id: SiteId
    camera_id: CameraId
    start: datetime
    end: datetime
    frames: int
    observed_s: float
    partial: bool


def movement_counts(
    spec: MovementSpec, window: MovementWindow, counts: Mapping[MovementKey, int]
) -> MovementCounts:
    """Build the matrix of ``spec`` over ``window`` from its ``counts`` (zeros included)."""
    ix = spec.intersection_id
    return MovementCounts(
        site_id=window.site_id,
        camera_id=window.camera_id,
        intersection_id=ix,
        window_start=window.start,
        window_end=window.end,
        frames=window.frames,
        observed_s=window.observed_s,
        partial=window.partial,
        stale=window.frames == 0,
        counts=tuple(
            MovementCount(a, b, vc, int(counts.get((ix, a, b, vc), 0)))
            for a, b in spec.pairs
            for vc in VehicleClass
        ),
    )
