"""Phase-by-phase mode in the control role: measures from the bus, a real broker, the adapter.

The control node (:class:`~atcs.roles.control.ControlNode`) runs a phase-mode
intersection fed only by what an edge node would publish (segment windows and camera
status, sent here by a real :class:`~atcs.bus.MqttBus`); the reference adapter
(:class:`~atcs.signal_adapter.SignalAdapter`) runs beside it on the same Mosquitto, with
the keys of ``tests/test_phase_live_e2e.py``. The process-level run with the real model is
that file's test; this one covers the control role's wiring in about 20 s.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from atcs.config import load_config
from atcs.roles.control import ControlNode
from atcs.signal_adapter import adapter_from_config
from atcs.types import CameraId, CameraState, CameraStatus, PhaseId
from tests.support.buses import BusFactory
from tests.support.mosquitto import Collector, Mosquitto
from tests.support.net import free_port
from tests.support.wait import wait_for
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
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    paths = {}
    for name, auth in (("engine", ENGINE_AUTH), ("adapter", ADAPTER_AUTH)):
        paths[name] = tmp_path / f"{name}.toml"
        text = site_toml(tmp_path, media_dir, model_path, mosquitto, free_port(), 0, auth)
        paths[name].write_text(text.replace("port = 0\n", f"port = {free_port()}\n"))
    node = ControlNode(load_config(paths["engine"]), tick_s=0.1)
    adapter = adapter_from_config(
        load_config(paths["adapter"]), IX, controller_id="tsc-1", key_env="ATCS_E2E_TSC_KEY"
    )
    commands = Collector(mosquitto, TOPICS.command(IX))
    edge = make_bus(mosquitto)
    stop = threading.Event()
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
            for camera in ("pontianak", "motorway"):
                state = CameraState.OFFLINE if camera in down else CameraState.STREAMING
                edge.on_camera_status(CameraStatus(CameraId(camera), state, 2.0, now))
            stop.wait(1.0)

    threads = [
        threading.Thread(target=node.run, daemon=True),
        threading.Thread(target=adapter.run, daemon=True),
        threading.Thread(target=publish_measures, daemon=True),
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
        for t in threads:
            t.join(20)
        commands.close()
