"""Counting lines: which tracks crossed which line, in which direction, once.

A counting line is directed from its first point ``a`` to its second ``b``. A point's side
is the sign of the cross product ``(b - a) x (p - a)`` in image coordinates (y down):
positive is the right-hand side as seen on the image, so :attr:`Direction.FORWARD` is a
move from negative (left) to positive (right). A point exactly on the line gives no
information and is skipped.

Per track and line the counter keeps the confirmed side: the side of the track's first
observation off the line, so a track born on one side can only count a move to the other
and a track that never leaves the side it was born on never counts. When the track's
anchor shows up on the other side, the change is *pending*; it is confirmed

- once the anchor has held the new side for ``confirm_frames`` consecutive observations;
- or when the track ends while pending (:meth:`LineCounter.end`: expired or dropped by a
  bound) or the counter is flushed (:meth:`LineCounter.flush`, the end of a recording):
  at low sampling rates a vehicle often leaves the image one or two frames after the line,
  before it could hold the new side for ``confirm_frames`` frames.

A return to the old side cancels the pending change, so a box flickering across the line
never counts while it flickers, and counts at most once when it settles or ends on the new
side. A confirmed change counts when the move from the last anchor on the old side to the
first anchor on the new side crosses the line between its endpoints, and only once per
track and line: a track that counted one direction never counts the other afterwards (a
vehicle does not cross a counting line back and forth; a track that seems to is a box
jumping between vehicles, and counting it twice would add a vehicle that is not there).
Every :class:`CrossingEvent` carries the caller's ``stamp`` of the frame where the track
was first seen on the new side (the crossing), whichever frame or end confirmed it. The
state lives as long as the track and is bounded.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from atcs.types import Direction, FloatArray, IntArray, LineId, SegmentId, TrackId, VehicleClass

S = TypeVar("S")

_FORWARD_BIT = 1
_BACKWARD_BIT = 2


@dataclass(frozen=True, slots=True)
class LineGeometry:
    """A counting line in pixels (already clipped to the image) and its labels."""

    line_id: LineId
    segment_id: SegmentId
    a_px: tuple[float, float]
    b_px: tuple[float, float]
    forward_label: str = "forward"
    backward_label: str = "backward"

    def sides(self, points: FloatArray) -> FloatArray:
        """Cross product per point (N, 2): > 0 right of the line, < 0 left, 0 on it."""
        ax, ay = self.a_px
        dx, dy = self.b_px[0] - ax, self.b_px[1] - ay
        pts = points.astype(np.float64)
        out: FloatArray = (dx * (pts[:, 1] - ay) - dy * (pts[:, 0] - ax)).astype(np.float64)
        return out

    def crossing_param(self, p0: tuple[float, float], p1: tuple[float, float]) -> float:
        """Where the move ``p0`` -> ``p1`` meets the line, as a fraction of ``a``->``b``.

        ``p0`` and ``p1`` must lie on opposite sides; 0..1 is between the endpoints.
        """
        ax, ay = self.a_px
        dx, dy = self.b_px[0] - ax, self.b_px[1] - ay
        c0 = dx * (p0[1] - ay) - dy * (p0[0] - ax)
        c1 = dx * (p1[1] - ay) - dy * (p1[0] - ax)
        u = c0 / (c0 - c1)
        x = p0[0] + u * (p1[0] - p0[0])
        y = p0[1] + u * (p1[1] - p0[1])
        return ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)


@dataclass(slots=True)
class _LineState(Generic[S]):
    side: int = 0  # confirmed side: -1 left, +1 right, 0 not yet known
    ref: tuple[float, float] = (0.0, 0.0)  # last anchor seen on the confirmed side
    pending: int = 0  # frames held on the other side
    pending_ok: bool = False  # the pending move crossed between the endpoints
    pending_stamp: S | None = None  # stamp of the first frame on the other side
    pending_ref: tuple[float, float] = (0.0, 0.0)  # last anchor seen on the other side
    counted: int = 0  # bit set of the direction already counted (at most one)


@dataclass(slots=True)
class _TrackState(Generic[S]):
    class_id: int  # class of the last observation
    lines: list[_LineState[S]]


@dataclass(frozen=True, slots=True)
class CrossingEvent(Generic[S]):
    """One confirmed crossing: index of the line, track, its class and the direction.

    ``stamp`` is what the caller passed with the frame where the track was first seen on
    the new side; ``by_end`` is True when the track's end (or a flush) confirmed it.
    """

    line_index: int
    track_id: TrackId
    vehicle_class: VehicleClass
    direction: Direction
    stamp: S
    by_end: bool = False


def _direction(side: int) -> tuple[Direction, int]:
    return (Direction.FORWARD, _FORWARD_BIT) if side > 0 else (Direction.BACKWARD, _BACKWARD_BIT)


class LineCounter(Generic[S]):
    """Counts confirmed crossings of a camera's lines; one per camera, not thread-safe.

    ``S`` is the type of the per-frame stamp the caller passes to :meth:`update` (a frame
    number, a time ...); events give back the stamp of the frame where the track crossed.
    """

    def __init__(self, lines: Sequence[LineGeometry], confirm_frames: int, max_tracks: int) -> None:
        self.lines = tuple(lines)
        self._confirm = max(1, confirm_frames)
        self._max_tracks = max(1, max_tracks)
        self._state: OrderedDict[int, _TrackState[S]] = OrderedDict()

    def __len__(self) -> int:
        """Return the number of tracks with line state."""
        return len(self._state)

    def forget(self, track_ids: Iterable[int]) -> None:
        """Drop the state of tracks without confirming their pending crossings."""
        for tid in track_ids:
            self._state.pop(int(tid), None)

    def end(self, track_ids: Iterable[int]) -> list[CrossingEvent[S]]:
        """Tracks that ended: drop their state; return the pending crossings this confirms.

        A track pending on the new side of a line (seen there for at least one frame but
        fewer than ``confirm_frames``) counts the crossing now, once.
        """
        events: list[CrossingEvent[S]] = []
        for tid in track_ids:
            track = self._state.pop(int(tid), None)
            if track is not None:
                events += self._settle(int(tid), track)
        return events

    def flush(self) -> list[CrossingEvent[S]]:
        """Confirm every pending crossing now (the end of the input); tracks are kept.

        A flushed crossing is final: the track's state moves to the new side, as if it had
        held it for ``confirm_frames`` frames.
        """
        events: list[CrossingEvent[S]] = []
        for tid, track in self._state.items():
            events += self._settle(tid, track)
        return events

    def update(
        self, track_ids: IntArray, anchors: FloatArray, class_ids: IntArray, stamp: S
    ) -> list[CrossingEvent[S]]:
        """Feed one frame's tracked anchors (N, 2); return the crossings confirmed now.

        ``stamp`` identifies the frame for the events it may later date. Tracks evicted by
        the bound on the state end (see :meth:`end`) and their crossings are returned too.
        """
        if not self.lines or len(track_ids) == 0:
            return []
        sides = np.sign(np.stack([ln.sides(anchors) for ln in self.lines], axis=1)).astype(int)
        events: list[CrossingEvent[S]] = []
        for row, tid in enumerate(track_ids.tolist()):
            class_id = int(class_ids[row])
            track = self._state.get(tid)
            if track is None:
                track = _TrackState(class_id, [_LineState[S]() for _ in self.lines])
                self._state[tid] = track
                while len(self._state) > self._max_tracks:
                    old_tid, old = self._state.popitem(last=False)
                    events += self._settle(old_tid, old)
            else:
                track.class_id = class_id
                self._state.move_to_end(tid)
            anchor = (float(anchors[row, 0]), float(anchors[row, 1]))
            for li, st in enumerate(track.lines):
                hit = self._step(li, st, int(sides[row, li]), anchor, stamp)
                if hit is not None:
                    events.append(CrossingEvent(li, TrackId(tid), VehicleClass(class_id), *hit))
        return events

    def _step(
        self, li: int, st: _LineState[S], side: int, anchor: tuple[float, float], stamp: S
    ) -> tuple[Direction, S] | None:
        if side == 0:
            return None
        if st.side in (0, side):
            st.side = side
            st.ref = anchor
            st.pending = 0
            st.pending_stamp = None
            return None
        if st.pending == 0:
            t = self.lines[li].crossing_param(st.ref, anchor)
            st.pending_ok = 0.0 <= t <= 1.0
            st.pending_stamp = stamp
        st.pending += 1
        st.pending_ref = anchor
        if st.pending < self._confirm:
            return None
        return self._confirm_pending(st)

    @staticmethod
    def _confirm_pending(st: _LineState[S]) -> tuple[Direction, S] | None:
        """Move to the pending side; return the direction and stamp when it counts (once)."""
        side = -st.side
        stamp = st.pending_stamp
        st.side = side
        st.ref = st.pending_ref
        st.pending = 0
        st.pending_stamp = None
        direction, bit = _direction(side)
        if stamp is None or not st.pending_ok or st.counted:
            return None
        st.counted |= bit
        return direction, stamp

    def _settle(self, tid: int, track: _TrackState[S]) -> list[CrossingEvent[S]]:
        """Confirm the track's pending crossings (it ended or the counter is flushed)."""
        events: list[CrossingEvent[S]] = []
        for li, st in enumerate(track.lines):
            if st.pending == 0:
                continue
            hit = self._confirm_pending(st)
            if hit is not None:
                direction, stamp = hit
                vclass = VehicleClass(track.class_id)
                events.append(CrossingEvent(li, TrackId(tid), vclass, direction, stamp, True))
        return events
