"""The engine's MQTT bus for tests: the ``make_bus`` fixture.

``make_bus(broker, state_dir=None, environ=None, **settings)`` starts an
:class:`~atcs.bus.MqttBus` against ``broker`` with the test keys of
:data:`tests.support.signing.TEST_KEYS` (their ``control_auth`` and environment unless the
test says otherwise); ``watch_every_s``, ``fiware`` and ``segment_names`` are passed to
the bus, ``start=False`` leaves it to
the test to start it (after registering handlers), every other setting goes to
:class:`~atcs.config.bus.MqttConfig`. Every bus is closed at the test's end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from atcs.bus import MqttBus
from atcs.config.bus import MqttConfig
from atcs.types import SiteId
from tests.support.mosquitto import Mosquitto
from tests.support.signing import TEST_KEYS

BusFactory = Callable[..., MqttBus]


@pytest.fixture
def make_bus(tmp_path: Path) -> Iterator[BusFactory]:
    """Start MqttBus instances against a broker; all closed at the test's end."""
    made: list[MqttBus] = []

    def make(
        broker: Mosquitto,
        state_dir: Path | None = None,
        environ: dict[str, str] | None = None,
        **settings: Any,
    ) -> MqttBus:
        watch_every_s = settings.pop("watch_every_s", 1.0)
        start = settings.pop("start", True)
        fiware = settings.pop("fiware", None)
        segment_names = settings.pop("segment_names", None)
        settings.setdefault("reconnect_max_s", 1)
        settings.setdefault("control_auth", TEST_KEYS.control_auth)
        cfg = MqttConfig(host=broker.host, port=broker.port, **settings)
        bus = MqttBus(
            cfg,
            site_id=SiteId("demo"),
            state_dir=state_dir or tmp_path / "state",
            environ={**TEST_KEYS.environ, **(environ or {})},
            watch_every_s=watch_every_s,
            fiware=fiware,
            segment_names=segment_names,
        )
        if start:
            bus.start()
        made.append(bus)
        return bus

    yield make
    for bus in made:
        bus.close(timeout_s=1.0)
