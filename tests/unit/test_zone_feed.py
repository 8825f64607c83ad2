"""The per-frame zone on the bus: its codec and bounds, the sender's choice and rate, the keeper.

Pure code: the payload ``atcs.segment_zone/1`` encoded and read back, hostile payloads
refused with :class:`~atcs.errors.PayloadError` only (too many vehicles, non-finite or
out-of-range numbers, wrong types, foreign schema, another segment than the topic's) and
counted by the control node's feed without reaching its handlers; the engine-side frame
observer (:class:`~atcs.bus.zone_out.ZoneOut`) sending only the segments it was given, only
with a stop line, at most once a second each; the segments a city's config puts on the bus;
and a phase-mode intersection keeping the newest zone per segment, so its signal view says
``frame`` while a zone is fresh and ``window`` after. The same path on a real broker, with a
control node, is in ``tests/test_phase_control_node.py``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from atcs.bus.feed import BusFeed
from atcs.bus.topics import Topics
from atcs.bus.zone_out import ZoneOut
from atcs.bus.zone_payloads import (
    MAX_SPEED_M_S,
    decode_segment_zone,
    encode_segment_zone,
)
from atcs.config import load_config
from atcs.config.bus import MqttConfig
from atcs.config.phase_mode import windows_only_segments, zone_feed_segments
from atcs.control.zones import MAX_ZONE_VEHICLES
from atcs.errors import PayloadError
from atcs.metrics import FrameAnalysis
from atcs.metrics.analyzer import SegmentFrame
from atcs.types import (
    CameraId,
    Detections,
    Frame,
    FrameVehicle,
    FrameZone,
    IntersectionId,
    SegmentId,
    SiteId,
)
from tests.support import samples as s
from tests.support.sites import demo_in_phase_mode
from tests.unit.test_bus_inbound import FakeClock

SITE = SiteId("demo")
TOPICS = Topics()
SEG = "seg-a"


def _doc(zone: FrameZone | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(encode_segment_zone(SITE, zone or s.frame_zone(SEG)))
    return doc


def _bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


# The codec -----------------------------------------------------------------------------


def test_a_zone_goes_out_and_comes_back_with_unknown_speeds_as_null() -> None:
    zone = s.frame_zone(SEG, n=4)
    doc = _doc(zone)
    assert doc["schema"] == "atcs.segment_zone/1"
    assert (doc["site"], doc["camera"], doc["segment"]) == ("demo", "cam-1", SEG)
    assert doc["at"] == "2025-03-01T01:00:00.000000Z"
    assert doc["vehicles"][2] == {"distance_m": 14.0, "speed_m_s": None, "pcu": 1.0}
    assert not {"stream", "seq"} & set(doc)  # never queued, never de-duplicated
    assert decode_segment_zone(encode_segment_zone(SITE, zone), SEG) == zone


def test_the_encoder_clips_what_the_decoder_would_refuse() -> None:
    wild = FrameZone(CameraId("cam-1"), SegmentId(SEG), s.T0, (
        FrameVehicle(-3.0, float("inf"), 9.0),  # behind the line, a tracker's jump, odd PCU
        FrameVehicle(1e9, float("nan"), -1.0),
    ))  # fmt: skip
    back = decode_segment_zone(encode_segment_zone(SITE, wild), SEG)
    assert back.vehicles[0] == FrameVehicle(0.0, MAX_SPEED_M_S, 5.0)
    assert back.vehicles[1] == FrameVehicle(10_000.0, None, 0.0)
    many = replace(wild, vehicles=(FrameVehicle(1.0, 2.0, 1.0),) * (MAX_ZONE_VEHICLES + 7))
    assert len(decode_segment_zone(encode_segment_zone(SITE, many), SEG).vehicles) == (
        MAX_ZONE_VEHICLES
    )


def _vehicle(**change: Any) -> bytes:
    doc = _doc()
    doc["vehicles"][0].update(change)
    return _bytes(doc)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (_vehicle(distance_m=-0.5), "below its minimum"),
        (_vehicle(distance_m="3"), "not a number"),
        (_vehicle(distance_m=True), "not a number"),
        (_vehicle(speed_m_s=MAX_SPEED_M_S + 1), "above its maximum"),
        (_vehicle(speed_m_s=[1.0]), "not a number"),
        (_vehicle(pcu=None), "not a number"),
        (_vehicle(pcu=6.0), "above its maximum"),
        (_vehicle(lane=1), "unknown field"),
        (b'{"schema":"atcs.segment_zone/1","site":"demo","camera":"cam-1","segment":"seg-a",'
         b'"at":"2025-03-01T01:00:00Z","vehicles":[{"distance_m":1e999,"speed_m_s":1,'
         b'"pcu":1}]}', "number"),
        (b'{"schema":"atcs.segment_zone/1","site":"demo","camera":"cam-1","segment":"seg-a",'
         b'"at":"2025-03-01T01:00:00Z","vehicles":[{"distance_m":NaN,"speed_m_s":1,'
         b'"pcu":1}]}', "NaN"),
        (_bytes({**_doc(), "vehicles": [_doc()["vehicles"][0]] * (MAX_ZONE_VEHICLES + 1)}),
         f"more than {MAX_ZONE_VEHICLES} items"),
        (_bytes({**_doc(), "vehicles": {"0": _doc()["vehicles"][0]}}), "not a list"),
        (_bytes({**_doc(), "vehicles": ["car"]}), "not an object"),
        (_bytes({**_doc(), "at": "2025-03-01 01:00"}), "ISO-8601"),
        (_bytes({**_doc(), "at": 1740790800}), "ISO-8601"),
        (_bytes({k: v for k, v in _doc().items() if k != "camera"}), "lacks camera"),
        (_bytes({**_doc(), "segment": "seg-b"}), "does not match the topic"),
        (_bytes({**_doc(), "schema": "atcs.segment_metrics/1"}), "foreign message"),
        (_bytes({**_doc(), "camera": "a/b"}), "not an id"),
        (b"[1, 2]", "not an object"),
        (b"{" * 100_000, "nests deeper"),
    ],
)  # fmt: skip
def test_malformed_zones_raise_payload_error_only(payload: bytes, why: str) -> None:
    with pytest.raises(PayloadError, match=why):
        decode_segment_zone(payload, SEG)


def test_the_feed_counts_and_drops_bad_zones_and_hands_on_good_ones() -> None:
    feed = BusFeed(MqttConfig(), client_id="t")
    got: list[FrameZone] = []
    feed.on_zone(got.append)
    topic = TOPICS.segment_zone(SegmentId(SEG))
    for bad in (_vehicle(distance_m=float("-1")), b"{" * 100_000, b"\xff", _vehicle(pcu="x")):
        feed.handle(topic, bad)
    feed.handle(TOPICS.segment_zone(SegmentId("seg-b")), encode_segment_zone(SITE, s.frame_zone()))
    assert (feed.malformed, got) == (5, [])
    feed.handle(topic, encode_segment_zone(SITE, s.frame_zone(SEG)))
    assert got == [s.frame_zone(SEG)]
    assert feed.status().malformed == 5


def test_a_feed_told_its_segments_subscribes_to_and_hands_on_only_their_zones() -> None:
    mine, other = SegmentId(SEG), SegmentId("seg-b")
    feed = BusFeed(MqttConfig(), client_id="t")
    assert feed.zone_filters() == []
    got: list[FrameZone] = []
    feed.on_zone(got.append, [mine])
    assert feed.zone_filters() == [TOPICS.segment_zone(mine)]
    for seg in (other, mine):
        feed.handle(TOPICS.segment_zone(seg), encode_segment_zone(SITE, s.frame_zone(seg)))
    assert got == [s.frame_zone(mine)]
    assert (feed.zones_unwanted, feed.malformed) == (1, 0)
    assert feed.health()["zones_unwanted"] == 1  # in the node's health
    everything: list[FrameZone] = []
    feed.on_zone(everything.append)  # a handler for every segment widens the subscription
    assert feed.zone_filters() == [TOPICS.all_segment_zones()]
    feed.handle(TOPICS.segment_zone(other), encode_segment_zone(SITE, s.frame_zone(other)))
    assert (len(got), everything, feed.zones_unwanted) == (1, [s.frame_zone(other)], 1)


# The sender -----------------------------------------------------------------------------


def _frame(seg: str, near: list[float] | None) -> SegmentFrame:
    n = 0 if near is None else len(near)
    return SegmentFrame(
        SegmentId(seg), n, {}, float(n), 0.1, None, np.ones(n, bool),
        member_pcu=np.full(n, 1.0),
        near_m=None if near is None else np.array(near, np.float64),
        speed_m_s=None if near is None else np.array([np.nan, *[2.0] * (n - 1)][:n]),
    )  # fmt: skip


def _analysed(at_s: float, *segments: SegmentFrame) -> tuple[Frame, FrameAnalysis]:
    at = s.T0 + timedelta(seconds=at_s)
    image = np.zeros((4, 4, 3), np.uint8)
    result = FrameAnalysis(CameraId("cam-1"), 0, at, at_s, Detections.empty(), segments, ())
    return Frame(CameraId("cam-1"), 0, at, image), result


def test_zones_leave_for_the_given_stop_line_segments_at_most_once_a_second() -> None:
    sent: list[FrameZone] = []

    def send(zone: FrameZone) -> bool:
        sent.append(zone)
        return True

    clock = FakeClock()  # monotonic s, moved by the test
    out = ZoneOut(send, {SegmentId("a"), SegmentId("no-line")}, clock=clock)
    for i in range(25):  # 5 frames/s for 5 s
        clock.now = 100.0 + i * 0.2
        out.observe(*_analysed(i * 0.2, _frame("a", [4.0, -1.0, 12.0]), _frame("b", [3.0]),
                               _frame("no-line", None)))  # fmt: skip
    assert {z.segment_id for z in sent} == {"a"}  # b was not asked for, no-line has no line
    assert [z.at for z in sent] == [s.T0 + timedelta(seconds=t) for t in (0, 1, 2, 3, 4)]
    assert sent[0].vehicles == (
        FrameVehicle(0.0, 2.0, 1.0), FrameVehicle(4.0, None, 1.0), FrameVehicle(12.0, 2.0, 1.0),
    )  # fmt: skip
    assert out.sent == 5
    clock.now += 5.0
    out.observe(*_analysed(2.5, _frame("a", [1.0])))  # captured before the last one sent
    assert len(sent) == 5
    out.observe(*_analysed(9.0, _frame("a", [1.0])))
    assert len(sent) == 6


def test_a_failing_sender_never_stops_the_engine() -> None:
    def boom(_zone: FrameZone) -> bool:
        raise RuntimeError("socket gone")

    out = ZoneOut(boom, {SegmentId("a")})
    out.observe(*_analysed(0.0, _frame("a", [1.0])))
    assert out.failures == 1


def test_the_city_puts_phase_mode_stop_line_segments_on_the_bus(repo_dir: Path) -> None:
    cycle = load_config(repo_dir / "config.toml")
    assert zone_feed_segments(cycle) == frozenset()  # cycle mode: windows are enough
    cfg = demo_in_phase_mode(cycle)
    with_line = {x.id for x in cfg.segments if x.stop_line is not None}
    ((ix, watched),) = [
        (IntersectionId(ix.id), {g for p in ix.phases for g in (*p.segments, *p.exit_segments)})
        for ix in cfg.intersections
    ]
    assert zone_feed_segments(cfg) == watched & with_line
    assert "beijing-south-approach" in zone_feed_segments(cfg)
    assert set(windows_only_segments(cfg)[ix]) == watched - with_line
    assert "beijing-junction" in windows_only_segments(cfg)[ix]
