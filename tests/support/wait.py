"""Polling helpers for tests that wait on threads, brokers and servers."""

from __future__ import annotations

import time
from collections.abc import Callable


def poll(predicate: Callable[[], object], timeout_s: float, interval_s: float = 0.02) -> bool:
    """Whether ``predicate()`` holds within ``timeout_s`` (checked every ``interval_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


def wait_for(
    cond: Callable[[], bool],
    timeout_s: float = 10.0,
    what: str = "condition",
    *,
    interval_s: float = 0.02,
) -> None:
    """Wait until ``cond()`` holds; raise :class:`AssertionError` after ``timeout_s``."""
    if not poll(cond, timeout_s, interval_s):
        raise AssertionError(f"not reached within {timeout_s} s: {what}")
