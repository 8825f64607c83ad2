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

import grp
import itertools
import json
import os
import pwd
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.net import free_port, port_open
from tests.support.process import stop_process

__all__ = [  # free_port: still importable from here
    "InfluxServer",
    "NginxProxy",
    "free_port",
    "influx_v2_proxy",
    "influxdb",
    "make_influxdb",
    "make_nginx_proxy",
    "new_db",
]

INFLUXD = shutil.which("influxd") or "/usr/bin/influxd"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


_db_numbers = itertools.count()


def new_db(stem: str = "atcs_test") -> str:
    """A database name no other test of this run uses: ``stem``, a counter, a clock tail."""
    return f"{stem}_{next(_db_numbers)}_{time.monotonic_ns() % 1_000_000}"


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``args`` with stdout and stderr appended to ``log_path``."""
    log = log_path.open("ab")
    try:
        return subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    finally:
        log.close()


class _LoggedServer:
    """A server process with its output in ``log_path``, started and stopped on demand."""

    name = "server"
    stop_signal: int = signal.SIGTERM

    def __init__(self, root: Path, log_name: str) -> None:
        self.root = root
        self.log_path = root / log_name
        self._proc: subprocess.Popen[bytes] | None = None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        """Whether the (master) process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def _start(self, timeout_s: float) -> None:
        """Start unless running; wait until ready, else stop and raise with the log's tail."""
        if self.running:
            return
        proc = self._proc = _spawn(self._command(), self.log_path)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{_tail(self.log_path)}")
            if self._ready():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"{self.name} was not ready within {timeout_s} s:\n{_tail(self.log_path)}"
        )

    def stop(self) -> None:
        """Stop the process with :attr:`stop_signal` (the data stays for a later start)."""
        stop_process(self._proc, self.stop_signal)


class InfluxServer(_LoggedServer):
    """A real ``influxd`` (InfluxDB 1.x) on loopback with its own data folder."""

    name = "influxd"

    def __init__(self, root: Path, *, auth: bool = False) -> None:
        super().__init__(root, "influxd.log")
        self.auth = auth
        self.port = free_port()
        self.rpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = root / "influxd.conf"
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

    def _command(self) -> list[str]:
        return [INFLUXD, "run", "-config", str(self.config_path)]

    def start(self, timeout_s: float = 30.0) -> None:
        """Start ``influxd`` and wait until ``/ping`` answers."""
        self._start(timeout_s)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as resp:
                return bool(resp.status == 204)
        except (urllib.error.URLError, OSError):
            return False

    def kill(self) -> None:
        """Kill ``influxd`` hard (SIGKILL), as a crash would."""
        stop_process(self._proc, signal.SIGKILL)

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


class NginxProxy(_LoggedServer):
    """A real nginx that maps the InfluxDB v2 write API onto an InfluxDB 1.x server."""

    name = "nginx"
    stop_signal = signal.SIGQUIT  # graceful

    def __init__(self, root: Path, upstream_port: int) -> None:
        super().__init__(root, "nginx.log")
        self.upstream_port = upstream_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = root / "nginx.conf"
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

    def _command(self) -> list[str]:
        return [NGINX, "-e", "stderr", "-p", str(self.root), "-c", str(self.config_path)]

    def start(self, timeout_s: float = 15.0) -> None:
        """Start nginx in the foreground and wait until it accepts connections."""
        self._start(timeout_s)

    def _ready(self) -> bool:
        return port_open(self.port)


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
