"""What every payload codec shares: bounded loading, schema checks, times, stream identity.

:func:`load` is the one door for inbound bytes: size and nesting bounded before parsing
(:mod:`atcs.bus.jsontext`), then the ``schema`` field, then the JSON Schema. :func:`build`
turns any failure while making the record from a checked document into a
:class:`~atcs.errors.PayloadError`, so a decoder raises nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from atcs.bus.jsontext import parse_object
from atcs.bus.messages import MessageMeta
from atcs.bus.schemas import SCHEMA_IDS, validate
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


def opt_time(value: Any) -> datetime | None:
    """:func:`parse_time` of ``value``, or None."""
    return None if value is None else parse_time(str(value))


def opt_float(value: Any) -> float | None:
    """``float(value)``, or None."""
    return None if value is None else float(value)


def dump(doc: dict[str, Any]) -> bytes:
    """Compact JSON bytes of ``doc``; :class:`DataError` for NaN or unencodable values."""
    try:
        return json.dumps(doc, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except ValueError as exc:
        raise DataError(f"{doc.get('schema')}: cannot encode as JSON: {exc}") from None


def with_meta(doc: dict[str, Any], meta: MessageMeta) -> dict[str, Any]:
    """Add the stream identity ``meta`` to ``doc``."""
    doc["stream"] = meta.stream
    doc["seq"] = meta.seq
    return doc


def meta_of(doc: Mapping[str, Any]) -> MessageMeta | None:
    """Return the stream identity of a checked ``doc``, when it has one."""
    if "stream" in doc and "seq" in doc:
        return MessageMeta(str(doc["stream"]), int(doc["seq"]))
    return None


def load(
    kind: TopicKind,
    payload: bytes | str,
    explain: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Parse and validate ``payload`` as a ``kind`` message; raise :class:`PayloadError`.

    ``explain`` may raise a clearer :class:`PayloadError` before the schema check.
    """
    raw = payload.encode("utf-8", "replace") if isinstance(payload, str) else bytes(payload)
    doc = parse_object(raw, kind.value, max_bytes=max_bytes(kind))
    if not isinstance(doc, dict):
        raise PayloadError(f"{kind.value} payload is a JSON {type(doc).__name__}, not an object")
    expected = SCHEMA_IDS[kind]
    found = doc.get("schema")
    if found is None:
        raise PayloadError(f"foreign message: no 'schema' field (expected {expected!r})")
    if found != expected:
        raise PayloadError(
            f"foreign message: schema {str(found)[:64]!r} where {expected!r} was expected"
        )
    if explain is not None:
        explain(doc)
    validate(kind, doc)
    return doc


def load_for_topic(
    kind: TopicKind,
    payload: bytes | str,
    key: str,
    topic_ident: str | None,
    explain: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """:func:`load`, then check that the payload's ``key`` names the topic's ``topic_ident``."""
    doc = load(kind, payload, explain)
    if topic_ident is not None and key in doc and doc[key] != topic_ident:
        raise PayloadError(
            f"payload {key} {str(doc[key])[:64]!r} does not match the topic's {topic_ident[:64]!r}"
        )
    return doc


def build(kind: TopicKind, make: Callable[[], T]) -> T:
    """Return ``make()``; any failure to build the record becomes a :class:`PayloadError`."""
    try:
        return make()
    except PayloadError:
        raise
    except (DataError, ValueError, TypeError, KeyError, OverflowError, AttributeError) as exc:
        raise PayloadError(f"{kind.value} payload: {exc}") from None
