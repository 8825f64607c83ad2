"""The engine's MQTT bus: a :class:`~atcs.sinks.Sink` that publishes through a disk queue.

Threads: the service calls ``on_*``, which journal the messages in the
:class:`~atcs.bus.outbox.Outbox` on its thread (in the engine's journal group, together
with the window's InfluxDB points; in memory only while the disk refuses) and return; one
worker thread hands queued messages to paho in order with at most ``inflight_max``
unacknowledged, and deletes each one when its PUBACK arrives; paho's network thread
connects, reconnects with backoff, (re)subscribes in ``on_connect`` and admits incoming
acks, signal-controller states and overrides (:class:`~atcs.bus.control.ControlInbox`:
bounded, authenticated, rate-limited, audited). Phase commands skip the disk queue: signed
and sent at once, or dropped (:class:`~atcs.bus.command_out.PhaseCommandSender`); so do the
per-frame segment zones (:meth:`MqttBus.send_zone`, QoS 0, stale in seconds).
Every paho callback is guarded and the network thread is watched and restarted if it dies
(:mod:`atcs.bus.guard`); :meth:`MqttBus.health` says so.

Delivery: at least once from the disk queue to the broker, in queue order, across broker
restarts and engine restarts. A message can reach the broker twice only when the
connection (or the engine) died after the broker took it and before its PUBACK was
processed; both copies carry the same ``stream`` and ``seq``, so a subscriber that keeps
only increasing ``seq`` per stream and topic (:class:`~atcs.bus.dedup.Deduplicator`) sees
every message exactly once, in order. After a reconnect, the messages paho resends are
acknowledged before any newer message is handed over, so order holds.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from atcs import __version__
from atcs.bus.auth import ControlAuthenticator
from atcs.bus.command_out import PhaseCommandSender
from atcs.bus.connection import Will, connect_async, default_client_id, make_client
from atcs.bus.control import ControlInbox
from atcs.bus.fiware import traffic_flow_observed
from atcs.bus.guard import WATCH_EVERY_S, CallbackGuard, NetworkWatch
from atcs.bus.health import MqttHealth, SenderCounters, ZoneCounters
from atcs.bus.link import BrokerLink
from atcs.bus.measure_payloads import (
    encode_incident_event,
    encode_incident_state,
    encode_movement_counts,
    encode_traffic_flow_observed,
)
from atcs.bus.messages import EngineState, EngineStatus, Override, PlanAck
from atcs.bus.outbox import DROP_ORDER, NewMessage, Outbox, import_legacy_queue
from atcs.bus.override_state import OverrideState, encode_override_state
from atcs.bus.payloads import (
    encode_camera_status,
    encode_engine_status,
    encode_segment_metrics,
    encode_timing_plan,
)
from atcs.bus.sender import Sender
from atcs.bus.topics import TopicKind, Topics
from atcs.bus.verdicts import VerdictSink
from atcs.bus.zone_payloads import encode_segment_zone
from atcs.config.bus import MqttConfig
from atcs.config.measures import FiwareConfig
from atcs.errors import BusError, DataError
from atcs.incidents import IncidentEvent
from atcs.journal import JOURNAL_FILE
from atcs.types import (
    CameraStatus,
    FrameZone,
    MovementCounts,
    SegmentMetrics,
    SiteId,
    TimingPlan,
)
from controllers.phase.commands import PhaseCommand, SignalState

if TYPE_CHECKING:
    from atcs.alarms.model import AlarmEvent

log = logging.getLogger(__name__)

QUEUE_FILE = JOURNAL_FILE
LEGACY_QUEUE_FILE = "mqtt-outbox.sqlite3"
"""The disk queue of versions before the shared outbox; moved into it at start."""


class MqttBus:
    """Publishes metrics, camera status and plans (retained, QoS 1) and receives control.

    ``state_dir`` holds the disk queue; ``site_id`` goes into every payload and the default
    client id; ``environ`` (default: the process's) holds the MQTT password and the control
    senders' keys; paho's network thread is checked every ``watch_every_s`` seconds. Register
    control handlers with :meth:`on_ack` and :meth:`on_override`, the audit with
    :meth:`on_verdict`.
    """

    def __init__(
        self,
        config: MqttConfig,
        *,
        site_id: SiteId,
        state_dir: str | Path,
        version: str = __version__,
        environ: Mapping[str, str] | None = None,
        watch_every_s: float = WATCH_EVERY_S,
        fiware: FiwareConfig | None = None,
        segment_names: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.topics = Topics(config.prefix)
        self._fiware = fiware if fiware is not None and fiware.enabled else None
        self._segment_names = dict(segment_names or {})
        self.site_id = site_id
        self.client_id = config.client_id or default_client_id(site_id)
        self.queue_path = Path(state_dir) / QUEUE_FILE
        self._version = version
        self._environ = environ
        self._closing = False
        self._client: mqtt.Client | None = None
        self._sender: Sender | None = None
        self._pending: list[NewMessage] = []  # accepted before start()
        self._control = ControlInbox(self.topics)
        self._commands = PhaseCommandSender(self.topics, config.control_auth, None)
        self._guard = CallbackGuard("MQTT bus")
        self._watch: NetworkWatch | None = None
        self._watch_every_s = watch_every_s
        self._link = BrokerLink(
            config,
            self.client_id,
            sender=lambda: self._sender,
            on_up=self._on_up,
            closing=lambda: self._closing,
        )
        self._refused_after_close = 0
        self._bad_topics = 0
        self._zones_sent = 0
        self._zones_dropped = 0

    # Sink ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the disk queue, connect in the background and start the worker.

        Raises :class:`BusError` for settings that cannot work (queue file in use, missing
        password variable, unreadable TLS files); an unreachable broker is not an error.
        """
        if self._sender is not None:
            raise BusError("MqttBus.start() called twice")
        auth = ControlAuthenticator.from_config(self.config.control_auth, self._environ)
        self._control.set_authenticator(auth)
        self._commands = PhaseCommandSender.from_config(
            self.topics, self.config.control_auth, self._environ
        )
        outbox = Outbox(self.queue_path, self.config.queue_max_messages)
        import_legacy_queue(self.queue_path.with_name(LEGACY_QUEUE_FILE), outbox)
        try:
            client = self._make_client()
        except BusError:
            outbox.close()
            raise
        self._client = client
        self._sender = Sender(
            outbox,
            client,
            inflight_max=self.config.inflight_max,
            memory_max=self.config.memory_queue_max,
        )
        self._sender.enqueue(self._pending)
        self._pending = []
        connect_async(client, self.config)
        self._watch = NetworkWatch(
            client, "MQTT bus", housekeeping=self._housekeeping, every_s=self._watch_every_s
        )
        self._watch.start()
        self._sender.start()
        log.info(
            "MQTT bus: broker %s:%d, client id %s, prefix %s, disk queue %s (%d waiting)",
            self.config.host,
            self.config.port,
            self.client_id,
            self.config.prefix,
            self.queue_path,
            len(outbox),
        )

    def _make_client(self) -> mqtt.Client:
        will = Will(self.topics.engine_status(), self._status_payload(EngineState.OFFLINE, None))
        client = make_client(self.config, self.client_id, will=will, environ=self._environ)
        client.max_inflight_messages_set(self.config.inflight_max + 16)
        guard = self._guard.wrap
        client.on_connect = guard("on_connect", self._link.on_connect)
        client.on_connect_fail = guard("on_connect_fail", self._link.on_connect_fail)
        client.on_disconnect = guard("on_disconnect", self._link.on_disconnect)
        client.on_subscribe = guard("on_subscribe", self._link.on_subscribe)
        client.on_publish = guard("on_publish", self._on_publish)
        client.on_message = guard("on_message", self._control.handle)
        return client

    def _housekeeping(self) -> None:
        self._control.housekeeping()
        self._commands.housekeeping()
        self._guard.flush()

    def on_metrics(self, metrics: Sequence[SegmentMetrics]) -> None:
        """Queue one message per segment on ``{p}/segments/{segment}/metrics``.

        With the FIWARE rendering on, each window also goes out as a TrafficFlowObserved
        entity on ``{p}/segments/{segment}/traffic-flow-observed``.
        """
        batch = []
        for m in metrics:
            topic = self._topic(self.topics.segment_metrics, m.segment_id)
            if topic is not None:
                enc = functools.partial(encode_segment_metrics, m)
                batch.append(NewMessage(TopicKind.SEGMENT_METRICS, topic, enc))
            entity = (
                None
                if self._fiware is None
                else traffic_flow_observed(
                    m, self._fiware, self._segment_names.get(m.segment_id, "")
                )
            )
            topic = self._topic(self.topics.traffic_flow_observed, m.segment_id)
            if entity is not None and topic is not None:
                enc = functools.partial(encode_traffic_flow_observed, entity)
                batch.append(NewMessage(TopicKind.TRAFFIC_FLOW_OBSERVED, topic, enc))
        self._enqueue(batch)

    def on_movements(self, counts: Sequence[MovementCounts]) -> None:
        """Queue each movement matrix on ``{p}/movements/{ix}`` (retained)."""
        batch = []
        for c in counts:
            topic = self._topic(self.topics.movements, c.intersection_id)
            if topic is not None:
                enc = functools.partial(encode_movement_counts, c)
                batch.append(NewMessage(TopicKind.MOVEMENT_COUNTS, topic, enc))
        self._enqueue(batch)

    def on_incident(self, event: IncidentEvent) -> None:
        """Queue the event on ``{p}/incidents/{segment}/events``, then the segment's state.

        The state (the segment's open incidents after the event) goes on
        ``{p}/incidents/{segment}/state``, retained; the event is not retained.
        """
        segment = event.incident.segment_id
        events = self._topic(self.topics.incident_events, segment)
        state = self._topic(self.topics.incident_state, segment)
        if events is None or state is None:
            return
        self._enqueue(
            [
                NewMessage(
                    TopicKind.INCIDENT_EVENT,
                    events,
                    functools.partial(encode_incident_event, event),
                    retain=False,
                ),
                NewMessage(
                    TopicKind.INCIDENT_STATE,
                    state,
                    functools.partial(encode_incident_state, event),
                ),
            ]
        )

    def on_camera_status(self, status: CameraStatus) -> None:
        """Queue the camera's status on ``{p}/cameras/{camera}/status``."""
        topic = self._topic(self.topics.camera_status, status.camera_id)
        if topic is not None:
            enc = functools.partial(encode_camera_status, self.site_id, status)
            self._enqueue([NewMessage(TopicKind.CAMERA_STATUS, topic, enc)])

    def on_plan(self, plan: TimingPlan) -> None:
        """Queue the plan on ``{p}/intersections/{ix}/plan``."""
        topic = self._topic(self.topics.plan, plan.intersection_id)
        if topic is not None:
            enc = functools.partial(encode_timing_plan, self.site_id, plan)
            self._enqueue([NewMessage(TopicKind.TIMING_PLAN, topic, enc)])

    def on_override_state(self, state: OverrideState) -> None:
        """Queue the override state on ``{p}/intersections/{ix}/override/state`` (retained)."""
        topic = self._topic(self.topics.override_state, state.intersection_id)
        if topic is not None:
            enc = functools.partial(encode_override_state, state)
            self._enqueue([NewMessage(TopicKind.OVERRIDE_STATE, topic, enc)])

    def on_alarm(self, event: AlarmEvent) -> None:
        """Queue the alarm's state on ``{p}/alarms/{kind}.{subject}/state`` (retained)."""
        from atcs.bus.alarms import alarm_key, encode_alarm

        topic = self._topic(self.topics.alarm, alarm_key(event))
        if topic is not None:
            enc = functools.partial(encode_alarm, event)
            self._enqueue([NewMessage(TopicKind.ALARM, topic, enc)])

    def status(self) -> MqttHealth:
        """Return connection state, queue sizes and counters (``dropped``: what was lost)."""
        watch = self._watch
        alive = watch is not None and watch.alive()
        last_error = self._link.last_error
        if watch is not None and not alive:
            last_error = "the MQTT network thread is not running"
        if self._sender is not None:
            sender = self._sender.counters(self._bad_topics)
        else:
            sender = SenderCounters(
                bad_messages=self._bad_topics,
                dropped=dict.fromkeys(DROP_ORDER, 0),
                memory_queue=len(self._pending),
            )
        counts = self._link.counts
        return MqttHealth(
            connects=counts["connects"],
            disconnects=counts["disconnects"],
            connect_failures=counts["connect_failures"],
            subscriptions_granted=counts["subscriptions_granted"],
            subscriptions_refused=counts["subscriptions_refused"],
            connected=self._link.connected and alive,
            network_thread_alive=alive,
            network_thread_deaths=watch.deaths if watch is not None else 0,
            network_thread_restarts=watch.restarts if watch is not None else 0,
            callback_errors=self._guard.errors,
            last_error=last_error,
            control_auth=(
                "insecure" if self.config.control_auth.insecure_allow_unsigned else "required"
            ),
            refused_after_close=self._refused_after_close,
            sender=sender,
            control=self._control.counters(),
            commands=self._commands.counters(),
            zones=ZoneCounters(self._zones_sent, self._zones_dropped),
        )

    def health(self) -> Mapping[str, float | int | str | bool]:
        """:meth:`status` as the flat map of the Sink protocol (``docs/mqtt.md``)."""
        return self.status().as_map()

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush to disk, send what can be sent within ``timeout_s`` and disconnect.

        What waits in memory is written to the disk queue; while connected, queued messages
        go out until the deadline; then the retained ``offline`` status is published. What
        was not acknowledged stays on disk for the next start.
        """
        if self._closing:
            return
        self._closing = True
        deadline = time.monotonic() + max(timeout_s, 0.0)
        sender, client = self._sender, self._client
        if self._watch is not None:
            self._watch.stop()
        stopped = sender is None or sender.stop(deadline, max(timeout_s, 0.0) + 5.0)
        if not stopped:
            log.error("MQTT bus worker did not stop; messages in memory may be lost")
        if client is not None:
            if self._link.connected:
                info = client.publish(
                    self.topics.engine_status(),
                    self._status_payload(EngineState.OFFLINE, datetime.now(UTC)),
                    qos=1,
                    retain=True,
                )
                remaining = deadline - time.monotonic()
                try:  # the link can drop between the check and the publish
                    info.wait_for_publish(timeout=min(max(remaining, 0.5), 2.0))
                except (RuntimeError, ValueError) as exc:
                    log.warning(
                        "MQTT bus: the offline status was not sent (%s); the broker's last "
                        "will marks the engine offline",
                        exc,
                    )
            client.disconnect()
            client.loop_stop()
        if sender is not None and stopped:
            lost = sender.in_memory()
            if lost:
                log.error("MQTT bus closed with %d message(s) not written to disk", lost)
            left = len(sender.outbox)
            sender.outbox.close()
            log.info("MQTT bus closed; %d message(s) stay on disk for the next start", left)

    # Control ------------------------------------------------------------------------------

    def on_ack(self, callback: Callable[[PlanAck], None]) -> None:
        """Call ``callback`` (on paho's thread; keep it short) for every valid plan ack."""
        self._control.add_ack_handler(callback)
        self._subscribe_now(self.topics.all_plan_acks())

    def on_override(self, callback: Callable[[Override], None]) -> None:
        """Call ``callback`` (on paho's thread; keep it short) for every valid override."""
        self._control.add_override_handler(callback)
        self._subscribe_now(self.topics.all_overrides())

    def on_signal_state(self, callback: Callable[[SignalState], None]) -> None:
        """Call ``callback`` (on paho's thread) for every valid, signed controller state."""
        self._control.add_state_handler(callback)
        self._subscribe_now(self.topics.all_states())

    def send_phase_command(self, command: PhaseCommand) -> bool:
        """Sign and publish ``command`` now; False when it was not sent (offline, no key)."""
        return self._commands.send(self._client, self._link.connected, command)

    def send_zone(self, zone: FrameZone) -> bool:
        """Publish one frame's zone of a segment now (QoS 0, not retained); False if not sent.

        Never queued: a zone is stale within seconds, so one that cannot leave now (offline,
        closing) is dropped and counted (``zones_dropped_offline``).
        """
        client = self._client
        topic = self._topic(self.topics.segment_zone, zone.segment_id)
        if topic is None:
            return False
        if client is None or not self._link.connected or self._closing:
            self._zones_dropped += 1
            return False
        info = client.publish(topic, encode_segment_zone(self.site_id, zone), qos=0, retain=False)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._zones_dropped += 1
            return False
        self._zones_sent += 1
        return True

    def on_verdict(self, callback: VerdictSink) -> None:
        """Call ``callback`` with what became of control messages, for the audit log.

        Every accepted override, every ack reporting a rejected plan and refused messages
        within a budget (the rest summarised once a minute); on paho's thread.
        """
        self._control.gate.add_sink(callback)

    def _subscribe_now(self, topic_filter: str) -> None:
        client = self._client
        if client is not None and self._link.connected:
            client.subscribe(topic_filter, qos=1)

    # Enqueue (service thread) -------------------------------------------------------------

    def _topic(self, build: Callable[[Any], str], ident: str) -> str | None:
        try:
            return build(ident)
        except DataError as exc:
            log.error("MQTT bus: cannot build a topic: %s", exc)
            self._bad_topics += 1
            return None

    def _enqueue(self, batch: list[NewMessage]) -> None:
        if not batch:
            return
        if self._closing:
            self._refused_after_close += len(batch)
            log.warning("MQTT bus is closed; %d message(s) not queued", len(batch))
        elif self._sender is None:
            self._pending.extend(batch)
            del self._pending[: -self.config.memory_queue_max]
        else:
            self._sender.journal(batch)

    # paho callbacks (network thread) ------------------------------------------------------

    def _status_payload(self, state: EngineState, at: datetime | None) -> bytes:
        status = EngineStatus(state, self._version, self.site_id, self.client_id, at)
        return encode_engine_status(status)

    def _on_up(self, client: mqtt.Client) -> None:
        client.publish(
            self.topics.engine_status(),
            self._status_payload(EngineState.ONLINE, datetime.now(UTC)),
            qos=1,
            retain=True,
        )
        filters = self._control.filters()
        if filters:
            client.subscribe([(f, 1) for f in filters])

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        ok = not reason_code.is_failure
        if not ok:
            log.warning("MQTT broker rejected message %d: %s", mid, reason_code)
        if self._sender is not None:
            self._sender.acknowledged(mid, ok)
