"""The long-running engine (``atcs run``).

One process: a capture thread per camera (latest frame only), one detector worker that
batches the latest frames across cameras, and the analysis tick on the main thread that
turns detections into windowed segment metrics and hands them to the sinks (MQTT bus,
InfluxDB) and to the metric listeners (signal control); turning-movement matrices and
incident events go to their own listeners (``movement_listeners``, ``incident_listeners``:
the bus and the store, and whatever else registers, e.g. an alarm manager). One stop
event; shut down in reverse order of start.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Protocol

from atcs.alarms import AlarmOutput, AlarmService
from atcs.budget import BudgetMonitor
from atcs.bus.nodes import NodeRole
from atcs.camera_tiles import CameraTiles
from atcs.config import AtcsConfig, geometry_warnings
from atcs.control import ControlLoop
from atcs.crop_check import CameraCrops
from atcs.detection import build_detector
from atcs.detector_worker import DetectorWorker
from atcs.errors import ConfigError
from atcs.incidents import IncidentEvent, IncidentListener
from atcs.journal import group as journal_group
from atcs.metrics import CameraAnalyzer, FrameAnalysis
from atcs.sinks import MovementListener, Sink
from atcs.sources import CameraGroup
from atcs.types import (
    CameraState,
    CameraStatus,
    Detections,
    Frame,
    MovementCounts,
    SegmentId,
    SegmentMetrics,
    TimingPlan,
)
from detectors.base import Detector

if TYPE_CHECKING:
    from atcs.bus import MqttBus
    from atcs.roles.control import ControlNode
    from atcs.roles.room import RoomNode

log = logging.getLogger(__name__)

WINDOW_ORIGIN = datetime(1970, 1, 1, tzinfo=UTC)
"""Windows are aligned to multiples of window_s since the Unix epoch (wall clock)."""

MetricsListener = Callable[[Sequence[SegmentMetrics]], None]
FrameObserver = Callable[[Frame, FrameAnalysis], None]
"""Called on the analysis thread for every analysed frame; must return at once."""


@dataclass(frozen=True, slots=True)
class EngineTiming:
    """Timing knobs of the engine loop, in seconds."""

    tick_s: float = 0.25
    window_grace_s: float = 1.0
    status_every_s: float = 10.0
    join_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class EngineStats:
    """Counters of a running engine (totals since start).

    ``detector_busy_s``: wall time the detector worker spent detecting; ``*_cpu_s``: CPU
    time of the detector worker's own thread (letterbox, NMS; the model runs in the
    inference library's threads), of the analysis of detections and of handing metrics
    and statuses to the sinks, on the engine's thread, s.
    """

    started_at: datetime | None
    frames_detected: int
    frames_dropped: int
    detector_failures: int
    analysis_failures: int
    result_queue: int
    windows_published: int
    detector_busy_s: float = 0.0
    detector_cpu_s: float = 0.0
    analysis_cpu_s: float = 0.0
    output_cpu_s: float = 0.0


class Engine:
    """Wires sources, detector, analysis, sinks and listeners; :meth:`run` blocks."""

    def __init__(
        self,
        cfg: AtcsConfig,
        *,
        detector: Detector | None = None,
        sinks: Sequence[Sink] = (),
        listeners: Sequence[MetricsListener] = (),
        timing: EngineTiming | None = None,
        control: ControlLoop | None = None,
        frame_observers: Sequence[FrameObserver] = (),
        movement_listeners: Sequence[MovementListener] = (),
        incident_listeners: Sequence[IncidentListener] = (),
    ) -> None:
        self.cfg = cfg
        self.control = control
        self.frame_observers = list(frame_observers)
        self.timing = timing or EngineTiming()
        self.stop_event = threading.Event()
        self._detector = detector
        self.sinks = list(sinks)
        self.listeners = list(listeners)
        self.movement_listeners = list(movement_listeners)
        self.incident_listeners = list(incident_listeners)
        self.incident_events = 0
        self.analyzers: dict[str, CameraAnalyzer] = {}
        self.cameras: CameraGroup | None = None
        self.crops: CameraCrops | None = None
        self.tiles: CameraTiles | None = None
        self._results: queue.Queue[tuple[Frame, Detections]] = queue.Queue(maxsize=256)
        self._worker: DetectorWorker | None = None
        self._last_status: dict[str, tuple[str, float]] = {}
        self.windows_published = 0
        self.analysis_failures = 0
        self.analysis_cpu_s = 0.0
        self.output_cpu_s = 0.0
        self.started_at: datetime | None = None
        self.loop_at: float | None = None
        """When the analysis tick last ran (monotonic s; None before the first)."""
        enabled = [c for c in cfg.cameras if c.enabled]
        self.budget = BudgetMonitor(
            enabled, cfg.service.cpu_budget_cores, cfg.service.budget_every_s
        )
        self.alarms: AlarmService | None = None
        """The engine's alarms (set by :func:`build_engine`; also one of the sinks)."""

    def stats(self) -> EngineStats:
        """Counters for health pages and metrics (safe from any thread)."""
        worker = self._worker
        return EngineStats(
            started_at=self.started_at,
            frames_detected=worker.frames if worker else 0,
            frames_dropped=worker.dropped if worker else 0,
            detector_failures=worker.failures if worker else 0,
            analysis_failures=self.analysis_failures,
            result_queue=self._results.qsize(),
            windows_published=self.windows_published,
            detector_busy_s=worker.busy_s if worker else 0.0,
            detector_cpu_s=worker.cpu_s if worker else 0.0,
            analysis_cpu_s=self.analysis_cpu_s,
            output_cpu_s=self.output_cpu_s,
        )

    # --- start and stop ------------------------------------------------------------

    def start(self) -> None:
        """Start sinks, camera readers and the detector worker."""
        for warning in geometry_warnings(self.cfg):
            log.warning("config: %s", warning)
        self.started_at = datetime.now(UTC)
        for sink in self.sinks:
            sink.start()
        detector = self._detector or build_detector(self.cfg.detector)
        self._detector = detector
        self.cameras = CameraGroup(
            self.cfg.cameras, queue_size=self.cfg.service.frame_queue_size,
            stop_event=self.stop_event,
        )  # fmt: skip
        self.cameras.start()
        self.crops = CameraCrops(self.cfg, detector)
        self.tiles = CameraTiles(self.cfg, detector)
        self._worker = DetectorWorker(
            self.cameras, detector, self.cfg.detector.batch_max_frames, self._results,
            self.stop_event, crops=self.crops, tiles=self.tiles,
        )  # fmt: skip
        self._worker.start()
        log.info(
            "engine started: site=%s cameras=%d segments=%d sinks=%d",
            self.cfg.site.id, len(self.cameras.readers), len(self.cfg.segments),
            len(self.sinks),
        )  # fmt: skip

    def stop(self) -> None:
        """Ask every thread to stop (safe from signal handlers and other threads)."""
        self.stop_event.set()

    def shutdown(self) -> None:
        """Stop in reverse order: worker, readers, then flush windows and close sinks."""
        self.stop_event.set()
        if self._worker is not None:
            self._worker.join(self.timing.join_timeout_s)
        if self.cameras is not None:
            self.cameras.stop()
            self.cameras.join(self.timing.join_timeout_s)
        self._drain_results()
        now = datetime.now(UTC)
        final: list[SegmentMetrics] = []
        for analyzer in self.analyzers.values():
            final += analyzer.close_windows(now, partial=True)
        # the last, partial window of a camera that saw no frame in it carries nothing
        self._emit([m for m in final if m.frames > 0 or m.window_end != now])
        self._emit_events()
        self._emit_status(force=True)
        for sink in reversed(self.sinks):
            try:
                sink.close(self.timing.join_timeout_s)
            except Exception:  # one sink failing to close must not stop the others
                log.exception("sink failed to close")
        if self._detector is not None:
            self._detector.close()
        log.info("engine stopped: windows=%d", self.windows_published)

    # --- the analysis tick ---------------------------------------------------------

    def _analyse(self, frame: Frame, detections: Detections) -> None:
        analyzer = self.analyzers.get(frame.camera_id)
        if analyzer is None or (analyzer.width_px, analyzer.height_px) != (
            frame.width_px,
            frame.height_px,
        ):
            if analyzer is not None:
                log.warning(
                    "camera=%s resolution changed to %dx%d; analysis restarted",
                    frame.camera_id, frame.width_px, frame.height_px,
                )  # fmt: skip
            analyzer = CameraAnalyzer.from_config(
                self.cfg, frame.camera_id, frame.width_px, frame.height_px, WINDOW_ORIGIN
            )
            self.analyzers[frame.camera_id] = analyzer
        result = analyzer.update(
            frame.seq, frame.captured_at, frame.offset_s, detections, frame.image
        )
        self.budget.analysed(frame.camera_id)
        for observer in self.frame_observers:
            observer(frame, result)

    def _drain_results(self) -> None:
        while True:
            try:
                frame, detections = self._results.get_nowait()
            except queue.Empty:
                return
            try:
                self._analyse(frame, detections)
            except Exception:  # one bad frame must not stop the measures of every camera
                self.analysis_failures += 1
                log.exception("camera=%s frame=%d: analysis failed", frame.camera_id, frame.seq)

    def _emit(self, metrics: Sequence[SegmentMetrics]) -> None:
        if not metrics:
            return
        self.windows_published += len(metrics)
        with journal_group():  # one transaction: the window is on disk for every sink or none
            for sink in self.sinks:
                sink.on_metrics(metrics)
        for listener in self.listeners:
            try:
                listener(metrics)
            except Exception:  # a listener's failure must not stop the measures
                log.exception("metrics listener failed")

    def _check_budget(self, statuses: Sequence[CameraStatus]) -> None:
        if self.cameras is None:
            return
        worker = self._worker
        self.budget.report(
            time.monotonic(),
            [s.camera_id for s in statuses if s.state is CameraState.STREAMING],
            {cid: r.queue.dropped for cid, r in self.cameras.readers.items()},
            worker.busy_s if worker is not None else 0.0,
            time.process_time(),
        )

    def _emit_events(self) -> None:
        """Hand the analyzers' movement matrices and incident events to their listeners."""
        movements: list[MovementCounts] = []
        incidents: list[IncidentEvent] = []
        for analyzer in self.analyzers.values():
            events = analyzer.take_events()
            movements += events.movements
            incidents += events.incidents
        if movements:
            with journal_group():
                for on_movements in self.movement_listeners:
                    try:
                        on_movements(movements)
                    except Exception:  # one output failing must not stop the others
                        log.exception("movement listener failed")
        for event in incidents:
            self.incident_events += 1
            for on_incident in self.incident_listeners:
                try:
                    on_incident(event)
                except Exception:  # one output failing must not stop the others
                    log.exception("incident listener failed")

    def _emit_status(self, force: bool = False) -> list[CameraStatus]:
        now = time.monotonic()
        statuses: list[CameraStatus] = [] if self.cameras is None else self.cameras.statuses()
        for status in statuses:
            last = self._last_status.get(status.camera_id)
            changed = last is None or last[0] != status.state.value
            if changed:
                log.info(
                    "camera=%s state=%s fps=%.1f %s",
                    status.camera_id, status.state.value, status.fps, status.detail,
                )  # fmt: skip
            if force or changed or now - (last[1] if last else 0.0) >= self.timing.status_every_s:
                self._last_status[status.camera_id] = (status.state.value, now)
                for sink in self.sinks:
                    sink.on_camera_status(status)
                if self.control is not None:
                    self.control.on_camera_status(status)
        return statuses

    def _pending_capture_times(self) -> dict[str, datetime]:
        """Per camera, the capture time of the oldest frame not yet analysed (UTC).

        A window is closed only when no frame of its time is still waiting in a camera's
        queue or in the detector, so an overloaded detector delays windows instead of
        losing their frames as late.
        """
        pending = {} if self._worker is None else self._worker.in_flight()
        if self.cameras is not None:
            for camera_id, reader in self.cameras.readers.items():
                queued = reader.queue.oldest_captured_at()
                if queued is not None and (camera_id not in pending or queued < pending[camera_id]):
                    pending[camera_id] = queued
        return pending

    def tick(self) -> None:
        """One analysis tick: analyse queued detections, close due windows, report status."""
        self.loop_at = time.monotonic()
        cpu0 = time.thread_time()
        self._drain_results()
        until = datetime.now(UTC) - timedelta(seconds=self.timing.window_grace_s)
        pending = self._pending_capture_times()
        due: list[SegmentMetrics] = []
        for camera_id, analyzer in self.analyzers.items():
            oldest = pending.get(camera_id)
            due += analyzer.close_windows(until if oldest is None else min(until, oldest))
        cpu1 = time.thread_time()
        self.analysis_cpu_s += cpu1 - cpu0
        self._emit(due)
        self._emit_events()
        statuses = self._emit_status()
        self.output_cpu_s += time.thread_time() - cpu1
        self._check_budget(statuses)
        if self.control is not None:
            try:
                self.control.tick()
            except Exception:  # control failing must not stop the measures
                log.exception("control tick failed")

    def run(self, duration_s: float | None = None) -> None:
        """Start, tick until stopped (signal, :meth:`stop` or ``duration_s``), shut down.

        ``duration_s`` (seconds) counts from the end of :meth:`start`, once the model is
        loaded and the cameras are opening, so a slow start-up does not shorten the run.
        """
        try:
            self.start()
            deadline = None if duration_s is None else time.monotonic() + duration_s
            while not self.stop_event.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    log.info("duration of %.0f s reached; stopping", duration_s)
                    break
                self.tick()
                self.stop_event.wait(self.timing.tick_s)
        finally:
            self.shutdown()


class Stoppable(Protocol):
    """A node that stops when asked (from a signal handler)."""

    def stop(self) -> None:
        """Ask the node to stop."""
        ...


def _install_signal_handlers(engine: Stoppable) -> None:
    def _handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s received; stopping", signal.Signals(signum).name)
        engine.stop()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def wire_bus_control(control: ControlLoop, bus: MqttBus) -> None:
    """Hand ``control`` the bus's acks, overrides and signal states.

    Phase commands and override states leave on the bus.
    """
    bus.on_ack(control.on_ack)
    bus.on_override(control.on_override)
    control.on_override_state(bus.on_override_state)
    if control.phase_intersections:
        bus.on_signal_state(control.on_signal_state)
        control.set_command_sender(bus.send_phase_command)


def build_engine(cfg: AtcsConfig, role: NodeRole = NodeRole.ALL) -> Engine:
    """Build the engine of ``cfg``: sinks, alarms, signal control and dashboard as configured.

    ``role`` ``all`` runs everything in this process; ``edge`` runs the node's camera
    share (:func:`atcs.roles.edge_config`), publishes and stores its measures, announces
    the node on the bus and leaves control and alarms to the control and room nodes. With
    a bus, both publish the per-frame zones of their segments that feed a phase-mode
    intersection and have a stop line (:mod:`atcs.bus.zone_out`).
    """
    from atcs.bus import MqttBus
    from atcs.config.phase_mode import zone_feed_segments
    from atcs.outputs import build_outputs
    from atcs.roles import role_config

    if role not in (NodeRole.ALL, NodeRole.EDGE):
        raise ConfigError(f"build_engine runs roles all and edge, not {role.value}")
    zone_segments = zone_feed_segments(cfg)  # the city's intersections: an edge has none
    cfg = role_config(cfg, role)
    outputs = build_outputs(cfg)

    def publish_plan(plan: TimingPlan) -> None:
        for sink in outputs.sinks:
            sink.on_plan(plan)

    control = ControlLoop.from_config(cfg, publish_plan) if cfg.intersections else None
    if control is not None and isinstance(outputs.bus, MqttBus):
        wire_bus_control(control, outputs.bus)
    listeners = [control.on_metrics] if control is not None else []
    # phase-mode intersections see each frame's vehicles (docs/phase-control.md, "Measures")
    frame_observers = (
        [control.on_frame] if control is not None and control.phase_intersections else []
    )
    zone_segments &= {SegmentId(s.id) for s in cfg.segments}
    if zone_segments and isinstance(outputs.bus, MqttBus):  # for a control node elsewhere
        from atcs.bus.zone_out import ZoneOut

        frame_observers.append(ZoneOut(outputs.bus.send_zone, zone_segments).observe)
    alarms = None
    incident_listeners = list(outputs.incident_listeners)
    if role is NodeRole.ALL:
        alarm_outputs = [s for s in outputs.sinks if isinstance(s, AlarmOutput)]
        alarms = AlarmService(cfg, alarm_outputs, control=control)
        incident_listeners.append(alarms.on_incident_event)
    engine = Engine(
        cfg,
        sinks=[*outputs.sinks, *([alarms] if alarms is not None else [])],
        listeners=listeners,
        control=control,
        frame_observers=frame_observers,
        movement_listeners=outputs.movement_listeners,
        incident_listeners=incident_listeners,
    )
    engine.alarms = alarms
    audit = None
    if cfg.dashboard is not None:  # dashboard (atcs.web): a sink + frame observer, see docs
        from atcs.live_view import attach_dashboard

        audit = attach_dashboard(engine, cfg.dashboard).ctx.audit
    if control is not None and isinstance(outputs.bus, MqttBus):
        from atcs.audit_trail import attach_bus_audit, record_command_refusals

        audit = attach_bus_audit(engine, outputs.bus, cfg, audit)
        record_command_refusals(control, audit, cfg.site.id)
    if role is NodeRole.EDGE or cfg.node.health_port:
        from atcs.roles.edge import attach_node_parts

        attach_node_parts(engine, cfg, role)
    return engine


def run_service(
    cfg: AtcsConfig, duration_s: float | None = None, role: NodeRole = NodeRole.ALL
) -> int:
    """Run the node of ``cfg`` in ``role`` until a signal or ``duration_s`` seconds."""
    if role is NodeRole.CONTROL:
        from atcs.roles.control import ControlNode

        node: Engine | ControlNode | RoomNode = ControlNode(cfg)
    elif role is NodeRole.ROOM:
        from atcs.roles.room import RoomNode

        node = RoomNode(cfg)
    else:
        node = build_engine(cfg, role)
    _install_signal_handlers(node)
    node.run(duration_s)
    return 0
