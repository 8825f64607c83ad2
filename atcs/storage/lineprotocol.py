r"""A small, strict InfluxDB line-protocol encoder (valid for InfluxDB 1.x, 2.x and 3.x).

``measurement,tag=value,... field=value,... timestamp`` with tags sorted by key, measurement
names escaped for ``,`` and space, tag keys, tag values and field keys escaped for ``,``,
``=`` and space, string fields double-quoted with ``"`` and ``\`` escaped, integers
suffixed ``i``, booleans ``true``/``false``. Line breaks, which line protocol cannot carry
in a key or value, become spaces. Non-finite floats (NaN, infinity), which line protocol
cannot carry either, are left out of the point; an empty tag value is left out too.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from atcs.config.storage import Precision
from atcs.errors import DataError

FieldValue = bool | int | float | str
"""A field value: boolean, integer (written with the ``i`` suffix), float or string."""

MAX_STRING_CHARS = 4096
"""Longest string field written; longer strings are cut (InfluxDB's own limit is 64 KiB)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DIVISOR_FROM_US = {"s": 1_000_000, "ms": 1_000, "us": 1}
_MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", "\n": " ", "\r": " "})
_KEY_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\n": " ", "\r": " "})
_STRING_ESCAPES = str.maketrans({'"': '\\"', "\\": "\\\\", "\n": " ", "\r": " "})


@dataclass(frozen=True, slots=True)
class Point:
    """One point: measurement, tags (low cardinality), fields and an aware UTC time."""

    measurement: str
    time: datetime
    tags: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, FieldValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.measurement:
            raise DataError("Point.measurement must not be empty")
        if self.time.tzinfo is None:
            raise DataError("Point.time must be timezone-aware")


def timestamp(at: datetime, precision: Precision) -> int:
    """Integer Unix time of ``at`` in ``precision`` units (floor, exact integer arithmetic)."""
    if at.tzinfo is None:
        raise DataError("timestamps must be timezone-aware")
    delta = at - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if precision == "ns":
        return micros * 1_000
    return micros // _DIVISOR_FROM_US[precision]


@functools.lru_cache(maxsize=4096)
def _key(key: str) -> str:
    """Escape a tag key, tag value or field key (cached: keys repeat on every point)."""
    return key.translate(_KEY_ESCAPES)


def _field_value(value: FieldValue) -> str | None:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, str):
        return '"' + value[:MAX_STRING_CHARS].translate(_STRING_ESCAPES) + '"'
    raise DataError(f"unsupported field value type {type(value).__name__}")


def encode(point: Point, precision: Precision) -> str | None:
    """One line of line protocol (no trailing newline), or None when no field is writable."""
    fields = []
    for key, value in point.fields.items():
        if not key:
            raise DataError(f"{point.measurement}: empty field key")
        text = _field_value(value)
        if text is not None:
            fields.append(f"{_key(key)}={text}")
    if not fields:
        return None
    head = point.measurement.translate(_MEASUREMENT_ESCAPES)
    for key in sorted(point.tags):
        value = point.tags[key]
        if not key:
            raise DataError(f"{point.measurement}: empty tag key")
        if value:
            head += f",{_key(key)}={_key(value)}"
    return f"{head} {','.join(fields)} {timestamp(point.time, precision)}"
