"""The room's parts from other nodes: snapshot rate bounds, acks of plans, signed overrides."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from atcs.alarms.model import AlarmKind
from atcs.alarms.rules import AlarmRules
from atcs.bus.auth import ControlAuthenticator
from atcs.bus.feed import NodeBook
from atcs.bus.keys import Algorithm, new_key
from atcs.bus.messages import AckResult, EngineState, Override, OverrideAction, PlanAck
from atcs.bus.nodes import NodeRole, NodeStatus
from atcs.bus.override_state import OverrideState
from atcs.bus.topics import TopicKind, Topics
from atcs.config import AtcsConfig
from atcs.config.room import AlarmsConfig
from atcs.control import PlanBook, PlanState, Source
from atcs.control.counters import PlanBookCounters
from atcs.errors import ConfigError
from atcs.metrics import FrameAnalysis
from atcs.roles.health import HealthServer, node_health
from atcs.roles.overrides import BusOverrides
from atcs.roles.snapshots import FetchError, RoomSnapshots, edge_snapshot_route, fetch_snapshot
from atcs.snapshots import Snapshot, Snapshotter
from atcs.types import CameraId, Detections, Frame, IntersectionId, PlanMode, SiteId
from atcs.web.operator import ApiError
from tests.support import samples as s
from tests.support.net import HOST
from tests.unit.test_nodes import city

IX = IntersectionId("ix-1")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def announce(book: NodeBook, node: str, cameras: tuple[str, ...], online: bool = True) -> None:
    state = EngineState.ONLINE if online else EngineState.OFFLINE
    book.update(
        NodeStatus(
            node, NodeRole.EDGE, state, "0", SiteId("city"), tuple(CameraId(c) for c in cameras)
        )
    )


def snap(camera: str, seq: int = 1) -> Snapshot:
    return Snapshot(camera, seq, datetime.now(UTC), b"\xff\xd8jpeg", 4, 3, 0)


def room_snapshots(
    node: str, clock: Clock, calls: list[str]
) -> tuple[RoomSnapshots, NodeBook, AtcsConfig]:
    cfg = city(node)
    book = NodeBook()

    def fetch(url: str, camera: str, timeout_s: float) -> Snapshot:
        calls.append(url)
        return snap(camera, len(calls))

    return RoomSnapshots(cfg, book, clock=clock, fetch=fetch), book, cfg


def run_due(room: RoomSnapshots) -> int:
    jobs = room.due()
    for job in jobs:
        room.fetch_one(*job)
    return len(jobs)


def test_room_fetches_each_camera_at_most_once_per_interval() -> None:
    clock, calls = Clock(), list[str]()
    node = '[node]\nedge_urls = { edge-a = "http://10.0.0.5:8081/" }\nsnapshot_interval_s = 2.0'
    room, book, _ = room_snapshots(node, clock, calls)
    announce(book, "edge-a", ("cam-a", "cam-b"))
    assert run_due(room) == 0  # nobody asked for an image yet: nothing fetched
    assert room.snapshot("cam-a") is None
    fetched = 0
    for _ in range(100):  # 10 s of ticks at 0.1 s, the page asking all the time
        room.snapshot("cam-a")
        fetched += run_due(room)
        clock.t += 0.1
    assert fetched == 5  # 10 s / 2 s
    assert calls[0] == "http://10.0.0.5:8081/snapshots/cam-a.jpg"
    cached = room.snapshot("cam-a")
    assert cached is not None
    assert cached.frame_seq == 5
    clock.t += 31.0  # no page asked for 30 s: no more fetching
    assert run_due(room) == 0


def test_room_fetches_at_most_the_total_rate() -> None:
    clock, calls = Clock(), list[str]()
    cameras = "\n".join(f'[[cameras]]\nid = "extra-{i}"\nsource = "x.mp4"' for i in range(40))
    node = (
        '[node]\nedge_url = "http://{node}.atcs-edge:8081"\nsnapshot_interval_s = 1.0\n'
        f"snapshot_max_per_s = 5.0\n{cameras}"
    )
    room, book, cfg = room_snapshots(node, clock, calls)
    announce(book, "atcs-edge-0", tuple(c.id for c in cfg.cameras))
    for _ in range(100):  # 10 s
        for camera in cfg.cameras:
            room.snapshot(camera.id)
        run_due(room)
        clock.t += 0.1
    # a burst of 5, then 5 a second: never more than 5 + 5 * 10 in 10 s (42 cameras want 1/s)
    assert 50 <= len(calls) <= 55
    assert calls[0] == "http://atcs-edge-0.atcs-edge:8081/snapshots/extra-0.jpg"


def test_offline_unknown_and_unreachable_nodes_are_named() -> None:
    clock, calls = Clock(), list[str]()
    room, book, _ = room_snapshots('[node]\nedge_urls = { edge-a = "http://h:1" }', clock, calls)
    room.snapshot("cam-a")
    room.snapshot("cam-b")
    announce(book, "edge-a", ("cam-a",))
    announce(book, "edge-b", ("cam-b",))
    run_due(room)
    assert room.snapshot("cam-a") is not None
    assert room.problem("cam-b") == "no snapshot: no URL for node edge-b (node.edge_url)"
    announce(book, "edge-a", ("cam-a",), online=False)
    clock.t += 5
    run_due(room)
    assert room.snapshot("cam-a") is None  # the old image goes with its node
    assert room.problem("cam-a") == "no snapshot: node edge-a offline"
    with pytest.raises(FetchError, match="unreachable"):
        fetch_snapshot(f"http://{HOST}:9/snapshots/cam-a.jpg", "cam-a", 1.0)


def frame(camera: str, seq: int) -> tuple[Frame, FrameAnalysis]:
    image = np.full((360, 640, 3), 90, dtype=np.uint8)
    f = Frame(CameraId(camera), seq, datetime.now(UTC), image)
    empty = Detections(
        np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int), None
    )
    return f, FrameAnalysis(CameraId(camera), seq, f.captured_at, None, empty, (), ())


def test_edge_encodes_on_demand_within_its_bounds_and_serves_over_http() -> None:
    cfg = city("[node]\nsnapshot_interval_s = 60.0\nsnapshot_max_per_s = 3.0")
    snapshots = Snapshotter(cfg, interval_s=cfg.node.snapshot_interval_s)
    snapshots.on_demand()
    snapshots.observe(*frame("cam-a", 1))  # nobody asked for cam-a: the frame is not kept
    assert snapshots.demand("cam-a") is None
    snapshots.observe(*frame("cam-a", 2))  # asked: kept, encoded at the next ask
    route = edge_snapshot_route(snapshots, cfg.node, clock=Clock())  # time stands still
    server = HealthServer(
        lambda: node_health("e", "edge", None, []), HOST, 0, {"/snapshots/": route}
    )
    server.start()
    try:
        url = f"http://{HOST}:{server.port}/snapshots/cam-a.jpg"
        got = fetch_snapshot(url, "cam-a", 5.0)
        assert got.frame_seq == 2
        assert got.width_px == 2 * got.height_px * 640 // 720
        assert got.jpeg.startswith(b"\xff\xd8")
        snapshots.observe(*frame("cam-a", 3))
        again = fetch_snapshot(url, "cam-a", 5.0)  # within 60 s: the same image, no encoding
        assert again.frame_seq == 2
        assert snapshots.encoded_total == 1
        fetch_snapshot(url, "cam-a", 5.0)  # the third answer of the second
        with pytest.raises(urllib.error.HTTPError) as err:  # over 3 a second in all
            urllib.request.urlopen(url, timeout=5)
        assert (err.value.code, err.value.headers["Retry-After"]) == (429, "1")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://{HOST}:{server.port}/snapshots/cam-x.jpg", timeout=5)
        assert err.value.code == 404
    finally:
        server.close()


def test_plan_book_tracks_acks_and_unacknowledged_plans() -> None:
    now = s.T0 + timedelta(seconds=1)
    book = PlanBook([IX], clock=lambda: now)
    first = s.plan("p-1")
    book.on_plan(first)
    book.on_plan(first)  # republished: one plan
    book.on_ack(PlanAck(IX, "p-1", AckResult.APPLIED, "", "tsc-1", now))
    book.on_ack(PlanAck(IX, "p-9", AckResult.APPLIED))  # not a plan seen: counted only
    later = replace(first, plan_id="p-2", valid_from=first.valid_from + timedelta(seconds=70))
    book.on_plan(later)
    state = book.state(now)[IX]
    assert [(p.plan.plan_id, p.state) for p in state.plans] == [
        ("p-1", PlanState.APPLIED),
        ("p-2", PlanState.SENT),
    ]
    assert state.plans[0].acked_by == "tsc-1"
    assert state.plans[0].publishes == 2
    # two cycles (140 s) after p-2 was due with no ack: unacknowledged, as control marks it
    late = later.valid_from + timedelta(seconds=141)
    assert book.state(late)[IX].running.state is PlanState.UNACKNOWLEDGED  # type: ignore[union-attr]
    rejected_at = now + timedelta(seconds=1)
    book.on_ack(PlanAck(IX, "p-2", AckResult.REJECTED, "detector fault", "tsc-1", rejected_at))
    rules = AlarmRules(AlarmsConfig(), segment_cameras={}, cameras=[], started_at=now)
    rules.on_control(book.state(now))
    kinds = {c.kind for c in rules.conditions(now)}
    assert AlarmKind.PLAN_REJECTED in kinds
    assert book.counters() == PlanBookCounters(plans_received=3, acks=2, acks_ignored=1)


def test_room_raises_intersection_manual_from_the_control_nodes_override_state() -> None:
    now = s.T0 + timedelta(seconds=1)
    book = PlanBook([IX], clock=lambda: now)
    book.on_plan(s.plan("p-1"))
    rules = AlarmRules(AlarmsConfig(), segment_cameras={}, cameras=[], started_at=now)
    rules.on_control(book.state(now))
    assert not [c for c in rules.conditions(now) if c.kind is AlarmKind.INTERSECTION_MANUAL]
    since = now - timedelta(seconds=30)
    held = OverrideState(IX, now, OverrideAction.FIXED, "budi", "parade", since, "night")
    book.on_override_state(held)
    book.on_override_state(replace(held, intersection_id=IntersectionId("elsewhere")))
    state = book.state(now)[IX]
    assert state.source is Source.FIXED
    assert state.override is not None
    assert (state.override.who, state.override.plan_name) == ("budi", "night")
    rules.on_control(book.state(now))
    (manual,) = [c for c in rules.conditions(now) if c.kind is AlarmKind.INTERSECTION_MANUAL]
    assert manual.subject == IX
    assert manual.since == since
    assert manual.params == {"action": "fixed", "who": "budi", "why": "parade", "plan": "night"}
    book.on_override_state(replace(held, at=now - timedelta(seconds=5), who="old"))  # older
    assert book.state(now)[IX].override.who == "budi"  # type: ignore[union-attr]
    book.on_override_state(OverrideState(IX, now + timedelta(seconds=1)))  # released
    rules.on_control(book.state(now))
    assert not [c for c in rules.conditions(now) if c.kind is AlarmKind.INTERSECTION_MANUAL]
    assert book.counters().override_states == 3
    assert book.counters().override_states_ignored == 1


class Bus:
    """The room's bus connection, as far as overrides see it."""

    def __init__(self, up: bool) -> None:
        self.up = up
        self.sent: list[tuple[str, bytes]] = []

    def publish_now(self, topic: str, payload: bytes, *, timeout_s: float = 2.0) -> bool:
        if self.up:
            self.sent.append((topic, payload))
        return self.up


def test_room_overrides_are_signed_for_the_control_node_and_refused_without_a_key() -> None:
    private, public = new_key(Algorithm.ED25519)
    auth = (
        "[mqtt.control_auth]\n"
        'room_signer = { id = "room-1", key_env = "ROOM_KEY" }\n'
        'senders = [{ id = "room-1", role = "operator_console", algorithm = "ed25519", '
        'key_env = "ROOM_PUBLIC" }]\n'
    )
    cfg = city(auth, {"ROOM_KEY": private, "ROOM_PUBLIC": public})
    book = PlanBook([IX])
    bus = Bus(up=True)
    overrides = BusOverrides(cfg, bus, book, environ={"ROOM_KEY": private})  # type: ignore[arg-type]
    hold = Override(IX, OverrideAction.HOLD, "operator", "parade", datetime.now(UTC))
    assert overrides.hand_over(hold).startswith("sent to the control node")
    topic, payload = bus.sent[0]
    assert topic == Topics().override(IX)
    assert cfg.mqtt is not None
    control = ControlAuthenticator.from_config(cfg.mqtt.control_auth, {"ROOM_PUBLIC": public})
    doc = json.loads(payload)
    assert control.check(TopicKind.OVERRIDE, topic, IX, doc).sender == "room-1"
    bus.up = False
    with pytest.raises(ApiError) as err:
        overrides.hand_over(hold)
    assert (err.value.status, err.value.code) == (503, "bus_unavailable")
    keyless = BusOverrides(city(), Bus(up=True), book)  # type: ignore[arg-type]
    with pytest.raises(ApiError) as err:
        keyless.hand_over(hold)
    assert err.value.code == "no_signing_key"


def test_room_sees_an_override_in_force_from_the_plans_after_it() -> None:
    book = PlanBook([IX])
    overrides = BusOverrides(city(), Bus(up=True), book)  # type: ignore[arg-type]
    asked = datetime.now(UTC) - timedelta(seconds=1)
    hold = Override(IX, OverrideAction.HOLD, "operator", "parade", asked)
    book.on_plan(s.plan("p-1"))
    assert not overrides.in_force(book.state()[IX], hold)  # adaptive: not yet
    manual = replace(
        s.plan("p-2"),
        mode=PlanMode.MANUAL,
        controller="manual",
        reason="operator override hold by operator: parade; keeping plan p-1",
        valid_from=s.T0 + timedelta(seconds=70),
    )
    book.on_plan(manual)
    assert overrides.in_force(book.state()[IX], hold)
    release = Override(IX, OverrideAction.RELEASE, "operator", "over", datetime.now(UTC))
    assert not overrides.in_force(book.state()[IX], release)
    # the control node's override state says so too (the only sign for phase-mode ones)
    other = Override(IX, OverrideAction.HOLD, "siti", "crash", datetime.now(UTC))
    assert not overrides.in_force(book.state()[IX], other)
    book.on_override_state(OverrideState(IX, datetime.now(UTC), OverrideAction.HOLD, "siti",
                                         "crash", datetime.now(UTC)))  # fmt: skip
    assert overrides.in_force(book.state()[IX], other)
    assert not overrides.in_force(book.state()[IX], replace(other, who="budi"))


def test_snapshot_bounds_are_validated() -> None:
    with pytest.raises(ConfigError, match="snapshot_interval_s"):
        city("[node]\nsnapshot_interval_s = 0.1")
    with pytest.raises(ConfigError, match="edge_urls"):
        city('[node]\nedge_urls = { edge-a = "ftp://h" }')
