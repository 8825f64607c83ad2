"""Roles of a multi-node city: camera shares, node status, the bus feed's node rules, plans."""

from __future__ import annotations

import json
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from atcs.bus.feed import BusFeed, NodeBook
from atcs.bus.messages import EngineState, MessageMeta
from atcs.bus.nodes import NodeRole, NodeStatus, decode_node_status, encode_node_status
from atcs.bus.payloads import encode_camera_status, encode_segment_metrics
from atcs.bus.topics import TopicKind, Topics
from atcs.config import AtcsConfig, parse_config
from atcs.config.bus import MqttConfig
from atcs.control import PlanBook, Source
from atcs.errors import ConfigError, PayloadError
from atcs.roles import edge_config, role_config
from atcs.roles.health import HealthServer, node_health
from atcs.types import (
    CameraId,
    CameraState,
    CameraStatus,
    IntersectionId,
    PlanMode,
    SegmentMetrics,
    SiteId,
)
from tests.support import samples as s
from tests.support.net import HOST

CITY = """
[site]
id = "city"

[mqtt]
host = "127.0.0.1"

{node}

[[cameras]]
id = "cam-a"
source = "a.mp4"

[[cameras]]
id = "cam-b"
source = "b.mp4"

[[cameras]]
id = "cam-c"
source = "c.mp4"
enabled = false

[[cameras]]
id = "cam-d"
source = "d.mp4"

[[segments]]
id = "seg-a"
camera = "cam-a"
polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]
length_m = 50.0
lanes = 2

[[segments]]
id = "seg-b"
camera = "cam-b"
polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]
length_m = 50.0
lanes = 2

[[lines]]
id = "line-b"
camera = "cam-b"
segment = "seg-b"
points = [[0.1, 0.5], [0.9, 0.5]]
"""


def city(node: str = "", environ: dict[str, str] | None = None) -> AtcsConfig:
    return parse_config(tomllib.loads(CITY.format(node=node)), Path("/tmp"), environ or {})


def test_camera_share_by_list_and_by_shard() -> None:
    listed = edge_config(city('[node]\nid = "edge-1"\ncameras = ["cam-b"]'))
    assert [c.id for c in listed.cameras] == ["cam-b"]
    assert [sg.id for sg in listed.segments] == ["seg-b"]
    assert [ln.id for ln in listed.lines] == ["line-b"]
    assert listed.intersections == []
    # enabled cameras a, b, d: shard 0 of 2 takes positions 0 and 2, shard 1 position 1
    first = edge_config(city("[node]\nshard_index = 0\nshard_count = 2"))
    second = edge_config(city("[node]\nshard_index = 1\nshard_count = 2"))
    assert [c.id for c in first.cameras] == ["cam-a", "cam-d"]
    assert [c.id for c in second.cameras] == ["cam-b"]


def test_shard_index_from_the_environment_as_a_statefulset_ordinal() -> None:
    cfg = city(
        '[node]\nid = "${POD_NAME}"\nshard_index = "${ORDINAL}"\nshard_count = 3',
        {"POD_NAME": "atcs-edge-2", "ORDINAL": "2"},
    )
    assert cfg.node.id == "atcs-edge-2"
    assert [c.id for c in edge_config(cfg).cameras] == ["cam-d"]


def test_bad_shares_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="shard_index: 2 must be below shard_count 2"):
        city("[node]\nshard_index = 2\nshard_count = 2")
    with pytest.raises(ConfigError, match=r"node.cameras\[0\]: unknown camera 'cam-x'"):
        city('[node]\ncameras = ["cam-x"]')
    with pytest.raises(ConfigError, match="no enabled camera in its share"):
        edge_config(city('[node]\ncameras = ["cam-c"]'))
    no_bus = city().model_copy(update={"mqtt": None})
    with pytest.raises(ConfigError, match="--role control: the configuration has no"):
        role_config(no_bus, NodeRole.CONTROL)


def test_each_role_gets_a_client_id_of_its_own() -> None:
    cfg = city('[node]\nid = "edge-1"\ncameras = ["cam-a"]')
    assert role_config(cfg, NodeRole.ALL).mqtt == cfg.mqtt
    edge = role_config(cfg, NodeRole.EDGE).mqtt
    room = role_config(cfg, NodeRole.ROOM).mqtt
    assert edge is not None
    assert room is not None
    assert edge.client_id == "atcs-city-edge-edge-1"
    assert room.client_id == "atcs-city-room-edge-1"


def status(node: str, online: bool, cameras: tuple[str, ...] = ("cam-a",)) -> NodeStatus:
    state = EngineState.ONLINE if online else EngineState.OFFLINE
    return NodeStatus(
        node,
        NodeRole.EDGE,
        state,
        "0.1",
        SiteId("city"),
        tuple(CameraId(c) for c in cameras),
        (),
        s.T0 if online else None,
    )


def test_node_status_round_trip_and_topic() -> None:
    up = NodeStatus(
        "edge-1",
        NodeRole.CONTROL,
        EngineState.ONLINE,
        "0.1",
        SiteId("city"),
        (CameraId("cam-a"),),
        (IntersectionId("ix-1"),),
        s.T0,
    )
    assert decode_node_status(encode_node_status(up), "edge-1") == up
    will = status("edge-1", False)
    assert decode_node_status(encode_node_status(will)) == will
    assert Topics().node_status("edge-1") == "atcs/v1/nodes/edge-1/status"
    assert Topics().parse("atcs/v1/nodes/edge-1/status").kind is TopicKind.NODE_STATUS
    with pytest.raises(PayloadError, match="does not match the topic"):
        decode_node_status(encode_node_status(up), "edge-2")
    with pytest.raises(PayloadError):
        decode_node_status(encode_node_status(up).replace(b'"control"', b'"boss"'))


def test_node_book_knows_which_node_reads_a_camera() -> None:
    book = NodeBook(max_nodes=2)
    book.update(status("edge-1", True, ("cam-a", "cam-b")))
    book.update(status("edge-2", True, ("cam-d",)))
    node = book.node_of_camera("cam-b")
    assert node is not None
    assert node.node_id == "edge-1"
    assert book.node_offline("cam-b") is None
    book.update(status("edge-1", False, ("cam-a", "cam-b")))
    down = book.node_offline("cam-b")
    assert down is not None
    assert down.node_id == "edge-1"
    book.update(status("edge-3", True, ("cam-x",)))  # past max_nodes: edge-2 is forgotten
    assert [n.node_id for n in book.nodes()] == ["edge-1", "edge-3"]
    assert book.node_of_camera("cam-d") is None


def feed_with_records() -> tuple[BusFeed, list[SegmentMetrics], list[CameraStatus]]:
    feed = BusFeed(MqttConfig(), client_id="t")
    windows: list[SegmentMetrics] = []
    cams: list[CameraStatus] = []
    feed.on_metrics(windows.extend)
    feed.on_camera_status(cams.append)
    return feed, windows, cams


def test_feed_turns_a_dead_nodes_cameras_offline_and_back() -> None:
    feed, _, cams = feed_with_records()
    t = Topics()
    streaming = CameraStatus(CameraId("cam-a"), CameraState.STREAMING, 5.0, s.T0)
    feed.handle(t.node_status("edge-1"), encode_node_status(status("edge-1", True)))
    feed.handle(
        t.camera_status(CameraId("cam-a")),
        encode_camera_status(SiteId("city"), streaming, MessageMeta("s1", 1)),
    )
    assert [c.state for c in cams] == [CameraState.STREAMING]
    feed.handle(t.node_status("edge-1"), encode_node_status(status("edge-1", False)))
    assert [c.state for c in cams] == [CameraState.STREAMING, CameraState.OFFLINE]
    assert cams[-1].detail == "node edge-1 offline"
    assert cams[-1].last_frame_at == s.T0
    assert [c.state for c in feed.camera_statuses()] == [CameraState.OFFLINE]
    # a retained "streaming" left behind by the dead node still reads offline
    feed.handle(
        t.camera_status(CameraId("cam-a")),
        encode_camera_status(SiteId("city"), streaming, MessageMeta("s1", 2)),
    )
    assert len(cams) == 3
    assert cams[2].state is CameraState.OFFLINE
    feed.handle(t.node_status("edge-1"), encode_node_status(status("edge-1", True)))
    feed.handle(
        t.camera_status(CameraId("cam-a")),
        encode_camera_status(SiteId("city"), streaming, MessageMeta("s2", 1)),
    )
    assert [c.state for c in cams[3:]] == [CameraState.STREAMING]


def test_feed_drops_copies_and_counts_malformed_messages() -> None:
    feed, windows, _ = feed_with_records()
    topic = Topics().segment_metrics(s.metrics(0).segment_id)
    for seq in (1, 1, 2):  # a resend after a reconnect carries the same seq
        feed.handle(topic, encode_segment_metrics(s.metrics(seq), MessageMeta("s1", seq)))
    assert [w.window_start for w in windows] == [
        s.metrics(1).window_start,
        s.metrics(2).window_start,
    ]
    feed.handle(topic, b"{not json")
    assert feed.health()["malformed"] == 1
    assert feed.health()["duplicates"] == 1


def test_plan_book_shows_the_latest_plan_per_configured_intersection() -> None:
    book = PlanBook(["ix-1"])
    first = s.plan("p-1")
    later = replace(
        first,
        plan_id="p-2",
        mode=PlanMode.FALLBACK,
        valid_from=first.valid_from + timedelta(seconds=60),
    )
    book.on_plan(later)
    book.on_plan(first)  # an older plan arriving late does not replace the newer one
    other = replace(first, intersection_id=IntersectionId("ix-9"))
    book.on_plan(other)
    state = book.state()[IntersectionId("ix-1")]
    assert state.running is not None
    assert state.running.plan.plan_id == "p-2"
    assert state.source is Source.FALLBACK
    assert state.mode is PlanMode.FALLBACK
    assert book.counters().plans_received == 2
    assert book.counters().plans_ignored == 1
    assert list(book.state()) == [IntersectionId("ix-1")]


class Part:
    def __init__(self, connected: bool) -> None:
        self.up = connected

    def health(self) -> dict[str, float | int | str | bool]:
        return {"connected": self.up}


def test_node_health_alive_ready_and_why_not() -> None:
    up, down = Part(True), Part(False)
    fresh = node_health("edge-1", "edge", 100.0, [up], now=105.0)
    assert (fresh.live, fresh.ready, fresh.loop_age_s, fresh.problems) == (True, True, 5.0, ())
    waiting = node_health("edge-1", "edge", None, [up], now=105.0)
    assert (waiting.live, waiting.ready) == (True, False)
    assert waiting.problems == ("main loop not started",)
    stuck = node_health("edge-1", "edge", 100.0, [up], now=140.0, stuck_after_s=30.0)
    assert (stuck.live, stuck.ready) == (False, False)
    assert stuck.problems == ("main loop stuck for 40 s",)
    cut = node_health("edge-1", "edge", 100.0, [up, down], now=101.0)
    assert (cut.live, cut.ready, cut.problems) == (True, False, ("Part not connected",))
    # each part's own map (connection and counters) rides along, a second of a class numbered
    assert cut.parts == {"Part": {"connected": True}, "Part#2": {"connected": False}}


def test_health_server_answers_probes_over_http() -> None:
    part = Part(True)
    server = HealthServer(lambda: node_health("c", "control", time.monotonic(), [part]), HOST, 0)
    server.start()
    try:
        base = f"http://{HOST}:{server.port}"
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as resp:
            assert resp.status == 200
            assert json.loads(resp.read())["ready"] is True
        part.up = False
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/readyz", timeout=5)
        assert err.value.code == 503
        body = json.loads(err.value.read())
        assert body["problems"] == ["Part not connected"]
        assert body["parts"] == {"Part": {"connected": False}}
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as resp:
            assert resp.status == 200  # alive, though not ready
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/metrics", timeout=5)
        assert err.value.code == 404
    finally:
        server.close()
