"""Serve an ASGI app with uvicorn on a background thread, with one stop.

With a certificate and key the server speaks HTTPS (an unreadable or mismatched pair is a
:class:`~atcs.errors.ConfigError`). uvicorn's own reading of ``X-Forwarded-*`` headers is
off: :mod:`atcs.web.clients` reads them, from trusted proxies only.

The listening socket is bound in :meth:`WebServer.start` on the caller's thread, so a
taken port or a bad address is an immediate :class:`~atcs.errors.ConfigError` naming the
address (uvicorn, binding on its own thread, would only log it and exit the thread).
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from atcs.errors import ConfigError

log = logging.getLogger(__name__)


class WebServer:
    """uvicorn serving ``app`` on ``host:port`` from a daemon thread."""

    def __init__(
        self, app: FastAPI, host: str, port: int, tls: tuple[str, str] | None = None
    ) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._tls = tls
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """Return the bound port (the configured one, or the one picked for port 0)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the server (``http://host:port/``, ``https://`` with TLS)."""
        host = self._host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the wildcard, not binding it
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{host}:{self.port}/"

    def _bind(self) -> socket.socket:
        try:
            infos = socket.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ConfigError(f"dashboard.host: cannot resolve {self._host!r}: {exc}") from None
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"dashboard: cannot listen on {self._host}:{self._port}: {exc.strerror}"
            ) from None
        sock.set_inheritable(True)
        self._port = int(sock.getsockname()[1])  # port 0: keep the picked port for restarts
        return sock

    def start(self, timeout_s: float = 10.0) -> None:
        """Bind, start serving and wait until uvicorn is up (ConfigError when it cannot)."""
        if self._thread is not None:
            return
        cert, key = self._tls or (None, None)
        self._sock = self._bind()
        config = uvicorn.Config(
            self._app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=5,
            server_header=False,
            proxy_headers=False,  # forwarding headers are read by atcs.web.clients, if trusted
            ssl_certfile=cert,
            ssl_keyfile=key,
        )
        try:
            config.load()
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            self._sock.close()
            self._sock = None
            raise ConfigError(f"dashboard.cert_file / key_file: cannot load: {exc}") from None
        server = uvicorn.Server(config)
        self._server = server
        sock = self._sock
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="atcs-web", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"dashboard: the web server did not start on {self.url}")
            time.sleep(0.02)
        log.info("dashboard serving at %s", self.url)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask uvicorn to finish, wait for its thread, close the socket."""
        server, thread = self._server, self._thread
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                log.error("dashboard web server did not stop within %.1f s", timeout_s)
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._thread = None
        self._server = None
        log.info("dashboard stopped")
