"""Build the engine's outputs (sinks) from the configuration: MQTT bus and InfluxDB."""

from __future__ import annotations

from dataclasses import dataclass

from atcs.config import AtcsConfig
from atcs.sinks import Sink
from atcs.types import SiteId


@dataclass(slots=True)
class Outputs:
    """The configured sinks; ``bus`` is kept apart because control subscribes through it."""

    sinks: list[Sink]
    bus: object | None = None


def build_sinks(cfg: AtcsConfig) -> list[Sink]:
    """Return the sinks ``cfg`` asks for: MQTT with ``[mqtt]``, InfluxDB with ``[influx]``."""
    return build_outputs(cfg).sinks


def build_outputs(cfg: AtcsConfig) -> Outputs:
    """Return the sinks ``cfg`` asks for and the MQTT bus among them (None when off)."""
    from atcs.bus import MqttBus
    from atcs.storage import InfluxSink

    site = SiteId(cfg.site.id)
    sinks: list[Sink] = []
    bus = None
    if cfg.mqtt is not None:
        bus = MqttBus(cfg.mqtt, site_id=site, state_dir=cfg.service.state_dir)
        sinks.append(bus)
    if cfg.influx is not None:
        sinks.append(InfluxSink(cfg.influx, site, cfg.service.state_dir))
    return Outputs(sinks=sinks, bus=bus)
