"""Talking to the real dashboard server: HTTP(S) calls from chosen loopback addresses, and a
real nginx terminating TLS in front of it.

Linux routes all of ``127.0.0.0/8`` to the loopback interface, so a client socket bound to
``127.0.0.N`` reaches a server on ``127.0.0.1`` from a distinct address: the login throttle
sees N different clients without any header trickery.
"""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.influxdb import NginxProxy
from tests.support.mosquitto import TlsFiles


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, headers (lower-case names, last value), body."""

    status: int
    headers: dict[str, str]
    body: bytes
    cookies: list[str]

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    @property
    def code(self) -> str:
        """The ErrorBody code (or '' for other answers)."""
        try:
            data = self.json()
        except ValueError:
            return ""
        return str(data.get("code", "")) if isinstance(data, dict) else ""


def call(
    port: int,
    method: str,
    path: str,
    *,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    source: str = "127.0.0.1",
    tls: ssl.SSLContext | None = None,
    chunked: bool = False,
    timeout_s: float = 30.0,
) -> Answer:
    """Send one request to ``127.0.0.1:port`` from the address ``source``."""
    conn: http.client.HTTPConnection
    if tls is None:
        conn = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=timeout_s, source_address=(source, 0)
        )
    else:
        conn = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=timeout_s, source_address=(source, 0), context=tls
        )
    sent = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    try:
        if chunked:
            conn.request(method, path, body=iter([data or b""]), headers=sent, encode_chunked=True)
        else:
            conn.request(method, path, body=data, headers=sent)
        resp = conn.getresponse()
        payload = resp.read()
        cookies = resp.headers.get_all("set-cookie") or []
        names = {k.lower(): v for k, v in resp.getheaders()}
        return Answer(resp.status, names, payload, cookies)
    finally:
        conn.close()


def login(port: int, user: tuple[str, str], source: str = "127.0.0.1", **kw: Any) -> Answer:
    """POST /api/login as ``user`` from ``source``."""
    return call(
        port, "POST", "/api/login", body={"username": user[0], "password": user[1]},
        source=source, **kw,
    )  # fmt: skip


def client_tls(files: TlsFiles) -> ssl.SSLContext:
    """A client context trusting the test CA (and checking 127.0.0.1 against the cert)."""
    return ssl.create_default_context(cafile=str(files.ca_file))


class NginxTlsProxy(NginxProxy):
    """A real nginx terminating TLS and forwarding to the dashboard, as an operator would."""

    def __init__(self, root: Path, upstream_port: int, tls: TlsFiles) -> None:
        self.tls = tls
        super().__init__(root, upstream_port)
        self.url = f"https://127.0.0.1:{self.port}"

    def _config(self) -> str:
        plain = super()._config()
        head = plain[: plain.index("  map $arg_precision")]
        return f"""{head}  server {{
    listen 127.0.0.1:{self.port} ssl;
    ssl_certificate {self.tls.server_cert};
    ssl_certificate_key {self.tls.server_key};
    location / {{
      proxy_pass http://127.0.0.1:{self.upstream_port};
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }}
  }}
}}
"""
