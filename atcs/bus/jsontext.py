"""Strict, bounded JSON parsing of inbound MQTT payloads.

A payload from the bus is hostile until proven otherwise. Before :func:`json.loads` runs,
the size is bounded and the nesting depth is measured (without recursion), so ``[[[...]]]``
never reaches the parser's recursion limit. While parsing, integers longer than
:data:`MAX_INT_DIGITS` digits, numbers outside the float range (``1e999``) and the
non-standard ``NaN`` / ``Infinity`` literals are refused. Every failure is a
:class:`~atcs.errors.PayloadError` saying what is wrong; nothing else escapes.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any

from atcs.errors import PayloadError

MAX_DEPTH = 16
"""Deepest nesting of arrays and objects accepted (the contract needs 3)."""

MAX_INT_DIGITS = 20
"""Longest integer literal accepted (a 64-bit integer has at most 20 digits)."""

_TOKENS = re.compile(rb'[\[\]{}"\\]')
_OPENERS = frozenset(b"[{")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_ALL_BUT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


def nesting_depth(raw: bytes, limit: int) -> int:
    """Return the deepest nesting of ``[``/``{`` in ``raw`` outside strings (stops past ``limit``).

    One pass over the structural characters, no recursion and no backtracking: the cost
    is linear in the payload size whatever it holds. A payload without a backslash (every
    payload the engine sends) takes a faster path: each string ends at the next quote, so
    the text between every second pair of quotes is cut out and only the brackets left are
    walked (an odd number of quotes, an unterminated string, takes the full pass).
    """
    if b"\\" not in raw:
        parts = raw.split(b'"')  # without escapes, every second part is inside a string
        if len(parts) % 2:
            outside = b"".join(parts[::2])
            return _bracket_depth(outside.translate(None, _ALL_BUT_BRACKETS), limit)
    return _scanned_depth(raw, limit)


def _bracket_depth(brackets: bytes, limit: int) -> int:
    depth = deepest = 0
    for char in brackets:
        if char in _OPENERS:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        else:
            depth -= 1
    return deepest


def _scanned_depth(raw: bytes, limit: int) -> int:
    brackets = bytearray()  # those outside strings, in order
    in_string = False
    skip_at = -1
    for match in _TOKENS.finditer(raw):
        pos = match.start()
        if pos == skip_at:  # the character after a backslash
            continue
        char = raw[pos]
        if char == _BACKSLASH:
            skip_at = pos + 1
        elif char == _QUOTE:
            in_string = not in_string
        elif not in_string:
            brackets.append(char)
    return _bracket_depth(bytes(brackets), limit)


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise PayloadError(f"integer of {digits} digits (more than {MAX_INT_DIGITS})")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise PayloadError(f"number {text[:40]!r} is outside the float range")
    return value


def _constant(text: str) -> Any:
    raise PayloadError(f"{text} is not a JSON number")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        dup = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        raise PayloadError(f"key {dup[:64]!r} appears twice in one object")
    return doc


def _check_text(value: Any) -> None:
    """Refuse strings that cannot be written as UTF-8 (lone surrogates such as U+D800)."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for key, item in value.items():
            key.encode("utf-8")
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


def parse_object(raw: bytes, what: str, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``raw`` as strict JSON within the bounds; raise :class:`PayloadError`.

    ``what`` names the payload kind in messages. Returns the parsed value (any JSON type:
    callers check that it is an object).
    """
    if len(raw) > max_bytes:
        raise PayloadError(f"{what} payload of {len(raw)} bytes exceeds {max_bytes}")
    if not raw:
        raise PayloadError(f"empty payload where a {what} message was expected")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError(f"{what} payload is not UTF-8 text") from None
    depth = nesting_depth(raw, max_depth)
    if depth > max_depth:
        raise PayloadError(f"{what} payload nests deeper than {max_depth} levels")
    try:
        doc = json.loads(
            text,
            parse_int=_int,
            parse_float=_float,
            parse_constant=_constant,
            object_pairs_hook=_object,
        )
        if _SURROGATE_ESCAPE.search(raw):
            _check_text(doc)
    except UnicodeEncodeError:
        raise PayloadError(f"{what} payload holds a lone UTF-16 surrogate escape") from None
    except PayloadError as exc:
        raise PayloadError(f"{what} payload: {exc}") from None
    except json.JSONDecodeError as exc:
        raise PayloadError(f"{what} payload is not JSON: {exc}") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # bounds above make these rare
        raise PayloadError(f"{what} payload cannot be parsed: {type(exc).__name__}") from None
    return doc
