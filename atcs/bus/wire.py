"""Types of JSON values on the bus: each knows its JSON Schema, its check and its conversion.

A message (:mod:`atcs.bus.model`) is declared as fields of these types. From one
declaration come the published JSON Schema (:meth:`Wire.schema`), the check of inbound
values (:meth:`Wire.check`: the same rules, with a message naming the field) and the
conversion between Python values and JSON (:meth:`Wire.to_json`, :meth:`Wire.from_json`).
A check raises :class:`~atcs.errors.PayloadError`; ``from_json`` runs on checked values
only.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from typing_extensions import override

from atcs.bus.codec import iso_utc, parse_time
from atcs.errors import PayloadError

Definitions = dict[str, dict[str, Any]]
"""Shared schema parts of one document (``#/definitions/<name>``)."""

ID_PATTERN = r"^[^/+#\u0000]{1,%d}$"
"""An id is one MQTT topic level: 1 to N characters, no ``/``, ``+``, ``#`` or NUL."""

DATETIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$"
"""ISO-8601 with seconds, at most microseconds, and an offset (the engine writes ``Z``)."""


def show(value: Any) -> str:
    """``repr`` of a value for an error message, at most 64 characters."""
    text = repr(value)
    return text if len(text) <= 64 else text[:61] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Wire:
    """One JSON value's type (see the module docstring)."""

    definition: ClassVar[str | None] = None
    """Name under ``#/definitions`` when the schema is shared; None to write it inline."""

    def body(self, defs: Definitions) -> dict[str, Any]:
        """Return the JSON Schema of the value (``defs`` collects shared parts)."""
        raise NotImplementedError

    def schema(self, defs: Definitions) -> dict[str, Any]:
        """:meth:`body`, or a ``$ref`` to it when the type has a :attr:`definition`."""
        body = self.body(defs)
        name = self.definition
        if name is None:
            return body
        if defs.setdefault(name, body) != body:
            raise ValueError(f"two different schemas named {name!r} in one document")
        return {"$ref": f"#/definitions/{name}"}

    def check(self, value: Any, path: str) -> None:
        """Raise :class:`PayloadError` naming ``path`` when ``value`` breaks the schema."""
        raise NotImplementedError

    def to_json(self, value: Any) -> Any:
        """Return the JSON value of a Python value."""
        return value

    def from_json(self, value: Any) -> Any:
        """Return the Python value of a checked JSON value."""
        return value


@dataclass(frozen=True, slots=True)
class Text(Wire):
    """A string; ``cut`` shortens longer ones to ``max_length`` when encoding."""

    min_length: int = 0
    max_length: int | None = None
    pattern: str | None = None
    cut: bool = False

    @override
    def body(self, defs: Definitions) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": "string"}
        if self.min_length:
            doc["minLength"] = self.min_length
        if self.max_length is not None:
            doc["maxLength"] = self.max_length
        if self.pattern is not None:
            doc["pattern"] = self.pattern
        return doc

    @override
    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise PayloadError(f"{path} {show(value)} is not text")
        if len(value) < self.min_length:
            raise PayloadError(f"{path} must have at least {self.min_length} character(s)")
        if self.max_length is not None and len(value) > self.max_length:
            raise PayloadError(f"{path} must be text of at most {self.max_length} characters")
        if self.pattern is not None and not re.search(self.pattern, value):
            raise PayloadError(f"{path} {show(value)} does not match {self.pattern}")

    @override
    def to_json(self, value: Any) -> Any:
        if self.cut and self.max_length is not None:
            return str(value)[: self.max_length]
        return value

    @override
    def from_json(self, value: Any) -> Any:
        return str(value)


@dataclass(frozen=True, slots=True)
class Id(Wire):
    """An id that is one topic level (:data:`ID_PATTERN`), at most ``max_length`` long."""

    definition: ClassVar[str | None] = "id"
    max_length: int = 128
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", re.compile(ID_PATTERN % self.max_length))

    @override
    def body(self, defs: Definitions) -> dict[str, Any]:
        return {"type": "string", "pattern": ID_PATTERN % self.max_length}

    @override
    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, str) or not self._regex.search(value):
            raise PayloadError(
                f"{path} {show(value)} is not an id (1-{self.max_length} characters, no / + # NUL)"
            )


@dataclass(frozen=True, slots=True)
class DateTime(Wire):
    """An aware datetime: ISO-8601 on the bus (UTC with ``Z`` when the engine writes it)."""

    definition: ClassVar[str | None] = "datetime"
    _REGEX: ClassVar[re.Pattern[str]] = re.compile(DATETIME_PATTERN)

    @override
    def body(self, defs: Definitions) -> dict[str, Any]:
        return {"type": "string", "format": "date-time", "pattern": DATETIME_PATTERN}

    @override
    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, str) or not self._REGEX.search(value):
            raise PayloadError(f"{path} {show(value)} is not an ISO-8601 datetime with a time zone")

    @override
    def to_json(self, value: Any) -> Any:
        return iso_utc(value)

    @override
    def from_json(self, value: Any) -> Any:
        return parse_time(value)


@dataclass(frozen=True, slots=True)
class Number(Wire):
    """A finite number (the parser refuses NaN and infinities), read as a float."""

    minimum: float | None = None
    exclusive_minimum: float | None = None
    maximum: float | None = None

    @override
    def body(self, defs: Definitions) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": "number"}
        if self.minimum is not None:
            doc["minimum"] = self.minimum
        if self.exclusive_minimum is not None:
            doc["exclusiveMinimum"] = self.exclusive_minimum
        if self.maximum is not None:
            doc["maximum"] = self.maximum
        return doc

    @override
    def check(self, value: Any, path: str) -> None:
        if not _is_number(value) or not math.isfinite(value):
            raise PayloadError(f"{path} {show(value)} is not a number")
        if self.minimum is not None and value < self.minimum:
            raise PayloadError(f"{path} {show(value)} is below its minimum {self.minimum}")
        if self.exclusive_minimum is not None and value <= self.exclusive_minimum:
            raise PayloadError(f"{path} {show(value)} is not above {self.exclusive_minimum}")
        if self.maximum is not None and value > self.maximum:
            raise PayloadError(f"{path} {show(value)} is above its maximum {self.maximum}")

    @override
    def from_json(self, value: Any) -> Any:
        return float(value)


@dataclass(frozen=True, slots=True)
class Integer(Wire):
    """An integer (an integral number such as ``2.0`` counts, as in JSON Schema)."""

    minimum: int | None = 0

    @override
    def body(self, defs: Definitions) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": "integer"}
        if self.minimum is not None:
            doc["minimum"] = self.minimum
        return doc

    @override
    def check(self, value: Any, path: str) -> None:
        integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if not _is_number(value) or not integral:
            raise PayloadError(f"{path} {show(value)} is not an integer")
        if self.minimum is not None and value < self.minimum:
            what = "non-negative" if self.minimum == 0 else f"at least {self.minimum},"
            raise PayloadError(f"{path} {show(value)} is not a {what} integer")

    @override
    def from_json(self, value: Any) -> Any:
        return int(value)


@dataclass(frozen=True, slots=True)
class Boolean(Wire):
    """``true`` or ``false``."""

    @override
    def body(self, defs: Definitions) -> dict[str, Any]:
        return {"type": "boolean"}

    @override
    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, bool):
            raise PayloadError(f"{path} {show(value)} is not true or false")


@dataclass(frozen=True, slots=True)
class Scalar(Wire):
    """A string, a number or a boolean (free-form parameters)."""

    @override
    def body(self, defs: Definitions) -> dict[str, Any]:
        return {"type": ["string", "number", "boolean"]}

    @override
    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, str | int | float):
            raise PayloadError(f"{path} {show(value)} is not a string, number or boolean")


@dataclass(frozen=True, slots=True)
class Const(Wire):
    """Exactly ``value``."""

    value: str

    @override
    def body(self, defs: Definitions) -> dict[str, Any]:
        return {"const": self.value}

    @override
    def check(self, value: Any, path: str) -> None:
        if value != self.value or not isinstance(value, str):
            raise PayloadError(f"{path} {show(value)} is not {self.value!r}")


@dataclass(frozen=True, slots=True)
class Choice(Wire):
    """One of ``values`` (strings); ``encode``/``decode`` map them to Python values."""

    values: tuple[str, ...]
    encode: Callable[[Any], str] = str
    decode: Callable[[str], Any] = str

    @override
    def body(self, defs: Definitions) -> dict[str, Any]:
        return {"enum": list(self.values)}

    @override
    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, str) or value not in self.values:
            raise PayloadError(f"{path} {show(value)} is none of {', '.join(self.values)}")

    @override
    def to_json(self, value: Any) -> Any:
        return self.encode(value)

    @override
    def from_json(self, value: Any) -> Any:
        return self.decode(value)


def choice(kind: type[enum.Enum]) -> Choice:
    """Return the :class:`Choice` of an enum whose values are the strings on the bus."""
    return Choice(tuple(str(m.value) for m in kind), lambda m: str(m.value), kind)


@dataclass(frozen=True, slots=True)
class Nullable(Wire):
    """``inner`` or ``null`` (None)."""

    inner: Wire

    @override
    def body(self, defs: Definitions) -> dict[str, Any]:
        inner = self.inner.schema(defs)
        if isinstance(inner.get("type"), str):
            return {**inner, "type": [inner["type"], "null"]}
        if "enum" in inner:
            return {**inner, "enum": [*inner["enum"], None]}
        return {"oneOf": [inner, {"type": "null"}]}

    @override
    def check(self, value: Any, path: str) -> None:
        if value is not None:
            self.inner.check(value, path)

    @override
    def to_json(self, value: Any) -> Any:
        return None if value is None else self.inner.to_json(value)

    @override
    def from_json(self, value: Any) -> Any:
        return None if value is None else self.inner.from_json(value)


@dataclass(frozen=True, slots=True)
class ArrayOf(Wire):
    """A list of ``item``s, read into ``into`` (a tuple unless told)."""

    item: Wire
    min_items: int = 0
    max_items: int | None = None
    into: Callable[[Sequence[Any]], Any] = tuple

    @override
    def body(self, defs: Definitions) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": "array"}
        if self.min_items:
            doc["minItems"] = self.min_items
        if self.max_items is not None:
            doc["maxItems"] = self.max_items
        doc["items"] = self.item.schema(defs)
        return doc

    @override
    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise PayloadError(f"{path} {show(value)} is not a list")
        if len(value) < self.min_items:
            raise PayloadError(f"{path} needs at least {self.min_items} item(s)")
        if self.max_items is not None and len(value) > self.max_items:
            raise PayloadError(f"{path} has more than {self.max_items} items")
        for i, item in enumerate(value):
            self.item.check(item, f"{path}[{i}]")

    @override
    def to_json(self, value: Any) -> Any:
        return [self.item.to_json(v) for v in value]

    @override
    def from_json(self, value: Any) -> Any:
        return self.into([self.item.from_json(v) for v in value])


@dataclass(frozen=True, slots=True)
class MapOf(Wire):
    """An object of ``value``s under free keys (or ``keys``' values), read into a dict."""

    value: Wire
    keys: Choice | None = None
    min_properties: int = 0
    max_properties: int | None = None

    @override
    def body(self, defs: Definitions) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": "object"}
        if self.keys is not None:
            doc["propertyNames"] = self.keys.body(defs)
        if self.min_properties:
            doc["minProperties"] = self.min_properties
        if self.max_properties is not None:
            doc["maxProperties"] = self.max_properties
        doc["additionalProperties"] = self.value.schema(defs)
        return doc

    @override
    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise PayloadError(f"{path} {show(value)} is not an object")
        if len(value) < self.min_properties:
            raise PayloadError(f"{path} needs at least {self.min_properties} entry(ies)")
        if self.max_properties is not None and len(value) > self.max_properties:
            raise PayloadError(f"{path} has more than {self.max_properties} entries")
        for key, item in value.items():
            if self.keys is not None:
                self.keys.check(key, f"{path} key")
            self.value.check(item, f"{path}.{key[:64]}")

    @override
    def to_json(self, value: Any) -> Any:
        encode_key = str if self.keys is None else self.keys.to_json
        return {encode_key(k): self.value.to_json(v) for k, v in value.items()}

    @override
    def from_json(self, value: Any) -> Any:
        decode_key = str if self.keys is None else self.keys.from_json
        return {decode_key(k): self.value.from_json(v) for k, v in value.items()}
