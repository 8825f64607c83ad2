"""The records and bound policies of the durable outbox (:mod:`atcs.journal`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from atcs.errors import OutboxError


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry to journal: ``build(seq)`` makes its payload once its number is known.

    ``kind`` sorts it for the bound (a topic kind, a timestamp precision); ``address`` is
    where it goes (an MQTT topic; empty for the store); ``weight`` counts what it holds
    (points of a batch; 1 for a message); ``flag`` is the consumer's (MQTT's retain);
    ``size`` is the payload's length in bytes when known before ``build`` (0: unknown).
    """

    kind: str
    address: str
    build: Callable[[int], bytes]
    weight: int = 1
    flag: int = 0
    size: int = 0


@dataclass(frozen=True, slots=True)
class Entry:
    """A journaled entry as its consumer sends it (``payload``: the exact bytes)."""

    seq: int
    kind: str
    address: str
    payload: bytes
    weight: int
    flag: int


@dataclass(slots=True)
class LaneResult:
    """What one committed append did: entries added, dropped by kind, builds that failed."""

    added: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    bad: int = 0


@dataclass(frozen=True, slots=True)
class DropOldest:
    """Bound by entries: past ``max_entries`` drop the oldest, kinds in ``order`` first."""

    max_entries: int
    order: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RefuseWhenFull:
    """Bound by payload bytes: refuse past ``max_bytes`` until under ``clears_at`` of it."""

    max_bytes: int
    clears_at: float = 0.9


Policy = DropOldest | RefuseWhenFull
FailedHandler = Callable[[OutboxError], None]
CommitHandler = Callable[[LaneResult], None]
