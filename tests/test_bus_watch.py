"""``atcs watch``: the pure table renderer, and the subscription against real Mosquitto."""

from __future__ import annotations

import argparse
import io
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest

from atcs.bus import LiveState, MqttBus, Snapshot, Topics
from atcs.bus.messages import MessageMeta
from atcs.bus.monitor import BusMonitor, SegmentRow
from atcs.bus.payloads import encode_segment_metrics
from atcs.config.bus import MqttConfig
from atcs.types import CameraId, CameraState, CameraStatus, SegmentId, SiteId
from atcs.watch import RED_BG, RESET, View, _mqtt_config, frame, render_table, run_watch
from tests.support import samples as s
from tests.support.mosquitto import Collector, Mosquitto
from tests.support.wait import poll

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _snapshot(connected: bool = True) -> Snapshot:
    a = s.metrics(3, "seg-a")
    b = s.metrics(4, "seg-b", congested=True, camera="cam-2")
    return Snapshot(
        segments={
            SegmentId("seg-b"): SegmentRow(b, b.window_end),
            SegmentId("seg-a"): SegmentRow(a, a.window_end),
        },
        cameras={
            CameraId("cam-1"): CameraStatus(CameraId("cam-1"), CameraState.STALLED, 0.0, None)
        },
        connected=connected,
        received=7,
        malformed=1,
        last_error="" if connected else "cannot connect to 127.0.0.1:1",
    )


def test_render_table_shows_every_measure_sorted_with_age() -> None:
    snap = _snapshot()
    now = s.metrics(4).window_end + timedelta(seconds=12)
    lines = render_table(snap, now, View("atcs watch test", color=False))
    text = "\n".join(lines)
    for part in ("connected", "segments 2", "congested 1"):
        assert part in lines[0]
    assert "malformed 1" in lines[0]
    header = lines[2]
    for col in (
        "segment",
        "camera",
        "veh",
        "pcu",
        "pcu/km/ln",
        "flow veh/h",
        "LOS",
        "age s",
        "cam",
    ):
        assert col in header
    rows = lines[3:]
    assert rows[0].split()[:2] == ["seg-a", "cam-1"]
    assert rows[1].split()[:2] == ["seg-b", "cam-2"]
    a = rows[0].split()
    assert a[2:7] == ["6.2", "4.3", "15.5", "720", "C"]  # vehicles 3.25+3, pcu, density, flow, LOS
    assert a[7] == "-"  # odd windows have no queue
    assert a[8] == "22"  # window 3 ended 22 s before now
    assert a[9] == "stalled"
    assert rows[1].split()[7:10] == ["17.5", "12", "-"]  # queue, age, unknown camera
    assert rows[1].endswith("CONGESTED")
    assert "\x1b" not in text


def test_render_highlights_congested_rows_and_reports_disconnection() -> None:
    now = s.metrics(4).window_end
    lines = render_table(_snapshot(connected=False), now, View("t", color=True, width=200))
    assert "NOT CONNECTED (cannot connect to 127.0.0.1:1)" in lines[0]
    congested = [ln for ln in lines if "seg-b" in ln]
    assert congested[0].startswith(RED_BG)
    assert congested[0].endswith(RESET)
    plain = [ln for ln in lines if "seg-a" in ln]
    assert not plain[0].startswith("\x1b")
    narrow = render_table(_snapshot(), now, View("t", color=False, width=40))
    assert all(len(ln) <= 40 for ln in narrow)
    empty = Snapshot({}, {}, True, 0, 0, "")
    assert "waiting for segment metrics" in "\n".join(render_table(empty, now, View("t")))
    drawn = frame(["a", "b"])
    assert drawn.startswith("\x1b[H")
    assert drawn.endswith("\x1b[J")
    assert ANSI.sub("", drawn) == "a\nb\n"


def test_live_state_keeps_newest_window_and_counts_malformed() -> None:
    state = LiveState(Topics(), max_items=2)
    topic = "atcs/v1/segments/seg-a/metrics"
    state.handle(topic, encode_segment_metrics(s.metrics(5), MessageMeta("x", 2)))
    state.handle(topic, encode_segment_metrics(s.metrics(4), MessageMeta("x", 1)))  # older
    state.handle(topic, b"{not json")
    state.handle(
        "atcs/v1/segments/seg-zzz/metrics",
        encode_segment_metrics(s.metrics(1), MessageMeta("x", 3)),
    )
    snap = state.snapshot()
    assert snap.segments[SegmentId("seg-a")].metrics == s.metrics(5)
    assert snap.malformed == 2  # bad JSON, and segment id not matching its topic
    for i, seg in enumerate(("b", "c", "d")):
        payload = encode_segment_metrics(s.metrics(i, seg), MessageMeta("x", 10 + i))
        state.handle(f"atcs/v1/segments/{seg}/metrics", payload)
    assert len(state.snapshot().segments) == 2  # bounded


@pytest.mark.integration
def test_monitor_and_watch_once_against_a_real_broker(
    mosquitto: Mosquitto, tmp_path: Path, collectors: list[Collector]
) -> None:
    cfg = MqttConfig(port=mosquitto.port, reconnect_max_s=1)
    bus = MqttBus(cfg, site_id=SiteId("demo"), state_dir=tmp_path / "state")
    bus.start()
    monitor = BusMonitor(cfg)
    monitor.start()
    try:
        assert monitor.wait_connected(10)
        bus.on_camera_status(s.camera_status())
        bus.on_metrics([s.metrics(0, "seg-a"), s.metrics(1, "seg-b", congested=True)])
        done = False
        for _ in range(100):
            snap = monitor.snapshot()
            if len(snap.segments) == 2 and snap.cameras:
                done = True
                break
            time.sleep(0.05)
        assert done, monitor.snapshot()
        assert snap.segments[SegmentId("seg-b")].metrics == s.metrics(1, "seg-b", congested=True)
        assert snap.cameras[CameraId("cam-1")].state is CameraState.STREAMING

        mosquitto.kill()  # the monitor notices and resubscribes after a restart
        assert poll(lambda: not monitor.snapshot().connected, 5.0)
        mosquitto.restart()
        assert monitor.wait_connected(10)
        # the killed broker lost its retained messages: publish both segments again
        bus.on_metrics([s.metrics(2, "seg-a"), s.metrics(3, "seg-b", congested=True)])
        for _ in range(100):
            row = monitor.snapshot().segments.get(SegmentId("seg-a"))
            if row is not None and row.metrics == s.metrics(2, "seg-a"):
                break
            time.sleep(0.05)
        assert monitor.snapshot().segments[SegmentId("seg-a")].metrics == s.metrics(2, "seg-a")
    finally:
        monitor.close()
        bus.close(timeout_s=2)

    out = io.StringIO()
    args = argparse.Namespace(config=None, host="127.0.0.1", port=mosquitto.port, prefix=None,
                              once=True, wait=1.0)  # fmt: skip
    assert run_watch(args, out) == 0
    text = out.getvalue()
    for part in ("seg-a", "seg-b", "CONGESTED"):
        assert part in text
    assert "connected" in text.splitlines()[0]

    unreachable = argparse.Namespace(config=None, host="127.0.0.1", port=1, prefix="x/y",
                                     once=True, wait=0.5)  # fmt: skip
    out2 = io.StringIO()
    assert run_watch(unreachable, out2) == 2
    assert "NOT CONNECTED" in out2.getvalue()


def test_watch_reads_broker_settings_from_a_config_file(tmp_path: Path) -> None:
    cfg_file = tmp_path / "site.toml"
    cfg_file.write_text(
        '[site]\nid = "demo"\n[[cameras]]\nid = "c1"\nsource = "clip.mp4"\n'
        '[mqtt]\nhost = "127.0.0.1"\nport = 1\nprefix = "bdg/v1"\n'
    )
    cfg = _mqtt_config(argparse.Namespace(config=cfg_file, host=None, port=None, prefix=None))
    assert (cfg.port, cfg.prefix) == (1, "bdg/v1")
    over = _mqtt_config(argparse.Namespace(config=cfg_file, host=None, port=2, prefix=None))
    assert (over.port, over.prefix) == (2, "bdg/v1")
    bad = argparse.Namespace(config=cfg_file, host=None, port=0, prefix=None, once=True, wait=0)
    assert run_watch(bad, io.StringIO()) == 2
