"""Rate-limited log lines: a flood of similar messages becomes a few lines and a summary.

:class:`ThrottledLog` wraps a :class:`logging.Logger`. Each call names a *key* (what makes
messages "similar": a kind of message and a reason, never untrusted text alone). Per key,
the first ``burst`` records of every ``every_s`` seconds are written; the rest are counted,
and the next record of that key after the period (or :meth:`ThrottledLog.flush`, called
periodically by the owner) writes one line ``suppressed N similar message(s) in the last
T s: <key>``. At most ``max_keys`` keys are remembered (least recently used first out; a
key pushed out writes its summary first). Thread-safe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Window:
    started: float
    written: int = 0
    suppressed: int = 0
    level: int = logging.INFO


class ThrottledLog:
    """Writes at most ``burst`` records per key every ``every_s`` seconds, then summarises."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        every_s: float = 60.0,
        burst: int = 5,
        max_keys: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.every_s = every_s
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self.suppressed_total = 0

    def emit(self, level: int, key: str, msg: str, *args: object) -> bool:
        """Log ``msg % args`` at ``level`` unless ``key`` is over its budget; True if written."""
        now = self._clock()
        summaries: list[tuple[int, str, int, float]] = []
        with self._lock:
            window = self._windows.get(key)
            if window is not None and now - window.started >= self.every_s:
                if window.suppressed:
                    summaries.append((window.level, key, window.suppressed, now - window.started))
                window = None
            if window is None:
                window = _Window(now)
                self._windows[key] = window
                while len(self._windows) > self.max_keys:
                    old_key, old = self._windows.popitem(last=False)
                    if old.suppressed:
                        summaries.append((old.level, old_key, old.suppressed, now - old.started))
            self._windows.move_to_end(key)
            window.level = max(window.level, level)
            write = window.written < self.burst
            if write:
                window.written += 1
            else:
                window.suppressed += 1
                self.suppressed_total += 1
        self._summarise(summaries)
        if write:
            self.logger.log(level, msg, *args)
        return write

    def warning_for(self, key: str, msg: str, *args: object) -> bool:
        """:meth:`emit` at WARNING."""
        return self.emit(logging.WARNING, key, msg, *args)

    def info_for(self, key: str, msg: str, *args: object) -> bool:
        """:meth:`emit` at INFO."""
        return self.emit(logging.INFO, key, msg, *args)

    def flush(self) -> int:
        """Write the summaries of periods that ended; return how many lines were written."""
        now = self._clock()
        summaries: list[tuple[int, str, int, float]] = []
        with self._lock:
            for key, window in list(self._windows.items()):
                if now - window.started < self.every_s:
                    continue
                if window.suppressed:
                    summaries.append((window.level, key, window.suppressed, now - window.started))
                del self._windows[key]
        self._summarise(summaries)
        return len(summaries)

    def _summarise(self, summaries: list[tuple[int, str, int, float]]) -> None:
        for level, key, count, span_s in summaries:
            self.logger.log(
                level, "suppressed %d similar message(s) in the last %.0f s: %s", count, span_s, key
            )
