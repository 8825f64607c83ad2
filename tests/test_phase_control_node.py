"""Phase-by-phase mode in the control role: measures from the bus, a real broker, the adapter.

The control node (:class:`~atcs.roles.control.ControlNode`) runs a phase-mode
intersection fed only by what an edge node would publish (segment windows, camera
status and, for ``carriageway``, which has a stop line, each second's per-frame zone, sent
here by a real :class:`~atcs.bus.MqttBus`): its signal view says the carriageway's zone
comes from the frames while they arrive and from the windows once they stop, and
``inbound`` (no stop line) from the windows throughout; the reference adapter
(:class:`~atcs.signal_adapter.SignalAdapter`) runs beside it on the same Mosquitto, with
the keys of ``tests/test_phase_live_e2e.py``. The process-level run with the real model is
that file's test; this one covers the control role's wiring in about 20 s. A room node
(:class:`~atcs.roles.room.RoomNode`) beside them shows the intersection from the signal
controller's signed states only (unsigned and forged ones are refused by its own bus, as
the control node refuses them) and raises ``intersection_manual`` from the control node's
override state while an operator holds the intersection.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from atcs.alarms.model import Alarm, AlarmKind
from atcs.bus import MqttBus
from atcs.bus.keys import Algorithm, Signer, new_key, sign_payload
from atcs.bus.messages import Override, OverrideAction
from atcs.bus.phase_payloads import encode_signal_state
from atcs.config import load_config
from atcs.control.state import SignalView
from atcs.roles.control import ControlNode
from atcs.roles.room import RoomNode
from atcs.signal_adapter import adapter_from_config
from atcs.types import (
    CameraId,
    CameraState,
    CameraStatus,
    FrameVehicle,
    FrameZone,
    PhaseId,
    SegmentId,
)
from controllers.phase.commands import ControlMode, SignalState
from controllers.phase.timing import Interval
from tests.support.buses import BusFactory
from tests.support.mosquitto import Collector, Mosquitto
from tests.support.net import free_port
from tests.support.wait import wait_for
from tests.test_bus_hostile import Publisher
from tests.test_phase_live_e2e import ADAPTER_AUTH, ENGINE_AUTH, ENV, IX, TOPICS, site_toml
from tests.unit.test_control_supervisor import window

pytestmark = pytest.mark.integration


def test_control_role_commands_the_adapter_from_measures_on_the_bus(
    tmp_path: Path,
    media_dir: Path,
    model_path: str,
    mosquitto: Mosquitto,
    make_bus: BusFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    paths = {}
    for name, auth in (("engine", ENGINE_AUTH), ("adapter", ADAPTER_AUTH), ("room", ENGINE_AUTH)):
        paths[name] = tmp_path / f"{name}.toml"
        (tmp_path / name).mkdir()
        text = site_toml(tmp_path / name, media_dir, model_path, mosquitto, free_port(), 0, auth)
        paths[name].write_text(text.replace("port = 0\n", f"port = {free_port()}\n"))
    caplog.set_level(logging.WARNING, logger="atcs.roles.control")
    node = ControlNode(load_config(paths["engine"]), tick_s=0.1)
    (warning,) = [r.getMessage() for r in caplog.records if "no stop line" in r.getMessage()]
    assert f"intersection {IX}: segment(s) inbound have no stop line" in warning
    assert "carriageway" not in warning  # its per-frame zone comes over the bus
    room = RoomNode(load_config(paths["room"]))
    adapter = adapter_from_config(
        load_config(paths["adapter"]), IX, controller_id="tsc-1", key_env="ATCS_E2E_TSC_KEY"
    )
    commands = Collector(mosquitto, TOPICS.command(IX))
    edge = make_bus(mosquitto)
    stop = threading.Event()
    zones_on = threading.Event()
    zones_on.set()
    down: set[str] = set()

    def publish_measures() -> None:
        while not stop.is_set():
            now = datetime.now(UTC)
            edge.on_metrics([
                window("inbound", now, vehicles=4.0, queue_m=12.0, camera="pontianak",
                       window_s=1.0),
                window("carriageway", now, vehicles=6.0, queue_m=20.0, camera="motorway",
                       window_s=1.0),
            ])  # fmt: skip
            if zones_on.is_set():  # two vehicles queued at the line, one arriving
                edge.send_zone(FrameZone(CameraId("motorway"), SegmentId("carriageway"), now, (
                    FrameVehicle(0.0, 0.0, 1.0), FrameVehicle(6.5, 0.2, 1.0),
                    FrameVehicle(40.0, None, 0.15),
                )))  # fmt: skip
                # a segment of no intersection of this node: its zones are not subscribed to
                edge.send_zone(FrameZone(CameraId("motorway"), SegmentId("shoulder"), now, (
                    FrameVehicle(3.0, 0.0, 1.0),)))  # fmt: skip
            for camera in ("pontianak", "motorway"):
                state = CameraState.OFFLINE if camera in down else CameraState.STREAMING
                edge.on_camera_status(CameraStatus(CameraId(camera), state, 2.0, now))
            stop.wait(1.0)

    threads = [
        threading.Thread(target=node.run, daemon=True),
        threading.Thread(target=adapter.run, daemon=True),
        threading.Thread(target=publish_measures, daemon=True),
        threading.Thread(target=room.run, daemon=True),
    ]
    for t in threads:
        t.start()
    try:

        def signal_mode() -> str | None:
            view = node.control.state()[IX].signal
            return None if view is None else view.controller_mode

        def recall() -> tuple[str, ...]:
            view = node.control.state()[IX].signal
            return () if view is None else view.recall

        wait_for(lambda: signal_mode() == "command" and len(commands.snapshot()) >= 3, 60,
                 "the control node commanding the adapter", interval_s=0.2)  # fmt: skip
        assert node.control.state()[IX].source.value == "adaptive"
        assert adapter.counts["commands_accepted"] >= 3
        assert int(node.bus.health()["control_states"]) >= 3
        check_room(room, mosquitto, node)
        check_zones(node, zones_on)

        down.add("motorway")  # its edge node reports the camera offline
        wait_for(lambda: recall() == ("east",), 15, "east on recall in the control node")
        assert node.control.state()[IX].source.value == "adaptive"
        wait_for(lambda: adapter.executor.state.recall == frozenset({PhaseId("east")}), 15,
                 "east on recall in the adapter", interval_s=0.2)  # fmt: skip

        adapter.stop()
        stopped = time.monotonic()
        wait_for(lambda: node.control.state()[IX].source.value == "fallback", 10,
                 "fallback once the adapter is silent", interval_s=0.1)  # fmt: skip
        assert time.monotonic() - stopped <= 3.0 + 2.0
    finally:
        stop.set()
        adapter.stop()
        node.stop()
        room.stop()
        for t in threads:
            t.join(20)
        commands.close()


def check_zones(node: ControlNode, zones_on: threading.Event) -> None:
    """The carriageway's zone comes from the bus's frames, then from windows once they stop."""

    def zones_from() -> dict[SegmentId, str]:
        view = node.control.state()[IX].signal
        return {} if view is None else dict(view.zones_from)

    wait_for(lambda: zones_from() == {"inbound": "window", "carriageway": "frame"}, 10,
             "the carriageway's zone from the frames on the bus")  # fmt: skip
    assert node.feed.status().malformed == 0
    # the carriageway only: inbound has no stop line, so no zone is published for it
    assert node.feed.zone_filters() == [TOPICS.segment_zone(SegmentId("carriageway"))]
    assert node.feed.zones_unwanted == 0  # the broker never sent the shoulder's zones
    live = node.control.phase(IX)
    kept = live.zones(datetime.now(UTC))[SegmentId("carriageway")]
    assert [(v.distance_m, v.pcu) for v in kept.vehicles] == [(0.0, 1.0), (6.5, 1.0), (40.0, 0.15)]
    zones_on.clear()  # the edge stops sending zones: windows only, after frame_stale_s
    stopped = time.monotonic()
    wait_for(lambda: zones_from() == {"inbound": "window", "carriageway": "window"}, 10,
             "the carriageway's zone back from the windows")  # fmt: skip
    assert time.monotonic() - stopped <= live.frame_stale_s + 1.0 + 1.0  # a tick a second
    zones_on.set()
    wait_for(lambda: zones_from().get(SegmentId("carriageway")) == "frame", 10, "the frames again")


def check_room(room: RoomNode, broker: Mosquitto, node: ControlNode) -> None:
    """The room sees signed states only, and the control node's override as an alarm."""
    assert room.view.control is not None
    plans = room.view.control

    def shown() -> SignalView | None:
        state = plans.state().get(IX)
        return None if state is None else state.signal

    wait_for(lambda: (v := shown()) is not None and v.controller_mode == "command", 30,
             "the adapter's signed states in the room")  # fmt: skip
    now = float(int(time.time()))
    fake = SignalState(IX, now, PhaseId("east"), Interval.GREEN, now, now, None,
                       ControlMode.LOCAL, "forged", frozenset(), 99)  # fmt: skip
    body = encode_signal_state(fake, controller_id="tsc-1")
    forger = Signer.from_key("tsc-1", Algorithm.ED25519, new_key(Algorithm.ED25519)[0])
    device = Publisher(broker)
    try:
        for _ in range(3):
            device.send(TOPICS.state(IX), body)  # unsigned
            device.send(TOPICS.state(IX), sign_payload(body, TOPICS.state(IX), forger))
    finally:
        device.close()
    health = next(s for s in room.outputs if isinstance(s, MqttBus)).health
    wait_for(lambda: int(health()["control_refused_unsigned"]) >= 3
             and int(health()["control_refused_bad_signature"]) >= 3, 15,
             "the room's bus refusing unsigned and forged states")  # fmt: skip
    view = shown()
    assert view is not None
    assert view.controller_reason != "forged"
    assert int(health()["control_states"]) >= 1

    def manual() -> list[Alarm]:
        current = room.alarms.manager.current()
        return [a for a in current if a.active and a.kind is AlarmKind.INTERSECTION_MANUAL]

    assert manual() == []
    node.control.on_override(Override(IX, OverrideAction.HOLD, "budi", "parade", datetime.now(UTC)))
    wait_for(lambda: len(manual()) == 1, 15, "intersection_manual in the room")
    assert manual()[0].params["who"] == "budi"
    held = plans.state()[IX]
    assert held.override is not None
    assert held.source.value == "hold"
    node.control.on_override(
        Override(IX, OverrideAction.RELEASE, "budi", "over", datetime.now(UTC))
    )
    wait_for(lambda: manual() == [], 15, "intersection_manual ended in the room")
