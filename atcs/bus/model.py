"""One declaration per message: its JSON Schema, its check, its encoder and decoder.

A :class:`Message` lists its :class:`Field` s in wire order. Each field names its key on
the bus, its :class:`~atcs.bus.wire.Wire` type (bounds, enums, units in the description)
and the record attribute it carries. Everything else is derived:

- :meth:`Message.schema` is the JSON Schema (draft-07) published in ``atcs/contract``
  (``python -m atcs.bus.catalog`` writes the files; a test fails when they drift);
- :meth:`Message.encode` writes a record as compact JSON bytes, fields in declared order,
  ``stream`` and ``seq`` last;
- :meth:`Message.load` reads inbound bytes: size and nesting bounded before parsing
  (:mod:`atcs.bus.jsontext`), the ``schema`` field, then every field checked against the
  same rules as the schema, cross-field :class:`Rule` s, and the topic's id;
  :meth:`Message.read` turns the checked document into the record. Both raise only
  :class:`~atcs.errors.PayloadError`, naming the field.

``docs/mqtt.md`` ("Adding a message") shows how to declare one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from typing_extensions import override

from atcs.bus.codec import Received, dump, max_bytes
from atcs.bus.jsontext import parse_object
from atcs.bus.messages import MessageMeta
from atcs.bus.schemas import SCHEMA_IDS
from atcs.bus.topics import TopicKind
from atcs.bus.wire import Definitions, Integer, Nullable, Text, Wire
from atcs.errors import DataError, PayloadError

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Field:
    """One key of a JSON object.

    ``attr`` is the record attribute it carries (read when encoding, passed to the record's
    constructor when decoding; ``None``: encode-only, from ``get`` or given at encode time).
    ``get`` reads the value from the record instead of ``attr``. An optional field
    (``required`` False) reads as ``default`` when absent, and is left out when encoding a
    None that its type does not allow, or a value for which ``omit`` is true.
    """

    name: str
    wire: Wire
    doc: str = ""
    attr: str | None = ""
    get: Callable[[Any], Any] | None = None
    required: bool = True
    default: Any = None
    omit: Callable[[Any], bool] | None = None

    @property
    def key(self) -> str | None:
        """The record attribute (the wire name unless told)."""
        return self.name if self.attr == "" else self.attr


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule across fields: its JSON Schema keywords and the check that says why."""

    schema: Mapping[str, Any]
    check: Callable[[Mapping[str, Any]], str | None]
    """Returns what is wrong with a document whose fields passed, or None."""


@dataclass(frozen=True, slots=True)
class Struct(Wire):
    """A JSON object with declared fields (no others), read into ``make(**values)``."""

    fields: tuple[Field, ...]
    make: Callable[..., Any] = dict
    rules: tuple[Rule, ...] = ()
    name: str | None = None
    """Name under ``#/definitions`` when shared (an inline object otherwise)."""
    _names: frozenset[str] = field(init=False, repr=False, compare=False)
    _required: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_names", frozenset(f.name for f in self.fields))
        object.__setattr__(self, "_required", tuple(f.name for f in self.fields if f.required))

    @override
    def schema(self, defs: Definitions) -> dict[str, Any]:
        body = self.body(defs)
        if self.name is None:
            return body
        if defs.setdefault(self.name, body) != body:
            raise ValueError(f"two different schemas named {self.name!r} in one document")
        return {"$ref": f"#/definitions/{self.name}"}

    @override
    def body(self, defs: Definitions) -> dict[str, Any]:
        props: dict[str, Any] = {}
        for f in self.fields:
            prop = f.wire.schema(defs)
            props[f.name] = {**prop, "description": f.doc} if f.doc else prop
        doc: dict[str, Any] = {
            "type": "object",
            "additionalProperties": False,
            "required": [f.name for f in self.fields if f.required],
            "properties": props,
        }
        for rule in self.rules:
            doc.update(rule.schema)
        return doc

    @override
    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise PayloadError(f"{path} is not an object")
        if not (value.keys() <= self._names and all(n in value for n in self._required)):
            where = f"{path} " if path else ""
            missing = [n for n in self._required if n not in value]
            if missing:
                raise PayloadError(f"{where}lacks {', '.join(missing)}")
            unknown = sorted(k[:64] for k in value if k not in self._names)
            raise PayloadError(f"{where}has unknown field(s) {', '.join(unknown)}")
        prefix = f"{path}." if path else ""
        for f in self.fields:
            if f.name in value:
                f.wire.check(value[f.name], prefix + f.name)
        for rule in self.rules:
            why = rule.check(value)
            if why is not None:
                raise PayloadError(f"{path} {why}" if path else why)

    def values(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Return the Python values of a checked object, by record attribute."""
        out: dict[str, Any] = {}
        for f in self.fields:
            key = f.key
            if key is None:
                continue
            if f.name in doc:
                out[key] = f.wire.from_json(doc[f.name])
            else:  # a fresh copy of a mutable default
                out[key] = dict(f.default) if isinstance(f.default, dict) else f.default
        return out

    @override
    def from_json(self, value: Any) -> Any:
        return self.make(**self.values(value))

    @override
    def to_json(self, value: Any) -> Any:
        return self.encode_fields(value, {})

    def encode_fields(self, record: Any, given: Mapping[str, Any]) -> dict[str, Any]:
        """Return the JSON object of ``record`` (``given``: values by wire name, preferred)."""
        doc: dict[str, Any] = {}
        for f in self.fields:
            if f.name in given:
                value = given[f.name]
            elif f.get is not None:
                value = f.get(record)
            elif f.key is not None:
                value = getattr(record, f.key)
            else:
                value = None
            if not f.required and (
                (value is None and not _allows_null(f.wire))
                or (f.omit is not None and f.omit(value))
            ):
                continue
            doc[f.name] = f.wire.to_json(value)
        return doc


def _allows_null(wire: Wire) -> bool:
    return isinstance(wire, Nullable)


STREAM = Field(
    "stream",
    Text(1, 64),
    "Id of the engine's message queue that sent this message.",
    attr=None,
)
SEQ = Field(
    "seq",
    Integer(1),
    "Position in the stream; grows by one per queued message.",
    attr=None,
)


@dataclass(frozen=True, slots=True)
class Message(Generic[R]):
    """A message kind: metadata, fields and record (see the module docstring).

    ``streamed`` messages carry the engine queue's ``stream`` and ``seq``; ``topic_key``
    names the field that must equal the id in the topic; ``external`` messages follow a
    model of someone else's (no ``schema`` field).
    """

    kind: TopicKind
    title: str
    description: str
    body: Struct
    streamed: bool = False
    topic_key: str | None = None
    external: bool = False

    @property
    def schema_id(self) -> str:
        """The ``schema`` field's value (``atcs.<kind>/1``)."""
        return SCHEMA_IDS[self.kind]

    def schema(self) -> dict[str, Any]:
        """Return the JSON Schema document (draft-07) of the message."""
        defs: Definitions = {}
        body = self.body.body(defs)
        props = body.pop("properties")
        required = body.pop("required")
        head: dict[str, Any] = {}
        if not self.external:
            head["schema"] = {"const": self.schema_id, "description": "Payload kind and version."}
            required = ["schema", *required]
        if self.streamed:
            head["stream"] = STREAM.wire.schema(defs) | {"description": STREAM.doc}
            head["seq"] = SEQ.wire.schema(defs) | {"description": SEQ.doc}
            required = [required[0], "stream", "seq", *required[1:]]
        doc: dict[str, Any] = {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "$id": f"urn:atcs:contract:{self.kind.value}:1",
            "title": self.title,
            "description": self.description,
            **body,
            "required": required,
            "properties": {**head, **props},
        }
        if defs:
            doc["definitions"] = defs
        return doc

    # Encoding --------------------------------------------------------------------------

    def encode(self, record: Any, meta: MessageMeta | None = None, **given: Any) -> bytes:
        """``record`` as the message's JSON bytes; ``given`` supplies values by wire name."""
        doc: dict[str, Any] = {} if self.external else {"schema": self.schema_id}
        doc.update(self.body.encode_fields(record, given))
        if meta is not None:
            doc["stream"] = meta.stream
            doc["seq"] = meta.seq
        return dump(doc)

    # Decoding --------------------------------------------------------------------------

    def load(self, payload: bytes | str, topic_ident: str | None = None) -> dict[str, Any]:
        """Parse and check ``payload``: the checked document (see the module docstring)."""
        kind = self.kind.value
        raw = payload.encode("utf-8", "replace") if isinstance(payload, str) else bytes(payload)
        doc = parse_object(raw, kind, max_bytes=max_bytes(self.kind))
        if not isinstance(doc, dict):
            raise PayloadError(f"{kind} payload is a JSON {type(doc).__name__}, not an object")
        fields = doc
        if not self.external:
            found = doc.get("schema")
            if found is None:
                raise PayloadError(
                    f"foreign message: no 'schema' field (expected {self.schema_id!r})"
                )
            if found != self.schema_id:
                raise PayloadError(
                    f"foreign message: schema {str(found)[:64]!r} where {self.schema_id!r} "
                    "was expected"
                )
            fields = {k: v for k, v in doc.items() if k != "schema"}
            if self.streamed:
                self._check_stream(fields)
        try:
            self.body.check(fields, "")
        except PayloadError as exc:
            raise PayloadError(f"{kind} payload: {exc}") from None
        key = self.topic_key
        if topic_ident is not None and key is not None and key in doc and doc[key] != topic_ident:
            raise PayloadError(
                f"payload {key} {str(doc[key])[:64]!r} does not match the topic's "
                f"{topic_ident[:64]!r}"
            )
        return doc

    def _check_stream(self, fields: dict[str, Any]) -> None:
        for f in (STREAM, SEQ):
            if f.name not in fields:
                raise PayloadError(f"{self.kind.value} payload lacks {f.name}")
            try:
                f.wire.check(fields.pop(f.name), f.name)
            except PayloadError as exc:
                raise PayloadError(f"{self.kind.value} payload: {exc}") from None

    def read(self, doc: Mapping[str, Any], **given: Any) -> R:
        """Return the record of a document checked by :meth:`load` (``given``: more arguments)."""
        try:
            return self.body.make(**self.body.values(doc), **given)  # type: ignore[no-any-return]
        except PayloadError:
            raise
        except (DataError, ValueError, TypeError, KeyError, OverflowError, AttributeError) as exc:
            raise PayloadError(f"{self.kind.value} payload: {exc}") from None

    def decode(self, payload: bytes | str, topic_ident: str | None = None) -> Received[R]:
        """:meth:`load` then :meth:`read`, with the stream identity when the message has one."""
        doc = self.load(payload, topic_ident)
        return Received(self.read(doc), meta_of(doc))


def meta_of(doc: Mapping[str, Any]) -> MessageMeta | None:
    """Return the stream identity of a checked ``doc``, when it has one."""
    if "stream" in doc and "seq" in doc:
        return MessageMeta(str(doc["stream"]), int(doc["seq"]))
    return None
