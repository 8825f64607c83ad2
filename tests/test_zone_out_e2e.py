"""An edge node puts each phase-mode segment's per-frame zone on a real broker, once a second.

The city: cameras ``pontianak`` (segment ``inbound``, no stop line) and ``motorway``
(``carriageway``, with a stop line, and ``shoulder``, with a stop line but in no
intersection); one phase-mode intersection whose phases are ``inbound`` and
``carriageway``. The edge node that reads both cameras is built as ``atcs run --role edge``
builds it; the motorway clip's frames are detected with the real model, analysed by the
camera's real analyser and handed to the engine's frame observers as fast as the machine
goes (about 10 frames a second), while a real subscriber on Mosquitto records every zone
message. Only ``carriageway`` goes out (``inbound`` has no stop line, ``shoulder`` feeds no
phase-mode intersection), at most once a second, each message with the frame's vehicles in
the segment.
"""

from __future__ import annotations

import itertools
import math
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from atcs.bus import MqttBus, Topics
from atcs.bus.nodes import NodeRole
from atcs.bus.zone_payloads import decode_segment_zone
from atcs.config import load_config
from atcs.detection import build_detector
from atcs.metrics import CameraAnalyzer
from atcs.service import build_engine
from atcs.sources.recorded import iter_recorded_frames
from atcs.types import SegmentId
from tests.support.mosquitto import Collector, Mosquitto
from tests.support.sites import two_clip_site_toml

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
TOPICS = Topics()
RUN_S = 6.0

EXTRA = """
[mqtt]
host = "{host}"
port = {port}

[[segments]]
id = "shoulder"
camera = "motorway"
polygon = [[0.80, 0.40], [0.99, 0.40], [0.99, 0.99], [0.80, 0.99]]
length_m = 40.0
lanes = 1
stop_line = [[0.80, 0.99], [0.99, 0.99]]

[[intersections]]
id = "simpang"
mode = "phase"
cycle_min_s = 16.0
cycle_max_s = 40.0
[intersections.phase_mode]
controller = "actuated"
[[intersections.phases]]
id = "north"
segments = ["inbound"]
min_green_s = 4.0
max_green_s = 15.0
[[intersections.phases]]
id = "east"
segments = ["carriageway"]
min_green_s = 4.0
max_green_s = 15.0
[[intersections.fallback_plans]]
starts_at = "00:00"
greens_s = {{ north = 6.0, east = 6.0 }}
"""


def test_an_edge_sends_the_stop_line_segments_of_phase_mode_at_most_once_a_second(
    tmp_path: Path, media_dir: Path, model_path: str, mosquitto: Mosquitto
) -> None:
    extra = EXTRA.format(host=mosquitto.host, port=mosquitto.port)
    path = tmp_path / "city.toml"
    path.write_text(two_clip_site_toml(media_dir, model_path, tmp_path / "var", stop_line=True,
                                       extra=extra))  # fmt: skip
    cfg = load_config(path)
    engine = build_engine(cfg, NodeRole.EDGE)
    assert engine.control is None  # an edge runs no control: the zones are for another node
    (bus,) = [s for s in engine.sinks if isinstance(s, MqttBus)]
    zones = Collector(mosquitto, TOPICS.all_segment_zones())
    bus.start()
    detector = build_detector(cfg.detector)
    analyzer: CameraAnalyzer | None = None
    members: dict[datetime, int] = {}
    seen_at: dict[datetime, float] = {}  # when each frame reached the observers (monotonic s)
    try:
        assert poll_connected(bus)
        source = cfg.camera("motorway").source
        started = 0.0
        for frame in iter_recorded_frames("motorway", source, start_at=T0, stride=3):
            (found,) = detector.detect([frame.image])
            if not started:  # the model's first call compiles it: not part of the run
                started = time.monotonic()
            if analyzer is None:
                analyzer = CameraAnalyzer.from_config(
                    cfg, "motorway", frame.width_px, frame.height_px, T0
                )
            result = analyzer.update(frame.seq, frame.captured_at, frame.offset_s, found,
                                     frame.image)  # fmt: skip
            seen_at[result.at] = time.monotonic()
            for observer in engine.frame_observers:
                observer(frame, result)
            seg = next(x for x in result.segments if x.segment_id == "carriageway")
            members[result.at] = int(seg.members.sum())
            if time.monotonic() - started >= RUN_S:
                break
        elapsed_s = time.monotonic() - started
        frames = len(members)
        zones.wait_for(lambda ms: len(ms) >= int(elapsed_s), 10)
        time.sleep(0.5)  # anything else in flight
        got = zones.snapshot()
    finally:
        detector.close()
        zones.close()
        bus.close(2.0)
    assert frames >= 2 * elapsed_s  # frames came faster than the zones may go
    assert {m.topic for m in got} == {TOPICS.segment_zone(SegmentId("carriageway"))}
    assert not any(m.retain for m in got)
    assert int(elapsed_s) - 1 <= len(got) <= math.ceil(elapsed_s)  # once a second
    decoded = [decode_segment_zone(m.payload, "carriageway") for m in got]
    assert [z.at for z in decoded] == sorted({z.at for z in decoded})
    sent_at = [seen_at[z.at] for z in decoded]
    frame_gap_s = max(b - a for a, b in itertools.pairwise(sorted(seen_at.values())))
    # The first frame due after a second. seen_at is stamped before the observers run and
    # the zone output reads its own clock inside them: 0.05 s is left for that difference.
    for a, b in itertools.pairwise(sent_at):
        assert 0.95 <= b - a <= 1.0 + frame_gap_s + 0.05
    length_m = next(x.length_m for x in cfg.segments if x.id == "carriageway")
    for zone in decoded:
        assert zone.camera_id == "motorway"
        assert len(zone.vehicles) == members[zone.at]  # the frame's vehicles in the segment
        for v in zone.vehicles:
            assert 0.0 <= v.distance_m <= length_m + 5.0
            assert v.speed_m_s is None or v.speed_m_s >= 0.0
            assert v.pcu > 0.0
    assert sum(len(z.vehicles) for z in decoded) >= len(decoded)  # a busy motorway
    assert int(bus.health()["zones_sent"]) == len(got)


def poll_connected(bus: MqttBus) -> bool:
    """Wait until the bus is connected (zones are never queued)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if bus.health()["connected"]:
            return True
        time.sleep(0.05)
    return False
