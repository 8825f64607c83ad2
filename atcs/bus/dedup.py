"""Subscriber-side exactly-once: keep a message only if its ``seq`` is new for its stream.

The engine numbers every queued message (``stream``, ``seq``) and sends them in order, at
least once. Copies (a resend after a connection or engine died before the PUBACK, or the
retained copy a broker replays on every subscribe) carry the same numbers, so a subscriber
that drops any message whose ``seq`` is not above the last one kept for its stream and
topic sees every message exactly once, in order.
"""

from __future__ import annotations

from collections import OrderedDict

from atcs.bus.messages import MessageMeta


class Deduplicator:
    """Remembers the last ``seq`` per (stream, topic); bounded to ``max_keys`` pairs (LRU)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._last: OrderedDict[tuple[str, str], int] = OrderedDict()
        self.duplicates = 0

    def accept(self, topic: str, meta: MessageMeta | None) -> bool:
        """Return True for a new (or unnumbered) message, False for a copy already seen."""
        if meta is None:
            return True
        key = (meta.stream, topic)
        last = self._last.get(key)
        if last is not None and meta.seq <= last:
            self.duplicates += 1
            return False
        self._last[key] = meta.seq
        self._last.move_to_end(key)
        while len(self._last) > self.max_keys:
            self._last.popitem(last=False)
        return True
