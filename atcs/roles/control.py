"""The control role: signal control fed by the bus, whichever node measured the segments.

:class:`ControlNode` runs the supervisors of every configured intersection
(:class:`~atcs.control.ControlLoop`, exactly as in the single process) with no camera of
its own: a :class:`~atcs.bus.feed.BusFeed` hands it every segment window and camera
status on the bus (copies dropped), and a camera whose edge node went offline (its last
will) arrives as ``offline``, so the stale rules send that camera's phases to fallback at
once instead of after ``stale_after_s``. Its phase-mode intersections also get each
segment's per-frame zone (one frame's vehicles a second, from the node that measures the
segment; :mod:`atcs.bus.zone_payloads`), so they see the vehicles as in the single
process wherever the segment has a stop line. Plans leave on its own MQTT bus (retained, from
the disk queue) and go to InfluxDB; acks and authenticated overrides arrive there and are
audited. The node announces itself on ``{p}/nodes/{node}/status``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from atcs.audit_trail import (
    DEFAULT_AUDIT_FILE,
    AuditTrail,
    record_command_refusals,
    record_verdicts,
)
from atcs.bus import MqttBus
from atcs.bus.feed import BusFeed
from atcs.bus.nodes import NodeAnnouncer, NodeRole, node_status_of
from atcs.config import AtcsConfig
from atcs.config.phase_mode import windows_only_segments, zone_feed_segments
from atcs.control import ControlLoop
from atcs.errors import ConfigError
from atcs.outputs import build_outputs
from atcs.roles.config import role_config
from atcs.roles.health import HealthServer, Reporting, node_health
from atcs.service import wire_bus_control
from atcs.sinks import Sink
from atcs.types import TimingPlan
from atcs.web.audit import AuditLog

log = logging.getLogger(__name__)


class ControlNode:
    """Control loop + bus feed + outputs of one control node; :meth:`run` blocks."""

    def __init__(
        self,
        cfg: AtcsConfig,
        *,
        tick_s: float = 0.25,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        cfg = role_config(cfg, NodeRole.CONTROL)
        if not cfg.intersections:
            raise ConfigError("atcs run --role control: the configuration has no intersection")
        self.cfg = cfg
        self.tick_s = tick_s
        self.stop_event = threading.Event()
        outputs = build_outputs(cfg)
        bus = outputs.bus
        if not isinstance(bus, MqttBus):  # role_config checked [mqtt]
            raise ConfigError("atcs run --role control needs [mqtt]")
        self.bus = bus
        self.sinks: list[Sink] = list(outputs.sinks)
        self.control = ControlLoop.from_config(cfg, self._publish)
        for ix, segs in windows_only_segments(cfg).items():
            log.warning(
                "control node %s: phase-mode intersection %s: segment(s) %s have no stop "
                "line, so no per-frame zone comes over the bus for them: their controller "
                "sees only the windows, which in simulation cost most of the phase "
                "controllers' gain and gridlocked (docs/simulation.md, 'Emulated cameras'); "
                "draw their stop lines", cfg.node.id, ix, ", ".join(segs),
            )  # fmt: skip
        wire_bus_control(self.control, bus)
        audit = AuditLog(Path(cfg.service.state_dir) / DEFAULT_AUDIT_FILE, cfg.influx)
        record_verdicts(bus, audit, cfg.site.id)
        record_command_refusals(self.control, audit, cfg.site.id)
        self.sinks.insert(0, AuditTrail(audit))
        assert cfg.mqtt is not None
        self.feed = BusFeed(cfg.mqtt, client_id=f"{bus.client_id}-feed", environ=environ)
        self.feed.on_metrics(self.control.on_metrics)
        self.feed.on_camera_status(self.control.on_camera_status)
        if self.control.phase_intersections:
            # only the zones published for this node's intersections: those with a stop line
            self.feed.on_zone(self.control.on_zone_frame, zone_feed_segments(cfg))
        status = node_status_of(
            cfg.node.id, NodeRole.CONTROL, cfg.site.id, intersections=self.control.intersections
        )
        self.announcer = NodeAnnouncer(
            cfg.mqtt, status, keepalive_s=cfg.node.status_keepalive_s, environ=environ
        )
        self.sinks.append(self.announcer)
        self.loop_at: float | None = None
        """When the control loop last ticked (monotonic s)."""
        if cfg.node.health_port:
            parts: list[Reporting] = [*self.sinks, self.feed, ControlLoopHealth(self.control)]
            self.sinks.append(
                HealthServer(
                    lambda: node_health(cfg.node.id, "control", self.loop_at, parts),
                    cfg.node.health_host,
                    cfg.node.health_port,
                )
            )

    def _publish(self, plan: TimingPlan) -> None:
        for sink in self.sinks:
            sink.on_plan(plan)

    def start(self) -> None:
        """Start the outputs, then the feed (so no decision is made before plans can leave)."""
        for sink in self.sinks:
            sink.start()
        self.feed.start()
        log.info(
            "control node %s started: %d intersection(s)",
            self.cfg.node.id,
            len(self.control.intersections),
        )

    def stop(self) -> None:
        """Ask :meth:`run` to stop (safe from signal handlers)."""
        self.stop_event.set()

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop the feed, then close the outputs in reverse order (the last plans leave)."""
        self.feed.close()
        for sink in reversed(self.sinks):
            try:
                sink.close(timeout_s)
            except Exception:  # one sink failing to close must not stop the others
                log.exception("sink failed to close")
        log.info("control node %s stopped", self.cfg.node.id)

    def run(self, duration_s: float | None = None) -> None:
        """Start, tick the control loop until stopped or ``duration_s``, shut down."""
        deadline = None if duration_s is None else time.monotonic() + duration_s
        try:
            self.start()
            while not self.stop_event.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                self.loop_at = time.monotonic()
                try:
                    self.control.tick()
                except Exception:  # the loop boundary: log and go on
                    log.exception("control tick failed")
                self.stop_event.wait(self.tick_s)
        finally:
            self.shutdown()


class ControlLoopHealth:
    """The control loop's counters as a part of the node's health (``ControlLoop``)."""

    def __init__(self, control: ControlLoop) -> None:
        self._control = control

    def health(self) -> Mapping[str, float | int | str | bool]:
        """Return the loop's counters (commands, refusals, zones refused)."""
        return dict(self._control.counters().as_map())
