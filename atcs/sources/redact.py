"""Keep credentials out of log lines, camera status and error messages.

Camera URLs often carry secrets: ``rtsp://user:pass@host/...`` or snapshot URLs such as
``http://cam/snapshot.cgi?user=admin&pwd=secret``. Every piece of text this package logs
or reports about a source goes through :func:`redact_url` or :func:`redact_text` first.
Redaction errs on the side of hiding too much: everything between ``://`` and the last
``@`` of a URL is masked, and so are the values of query parameters with secret names.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
"""What replaces a secret."""

SECRET_QUERY_KEYS = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "auth",
        "authorization",
        "credentials",
        "key",
        "login",
        "loginpas",
        "loginuse",
        "pass",
        "passwd",
        "password",
        "pwd",
        "secret",
        "session",
        "sessionid",
        "sig",
        "signature",
        "token",
        "user",
        "username",
        "usr",
    }
)
"""Query parameter names (lower case) whose values are masked."""

# scheme://userinfo@ ; userinfo runs to the last '@' before whitespace or a quote, so a
# password holding an unescaped '@' or '/' is masked as a whole.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^\s'\"<>]*@")
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&;](?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)=)(?P<value>[^&;#\s'\"<>]*)"
)


def _mask_query(match: re.Match[str]) -> str:
    if match.group("key").lower() in SECRET_QUERY_KEYS and match.group("value"):
        return match.group("head") + MASK
    return match.group(0)


def redact_text(text: str) -> str:
    """Return ``text`` with the credentials of every URL in it masked.

    ``"cannot open rtsp://admin:pw@10.0.0.5/live"`` becomes
    ``"cannot open rtsp://***@10.0.0.5/live"``; ``?user=admin&pwd=x`` becomes
    ``?user=***&pwd=***``.
    """
    masked = _USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", text)
    return _QUERY_SECRET.sub(_mask_query, masked)


def redact_url(url: str) -> str:
    """Return ``url`` without user name, password or secret query values.

    A URL without secrets, or a plain file path, comes back unchanged.
    """
    return redact_text(url)


def strip_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """Split ``scheme://user:pass@host/...`` into the URL without them, user and password.

    User and password are returned percent-decoded; both are None when the URL has none.
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, unquote(user), unquote(password) if sep else None
