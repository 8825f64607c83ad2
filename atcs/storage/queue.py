"""A bounded, thread-safe FIFO of encoded lines between the service and the writer thread."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence


class LineQueue:
    """FIFO of line-protocol lines holding at most ``max_lines``; extra lines are refused."""

    def __init__(self, max_lines: int) -> None:
        """Make an empty queue bounded at ``max_lines`` lines."""
        self._max_lines = max_lines
        self._lines: deque[str] = deque()
        self._cond = threading.Condition()
        self._wake_at = max_lines
        self._woken = False

    def __len__(self) -> int:
        return len(self._lines)

    def put(self, lines: Sequence[str]) -> int:
        """Append as many of ``lines`` as fit, in order; return how many were refused."""
        with self._cond:
            room = self._max_lines - len(self._lines)
            taken = lines[: max(room, 0)]
            self._lines.extend(taken)
            if len(self._lines) >= self._wake_at:
                self._cond.notify_all()
            return len(lines) - len(taken)

    def take(self, max_lines: int) -> list[str]:
        """Remove and return up to ``max_lines`` of the oldest lines (no waiting)."""
        with self._cond:
            n = min(max_lines, len(self._lines))
            return [self._lines.popleft() for _ in range(n)]

    def wait(self, min_lines: int, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` seconds for ``min_lines`` lines or a :meth:`wake`."""
        with self._cond:
            if not self._woken and len(self._lines) < min_lines and timeout_s > 0:
                self._wake_at = min_lines
                self._cond.wait(timeout_s)
                self._wake_at = self._max_lines
            self._woken = False

    def wake(self) -> None:
        """End a :meth:`wait` now."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()
