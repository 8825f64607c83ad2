"""Hostile MQTT payloads for fuzzing every inbound decoder (hypothesis strategies).

Three families, mixed by :func:`hostile_payloads`:

- arbitrary bytes (not UTF-8, not JSON, truncated ...);
- arbitrary JSON documents, with the pathological shapes that broke the engine: deep
  nesting (``[[[...]]]``, ``{"a":{"a":...}}``), integers of thousands of digits, numbers
  beyond the float range (``1e999``), ``NaN``/``Infinity`` literals, lone surrogates;
- a valid payload of the decoder's kind with fields replaced, removed or added (any JSON
  value, at any depth), so the schema check and the record building are reached.

:data:`INBOUND` lists every decoder of a message the engine or ``atcs watch`` receives,
with a valid payload to mutate. The same strategies drive ``tests/test_bus_fuzz.py`` and the
counting script ``benchmarks/fuzz_inbound.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from atcs.bus.messages import (
    AckResult,
    EngineState,
    EngineStatus,
    MessageMeta,
    Override,
    OverrideAction,
    PlanAck,
)
from atcs.bus.payloads import (
    decode_camera_status,
    decode_engine_status,
    decode_override,
    decode_plan_ack,
    decode_segment_metrics,
    decode_timing_plan,
    encode_camera_status,
    encode_engine_status,
    encode_override,
    encode_plan_ack,
    encode_segment_metrics,
    encode_timing_plan,
)
from atcs.bus.zone_payloads import decode_segment_zone, encode_segment_zone
from atcs.types import IntersectionId, PhaseId, SiteId
from tests.support import samples as s

IX = IntersectionId("ix-1")
META = MessageMeta("stream-1", 7)

Decoder = Callable[[bytes], object]


@dataclass(frozen=True)
class Inbound:
    """One inbound decoder: its name, the call, and a valid payload of its kind."""

    name: str
    decode: Decoder
    valid: bytes


INBOUND: tuple[Inbound, ...] = (
    Inbound(
        "segment_metrics",
        lambda p: decode_segment_metrics(p, "seg-a"),
        encode_segment_metrics(s.metrics(0), META),
    ),
    Inbound(
        "camera_status",
        lambda p: decode_camera_status(p, "cam-1"),
        encode_camera_status(SiteId("demo"), s.camera_status(), META),
    ),
    Inbound(
        "timing_plan",
        lambda p: decode_timing_plan(p, "ix-1"),
        encode_timing_plan(SiteId("demo"), s.plan(), META),
    ),
    Inbound(
        "engine_status",
        decode_engine_status,
        encode_engine_status(EngineStatus(EngineState.ONLINE, "0.1", SiteId("demo"), "c", s.T0)),
    ),
    Inbound(
        "plan_ack",
        lambda p: decode_plan_ack(p, IX),
        encode_plan_ack(PlanAck(IX, "p-1", AckResult.REJECTED, "no", "tsc-1", s.T0)),
    ),
    Inbound(
        "override",
        lambda p: decode_override(p, IX),
        encode_override(
            Override(IX, OverrideAction.FIXED, "op", "why", s.T0, greens_s={PhaseId("north"): 20.0})
        ),
    ),
    Inbound(
        "segment_zone",
        lambda p: decode_segment_zone(p, "seg-a"),
        encode_segment_zone(SiteId("demo"), s.frame_zone()),
    ),
)


def _deep(depth: int, opener: str, closer: str) -> bytes:
    return (opener * depth + closer * depth).encode()


PATHOLOGICAL: tuple[bytes, ...] = (
    _deep(100_000, "[", "]"),
    _deep(5_000, '{"a":', "}").replace(b"}", b"1}", 1),
    b'{"schema":"atcs.override/1","action":"hold","who":"x","why":' + b"9" * 5001 + b"}",
    b'{"schema":"atcs.plan_ack/1","plan_id":"p","result":"applied","x":' + b"9" * 5001 + b"}",
    b'{"schema":"atcs.segment_metrics/1","vehicles":1e999}',
    b'{"schema":"atcs.override/1","greens_s":{"a":NaN}}',
    b'{"schema":"atcs.override/1","who":"\\ud800"}',
    b"\xef\xbb\xbf{}",
    b"\xff\xfe\x00",
    b"",
    b"null",
    b'"\\u0000"',
)
"""Payloads that killed the engine's network thread or are known traps of JSON parsers."""

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**320)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["hold", "fixed", "release", "applied", "rejected", "A", "car", "1e999"])
)

json_values = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
"""Any JSON value (integers far beyond 64 bits included)."""


def _raw_numbers() -> st.SearchStrategy[bytes]:
    digits = st.integers(min_value=1, max_value=6000).map(lambda n: b"9" * n)
    odd = st.sampled_from([b"1e999", b"-1e999", b"NaN", b"Infinity", b"-Infinity", b"1e-999"])
    return digits | odd


@st.composite
def _deeply_nested(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(min_value=1, max_value=50_000))
    kind = draw(st.sampled_from(["list", "object", "mixed"]))
    if kind == "list":
        return _deep(depth, "[", "]")
    if kind == "object":
        return _deep(depth, '{"k":', "}").replace(b"}", b"0}", 1)
    return b'{"schema":"x","a":' + b'[{"b":' * depth + b"1" + b"}]" * depth + b"}"


def _set_path(doc: Any, path: list[Any], value: Any) -> None:
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def _paths(doc: Any, prefix: list[Any] | None = None) -> list[list[Any]]:
    prefix = prefix or []
    out: list[list[Any]] = []
    items: list[tuple[Any, Any]] = []
    if isinstance(doc, dict):
        items = list(doc.items())
    elif isinstance(doc, list):
        items = list(enumerate(doc))
    for key, value in items:
        out.append([*prefix, key])
        out += _paths(value, [*prefix, key])
    return out


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` with 1-4 fields replaced by any JSON (or a raw number), removed or added."""
    doc = json.loads(valid)
    raw_number: bytes | None = None
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = _paths(doc)
        op = draw(st.sampled_from(["replace", "delete", "add", "raw"]))
        path = draw(st.sampled_from(paths)) if paths else []
        if op == "replace" and path:
            _set_path(doc, path, draw(json_values))
        elif op == "delete" and path:
            parent = doc
            for key in path[:-1]:
                parent = parent[key]
            del parent[path[-1]]
        elif op == "raw" and path and raw_number is None:
            raw_number = draw(_raw_numbers())
            _set_path(doc, path, "\x00RAW\x00")
        else:
            doc[draw(st.text(max_size=12))] = draw(json_values)
    text = json.dumps(doc).encode()
    if raw_number is not None:
        text = text.replace(b'"\\u0000RAW\\u0000"', raw_number, 1)
    return text


def hostile_payloads(valid: bytes) -> st.SearchStrategy[bytes]:
    """Every family of hostile payloads for a decoder whose valid payload is ``valid``."""
    as_json = json_values.map(lambda v: json.dumps(v).encode())
    return st.one_of(
        st.binary(max_size=300),
        as_json,
        _deeply_nested(),
        st.sampled_from(PATHOLOGICAL),
        mutated(valid),
        mutated(valid),
        mutated(valid),
    )
