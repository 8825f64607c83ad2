"""Counting lines: which tracks crossed which line, in which direction, once.

A counting line is directed from its first point ``a`` to its second ``b``. A point's side
is the sign of the cross product ``(b - a) x (p - a)`` in image coordinates (y down):
positive is the right-hand side as seen on the image, so :attr:`Direction.FORWARD` is a
move from negative (left) to positive (right). A point exactly on the line gives no
information and is skipped.

Per track and line the counter keeps the confirmed side. When the track's anchor shows up
on the other side, the change is *pending*; it is confirmed once the anchor has held the
new side for ``confirm_frames`` consecutive observations, and a return to the old side
cancels it, so a box flickering across the line never counts. A confirmed change counts
when the move from the last anchor on the old side to the first anchor on the new side
crosses the line between its endpoints, and only once per track, line and direction.
The state lives as long as the track (:meth:`LineCounter.forget`) and is bounded.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from atcs.types import Direction, FloatArray, IntArray, LineId, SegmentId, TrackId, VehicleClass

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
class _LineState:
    side: int = 0  # confirmed side: -1 left, +1 right, 0 not yet known
    ref: tuple[float, float] = (0.0, 0.0)  # last anchor seen on the confirmed side
    pending: int = 0  # frames held on the other side
    pending_ok: bool = False  # the pending move crossed between the endpoints
    counted: int = 0  # bit set of directions already counted


@dataclass(frozen=True, slots=True)
class CrossingEvent:
    """One confirmed crossing: index of the line, track, its class and the direction."""

    line_index: int
    track_id: TrackId
    vehicle_class: VehicleClass
    direction: Direction


class LineCounter:
    """Counts confirmed crossings of a camera's lines; one per camera, not thread-safe."""

    def __init__(self, lines: Sequence[LineGeometry], confirm_frames: int, max_tracks: int) -> None:
        self.lines = tuple(lines)
        self._confirm = max(1, confirm_frames)
        self._max_tracks = max_tracks
        self._state: OrderedDict[int, list[_LineState]] = OrderedDict()

    def __len__(self) -> int:
        """Return the number of tracks with line state."""
        return len(self._state)

    def forget(self, track_ids: Iterable[int]) -> None:
        """Drop the state of tracks that ended."""
        for tid in track_ids:
            self._state.pop(int(tid), None)

    def update(
        self, track_ids: IntArray, anchors: FloatArray, class_ids: IntArray
    ) -> list[CrossingEvent]:
        """Feed one frame's tracked anchors (N, 2); return the crossings confirmed now."""
        if not self.lines or len(track_ids) == 0:
            return []
        sides = np.sign(np.stack([ln.sides(anchors) for ln in self.lines], axis=1)).astype(int)
        events: list[CrossingEvent] = []
        for row, tid in enumerate(track_ids.tolist()):
            states = self._state.get(tid)
            if states is None:
                states = [_LineState() for _ in self.lines]
                self._state[tid] = states
                while len(self._state) > self._max_tracks:
                    self._state.popitem(last=False)
            else:
                self._state.move_to_end(tid)
            anchor = (float(anchors[row, 0]), float(anchors[row, 1]))
            for li, st in enumerate(states):
                direction = self._step(li, st, int(sides[row, li]), anchor)
                if direction is not None:
                    events.append(
                        CrossingEvent(
                            li, TrackId(tid), VehicleClass(int(class_ids[row])), direction
                        )
                    )
        return events

    def _step(
        self, li: int, st: _LineState, side: int, anchor: tuple[float, float]
    ) -> Direction | None:
        if side == 0:
            return None
        if st.side in (0, side):
            st.side = side
            st.ref = anchor
            st.pending = 0
            return None
        if st.pending == 0:
            t = self.lines[li].crossing_param(st.ref, anchor)
            st.pending_ok = 0.0 <= t <= 1.0
        st.pending += 1
        if st.pending < self._confirm:
            return None
        st.side = side
        st.ref = anchor
        st.pending = 0
        direction, bit = (
            (Direction.FORWARD, _FORWARD_BIT) if side > 0 else (Direction.BACKWARD, _BACKWARD_BIT)
        )
        if not st.pending_ok or st.counted & bit:
            return None
        st.counted |= bit
        return direction
