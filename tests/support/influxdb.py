"""Real InfluxDB 1.x (Debian's ``influxd``) and a real nginx v2-API proxy for tests.

:class:`InfluxServer` runs ``influxd`` on free loopback ports with a throwaway data folder
and a generated config (authentication optional); :class:`NginxProxy` runs nginx as the
test user with a generated config (``daemon off``, pid and temp paths in a temp folder,
``error_log stderr``) and maps the InfluxDB v2 write API onto the 1.x API:

``POST /api/v2/write?org=&bucket=DB[/RP]&precision=ns|us|ms|s`` with
``Authorization: Token USER:PASSWORD`` becomes
``POST /write?db=DB&rp=RP&precision=n|u|ms|s&u=USER&p=PASSWORD``, the body passed as it is
(this is what InfluxDB 1.8's compatibility API does; user and password must be URL-safe).

Both can be stopped and started again mid-test on the same ports and data. Fixtures:
``influxdb`` (one server for the session, no authentication), ``influx_v2_proxy`` (nginx in
front of it), ``make_influxdb`` and ``make_nginx_proxy`` (factories for servers a test may
stop, restart or configure with authentication; stopped at the test's end).
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

INFLUXD = shutil.which("influxd") or "/usr/bin/influxd"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _stop_process(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class InfluxServer:
    """A real ``influxd`` (InfluxDB 1.x) on loopback with its own data folder."""

    def __init__(self, root: Path, *, auth: bool = False) -> None:
        self.root = root
        self.auth = auth
        self.port = free_port()
        self.rpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "influxd.log"
        self.config_path = root / "influxd.conf"
        self._proc: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self._config())

    def _config(self) -> str:
        r = self.root
        return f"""\
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{r}/meta"
  logging-enabled = false
[data]
  dir = "{r}/data"
  wal-dir = "{r}/wal"
  query-log-enabled = false
  index-version = "inmem"
[retention]
  enabled = false
[shard-precreation]
  enabled = false
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {"true" if self.auth else "false"}
  log-enabled = false
  pprof-enabled = false
[logging]
  level = "warn"
  suppress-logo = true
"""

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 30.0) -> None:
        """Start ``influxd`` and wait until ``/ping`` answers."""
        if self.running:
            return
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                [INFLUXD, "run", "-config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"influxd exited at start:\n{_tail(self.log_path)}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as resp:
                    if resp.status == 204:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"influxd did not answer within {timeout_s} s:\n{_tail(self.log_path)}")

    def stop(self) -> None:
        """Stop ``influxd`` (SIGTERM; the data stays for a later :meth:`start`)."""
        _stop_process(self._proc)

    def kill(self) -> None:
        """Kill ``influxd`` hard (SIGKILL), as a crash would."""
        _stop_process(self._proc, signal.SIGKILL)

    def query(
        self,
        influxql: str,
        db: str | None = None,
        *,
        user: str = "",
        password: str = "",
        epoch: str | None = None,
        method: str = "GET",
    ) -> list[dict[str, Any]]:
        """Run InfluxQL through ``/query``; return ``results``; raise on any error."""
        params = {"q": influxql}
        if db:
            params["db"] = db
        if epoch:
            params["epoch"] = epoch
        auth = urllib.parse.urlencode({"u": user, "p": password}) if user else ""
        if method == "GET":
            qs = urllib.parse.urlencode(params) + (f"&{auth}" if auth else "")
            req = urllib.request.Request(f"{self.url}/query?{qs}")
        else:
            body = urllib.parse.urlencode(params).encode()
            req = urllib.request.Request(f"{self.url}/query?{auth}", data=body, method="POST")
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        with urllib.request.urlopen(req, timeout=10) as resp:
            results: list[dict[str, Any]] = json.loads(resp.read())["results"]
        for result in results:
            if "error" in result:
                raise RuntimeError(f"InfluxQL error: {result['error']}")
        return results

    def rows(
        self, influxql: str, db: str, *, epoch: str = "ms", **auth: str
    ) -> list[dict[str, Any]]:
        """The rows of a SELECT as dicts (column name -> value), series after series."""
        out: list[dict[str, Any]] = []
        for result in self.query(influxql, db, epoch=epoch, **auth):
            for series in result.get("series", []):
                tags = series.get("tags", {})
                for values in series["values"]:
                    row = dict(zip(series["columns"], values, strict=True))
                    row.update(tags)
                    out.append(row)
        return out

    def create_admin(self, user: str, password: str) -> None:
        """Create the first admin user (allowed without credentials on a fresh server)."""
        self.query(
            f"CREATE USER \"{user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES",
            method="POST",
        )


class NginxProxy:
    """A real nginx that maps the InfluxDB v2 write API onto an InfluxDB 1.x server."""

    def __init__(self, root: Path, upstream_port: int) -> None:
        self.root = root
        self.upstream_port = upstream_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "nginx.log"
        self.config_path = root / "nginx.conf"
        self._proc: subprocess.Popen[bytes] | None = None
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (root / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self._config())

    def _config(self) -> str:
        r = self.root
        user = ""
        if os.geteuid() == 0:  # the master runs as root: keep the workers as the test user
            user = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};"
        upstream = f"http://127.0.0.1:{self.upstream_port}"
        write = (
            f"{upstream}/write?db=$influx_db&rp=$influx_rp&precision=$influx_precision"
            "&u=$influx_u&p=$influx_p"
        )
        return f"""\
daemon off;
worker_processes 1;
pid {r}/nginx.pid;
error_log stderr warn;
{user}
events {{ worker_connections 64; }}
http {{
  access_log {r}/access.log;
  client_body_temp_path {r}/tmp/client_body;
  proxy_temp_path {r}/tmp/proxy;
  fastcgi_temp_path {r}/tmp/fastcgi;
  uwsgi_temp_path {r}/tmp/uwsgi;
  scgi_temp_path {r}/tmp/scgi;
  client_max_body_size 64m;
  map $arg_precision $influx_precision {{ default n; ns n; us u; ms ms; s s; }}
  map $arg_bucket $influx_db {{ "~^(?<db>[^/%]+)(/|%2[Ff])" $db; default $arg_bucket; }}
  map $arg_bucket $influx_rp {{ "~(/|%2[Ff])(?<rp>.+)$" $rp; default ""; }}
  map $http_authorization $influx_u {{ "~^Token (?<u>[^:]+):" $u; default ""; }}
  map $http_authorization $influx_p {{ "~^Token [^:]+:(?<p>.+)$" $p; default ""; }}
  server {{
    listen 127.0.0.1:{self.port};
    location = /api/v2/write {{
      limit_except POST {{ deny all; }}
      proxy_set_header Authorization "";
      proxy_pass {write};
    }}
    location = /ping {{ proxy_pass {upstream}/ping; }}
    location / {{ return 404; }}
  }}
}}
"""

    @property
    def running(self) -> bool:
        """Whether nginx's master process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 15.0) -> None:
        """Start nginx in the foreground and wait until it accepts connections."""
        if self.running:
            return
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                [NGINX, "-e", "stderr", "-p", str(self.root), "-c", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"nginx exited at start:\n{_tail(self.log_path)}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen within {timeout_s} s:\n{_tail(self.log_path)}")

    def stop(self) -> None:
        """Stop nginx (SIGQUIT: graceful)."""
        _stop_process(self._proc, signal.SIGQUIT)


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """One InfluxDB 1.x for the session, no authentication; tests use their own databases."""
    server = InfluxServer(tmp_path_factory.mktemp("influxdb"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def influx_v2_proxy(
    influxdb: InfluxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NginxProxy]:
    """nginx mapping the v2 write API onto the session's InfluxDB."""
    proxy = NginxProxy(tmp_path_factory.mktemp("nginx"), influxdb.port)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def make_influxdb(tmp_path: Path) -> Iterator[Callable[..., InfluxServer]]:
    """Factory of started InfluxDB servers (``auth=True`` for authentication), stopped after."""
    servers: list[InfluxServer] = []

    def make(*, auth: bool = False) -> InfluxServer:
        server = InfluxServer(tmp_path / f"influxdb{len(servers)}", auth=auth)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def make_nginx_proxy(tmp_path: Path) -> Iterator[Callable[[InfluxServer], NginxProxy]]:
    """Factory of started nginx v2-API proxies in front of a given server, stopped after."""
    proxies: list[NginxProxy] = []

    def make(server: InfluxServer) -> NginxProxy:
        proxy = NginxProxy(tmp_path / f"nginx{len(proxies)}", server.port)
        proxies.append(proxy)
        proxy.start()
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()
