"""What every payload codec shares: size bounds, times, JSON output, the decoded record.

The messages themselves are declared in :mod:`atcs.bus.model` terms (one declaration per
message gives its schema, its check and its codec).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from atcs.bus.messages import MessageMeta
from atcs.bus.topics import TopicKind
from atcs.errors import DataError, PayloadError

MAX_PAYLOAD_BYTES = 256 * 1024
"""Larger incoming payloads are refused without parsing."""

MAX_CONTROL_BYTES = 16 * 1024
"""Larger control messages (acks, overrides) are refused without parsing."""

CONTROL_KINDS = frozenset(
    {TopicKind.PLAN_ACK, TopicKind.OVERRIDE, TopicKind.SIGNAL_STATE, TopicKind.PHASE_COMMAND}
)
"""Kinds that make the engine or a signal controller act (bounded tighter, authenticated)."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Received(Generic[T]):
    """A decoded record and, for messages the engine queued, their stream identity."""

    record: T
    meta: MessageMeta | None


def max_bytes(kind: TopicKind) -> int:
    """Return the largest payload of ``kind`` accepted, bytes."""
    return MAX_CONTROL_BYTES if kind in CONTROL_KINDS else MAX_PAYLOAD_BYTES


def iso_utc(when: datetime) -> str:
    """``when`` as ISO-8601 UTC with microseconds and ``Z``; naive datetimes are refused."""
    if when.tzinfo is None:
        raise DataError("datetimes on the bus must be timezone-aware")
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """Read an ISO-8601 datetime with an offset, as UTC; raise :class:`PayloadError`."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PayloadError(f"bad ISO-8601 datetime {text[:64]!r}: {exc}") from None
    if when.tzinfo is None:
        raise PayloadError(f"datetime {text[:64]!r} has no UTC offset")
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise PayloadError(f"datetime {text[:64]!r} is out of range in UTC") from None


def dump(doc: dict[str, Any]) -> bytes:
    """Compact JSON bytes of ``doc``; :class:`DataError` for NaN or unencodable values."""
    try:
        return json.dumps(doc, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except ValueError as exc:
        raise DataError(f"{doc.get('schema')}: cannot encode as JSON: {exc}") from None
