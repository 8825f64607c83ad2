"""Stopping the demo (``scripts/demo_run.sh``): engine first, then its servers, no orphans.

The script runs for real: it starts its own Mosquitto and InfluxDB (on free ports, data in
a throwaway state folder) and the engine on the demo site. Ctrl-C is sent the way a
terminal sends it, to the script's whole process group; SIGTERM and SIGHUP to the script
alone. Afterwards no process it started may be alive, the broker must have received the
engine's last (partial) window and its ``offline`` status, InfluxDB must hold that window,
and Mosquitto must have saved its persistence file in a folder it owns.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from tests.support.influxdb import InfluxServer
from tests.support.mosquitto import Collector
from tests.support.net import HOST, free_port, port_open
from tests.support.wait import poll, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@dataclass(frozen=True)
class Broker:
    """The demo's broker address."""

    host: str
    port: int


@dataclass
class Demo:
    """A running ``demo_run.sh`` with its state folder, ports, log and subscriber."""

    proc: subprocess.Popen[bytes]
    state: Path
    broker: Broker
    log: Path
    collector: Collector

    def started(self) -> list[psutil.Process]:
        """Every process the script started so far (servers, engine, their children)."""
        children: list[psutil.Process] = psutil.Process(self.proc.pid).children(recursive=True)
        return children

    def statuses(self) -> list[str]:
        """States of the engine's status messages received so far."""
        return [
            json.loads(m.payload)["state"]
            for m in self.collector.snapshot()
            if m.topic == "atcs/v1/status"
        ]

    def window_ends(self) -> list[datetime]:
        """Window ends of the metrics messages received so far."""
        return [
            datetime.fromisoformat(json.loads(m.payload)["window_end"])
            for m in self.collector.snapshot()
            if m.topic.endswith("/metrics")
        ]

    def wait_until(self, cond: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Wait for ``cond``; fail with the script's output if it exits or time runs out."""
        if not poll(lambda: cond() or self.proc.poll() is not None, timeout_s, 0.1) or not cond():
            pytest.fail(f"not reached within {timeout_s} s: {what}\n{self.output()}")

    def output(self) -> str:
        """What the script and the engine printed."""
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A state folder other users can reach (Mosquitto drops to its own user as root)."""
    folder = Path(tempfile.mkdtemp(prefix="atcs-demo-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def start_demo(repo_dir: Path, state_dir: Path) -> Iterator[list[Demo]]:
    """Start ``demo_run.sh`` (extra arguments go to ``atcs run``); kill leftovers after."""
    demos: list[Demo] = []
    yield demos
    for demo in demos:
        demo.collector.close()
        leftovers = demo.started() if demo.proc.poll() is None else []
        for proc in [demo.proc, *leftovers]:
            with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
                proc.kill()


def run_demo(repo_dir: Path, state_dir: Path, demos: list[Demo], *args: str) -> Demo:
    """Start the script in its own session, as from a terminal; wait for its broker."""
    mqtt_port = free_port()
    env = {
        **os.environ,
        "ATCS_STATE_DIR": str(state_dir),
        "ATCS_MQTT_PORT": str(mqtt_port),
        "ATCS_INFLUX_PORT": str(free_port()),
        "ATCS_INFLUX_RPC_PORT": str(free_port()),
        "ATCS_DASHBOARD_PORT": "0",
    }
    log = state_dir / "demo.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            # as from a terminal: whatever this test run ignores, the script gets the
            # default handling of the signals it traps
            ["env", "--default-signal=INT,TERM,HUP", "bash", "scripts/demo_run.sh", *args],
            cwd=repo_dir, env=env, stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    wait_for(lambda: port_open(mqtt_port) or proc.poll() is not None, 30, "the demo's broker")
    if proc.poll() is not None:
        pytest.fail(f"demo_run.sh exited at start:\n{log.read_text(errors='replace')}")
    broker = Broker(HOST, mqtt_port)
    demo = Demo(proc, state_dir, broker, log, Collector(broker, "atcs/v1/#"))
    demos.append(demo)
    return demo


def names(procs: list[psutil.Process]) -> set[str]:
    """The command names of ``procs``."""
    out = set()
    for proc in procs:
        try:
            out.add(proc.name())
        except psutil.NoSuchProcess:
            continue
    return out


def alive(procs: list[psutil.Process]) -> list[str]:
    """Those of ``procs`` still running (zombies count as gone)."""
    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{proc.pid} {proc.name()}")
        except psutil.NoSuchProcess:
            continue
    return out


def stop_and_check(demo: Demo, send: signal.Signals, *, group: bool, code: int) -> datetime:
    """Send ``send`` (to the process group with ``group``), wait, check nothing survives."""
    started = demo.started()
    assert {"mosquitto", "influxd"} <= names(started), names(started)
    sent_at = datetime.now(UTC)
    if group:
        os.killpg(demo.proc.pid, send)
    else:
        demo.proc.send_signal(send)
    try:
        returned = demo.proc.wait(timeout=150)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running 150 s after {send.name}: {alive(started)}\n{demo.output()}")
    assert returned == code, demo.output()
    assert alive(started) == [], demo.output()
    assert demo.statuses()[-1] == "offline", "the engine's last status reached the broker"
    return sent_at


def test_ctrl_c_stops_the_engine_first_and_everything_it_started(
    repo_dir: Path, state_dir: Path, start_demo: list[Demo]
) -> None:
    demo = run_demo(repo_dir, state_dir, start_demo)
    demo.wait_until(lambda: len(demo.window_ends()) > 0, 120, "a first window on the bus")
    sent_at = stop_and_check(demo, signal.SIGINT, group=True, code=130)
    assert "SIGINT: stopping the engine, then the servers" in demo.output()
    assert max(demo.window_ends()) >= sent_at, "the last, partial window reached the broker"
    db = state_dir / "mosquitto" / "mosquitto.db"
    assert db.is_file(), "Mosquitto saved its persistence file"
    if os.geteuid() == 0:
        assert pwd.getpwuid(db.stat().st_uid).pw_name == "mosquitto"
    influx = InfluxServer(state_dir / "influxdb")  # the demo's data, read by a new server
    influx.start()
    try:
        rows = influx.rows("SELECT * FROM segment_metrics", "atcs")
    finally:
        influx.stop()
    last = max(datetime.fromtimestamp(r["time"] / 1000, UTC) for r in rows)
    assert last >= sent_at.replace(microsecond=0), "the last window reached InfluxDB"


@pytest.mark.parametrize(("send", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_to_the_script_stops_everything(
    repo_dir: Path, state_dir: Path, start_demo: list[Demo], send: signal.Signals, code: int
) -> None:
    demo = run_demo(repo_dir, state_dir, start_demo)
    demo.wait_until(lambda: "online" in demo.statuses(), 90, "the engine online")
    stop_and_check(demo, send, group=False, code=code)


def test_the_servers_stop_when_the_engine_exits(
    repo_dir: Path, state_dir: Path, start_demo: list[Demo]
) -> None:
    demo = run_demo(repo_dir, state_dir, start_demo, "--duration", "4")
    started: dict[int, psutil.Process] = {}
    seen: set[str] = set()
    deadline = time.monotonic() + 120
    while demo.proc.poll() is None and time.monotonic() < deadline:
        now = demo.started()
        started.update({p.pid: p for p in now})
        seen |= names(now)
        time.sleep(0.1)
    assert demo.proc.wait(timeout=5) == 0, demo.output()
    assert {"mosquitto", "influxd", "atcs"} <= seen
    assert "the engine exited (code 0); stopping the servers" in demo.output()
    assert alive(list(started.values())) == [], demo.output()
    assert (state_dir / "mosquitto" / "mosquitto.db").is_file()
