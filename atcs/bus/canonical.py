"""The canonical form of a JSON payload: RFC 8785 (JSON Canonicalization Scheme, JCS).

What a control message's signature covers is defined byte for byte, so that a signal
controller or console written in any language produces the same bytes:

- objects: members sorted by key, compared as UTF-16 code units; no whitespace anywhere;
- strings: UTF-8, escaping only the quote, the backslash and the control characters below
  U+0020 (backspace, tab, line feed, form feed and carriage return as their two-character
  escapes, the others as a six-character escape in lower-case hex, as JSON.stringify does);
- numbers: IEEE-754 doubles written as ECMAScript's ``Number.prototype.toString`` does
  (``25`` not ``25.0``, ``1e+21``, ``1.5e-7``); integers too (as doubles);
- ``true``, ``false``, ``null``.

Libraries implementing JCS exist for Java, Go, JavaScript, C# and others.
"""

from __future__ import annotations

import json
import math
from typing import Any

from atcs.errors import DataError


def _es_number(value: float) -> str:
    """``value`` as ECMAScript's ``Number.prototype.toString`` writes it (finite only)."""
    if not math.isfinite(value):
        raise DataError(f"number {value!r} has no canonical JSON form")
    if value == 0:
        return "0"
    if value < 0:
        return "-" + _es_number(-value)
    mantissa, _, exponent = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    shortest = stripped.rstrip("0")
    k, n = len(shortest), point
    if k <= n <= 21:
        return shortest + "0" * (n - k)
    if 0 < n <= 21:
        return shortest[:n] + "." + shortest[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + shortest
    exp = n - 1
    sign = "+" if exp >= 0 else "-"
    head = shortest if k == 1 else shortest[0] + "." + shortest[1:]
    return f"{head}e{sign}{abs(exp)}"


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int | float):
        out.append(_es_number(float(value)))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value, key=_utf16_key)):
            if not isinstance(key, str):
                raise DataError(f"object key {key!r} is not a string")
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise DataError(f"{type(value).__name__} has no canonical JSON form")


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of ``value`` (parsed JSON: dict, list ...).

    Raises :class:`DataError` for values JSON cannot hold (NaN, infinities, non-string keys).
    """
    out: list[str] = []
    _write(value, out)
    return "".join(out).encode("utf-8")
