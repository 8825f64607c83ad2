"""A city on four nodes on one machine, with real servers, real clips and the real model.

Two Mosquitto brokers bridged (``atcs/#`` both ways), one InfluxDB, and four ``atcs run``
processes: edge ``edge-a`` (camera ``pontianak``, broker A), edge ``edge-b`` (camera
``motorway``, broker B), a control node on broker A for one intersection fed by a segment
on each edge, and a room node on broker B. The room's API shows both cameras with their
nodes and the plans, and its page (Chromium) both cameras with the images each edge node
serves; an operator's hold made in the room reaches the control node signed with the
room's key, comes back as a manual plan acked by a (test) signal controller and as the control
node's override state (the room's ``intersection_manual`` alarm, ended on release), while an
unsigned and a wrongly signed override from the bus are refused
(``tests/support/room_checks.py``). ``edge-b`` is killed (SIGKILL: no goodbye, only its
last will): its camera goes offline in the room, without an image and saying why, and
the intersection falls back to its time-of-day plan at once (the room's alarm with it);
restarted, it comes back, and every window
reached the bus and InfluxDB once (in order per stream, no window twice after the
subscriber's de-duplication, the same windows in both: the durable outbox journals a
window for bus and store in one transaction).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from atcs.bus.dedup import Deduplicator
from atcs.bus.nodes import decode_node_status
from atcs.bus.payloads import decode_segment_metrics, decode_timing_plan
from atcs.bus.topics import TopicKind, Topics
from atcs.types import PlanMode, TimingPlan
from tests.support.influxdb import InfluxServer, new_db
from tests.support.mosquitto import Collector, Mosquitto, MosquittoFactory, bridge_to
from tests.support.net import free_port
from tests.support.process import stop_process
from tests.support.room_checks import (
    CONTROL_AUTH,
    ROOM_USERS,
    CityKeys,
    check_fallback_alarm,
    check_forged_overrides_refused,
    check_no_snapshot_of_offline_node,
    check_room_hold_reaches_control,
    check_snapshots_from_both_edges,
    city_keys,
)
from tests.support.sites import two_clip_site_toml
from tests.support.wait import wait_for
from tests.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.e2e

TOPICS = Topics()
STALE_S = 8.0

INTERSECTION = f"""
[[intersections]]
id = "simpang"
controller = "webster"
cycle_min_s = 16.0
cycle_max_s = 40.0
stale_after_s = {STALE_S}

[[intersections.phases]]
id = "north"
segments = ["inbound"]
min_green_s = 4.0
max_green_s = 15.0
yellow_s = 3.0
all_red_s = 1.0

[[intersections.phases]]
id = "east"
segments = ["carriageway"]
min_green_s = 4.0
max_green_s = 15.0
yellow_s = 3.0
all_red_s = 1.0

[[intersections.fallback_plans]]
starts_at = "00:00"
name = "all-day"
greens_s = {{ north = 6.0, east = 6.0 }}
"""


@dataclass
class Node:
    """One ``atcs run --role`` process of the test city."""

    name: str
    role: str
    config: Path
    log: Path
    health_port: int = 0
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, **(self.env or {})}
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "atcs.cli", "run", "--config", str(self.config),
                 "--role", self.role],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )  # fmt: skip

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def usage(self) -> tuple[float, float]:
        """Resident memory (MiB) and CPU time so far (s) of the running process."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        rss_kib = next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmRSS"))
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu_s = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        return rss_kib / 1024, cpu_s

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def node_config(
    tmp_path: Path,
    media_dir: Path,
    model_path: str,
    *,
    name: str,
    broker: Mosquitto,
    influxdb: InfluxServer,
    db: str,
    node: str,
    dashboard_port: int | None = None,
    health_port: int = 0,
) -> Path:
    dashboard = (
        ""
        if dashboard_port is None
        else f"""
[dashboard]
host = "127.0.0.1"
port = {dashboard_port}
allow_anonymous_viewers = true
{ROOM_USERS}"""
    )
    extra = f"""
[node]
id = "{name}"
{node}
status_keepalive_s = 2
health_host = "127.0.0.1"
health_port = {health_port}

[mqtt]
host = "{broker.host}"
port = {broker.port}
reconnect_min_s = 1
reconnect_max_s = 2

{CONTROL_AUTH}
[influx]
url = "{influxdb.url}"
database = "{db}"
flush_interval_s = 0.2
{dashboard}
{INTERSECTION}"""
    text = two_clip_site_toml(
        media_dir, model_path, tmp_path / name / "var", site_id="city", sample_fps=2.0,
        extra=extra,
    )  # fmt: skip
    path = tmp_path / name / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


@dataclass
class City:
    nodes: dict[str, Node]
    broker_a: Mosquitto
    broker_b: Mosquitto
    bus: Collector
    room_url: str
    db: str
    keys: CityKeys
    control_state_dir: Path


@pytest.fixture
def city(
    tmp_path: Path,
    media_dir: Path,
    model_path: str,
    mosquitto_factory: MosquittoFactory,
    influxdb: InfluxServer,
) -> Iterator[City]:
    broker_a = mosquitto_factory()
    broker_b = mosquitto_factory(extra=bridge_to(broker_a, "bridge-b-to-a"))
    bus = Collector(broker_a, "atcs/#")
    db = new_db("atcs_nodes")
    influxdb.query(f'CREATE DATABASE "{db}"')
    room_port = free_port()
    health = {name: free_port() for name in ("control", "room", "edge-a", "edge-b")}
    edges = ", ".join(f'{n} = "http://127.0.0.1:{health[n]}"' for n in ("edge-a", "edge-b"))
    room_node = f"edge_urls = {{ {edges} }}\nsnapshot_interval_s = 1.0"
    keys = city_keys()
    specs = {
        "control": ("control", broker_a, "", None),
        "room": ("room", broker_b, room_node, room_port),
        "edge-a": ("edge", broker_a, 'cameras = ["pontianak"]', None),
        "edge-b": ("edge", broker_b, 'cameras = ["motorway"]', None),
    }
    nodes = {}
    for name, (role, broker, share, port) in specs.items():
        path = node_config(
            tmp_path, media_dir, model_path, name=name, broker=broker, influxdb=influxdb,
            db=db, node=share, dashboard_port=port, health_port=health[name],
        )  # fmt: skip
        env = keys.room_env if role == "room" else keys.public_env
        nodes[name] = Node(name, role, path, tmp_path / f"{name}.log", health[name], env)
        nodes[name].start()
    room_url = f"http://127.0.0.1:{room_port}"
    try:
        yield City(nodes, broker_a, broker_b, bus, room_url, db, keys, tmp_path / "control" / "var")
    finally:
        for node in nodes.values():
            if node.proc is not None:
                stop_process(node.proc, timeout_s=30)
        bus.client.loop_stop()
        bus.client.disconnect()


def plans(bus: Collector) -> list[TimingPlan]:
    return [
        decode_timing_plan(m.payload, "simpang").record
        for m in bus.snapshot()
        if m.topic == TOPICS.plan("simpang")  # type: ignore[arg-type]
    ]


def cameras(city: City) -> dict[str, dict[str, Any]]:
    try:
        rows = get_json(f"{city.room_url}/api/cameras")
    except OSError:
        return {}
    return {row["camera_id"]: row for row in rows}


def explain(city: City) -> str:
    return "\n".join(f"--- {n.name}\n{n.tail()}" for n in city.nodes.values())


def test_city_on_four_nodes_survives_an_edge_node_dying(city: City, influxdb: InfluxServer) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            run_city(city, influxdb, browser.new_page())
        finally:
            browser.close()


def camera_card(camera: str, state: str) -> str:
    """The room page's tile of ``camera`` in ``state``."""
    return f"figure.camera[data-camera='{camera}'][data-state='{state}']"


def run_city(city: City, influxdb: InfluxServer, page: Page) -> None:
    def both_streaming() -> bool:
        cams = cameras(city)
        return all(
            cams.get(c, {}).get("state") == "streaming" and cams[c]["node"] == n
            for c, n in (("pontianak", "edge-a"), ("motorway", "edge-b"))
        )

    try:
        wait_for(both_streaming, 180, "both cameras streaming in the room", interval_s=0.5)
        wait_for(
            lambda: any(p.mode is PlanMode.ADAPTIVE for p in plans(city.bus)),
            120, "an adaptive plan from the control node", interval_s=0.5,
        )  # fmt: skip
    except AssertionError:
        raise AssertionError(explain(city)) from None
    for node in city.nodes.values():  # the probes Kubernetes would use
        ready = get_json(f"http://127.0.0.1:{node.health_port}/readyz")
        assert (ready["node_id"], ready["ready"], ready["problems"]) == (node.name, True, [])
        assert all(part["connected"] for part in ready["parts"].values() if "connected" in part)
    control = get_json(f"http://127.0.0.1:{city.nodes['control'].health_port}/readyz")["parts"]
    assert control["ControlLoopHealth"]["plans_published"] >= 1  # the control loop's counters
    assert control["BusFeed"]["zones_unwanted"] == 0
    started = {n.name: n.usage() for n in city.nodes.values()}
    time.sleep(10.0)
    for name, node in city.nodes.items():  # sizes the Kubernetes resource requests
        rss, cpu = node.usage()
        print(f"{name}: RSS {rss:.0f} MiB, CPU {(cpu - started[name][1]) / 10.0:.2f} cores")
    page.goto(city.room_url + "/?lang=en")  # the room's page shows both nodes' cameras
    for camera in ("pontianak", "motorway"):
        page.wait_for_selector(camera_card(camera, "streaming"), timeout=30_000)
    check_snapshots_from_both_edges(city.room_url, page, ("pontianak", "motorway"))
    check_forged_overrides_refused(city.bus, city.keys, city.control_state_dir)
    check_room_hold_reaches_control(city.room_url, city.bus, city.keys, city.control_state_dir)
    overview = get_json(f"{city.room_url}/api/overview")
    nodes = {n["node_id"]: n for n in overview["nodes"]}
    assert {k: (v["role"], v["state"]) for k, v in nodes.items()} == {
        "control": ("control", "online"),
        "room": ("room", "online"),
        "edge-a": ("edge", "online"),
        "edge-b": ("edge", "online"),
    }
    assert nodes["control"]["intersections"] == ["simpang"]
    assert {s["segment_id"] for s in overview["segments"] if s["window_end"]} == {
        "inbound",
        "carriageway",
    }
    assert [ix["node"] for ix in overview["intersections"]] == ["control"]

    # edge-b dies without a word: its last will turns its camera offline and the
    # intersection's east phase loses its input, so the time-of-day plan takes over
    edge_b = city.nodes["edge-b"]
    assert edge_b.proc is not None
    before = len(plans(city.bus))
    time.sleep(2.0 - time.time() % 2.0)  # halfway between two window closes (2 s, 1 s grace)
    edge_b.proc.send_signal(signal.SIGKILL)
    edge_b.proc.wait(10)
    killed = time.monotonic()
    wait_for(
        lambda: cameras(city).get("motorway", {}).get("state") == "offline",
        10, "the dead node's camera offline in the room", interval_s=0.2,
    )  # fmt: skip
    offline_s = time.monotonic() - killed
    page.wait_for_selector(camera_card("motorway", "offline"), timeout=15_000)
    check_no_snapshot_of_offline_node(city.room_url, "motorway", "edge-b")
    wait_for(
        lambda: any(p.mode is PlanMode.FALLBACK for p in plans(city.bus)[before:]),
        10, "a fallback plan after the node died", interval_s=0.2,
    )  # fmt: skip
    fallback_s = time.monotonic() - killed
    fallback = next(p for p in plans(city.bus)[before:] if p.mode is PlanMode.FALLBACK)
    assert "motorway" in fallback.reason
    check_fallback_alarm(city.room_url)
    assert cameras(city)["pontianak"]["state"] == "streaming"
    print(f"camera offline in the room after {offline_s:.1f} s, fallback after {fallback_s:.1f} s")

    # back: the camera streams again, measures arrive, control returns to adaptive
    edge_b.start()
    wait_for(
        lambda: cameras(city).get("motorway", {}).get("state") == "streaming",
        120, "the camera back in the room", interval_s=0.5,
    )  # fmt: skip
    after = len(plans(city.bus))
    wait_for(
        lambda: any(p.mode is PlanMode.ADAPTIVE for p in plans(city.bus)[after:]),
        90, "adaptive control again", interval_s=0.5,
    )  # fmt: skip
    for name in ("edge-a", "edge-b"):
        node = city.nodes[name]
        assert node.proc is not None
        stop_process(node.proc, timeout_s=30)
    time.sleep(2.0)  # the last windows cross the bridge and reach the database
    check_nothing_lost_or_twice(city, influxdb)


def check_nothing_lost_or_twice(city: City, influxdb: InfluxServer) -> None:
    """Every window once on the bus and once in InfluxDB, the same ones in both.

    The killed node journaled each closed window for bus and store in one transaction,
    so no window is in one place and not the other, however close to the kill it closed.
    """
    dedup = Deduplicator()
    seqs: dict[str, list[int]] = defaultdict(list)
    ends: dict[str, list[int]] = defaultdict(list)
    for m in city.bus.snapshot():
        if TOPICS.parse(m.topic).kind is not TopicKind.SEGMENT_METRICS:
            continue
        got = decode_segment_metrics(m.payload)
        assert got.meta is not None
        if not dedup.accept(m.topic, got.meta):
            continue
        seqs[got.meta.stream].append(got.meta.seq)
        ends[got.record.segment_id].append(int(got.record.window_end.timestamp() * 1000))
    assert set(ends) == {"inbound", "carriageway"}
    for stream, numbers in seqs.items():
        assert numbers == sorted(numbers), f"stream {stream}: out of order"
    for segment, on_bus in ends.items():
        assert len(on_bus) == len(set(on_bus)), f"{segment}: a window twice on the bus"
        rows = influxdb.rows(
            f"SELECT frames FROM segment_metrics WHERE segment = '{segment}'", city.db
        )
        stored = [int(r["time"]) for r in rows]
        assert len(stored) == len(set(stored)), f"{segment}: a window twice in InfluxDB"
        assert sorted(stored) == sorted(on_bus), (segment, sorted(set(stored) ^ set(on_bus)))
    node_states = [
        decode_node_status(m.payload).state.value
        for m in city.bus.snapshot()
        if m.topic == TOPICS.node_status("edge-b")
    ]
    assert node_states[-3:] == ["offline", "online", "offline"]
