"""Per-frame segment zones leaving a measuring node, for a phase-mode control node elsewhere.

:class:`ZoneOut` is an engine frame observer (roles ``all`` and ``edge``): for each segment
it was given (those with a stop line that feed a phase-mode intersection's phases or exits,
:func:`atcs.config.phase_mode.zone_feed_segments`) it hands the newest frame's vehicles
(:class:`~atcs.types.FrameZone`) to ``send`` (the bus's :meth:`~atcs.bus.MqttBus.send_zone`,
QoS 0, not retained) at most once every ``every_s`` seconds of the node's monotonic clock:
the first frame analysed after the interval has passed goes out, the others are skipped.
Frames older than the last one sent for a segment never go out. It runs on the engine's
analysis thread and costs a dictionary look-up per segment and frame, plus one small
message per segment and second; a failure is logged (throttled), never raised.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from datetime import datetime
from typing import TYPE_CHECKING

from atcs.control.frame_zones import frame_zone_of
from atcs.logthrottle import ThrottledLog
from atcs.types import FrameZone, SegmentId

if TYPE_CHECKING:
    from atcs.metrics.analyzer import FrameAnalysis
    from atcs.types import Frame

log = logging.getLogger(__name__)

ZONE_EVERY_S = 1.0
"""Seconds between two zones of one segment on the bus (at most one a second)."""


class ZoneOut:
    """Frame observer sending each given segment's zone at most once per ``every_s``."""

    def __init__(
        self,
        send: Callable[[FrameZone], bool],
        segments: Collection[SegmentId],
        *,
        every_s: float = ZONE_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self.segments = frozenset(segments)
        self._every_s = every_s
        self._clock = clock
        self._last: dict[SegmentId, tuple[float, datetime]] = {}
        self._log = ThrottledLog(log)
        self.sent = 0
        self.failures = 0

    def observe(self, frame: Frame, result: FrameAnalysis) -> None:
        """Send the zones of ``result`` that are due (see the module docstring)."""
        try:
            self._observe(result)
        except Exception as exc:  # an observer must not stop the engine's analysis
            self.failures += 1
            self._log.warning_for("zone", "per-frame zone not sent: %r", exc)

    def _observe(self, result: FrameAnalysis) -> None:
        now = self._clock()
        for seg_frame in result.segments:
            seg = seg_frame.segment_id
            if seg not in self.segments:
                continue
            last = self._last.get(seg)
            if last is not None and (now - last[0] < self._every_s or result.at < last[1]):
                continue
            zone = frame_zone_of(result.camera_id, result.at, seg_frame)
            if zone is None:
                continue
            self._last[seg] = (now, result.at)
            if self._send(zone):
                self.sent += 1
