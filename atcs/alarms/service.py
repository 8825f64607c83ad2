"""Alarms as a part of the engine: a sink fed by the analysis tick, checked once a second.

:class:`AlarmService` receives every closed window and camera status (as a
:class:`~atcs.sinks.Sink`), incident reports (:meth:`AlarmService.on_incident`; the engine's
own incident events through :meth:`AlarmService.on_incident_event`) and node
announcements (:meth:`AlarmService.on_node`); its own thread reads the control loop's
state and evaluates :class:`~atcs.alarms.rules.AlarmRules` every ``check_every_s``, so
time-based alarms (camera down, stale data) start and end even when nothing arrives.
Changes go to the outputs (MQTT bus, InfluxDB) from that thread; nothing blocks the tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from atcs.alarms.incidents import incident_report
from atcs.alarms.manager import AlarmManager
from atcs.alarms.model import AlarmOutput, IncidentReport
from atcs.alarms.rules import AlarmRules
from atcs.config import AtcsConfig
from atcs.control import ControlView
from atcs.health_records import AlarmHealth
from atcs.incidents import IncidentEvent
from atcs.types import CameraStatus, SegmentMetrics, TimingPlan

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AlarmService:
    """The engine's alarms (a Sink); see the module docstring."""

    def __init__(
        self,
        cfg: AtcsConfig,
        outputs: Sequence[AlarmOutput] = (),
        *,
        control: ControlView | None = None,
        check_every_s: float = 1.0,
        clock: Clock = _utc_now,
    ) -> None:
        self.cfg = cfg
        self.control = control
        self._clock = clock
        self._check_every_s = check_every_s
        self.manager = AlarmManager(cfg.site.id, outputs, cfg.alarms.history_max)
        self.rules = AlarmRules(
            cfg.alarms,
            segment_cameras={s.id: s.camera for s in cfg.segments},
            cameras=[c.id for c in cfg.cameras if c.enabled],
            started_at=clock(),
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # Sink --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start checking once every ``check_every_s``."""
        if self._thread is not None:
            return
        with self._lock:
            self.rules = AlarmRules(
                self.cfg.alarms,
                segment_cameras={s.id: s.camera for s in self.cfg.segments},
                cameras=[c.id for c in self.cfg.cameras if c.enabled],
                started_at=self._clock(),
            )
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="atcs-alarms", daemon=True)
        self._thread.start()

    def on_metrics(self, metrics: Sequence[SegmentMetrics]) -> None:
        """Take closed windows (congestion and stale data)."""
        with self._lock:
            self.rules.on_metrics(metrics)

    def on_camera_status(self, status: CameraStatus) -> None:
        """Take a camera's state (camera down)."""
        with self._lock:
            self.rules.on_camera_status(status, self._clock())

    def on_plan(self, plan: TimingPlan) -> None:
        """Plans are read from the control loop's state (acks, modes)."""

    def on_incident(self, report: IncidentReport) -> None:
        """Take an incident's start or end from an incident detector."""
        with self._lock:
            self.rules.on_incident(report)

    def on_incident_event(self, event: IncidentEvent) -> None:
        """Take a start or end from the engine's own incident detectors (an incident listener)."""
        self.on_incident(incident_report(event))

    def on_node(self, node_id: str, online: bool, at: datetime | None = None) -> None:
        """Take a node's announcement or its last will (multi-node roles call this)."""
        with self._lock:
            self.rules.on_node(node_id, online, at or self._clock())

    def status(self) -> AlarmHealth:
        """Return the counts of raised, ended, acknowledged and current alarms."""
        return AlarmHealth(self.manager.counters(), len(self.manager.current()))

    def health(self) -> Mapping[str, float | int | str | bool]:
        """:meth:`status` as a flat map."""
        return self.status().as_map()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the checking thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    # Checking ----------------------------------------------------------------------------

    def check(self, now: datetime | None = None) -> None:
        """Evaluate every rule at ``now`` and raise or end alarms."""
        at = now or self._clock()
        states = self.control.state(at) if self.control is not None else {}
        with self._lock:
            self.rules.on_control(states)
            conditions = self.rules.conditions(at)
        self.manager.update(conditions, at)

    def _run(self) -> None:
        while not self._stop.wait(self._check_every_s):
            try:
                self.check()
            except Exception:  # the thread's loop boundary: log and go on
                log.exception("alarm check failed")
