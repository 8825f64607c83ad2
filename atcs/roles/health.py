"""Liveness and readiness of a node over HTTP, for Kubernetes probes and load balancers.

:class:`HealthServer` answers ``GET /healthz`` (200 while the node's main loop turns,
503 when it stopped turning for ``stuck_after_s``) and ``GET /readyz`` (200 when the node
does its job: its broker connections are up; 503 with the reasons otherwise), each with a
JSON :class:`NodeHealth` body, and the node's extra routes (an edge node's camera
snapshots, :mod:`atcs.roles.snapshots`). It runs on its own thread (stdlib
``http.server``), answers nothing else (404) and is a :class:`~atcs.sinks.Sink`, so it
starts and stops with the node's outputs. ``[node] health_port = 0`` turns it off.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from atcs.health_records import ProbeServerHealth

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NodeHealth:
    """A node's health now: alive (its loop turns), ready (connected), and why not.

    ``parts``: each output's and feed's own health map (connection and counters), by the
    part's class name (``#2``, ``#3`` ... for later parts of the same class).
    """

    node_id: str
    role: str
    live: bool
    ready: bool
    loop_age_s: float
    """Seconds since the main loop last turned."""
    problems: tuple[str, ...] = ()
    parts: dict[str, dict[str, float | int | str | bool]] = field(default_factory=dict)


Probe = Callable[[], NodeHealth]


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """An extra route's answer: status, content type, body and more headers."""

    status: int
    content_type: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


Route = Callable[[str], HttpAnswer]
"""An extra GET route: takes the request path, returns the answer."""


class Reporting(Protocol):
    """Anything with a health map (sinks, the bus feed)."""

    def health(self) -> Mapping[str, float | int | str | bool]:
        """Return the connection state and counters."""
        ...


class HealthServer:
    """``/healthz`` and ``/readyz`` on ``host:port`` (0: any free port)."""

    def __init__(
        self, probe: Probe, host: str, port: int, routes: Mapping[str, Route] | None = None
    ) -> None:
        self._probe = probe
        self._routes = dict(routes or {})
        """Extra GET routes by path prefix."""
        self._host = host
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests = 0

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        return self._server.server_address[1] if self._server is not None else self._port

    def start(self) -> None:
        """Bind and serve on a daemon thread (an ``OSError`` when the port is taken)."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                path = self.path.split("?", 1)[0]
                route = next((r for p, r in owner._routes.items() if path.startswith(p)), None)
                if route is not None:
                    self._answer(route(path))
                    return
                if path not in ("/healthz", "/readyz"):
                    self.send_error(404)
                    return
                try:
                    health = owner._probe()
                except Exception as exc:  # a failing probe is an unhealthy node
                    health = NodeHealth("", "", False, False, 0.0, (f"probe failed: {exc}",))
                ok = health.live if path == "/healthz" else health.live and health.ready
                body = json.dumps(asdict(health)).encode()
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _answer(self, answer: HttpAnswer) -> None:
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("health: %s", format % args)

        self._server = ThreadingHTTPServer((self._host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="atcs-health", daemon=True
        )
        self._thread.start()
        log.info("node health on http://%s:%d/healthz and /readyz", self._host, self.port)

    def on_metrics(self, metrics: Sequence[object]) -> None:
        """Health takes no measures."""

    def on_camera_status(self, status: object) -> None:
        """Health takes no camera status."""

    def on_plan(self, plan: object) -> None:
        """Health takes no plans."""

    def status(self) -> ProbeServerHealth:
        """Return whether it serves and the requests answered."""
        return ProbeServerHealth(self._server is not None, self.requests)

    def health(self) -> Mapping[str, float | int | str | bool]:
        """:meth:`status` as a flat map."""
        return self.status().as_map()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop serving."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout_s)


STUCK_AFTER_S = 30.0
"""A main loop that has not turned for this long (s) makes the node not alive."""


def node_health(
    node_id: str,
    role: str,
    loop_at: float | None,
    parts: Sequence[Reporting],
    *,
    now: float | None = None,
    stuck_after_s: float = STUCK_AFTER_S,
) -> NodeHealth:
    """Return the health of a node whose loop last turned at ``loop_at`` (monotonic s).

    ``loop_at`` None: not turned yet (alive, not ready). ``parts`` are its outputs and
    feeds (anything with ``health()``); one not connected makes the node not ready, named
    in ``problems``.
    """
    at = time.monotonic() if now is None else now
    age = 0.0 if loop_at is None else max(at - loop_at, 0.0)
    problems = []
    maps: dict[str, dict[str, float | int | str | bool]] = {}
    seen: Counter[str] = Counter()
    if loop_at is None:
        problems.append("main loop not started")
    elif age > stuck_after_s:
        problems.append(f"main loop stuck for {age:.0f} s")
    for part in parts:
        try:
            h = part.health()
        except Exception as exc:  # one part's failing health is a problem, not a crash
            problems.append(f"{type(part).__name__}: health failed: {exc}")
            continue
        name = type(part).__name__
        seen[name] += 1
        maps[name if seen[name] == 1 else f"{name}#{seen[name]}"] = dict(h)
        if not h.get("connected", True):
            problems.append(f"{name} not connected")
    live = loop_at is None or age <= stuck_after_s
    ready = loop_at is not None and not problems
    return NodeHealth(node_id, role, live, ready, round(age, 3), tuple(problems), maps)
