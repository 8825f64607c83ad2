"""Prometheus metrics at ``/metrics``: read from the engine at scrape time.

One :class:`EngineCollector` per dashboard in its own registry (never the global one, so
several engines in one process cannot clash). Names:

- ``atcs_frames_detected_total``, ``atcs_frames_dropped_total``, ``atcs_detector_failures_total``,
  ``atcs_analysis_failures_total``, ``atcs_windows_published_total``, ``atcs_result_queue``;
- per camera: ``atcs_camera_frames_analysed_total``, ``atcs_camera_detections_total``,
  ``atcs_camera_up``, ``atcs_camera_fps``, ``atcs_camera_lag_seconds``;
- per segment: ``atcs_segment_density_pcu_km_lane``, ``atcs_segment_flow_veh_h``,
  ``atcs_segment_vehicles``, ``atcs_segment_windows_total``;
- outputs: ``atcs_output_connected{output}``, ``atcs_output_queued{output}``,
  ``atcs_output_spooled{output}``, ``atcs_mqtt_published_total``,
  ``atcs_influx_points_written_total`` and every other numeric health value as
  ``atcs_output_health{output,key}``;
- control: ``atcs_control_events_total{event}``, ``atcs_intersection_cycle_seconds``;
- dashboard: ``atcs_operator_actions_total{outcome}``, ``atcs_dashboard_events_total{event}``,
  ``atcs_uptime_seconds``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from atcs.types import CameraState
from atcs.web.context import DashboardContext


def _counter(name: str, doc: str, labels: list[str] | None = None) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=labels)


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


class EngineCollector:
    """Collects the engine's, cameras', segments', outputs' and dashboard's numbers."""

    def __init__(self, ctx: DashboardContext) -> None:
        self._ctx = ctx

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family (called by the registry at each scrape)."""
        yield from self._engine()
        yield from self._cameras()
        yield from self._segments()
        yield from self._outputs()
        yield from self._control()
        yield from self._dashboard()

    def _engine(self) -> Iterator[Metric]:
        c = self._ctx.engine.counters()
        for name, value, doc in (
            ("atcs_frames_detected", c.frames_detected, "Frames through the detector."),
            ("atcs_frames_dropped", c.frames_dropped, "Detected frames dropped (queue full)."),
            ("atcs_detector_failures", c.detector_failures, "Failed detector calls."),
            ("atcs_analysis_failures", c.analysis_failures, "Frames whose analysis failed."),
            ("atcs_windows_published", c.windows_published, "Segment windows handed to sinks."),
        ):
            fam = _counter(name, doc)
            fam.add_metric([], value)
            yield fam
        queue = _gauge("atcs_result_queue", "Detections waiting for the analysis tick.")
        queue.add_metric([], c.result_queue)
        yield queue
        uptime = _gauge("atcs_uptime_seconds", "Seconds since the engine started.")
        started = c.started_at
        uptime.add_metric([], (datetime.now(UTC) - started).total_seconds() if started else 0.0)
        yield uptime

    def _cameras(self) -> Iterator[Metric]:
        frames = _counter("atcs_camera_frames_analysed", "Frames analysed.", ["camera"])
        dets = _counter("atcs_camera_detections", "Vehicles detected.", ["camera"])
        lag = _gauge("atcs_camera_lag_seconds", "Capture-to-analysis delay, s.", ["camera"])
        up = _gauge("atcs_camera_up", "1 while the camera is streaming.", ["camera"])
        fps = _gauge("atcs_camera_fps", "Measured frame rate, frames/s.", ["camera"])
        for cam, cnt in self._ctx.snapshots.counters().items():
            frames.add_metric([cam], cnt.frames)
            dets.add_metric([cam], cnt.detections)
            lag.add_metric([cam], cnt.lag_s)
        for status in self._ctx.engine.camera_statuses():
            up.add_metric([status.camera_id], float(status.state is CameraState.STREAMING))
            fps.add_metric([status.camera_id], status.fps)
        yield from (frames, dets, lag, up, fps)

    def _segments(self) -> Iterator[Metric]:
        density = _gauge(
            "atcs_segment_density_pcu_km_lane", "Latest density, PCU/km/lane.", ["segment"]
        )
        flow = _gauge("atcs_segment_flow_veh_h", "Latest flow, vehicles/h.", ["segment"])
        vehicles = _gauge("atcs_segment_vehicles", "Latest mean vehicles.", ["segment"])
        windows = _counter("atcs_segment_windows", "Windows received.", ["segment"])
        for board in self._ctx.board.segments():
            windows.add_metric([board.segment_id], board.windows)
            m = board.latest
            if m is not None:
                density.add_metric([board.segment_id], m.density_pcu_km_lane)
                flow.add_metric([board.segment_id], m.flow_veh_h)
                vehicles.add_metric([board.segment_id], m.vehicles)
        yield from (density, flow, vehicles, windows)

    def _outputs(self) -> Iterator[Metric]:
        connected = _gauge("atcs_output_connected", "1 while connected.", ["output"])
        queued = _gauge("atcs_output_queued", "Waiting in memory and on disk.", ["output"])
        spooled = _gauge("atcs_output_spooled", "Waiting on disk.", ["output"])
        health = _gauge("atcs_output_health", "Numeric health values.", ["output", "key"])
        published = _counter("atcs_mqtt_published", "Messages the broker acknowledged.")
        written = _counter("atcs_influx_points_written", "Points InfluxDB stored.")
        for out in self._ctx.engine.outputs():
            connected.add_metric([out.kind], float(out.connected))
            queued.add_metric([out.kind], out.queued)
            spooled.add_metric([out.kind], out.spooled)
            for key, value in sorted(out.details.items()):
                if isinstance(value, int | float):
                    health.add_metric([out.kind, key], float(value))
            if out.kind == "mqtt":
                published.add_metric([], float(out.details.get("published", 0)))
            if out.kind == "influxdb":
                d = out.details
                total = float(d.get("points_written", 0)) + float(d.get("points_replayed", 0))
                written.add_metric([], total)
        yield from (connected, queued, spooled, health, published, written)

    def _control(self) -> Iterator[Metric]:
        control = self._ctx.engine.control
        events = _counter("atcs_control_events", "Control loop counters.", ["event"])
        cycle = _gauge(
            "atcs_intersection_cycle_seconds", "Cycle of the running plan, s.", ["intersection"]
        )
        if control is not None:
            for key, value in sorted(control.counters().as_map().items()):
                events.add_metric([key], value)
            for ix, state in control.state().items():
                if state.running is not None:
                    cycle.add_metric([ix], state.running.plan.cycle_s)
        yield from (events, cycle)

    def _dashboard(self) -> Iterator[Metric]:
        actions = _counter("atcs_operator_actions", "Operator actions.", ["outcome"])
        for outcome, value in sorted(self._ctx.desk.counts.items()):
            actions.add_metric([outcome], value)
        events = _counter("atcs_dashboard_events", "Logins, refusals, requests.", ["event"])
        for key, value in sorted(self._ctx.counters().as_map().items()):
            events.add_metric([key], value)
        sessions = _gauge("atcs_dashboard_sessions", "Live logins.")
        sessions.add_metric([], len(self._ctx.auth.sessions))
        yield from (actions, events, sessions)


def make_registry(ctx: DashboardContext) -> CollectorRegistry:
    """Return a registry holding one :class:`EngineCollector` for ``ctx``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(ctx))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """Return the text exposition format of ``registry``."""
    return generate_latest(registry)
