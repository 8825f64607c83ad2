"""A login flood against the real dashboard server: memory, CPU and the operator's login.

Each configuration runs the dashboard (the app of ``tests/test_web_api.py``'s site on the
real uvicorn server) in a process of its own, so its memory is measured alone. The flood:
``--clients`` threads, each from its own loopback address (``127.0.4.N``), send wrong
passwords for fresh names as fast as the server answers, for ``--seconds``. Meanwhile the
operator logs in once a second from the usual address (``127.0.0.2``, where it logged in
before the flood). Sampled every 0.25 s: the server's RSS and threads (psutil).

Peers in the same run:

- ``atcs``: the shipped defaults (delays per address and per name, 2 check threads, 16
  waiting checks);
- ``unthrottled``: the same code with the throttle and the check pool opened up
  (``login_failures_max = 100``, 32 check threads, 1024 waiting), which is how the engine
  behaved before: every guess got a scrypt check at once, up to the server's thread pool.

    python -m benchmarks.bench_login                    # 32 clients, 20 s per configuration
    python -m benchmarks.bench_login --clients 64 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tests.support.web import login

OPERATOR = ("alice", "op-secret-1")
USUAL = "127.0.0.2"
CONFIGS: dict[str, dict[str, Any]] = {
    "atcs": {},
    "unthrottled": {"login_failures_max": 100, "login_checks_max": 32, "login_queue_max": 1024},
}


def serve(overrides: dict[str, Any]) -> None:
    """Child process: serve the dashboard, print the port, run until stdin closes."""
    from atcs.config import parse_config
    from atcs.control import ControlLoop
    from atcs.web import build_context
    from atcs.web.app import create_app
    from atcs.web.server import WebServer
    from tests.test_web_api import ENV, FakeEngine, site_raw

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        cfg = parse_config(site_raw(base / "var", **overrides), base, dict(ENV))
        assert cfg.dashboard is not None
        loop = ControlLoop.from_config(cfg, lambda _plan: None)
        ctx = build_context(cfg.dashboard, FakeEngine(cfg, loop), environ=ENV)
        server = WebServer(create_app(ctx), "127.0.0.1", 0)
        server.start()
        print(server.port, flush=True)
        sys.stdin.read()
        server.stop()
        ctx.auth.close()


@dataclass
class Run:
    """What one configuration did under the flood."""

    name: str
    answers: Counter[str] = field(default_factory=Counter)
    rss_mib: list[float] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    operator_ms: list[float] = field(default_factory=list)
    operator_failed: int = 0
    cpu_s: float = 0.0
    seconds: float = 0.0


def _flood(port: int, client: int, until: float, run: Run, lock: threading.Lock) -> None:
    source = f"127.0.4.{client + 1}"
    n = 0
    while time.monotonic() < until:
        try:
            answer = login(port, (f"guess{client}-{n}", "wrong"), source, timeout_s=60)
            key = answer.code or str(answer.status)
        except OSError as exc:
            key = type(exc).__name__
        n += 1
        with lock:
            run.answers[key] += 1


def _operator(port: int, until: float, run: Run) -> None:
    while time.monotonic() < until:
        t0 = time.perf_counter()
        try:
            ok = login(port, OPERATOR, USUAL, timeout_s=60).status == 200
        except OSError:
            ok = False
        if ok:
            run.operator_ms.append(1000 * (time.perf_counter() - t0))
        else:
            run.operator_failed += 1
        time.sleep(max(0.0, 1.0 - (time.perf_counter() - t0)))


def measure(name: str, clients: int, seconds: float) -> Run:
    """Start a server with ``CONFIGS[name]``, flood it, sample it, stop it."""
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_login", "--serve", json.dumps(CONFIGS[name])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdin is not None
    port = int(child.stdout.readline())
    proc = psutil.Process(child.pid)
    run = Run(name)
    assert login(port, OPERATOR, USUAL).status == 200, "the operator's usual address"
    run.rss_mib.append(proc.memory_info().rss / 2**20)
    cpu0 = sum(proc.cpu_times()[:2])
    lock = threading.Lock()
    t0 = time.monotonic()
    until = t0 + seconds
    workers = [
        threading.Thread(target=_flood, args=(port, c, until, run, lock)) for c in range(clients)
    ]
    workers.append(threading.Thread(target=_operator, args=(port, until, run)))
    for w in workers:
        w.start()
    while any(w.is_alive() for w in workers):
        run.rss_mib.append(proc.memory_info().rss / 2**20)
        run.threads.append(proc.num_threads())
        time.sleep(0.25)
    run.seconds = time.monotonic() - t0
    run.cpu_s = sum(proc.cpu_times()[:2]) - cpu0
    run.rss_mib.append(proc.memory_info().rss / 2**20)
    child.stdin.close()
    child.wait(30)
    return run


def report(runs: list[Run], clients: int) -> None:
    """Print one line per configuration and the ratios against the unthrottled peer."""
    print(f"login flood: {clients} clients on distinct addresses, wrong passwords for fresh names")
    head = (
        f"{'config':<12} {'sent':>7} {'checked':>8} {'/s':>6} {'delayed':>8} {'busy':>6} "
        f"{'other':>6} {'RSS0':>6} {'peak':>6} {'growth':>7} {'threads':>7} {'CPU s':>6} "
        f"{'op ok':>6} {'op med ms':>9} {'op max ms':>9}"
    )
    print(head)
    for r in runs:
        sent = sum(r.answers.values())
        checked = r.answers["wrong_password"]
        other = sent - checked - r.answers["login_delayed"] - r.answers["login_busy"]
        ops = r.operator_ms or [float("nan")]
        print(
            f"{r.name:<12} {sent:>7} {checked:>8} {checked / r.seconds:>6.1f} "
            f"{r.answers['login_delayed']:>8} {r.answers['login_busy']:>6} {other:>6} "
            f"{r.rss_mib[0]:>6.0f} {max(r.rss_mib):>6.0f} {max(r.rss_mib) - r.rss_mib[0]:>7.0f} "
            f"{max(r.threads, default=0):>7} {r.cpu_s:>6.1f} "
            f"{len(r.operator_ms):>3}/{len(r.operator_ms) + r.operator_failed:<2} "
            f"{statistics.median(ops):>9.0f} {max(ops):>9.0f}"
        )
    by = {r.name: r for r in runs}
    if {"atcs", "unthrottled"} <= set(by):
        a, u = by["atcs"], by["unthrottled"]
        growth = (max(u.rss_mib) - u.rss_mib[0]) / max(1.0, max(a.rss_mib) - a.rss_mib[0])
        checks = (u.answers["wrong_password"] / u.seconds) / max(
            1e-9, a.answers["wrong_password"] / a.seconds
        )
        print(f"unthrottled / atcs: RSS growth x{growth:.1f}, guesses checked/s x{checks:.1f}")
    print("other: answers that were none of wrong_password, login_delayed, login_busy")


def main() -> None:
    """Run every configuration (or serve one, as the child process)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(json.loads(args.serve))
        return
    runs = [measure(name, args.clients, args.seconds) for name in args.configs]
    report(runs, args.clients)


if __name__ == "__main__":
    main()
