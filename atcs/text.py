r"""Outside text made safe for a log line or an audit record: bounded and printable.

Names, ids, reasons and topics that arrive from a login form, the HTTP API or the bus are
written to logs and to the audit trail. :func:`printable` is the one helper every such
string passes through: control characters (newlines and carriage returns included, so a
value cannot forge a log line), format characters (bidirectional overrides that reorder
what a reader sees), lone surrogates and every space but the plain one are escaped as
``\xNN`` / ``\uNNNN``, and the result is cut to a bound with a note of how much was left
out.
"""

from __future__ import annotations

TEXT_MAX_CHARS = 200
"""Default bound (characters) of a value written to a log line or an audit field."""


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(value: object, limit: int = TEXT_MAX_CHARS) -> str:
    r"""Return ``value`` as text of at most about ``limit`` characters, every one printable.

    Unsafe characters are escaped (``"a\nb"`` becomes ``a\x0ab``); text longer than
    ``limit`` after escaping is cut and ends with ``…(+N chars)``, N counting the
    characters of the original left out. Spaces stay as they are.
    """
    text = value if isinstance(value, str) else str(value)
    out: list[str] = []
    size = 0
    for used, char in enumerate(text):
        piece = char
        if not char.isprintable():  # control, format, surrogate, unassigned, odd spaces
            piece = _escape(char)
        if size + len(piece) > limit:
            return "".join(out) + f"…(+{len(text) - used} chars)"
        out.append(piece)
        size += len(piece)
    return "".join(out)
