"""Token-bucket rate limits per key, with bounded memory (pure; the clock is injected).

A :class:`RateLimiter` keeps one bucket per key (a topic, a sender, a kind of message):
each bucket holds up to ``burst`` tokens and refills at ``rate_per_s``; a call that finds a
token takes it and is allowed. At most ``max_keys`` buckets are kept; the one used least
recently goes first, so a flood of new keys costs bounded memory. A forgotten key starts
again with a full bucket: pair a per-key limit with a limit on a fixed key (the kind of
message) where keys come from untrusted input.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Allows ``rate_per_s`` calls per second per key, in bursts of up to ``burst``."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        *,
        max_keys: int = 10_000,
        clock: Clock = time.monotonic,
    ) -> None:
        if rate_per_s <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate_per_s must be > 0, burst >= 1 and max_keys >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: Hashable) -> bool:
        """Take one token of ``key``'s bucket; False when it is empty (the call is over limit)."""
        with self._lock:
            return self._take(key, self._clock())

    def _take(self, key: Hashable, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(now - bucket.at, 0.0)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate_per_s)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def __len__(self) -> int:
        return len(self._buckets)
