"""Bounded JSON parsing, the canonical form, rate limits and throttled logs (pure code)."""

from __future__ import annotations

import json
import logging
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atcs.bus.canonical import canonical_json
from atcs.bus.codec import MAX_CONTROL_BYTES
from atcs.bus.jsontext import MAX_DEPTH, nesting_depth, parse_object
from atcs.bus.payloads import decode_override, decode_plan_ack
from atcs.errors import DataError, PayloadError
from atcs.logthrottle import ThrottledLog
from atcs.ratelimit import RateLimiter
from atcs.types import IntersectionId

IX = IntersectionId("ix-1")


def _parse(raw: bytes) -> object:
    return parse_object(raw, "test", max_bytes=1_000_000)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[" * 200_000 + b"]" * 200_000, "nests deeper than 16"),
        (b'{"a":' * 17 + b"1" + b"}" * 17, "nests deeper than 16"),
        (b'{"n":' + b"9" * 5001 + b"}", "integer of 5001 digits"),
        (b'{"n":-' + b"1" * 21 + b"}", "integer of 21 digits"),
        (b'{"n":1e999}', "outside the float range"),
        (b'{"n":-1e999}', "outside the float range"),
        (b'{"n":NaN}', "NaN is not a JSON number"),
        (b'{"n":Infinity}', "Infinity is not a JSON number"),
        (b'{"a":1,"a":2}', "key 'a' appears twice"),
        (b'{"a":"\\ud800"}', "lone UTF-16 surrogate"),
        (b"\xff\xfe", "not UTF-8"),
        (b"", "empty payload"),
        (b'"' + b'\\"' * 100_000, "not JSON"),
        (b"{" + b" " * 2_000_000 + b"}", "exceeds"),
    ],
)
def test_hostile_json_is_refused_with_its_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        _parse(raw)


def _reference_depth(raw: bytes) -> int:
    """Nesting depth outside strings, character by character (escapes skip one character)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in raw:
        if escaped:
            escaped = False
        elif char == ord("\\"):
            escaped = True
        elif char == ord('"'):
            in_string = not in_string
        elif not in_string and char in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif not in_string and char in b"]}":
            depth -= 1
    return deepest


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from([b"[", b"]", b"{", b"}", b'"', b"\\", b"a", b",", b":1"]),
                max_size=40))  # fmt: skip
def test_the_nesting_depth_is_the_same_with_or_without_escapes(parts: list[bytes]) -> None:
    """The fast path (no backslash: strings cut at the quotes) agrees with a plain scan."""
    raw = b"".join(parts)
    assert nesting_depth(raw, 99) == _reference_depth(raw)
    assert nesting_depth(raw, 2) == min(_reference_depth(raw), 3)  # stops once past the limit


def test_nesting_is_measured_outside_strings_only() -> None:
    assert nesting_depth(b'{"a":[1,{"b":"[[[[{{{{"}]}', 99) == 3
    assert nesting_depth(b'{"a":"\\"[[[[\\\\"}', 99) == 1
    assert nesting_depth(b"[" * 1000, MAX_DEPTH) == MAX_DEPTH + 1  # stops early
    assert _parse(b'{"a":"\\ud83d\\ude00","b":[[[1]]],"c":12345678901234567890}') == {
        "a": "\U0001f600",
        "b": [[[1]]],
        "c": 12345678901234567890,
    }


def test_control_messages_are_bounded_tighter_than_measures() -> None:
    filler = "x" * MAX_CONTROL_BYTES
    big = json.dumps({"schema": "atcs.override/1", "why": filler}).encode()
    with pytest.raises(PayloadError, match=f"exceeds {MAX_CONTROL_BYTES}"):
        decode_override(big, IX)


def test_decoders_turn_record_failures_into_payload_errors() -> None:
    # passes the schema (a datetime pattern) but is not a date: a PayloadError, nothing else
    doc = {"schema": "atcs.plan_ack/1", "plan_id": "p", "result": "applied"}
    doc["at"] = "2026-13-45T25:61:00Z"
    with pytest.raises(PayloadError, match="bad ISO-8601 datetime"):
        decode_plan_ack(json.dumps(doc).encode(), IX)


# RFC 8785 (JSON Canonicalization Scheme), appendix B and section 3.2.3 -------------------

RFC8785_NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "text"), RFC8785_NUMBERS)
def test_canonical_numbers_follow_rfc_8785(bits: str, text: str) -> None:
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert canonical_json([value]) == f"[{text}]".encode()


def test_canonical_object_follows_rfc_8785() -> None:
    source = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(json.loads(source)).decode() == expected
    # keys sort by UTF-16 code units: U+1F600 (a surrogate pair) before U+FB33
    assert canonical_json({"\ufb33": 1, "\U0001f600": 2, "a": 3}) == (
        '{"a":3,"\U0001f600":2,"\ufb33":1}'.encode()
    )
    assert canonical_json({"g": 25.0, "n": 25}) == b'{"g":25,"n":25}'
    with pytest.raises(DataError):
        canonical_json({"x": float("nan")})


# Rate limits and throttled logs -----------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_allows_bursts_then_the_rate_with_bounded_keys() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, 3, max_keys=10, clock=clock)
    assert [limiter.allow("a") for _ in range(5)] == [True, True, True, False, False]
    clock.now += 0.5  # one token back
    assert [limiter.allow("a") for _ in range(2)] == [True, False]
    assert limiter.allow("b")  # keys are independent
    for i in range(1000):
        limiter.allow(f"k{i}")
    assert len(limiter) == 10


def test_throttled_log_writes_a_burst_then_one_summary(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    logger = logging.getLogger("atcs.test.throttle")
    throttled = ThrottledLog(logger, every_s=60.0, burst=3, clock=clock)
    with caplog.at_level(logging.WARNING, logger="atcs.test.throttle"):
        for i in range(20_000):
            throttled.warning_for("bogus ack", "bogus ack %d", i)
        throttled.warning_for("other", "another kind")
        assert throttled.flush() == 0  # the minute is not over yet
        clock.now += 61
        assert throttled.flush() == 1
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "bogus ack 0",
        "bogus ack 1",
        "bogus ack 2",
        "another kind",
        "suppressed 19997 similar message(s) in the last 61 s: bogus ack",
    ]
    assert throttled.suppressed_total == 19_997
