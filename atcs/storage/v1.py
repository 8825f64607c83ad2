"""The InfluxDB 1.x API: ``POST /write`` and ``GET``/``POST /query`` over HTTP(S).

Credentials travel in an HTTP Basic ``Authorization`` header (never in the URL, so they
cannot reach a log line through a URL). Where the server answers that the database does
not exist and ``create_database`` is set, the writer runs ``CREATE DATABASE`` (idempotent
in InfluxDB 1.x; needs admin rights where authentication is on) and writes again.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any
from urllib.parse import urlencode

import urllib3

from atcs.config.storage import InfluxConfig, Precision
from atcs.errors import StorageError
from atcs.storage.base import DatabaseNotFoundError, ServerUnavailableError, error_for_status

log = logging.getLogger(__name__)

V1_PRECISION: dict[Precision, str] = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}
"""The v1 ``precision`` query parameter for each precision."""


def quote_identifier(name: str) -> str:
    """Return ``name`` as an InfluxQL double-quoted identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _message(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return str(parsed["error"])
    return text


class V1Writer:
    """Writes to (and queries) one database of an InfluxDB 1.x server."""

    def __init__(self, config: InfluxConfig, password: str = "", token: str = "") -> None:
        """Prepare the connection pool; nothing is sent until the first request.

        ``token`` (InfluxDB 2.x's v1-compatible API) is sent as ``Authorization: Token``.
        """
        self._url = config.url.rstrip("/")
        self._database = config.database
        self._retention_policy = config.retention_policy
        self._create_database = config.create_database
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        if config.username:
            pair = f"{config.username}:{password}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        elif token:
            self._headers["Authorization"] = f"Token {token}"
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=2,
            retries=False,
            timeout=urllib3.Timeout(total=config.timeout_s),
            cert_reqs="CERT_REQUIRED" if config.verify_tls else "CERT_NONE",
            ca_certs=config.ca_file,
        )
        self.target = f"{self._url} (v1, database {self._database!r})"

    def _request(self, method: str, path: str, params: dict[str, str], body: bytes | None) -> Any:
        url = f"{self._url}{path}?{urlencode(params)}"
        try:
            return self._pool.request(method, url, body=body, headers=self._headers)
        except urllib3.exceptions.HTTPError as exc:
            raise ServerUnavailableError(f"InfluxDB at {self.target} unreachable: {exc}") from None
        except OSError as exc:
            raise ServerUnavailableError(f"InfluxDB at {self.target} unreachable: {exc}") from None

    def write(self, body: bytes, precision: Precision) -> None:
        """POST ``body`` to ``/write``; raise a StorageError subclass on failure."""
        try:
            self._write_once(body, precision)
        except DatabaseNotFoundError:
            if not self._create_database:
                raise
            self.create_database()
            self._write_once(body, precision)

    def _write_once(self, body: bytes, precision: Precision) -> None:
        params = {"db": self._database, "precision": V1_PRECISION[precision]}
        if self._retention_policy:
            params["rp"] = self._retention_policy
        resp = self._request("POST", "/write", params, body)
        if 200 <= resp.status < 300:
            return
        raise error_for_status(resp.status, _message(resp.data), self.target)

    def create_database(self) -> None:
        """Run ``CREATE DATABASE`` for the configured database."""
        log.warning("InfluxDB at %s: database missing, creating it", self.target)
        self.query(f"CREATE DATABASE {quote_identifier(self._database)}", method="POST")

    def query(self, influxql: str, method: str = "GET") -> list[dict[str, Any]]:
        """Run an InfluxQL statement against the database; return the ``results`` list.

        Raises a StorageError subclass when the server fails or answers with an error.
        """
        params = {"q": influxql, "db": self._database}
        resp = self._request(method, "/query", params, None)
        if not 200 <= resp.status < 300:
            raise error_for_status(resp.status, _message(resp.data), self.target)
        try:
            results = json.loads(resp.data.decode("utf-8"))["results"]
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"InfluxDB at {self.target}: unreadable answer ({exc})") from None
        for result in results:
            if "error" in result:
                raise StorageError(f"InfluxDB at {self.target}: {result['error']}")
        return list(results)

    def close(self) -> None:
        """Close pooled connections."""
        self._pool.clear()
