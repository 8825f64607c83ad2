"""Refuse replayed control messages: remember each (sender, nonce) until it expires.

Memory is bounded: at most ``max_entries`` nonces are kept, each only until the expiry of
its message plus the clock-skew allowance (after that the message is refused as expired
anyway). When the cache is full of unexpired nonces it refuses new ones (fail closed):
size it above the senders' rate limits times the longest validity.
"""

from __future__ import annotations

import heapq
import threading

from atcs.errors import MessageAuthError


class ReplayCache:
    """Nonces seen per sender, each kept until ``expires_at`` (POSIX seconds)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._expiry: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def check_and_add(self, sender: str, nonce: str, expires_at: float, now: float) -> None:
        """Remember ``(sender, nonce)``; raise :class:`MessageAuthError` if seen or full."""
        key = (sender, nonce)
        with self._lock:
            self._purge(now)
            if key in self._expiry:
                raise MessageAuthError(
                    "replayed", f"replayed message: nonce {nonce[:64]!r} of {sender!r} was seen"
                )
            if len(self._expiry) >= self.max_entries:
                raise MessageAuthError(
                    "replay_cache_full",
                    f"replay cache full ({self.max_entries} unexpired nonces); refused",
                )
            self._expiry[key] = expires_at
            heapq.heappush(self._heap, (expires_at, key))

    def _purge(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            expires_at, key = heapq.heappop(self._heap)
            if self._expiry.get(key) == expires_at:
                del self._expiry[key]
