"""Who is calling, and over what: the client's address and whether the request came over TLS.

Without ``trusted_proxies`` the client is the TCP peer and only a TLS connection to the
engine itself (``cert_file``) counts as HTTPS; forwarding headers are ignored, so nobody
can pick the address the login throttle counts against. When the peer is a trusted
proxy, ``X-Forwarded-For`` is read from the right: every hop that is itself a trusted
proxy is skipped and the first other address is the client (an entry that is not an
address ends the walk at the last trusted hop). ``X-Forwarded-Proto`` (its last value,
set by the proxy next to the engine) then tells whether the browser spoke HTTPS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import Request

FORWARDED_MAX_CHARS = 2048
"""Longest ``X-Forwarded-For`` read, characters (a longer header is cut)."""

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse(text: str) -> _Address | None:
    try:
        ip = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class ClientResolver:
    """Finds the client address and the scheme of a request (see the module docstring)."""

    def __init__(self, trusted_proxies: Sequence[str]) -> None:
        self._networks = [ipaddress.ip_network(n, strict=False) for n in trusted_proxies]

    def _trusted(self, ip: _Address | None) -> bool:
        return ip is not None and any(ip in net for net in self._networks)

    def _peer(self, request: Request) -> str:
        return request.client.host if request.client is not None else ""

    def address(self, request: Request) -> str:
        """Return the client's address (text) as the throttle and the audit log see it."""
        peer = self._peer(request)
        peer_ip = _parse(peer)
        if not self._trusted(peer_ip):
            return str(peer_ip) if peer_ip is not None else peer
        client = peer_ip
        header = ",".join(request.headers.getlist("x-forwarded-for"))[-FORWARDED_MAX_CHARS:]
        for hop in reversed(header.split(",")):
            ip = _parse(hop)
            if ip is None:
                break
            client = ip
            if not self._trusted(ip):
                break
        return str(client)

    def https(self, request: Request) -> bool:
        """Tell whether the browser spoke HTTPS (to the engine, or to a trusted proxy)."""
        if request.url.scheme == "https":
            return True
        if not self._trusted(_parse(self._peer(request))):
            return False
        values = ",".join(request.headers.getlist("x-forwarded-proto")).split(",")
        return values[-1].strip().lower() == "https"
