"""Build the engine's outputs (sinks) from the configuration: MQTT bus and InfluxDB."""

from __future__ import annotations

from dataclasses import dataclass, field

from atcs.config import AtcsConfig
from atcs.incidents import IncidentListener
from atcs.sinks import MovementListener, Sink
from atcs.types import SiteId


@dataclass(slots=True)
class Outputs:
    """The configured sinks; ``bus`` is kept apart because control subscribes through it.

    ``movement_listeners`` and ``incident_listeners`` are the sinks' handlers of turning
    movements and incident events (the engine calls them on its analysis thread).
    """

    sinks: list[Sink]
    bus: object | None = None
    movement_listeners: list[MovementListener] = field(default_factory=list)
    incident_listeners: list[IncidentListener] = field(default_factory=list)


def build_outputs(cfg: AtcsConfig) -> Outputs:
    """Return the sinks ``cfg`` asks for and the MQTT bus among them (None when off)."""
    from atcs.bus import MqttBus
    from atcs.storage import InfluxSink

    site = SiteId(cfg.site.id)
    out = Outputs(sinks=[])
    if cfg.mqtt is not None:
        names = {s.id: s.name for s in cfg.segments}
        bus = MqttBus(
            cfg.mqtt,
            site_id=site,
            state_dir=cfg.service.state_dir,
            fiware=cfg.fiware,
            segment_names=names,
        )
        out.bus = bus
        out.sinks.append(bus)
        out.movement_listeners.append(bus.on_movements)
        out.incident_listeners.append(bus.on_incident)
    if cfg.influx is not None:
        store = InfluxSink(cfg.influx, site, cfg.service.state_dir)
        out.sinks.append(store)
        out.movement_listeners.append(store.on_movements)
        out.incident_listeners.append(store.on_incident)
    return out
