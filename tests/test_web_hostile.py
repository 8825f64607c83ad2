"""The dashboard under abuse, served by the real uvicorn server it runs in production.

Clients connect from distinct loopback addresses (``127.0.0.N``), TLS is real (a test CA,
the engine's own certificate, or a real nginx terminating TLS in front of it). Covered:
login floods and sprays against the throttle, the cost bounds of a login, ``/metrics`` and
the OpenAPI schema without anonymous viewers, ``Secure`` cookies, forwarding headers only
from trusted proxies, bounded request bodies, bounded and printable audit lines.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from atcs.config import parse_config
from atcs.control import ControlLoop
from atcs.web import build_context
from atcs.web.app import create_app
from atcs.web.context import DashboardContext
from atcs.web.server import WebServer
from tests.support.mosquitto import TlsFiles, make_tls_files
from tests.support.web import Answer, NginxTlsProxy, call, client_tls, login
from tests.test_web_api import ENV, OPERATOR, VIEWER, FakeEngine, site_raw

pytestmark = pytest.mark.integration

METRICS_TOKEN = "prometheus-scrape-token-1"


@dataclass
class Served:
    """The dashboard app on a real server thread."""

    ctx: DashboardContext
    server: WebServer

    @property
    def port(self) -> int:
        return self.server.port


def serve(tmp_path: Path, *, tls: TlsFiles | None = None, **dashboard: Any) -> Iterator[Served]:
    """Build the dashboard of the test site and serve it on a free port until the end."""
    if tls is not None:
        dashboard |= {"cert_file": str(tls.server_cert), "key_file": str(tls.server_key)}
    env = ENV | {"T_METRICS": METRICS_TOKEN}
    cfg = parse_config(site_raw(tmp_path / "var", **dashboard), tmp_path, dict(env))
    loop = ControlLoop.from_config(cfg, lambda _plan: None)
    assert cfg.dashboard is not None
    ctx = build_context(cfg.dashboard, FakeEngine(cfg, loop), environ=env)
    ctx.audit.start()
    server = WebServer(
        create_app(ctx),
        "127.0.0.1",
        0,
        tls=(str(tls.server_cert), str(tls.server_key)) if tls is not None else None,
    )
    server.start()
    try:
        yield Served(ctx, server)
    finally:
        server.stop()
        ctx.auth.close()
        ctx.audit.close()


FAST_THROTTLE: dict[str, Any] = {
    "login_failures_max": 3,
    "login_delay_s": 0.2,
    "login_delay_max_s": 0.8,
}
WRONG = (OPERATOR[0], "guess")


def flood(port: int, source: str, seconds: float, user: tuple[str, str] = WRONG) -> list[Answer]:
    """Wrong passwords from ``source`` as fast as one client can send them."""
    answers = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        answers.append(login(port, user, source))
    return answers


# --- logins ------------------------------------------------------------------------------


def test_a_flood_from_one_address_never_stops_the_right_password(tmp_path: Path) -> None:
    for site in serve(tmp_path, **FAST_THROTTLE):
        assert login(site.port, OPERATOR, "127.0.0.2").status == 200, "the usual address"
        answers = flood(site.port, "127.0.0.66", 1.5)
        codes = [a.code or str(a.status) for a in answers]
        checked = codes.count("wrong_password")
        assert codes.count("login_delayed") >= len(answers) - checked > 10
        # per-address limit: 3 free, then one attempt per doubling delay (0.2, 0.4, 0.8, 0.8 s)
        assert checked <= 3 + 4, codes
        assert {a.headers.get("retry-after") for a in answers if a.status == 429} == {"1"}
        assert all(a.status in (401, 429) for a in answers)
        # the operator's usual address: at once, even while the name is under attack
        t0 = time.monotonic()
        assert login(site.port, OPERATOR, "127.0.0.2").status == 200
        assert time.monotonic() - t0 < 0.5
        # a new address waits for the name's delay (capped), then gets in
        fresh = login(site.port, OPERATOR, "127.0.0.3")
        if fresh.status == 429:
            assert fresh.code == "login_delayed"
            time.sleep(float(fresh.headers["retry-after"]))
            fresh = login(site.port, OPERATOR, "127.0.0.3")
        assert fresh.status == 200
        # the flooding address itself: once the flood stops, in after at most the cap
        t0 = time.monotonic()
        while (own := login(site.port, OPERATOR, "127.0.0.66")).status == 429:
            time.sleep(0.1)
        assert own.status == 200
        assert time.monotonic() - t0 <= 0.8 + 0.5
        assert site.ctx.counters().by_name["login_delayed"] >= 10


def test_spraying_names_and_addresses_keeps_tables_bounded_and_forgets_no_victim(
    tmp_path: Path,
) -> None:
    throttle: dict[str, Any] = {
        "login_failures_max": 2,
        "login_delay_s": 20.0,
        "login_delay_max_s": 20.0,
    }
    for site in serve(tmp_path, login_clients_max=16, **throttle):
        assert login(site.port, OPERATOR, "127.0.0.2").status == 200
        for source in ("127.0.1.1", "127.0.1.2"):  # alice's name now waits 20 s elsewhere
            assert login(site.port, WRONG, source).status == 401
        assert login(site.port, OPERATOR, "127.0.1.3").code == "login_delayed"
        for i in range(60):  # 60 names from 30 addresses: far beyond the 16-entry tables
            login(site.port, (f"user{i}", "guess"), f"127.0.2.{i // 2 + 1}")
        sizes = site.ctx.auth.throttle.sizes()
        assert max(sizes.values()) <= 16, sizes
        assert sizes["names"] == 16, "the table filled up and stopped there"
        assert site.ctx.auth.throttle.name_failures(OPERATOR[0]) == 2, "the victim is remembered"
        assert login(site.port, OPERATOR, "127.0.1.4").code == "login_delayed"
        assert login(site.port, OPERATOR, "127.0.0.2").status == 200, "usual address: at once"


def _burst(port: int, clients: int, per_client: int) -> list[Answer]:
    """Wrong passwords for fresh names from ``clients`` addresses at once."""
    answers: list[Answer] = []
    lock = threading.Lock()

    def one(n: int) -> None:
        for k in range(per_client):
            answer = login(port, (f"spray{n}-{k}", "guess"), f"127.0.3.{n + 1}")
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


def test_password_checks_run_on_a_bounded_pool(tmp_path: Path) -> None:
    for site in serve(tmp_path, login_checks_max=1, login_queue_max=1, login_failures_max=100):
        before = set(threading.enumerate())
        answers = _burst(site.port, clients=12, per_client=4)
        codes = {a.code for a in answers}
        assert codes <= {"wrong_password", "login_busy"}, codes
        assert "login_busy" in codes, "12 parallel clients over 1 check and 1 waiting"
        busy = next(a for a in answers if a.code == "login_busy")
        assert (busy.status, busy.headers["retry-after"]) == (503, "1")
        assert site.ctx.auth.checks.pending == 0
        pool = [t for t in set(threading.enumerate()) - before if t.name.startswith("atcs-login")]
        assert len(pool) == 1, "scrypt runs only on the pool's own thread"
        assert login(site.port, OPERATOR, "127.0.0.2").status == 200


def test_request_bodies_are_bounded(tmp_path: Path) -> None:
    for site in serve(tmp_path, request_body_max_bytes=4096):
        big = {"username": "alice", "password": "x" * 10_000}
        for chunked in (False, True):
            answer = call(site.port, "POST", "/api/login", body=big, chunked=chunked)
            assert (answer.status, answer.code) == (413, "body_too_large"), answer.body[:200]
        assert login(site.port, OPERATOR).status == 200, "the server keeps serving"


# --- metrics, schema, cookies and proxies ------------------------------------------------


def test_metrics_and_schema_need_a_login_without_anonymous_viewers(tmp_path: Path) -> None:
    for site in serve(tmp_path, allow_anonymous_viewers=False, metrics_token_env="T_METRICS"):
        for path in ("/metrics", "/openapi.json"):
            answer = call(site.port, "GET", path)
            assert (answer.status, answer.code) == (401, "login_required"), path
        token = login(site.port, VIEWER).json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert call(site.port, "GET", "/metrics", headers=bearer).status == 200
        schema = call(site.port, "GET", "/openapi.json", headers=bearer)
        assert "/api/login" in schema.json()["paths"]
        scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        metrics = call(site.port, "GET", "/metrics", headers=scrape)
        assert metrics.status == 200
        assert b"atcs_dashboard_events_total" in metrics.body
        assert call(site.port, "GET", "/openapi.json", headers=scrape).status == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert call(site.port, "GET", "/metrics", headers=wrong).status == 401
        docs = call(site.port, "GET", "/api/docs")
        assert docs.status == 200
        assert b"://" not in docs.body, "no asset from elsewhere: the engine works offline"
        assert b'"//' not in docs.body
    for site in serve(tmp_path / "open"):
        assert call(site.port, "GET", "/metrics").status == 200, "anonymous viewers: open"
        assert call(site.port, "GET", "/openapi.json").status == 200


def _cookie(answer: Answer) -> str:
    assert answer.status == 200, answer.body
    return next(c for c in answer.cookies if c.startswith("atcs_session=")).lower()


def test_cookies_are_secure_over_tls_and_not_over_plain_http(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "tls")
    for site in serve(tmp_path / "plain"):
        assert "secure" not in _cookie(login(site.port, OPERATOR))
        forged = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
        assert "secure" not in _cookie(login(site.port, OPERATOR, headers=forged))
        assert site.ctx.auth.throttle.known(OPERATOR[0], "127.0.0.1"), "headers not believed"
        assert not site.ctx.auth.throttle.known(OPERATOR[0], "203.0.113.9")
    for site in serve(tmp_path / "always", secure_cookie=True):
        assert "; secure" in _cookie(login(site.port, OPERATOR))
    for site in serve(tmp_path / "tls", tls=tls):
        assert site.server.url.startswith("https://")
        assert "; secure" in _cookie(login(site.port, OPERATOR, tls=client_tls(tls)))


def test_behind_a_trusted_tls_proxy_cookies_are_secure_and_the_client_is_the_browser(
    tmp_path: Path,
) -> None:
    tls = make_tls_files(tmp_path / "tls")
    for site in serve(tmp_path, trusted_proxies=["127.0.0.1/32"], **FAST_THROTTLE):
        proxy = NginxTlsProxy(tmp_path / "nginx", site.port, tls)
        proxy.start()
        try:
            via = {"tls": client_tls(tls)}
            assert "; secure" in _cookie(login(proxy.port, OPERATOR, "127.0.0.7", **via))
            assert site.ctx.auth.throttle.known(OPERATOR[0], "127.0.0.7")
            spoof = {"X-Forwarded-For": "127.0.0.7"}  # nginx appends the real peer
            answers = [
                login(proxy.port, WRONG, "127.0.0.8", headers=spoof, **via) for _ in range(6)
            ]
            assert [a.status for a in answers].count(429) >= 2, "the flooder is throttled"
            assert login(proxy.port, OPERATOR, "127.0.0.7", **via).status == 200
        finally:
            proxy.stop()
        assert "secure" not in _cookie(login(site.port, VIEWER, "127.0.0.9")), "direct: http"


# --- audit and logs ----------------------------------------------------------------------


def test_hostile_ids_and_names_reach_logs_and_audit_bounded_and_printable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for site in serve(tmp_path):
        token = login(site.port, OPERATOR).json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        long_id = "x" * 10_000
        body = {"action": "hold", "reason": "line one\nFORGED line\x1b[31m"}
        answer = call(site.port, "POST", f"/api/intersections/{long_id}/override", body=body,
                      headers=bearer)  # fmt: skip
        assert (answer.status, answer.code) == (404, "unknown_intersection")
        assert len(answer.json()["message"]) < 300
        lines = site.ctx.audit.path.read_text().splitlines()
        assert len(lines) == 1
        record = json.loads(lines[0])
        assert len(lines[0]) < 2000
        assert record["intersection_id"].startswith("x" * 50)
        assert record["intersection_id"].endswith("…(+9900 chars)")
        assert record["reason"] == "line one\\x0aFORGED line\\x1b[31m"
        assert record["remote"] == "127.0.0.1"
        with caplog.at_level(logging.WARNING, logger="atcs.web.auth"):
            assert login(site.port, ("eve\nFORGED entry", "x")).status == 401
        failed = [r.getMessage() for r in caplog.records if "failed login" in r.getMessage()]
        assert failed == ["dashboard: failed login for user eve\\x0aFORGED entry from 127.0.0.1"]
