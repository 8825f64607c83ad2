"""A bounded frame queue that drops the oldest frame when full (latest-frame semantics)."""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import datetime

from atcs.errors import SourceError
from atcs.types import Frame


class FrameQueue:
    """Holds at most ``maxsize`` frames; :meth:`put` drops the oldest when full.

    Several queues may share one ``condition`` so that a consumer can wait for a frame
    from any of them (see :class:`atcs.sources.group.CameraGroup`).
    """

    def __init__(self, maxsize: int, condition: threading.Condition | None = None) -> None:
        if maxsize < 1:
            raise SourceError(f"frame queue size must be at least 1, got {maxsize}")
        self._frames: deque[Frame] = deque(maxlen=maxsize)
        self._cond = condition if condition is not None else threading.Condition()
        self.maxsize = maxsize
        self.dropped = 0

    @property
    def condition(self) -> threading.Condition:
        """The condition notified on every put."""
        return self._cond

    def __len__(self) -> int:
        with self._cond:
            return len(self._frames)

    def put(self, frame: Frame) -> bool:
        """Append ``frame``; drop the oldest if full. True when a frame was dropped."""
        with self._cond:
            full = len(self._frames) == self.maxsize
            if full:
                self.dropped += 1
            self._frames.append(frame)
            self._cond.notify_all()
            return full

    def put_wait(self, frame: Frame, stop: threading.Event, poll_s: float = 0.1) -> bool:
        """Append ``frame`` once there is room (no drop); False if ``stop`` was set first."""
        with self._cond:
            while len(self._frames) >= self.maxsize:
                if stop.is_set():
                    return False
                self._cond.wait(poll_s)
            self._frames.append(frame)
            self._cond.notify_all()
            return True

    def get_nowait(self) -> Frame | None:
        """Remove and return the oldest waiting frame, or None."""
        with self._cond:
            return self._pop()

    def oldest_captured_at(self) -> datetime | None:
        """Capture time (aware UTC) of the oldest waiting frame, or None when empty."""
        with self._cond:
            return self._frames[0].captured_at if self._frames else None

    def _pop(self) -> Frame | None:
        if not self._frames:
            return None
        frame = self._frames.popleft()
        self._cond.notify_all()
        return frame

    def get(self, timeout_s: float | None = None) -> Frame | None:
        """Remove and return the oldest waiting frame; wait up to ``timeout_s`` (s)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while not self._frames:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._pop()

    def get_latest(self) -> Frame | None:
        """Return the newest frame and discard the older ones (counted as dropped), or None."""
        with self._cond:
            if not self._frames:
                return None
            frame = self._frames.pop()
            self.dropped += len(self._frames)
            self._frames.clear()
            self._cond.notify_all()
            return frame

    def clear(self) -> None:
        """Discard every waiting frame."""
        with self._cond:
            self._frames.clear()
            self._cond.notify_all()
