"""The phase controllers fed as a control node is fed over the bus: late zones, some lost (pure).

The view ``vehicles`` hands the phase controllers, at each decision, every vehicle the
cameras detect at that very second. A control node on another machine gets the same
per-frame zones from the bus (``{p}/segments/{segment}/zone``, docs/phase-control.md):
each segment's newest frame, sent at most once a second at QoS 0, so a zone is up to
about a second old when the control tick reads it, and a lost message leaves the segment
with the zone before it. :class:`~atcs.control.phase_live.LivePhase` uses a segment's
newest zone while it is no older than ``frame_stale_s`` (2 s) and the segment's windows
after that. The view ``bus`` runs the controllers on that:

- each step's detected vehicles per segment (what ``vehicles`` would show) become one zone
  message captured at the step's end; each message is lost with probability ``loss``
  (independent draws from ``seed``) and the others arrive ``age_s`` seconds later;
- at a decision each segment's zone is the newest arrived one if it was captured no more
  than ``stale_s`` seconds before, else the segment's zone from the windows
  (:class:`~atcs.sim.window_view.WindowZones`), as the live service falls back;
- a segment whose camera is down has no zone (its phases go on recall).

With ``age_s`` 0 and ``loss`` 0 it shows what ``vehicles`` shows.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from atcs.errors import SimulationError
from atcs.sim.window_view import WindowZones
from atcs.types import SegmentId
from controllers.phase.observe import ZoneSnapshot, ZoneView

DEFAULT_STALE_S = 2.0
"""A zone older than this (s) gives way to the windows (``frame_stale_s``'s default)."""


@dataclass(frozen=True, slots=True)
class _Message:
    arrives_s: float
    captured_s: float
    segment_id: SegmentId
    zone: ZoneSnapshot


class BusZones:
    """Per-segment zones delivered ``age_s`` late, a share ``loss`` lost (module docstring)."""

    def __init__(
        self,
        windows: WindowZones,
        *,
        age_s: float,
        loss: float,
        stale_s: float = DEFAULT_STALE_S,
        seed: int = 0,
    ) -> None:
        if not age_s >= 0:
            raise SimulationError(f"zone age must be 0 s or more, got {age_s!r}")
        if not 0 <= loss < 1:
            raise SimulationError(f"zone loss must be in [0, 1), got {loss!r}")
        self._windows = windows
        self._age_s = age_s
        self.loss = loss
        """Share of the messages lost (0..1; may be changed between steps)."""
        self._stale_s = stale_s
        self._rng = random.Random(seed)
        self._in_flight: deque[_Message] = deque()
        self._kept: dict[SegmentId, _Message] = {}
        self.sent = 0
        self.lost = 0
        self.from_windows = 0
        """Zones a decision took from the windows because the newest message was stale."""

    def add(self, at_s: float, zones: Mapping[SegmentId, ZoneSnapshot]) -> None:
        """Send the step that ends at ``at_s`` (s): one message per segment's detected vehicles."""
        self._windows.add(at_s, zones)
        for seg_id, zone in zones.items():
            self.sent += 1
            if self.loss and self._rng.random() < self.loss:
                self.lost += 1
                continue
            self._in_flight.append(_Message(at_s + self._age_s, at_s, seg_id, zone))

    def view(self, at_s: float, down: Collection[SegmentId] = ()) -> ZoneView:
        """Zones at ``at_s`` (s): the newest arrived fresh message, else the windows' zone."""
        while self._in_flight and self._in_flight[0].arrives_s <= at_s + 1e-9:
            message = self._in_flight.popleft()
            self._kept[message.segment_id] = message
        windows = self._windows.view(at_s, down)
        zones: dict[SegmentId, ZoneSnapshot] = {}
        # in the order the segments first came (a set's order would follow string hashing,
        # which differs from process to process, and the controllers' sums with it)
        order = [*self._kept, *(seg for seg in windows.zones if seg not in self._kept)]
        for seg_id in order:
            if seg_id in down:
                continue
            kept = self._kept.get(seg_id)
            if kept is not None and at_s - kept.captured_s <= self._stale_s + 1e-9:
                zones[seg_id] = kept.zone
            elif seg_id in windows.zones:
                zones[seg_id] = windows.zones[seg_id]
                self.from_windows += 1
        return ZoneView(at_s, zones)
