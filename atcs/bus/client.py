"""One guarded, watched paho client for the bus's readers and announcers.

:class:`BusClient` is what ``atcs watch`` (:class:`~atcs.bus.monitor.BusMonitor`), the
control and room nodes' feed (:class:`~atcs.bus.feed.BusFeed`) and the node announcement
(:class:`~atcs.bus.nodes.NodeAnnouncer`) share: a client made from
:class:`~atcs.config.bus.MqttConfig` (with an optional last will), every callback guarded,
the network thread watched and restarted, connecting in the background with backoff, a
refused connection logged with its hint, and on every connect :meth:`BusClient.on_up`
(subscribe, announce), so what it does survives broker restarts. Subclasses override
:meth:`on_up` and :meth:`on_message`. The engine's own publisher
(:class:`~atcs.bus.MqttBus`) has a disk queue and sender of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from atcs.bus.connection import Will, connect_async, describe_refusal, make_client
from atcs.bus.guard import CallbackGuard, NetworkWatch
from atcs.config.bus import MqttConfig

log = logging.getLogger(__name__)


class BusClient:
    """A background MQTT client (see the module docstring); ``owner`` names it in logs."""

    def __init__(
        self,
        config: MqttConfig,
        client_id: str,
        owner: str,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.client_id = client_id
        self.owner = owner
        self.connected = threading.Event()
        self.last_error = ""
        self.guard = CallbackGuard(owner)
        self._environ = environ
        self._client: mqtt.Client | None = None
        self._watch: NetworkWatch | None = None

    def will(self) -> Will | None:
        """Return the last will to leave with the broker (none by default)."""
        return None

    def start(self) -> None:
        """Connect in the background (retrying with backoff); BusError on bad settings."""
        client = make_client(self.config, self.client_id, will=self.will(), environ=self._environ)
        wrap = self.guard.wrap
        client.on_connect = wrap("on_connect", self._on_connect)
        client.on_connect_fail = wrap("on_connect_fail", self._on_connect_fail)
        client.on_disconnect = wrap("on_disconnect", self._on_disconnect)
        client.on_message = wrap("on_message", self._on_message)
        self._client = client
        connect_async(client, self.config)
        self._watch = NetworkWatch(client, self.owner, housekeeping=self.housekeeping)
        self._watch.start()

    def alive(self) -> bool:
        """Whether paho's network thread runs."""
        return self._watch is not None and self._watch.alive()

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until connected (and :meth:`on_up` ran) or ``timeout_s`` passed."""
        return self.connected.wait(timeout_s)

    def housekeeping(self) -> None:
        """Once a second on the watch's thread: flush throttled logs."""
        self.guard.flush()

    def stop_client(self) -> mqtt.Client | None:
        """Stop watching and hand back the client (None when not started) to disconnect."""
        if self._watch is not None:
            self._watch.stop()
        client, self._client = self._client, None
        return client

    def publish_now(self, topic: str, payload: bytes, *, timeout_s: float = 2.0) -> bool:
        """Publish at QoS 1, not retained, if connected; True once the broker has it.

        Nothing is queued: False when not connected or not confirmed within ``timeout_s``
        (for a message a person waits on, such as an operator's override).
        """
        client = self._client
        if client is None or not self.connected.is_set():
            return False
        info = client.publish(topic, payload, qos=1, retain=False)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        try:
            info.wait_for_publish(timeout=timeout_s)
        except (RuntimeError, ValueError):  # disconnected meanwhile, or the queue is full
            return False
        return info.is_published()

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        client = self.stop_client()
        if client is not None:
            client.disconnect()
            client.loop_stop()

    # Hooks --------------------------------------------------------------------------------

    def on_up(self, client: mqtt.Client) -> None:
        """Subscribe or announce: runs on paho's thread after every successful connect."""

    def on_message(self, topic: str, payload: bytes) -> None:
        """Take one message (its topic decoded), on paho's thread."""

    # paho callbacks -----------------------------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        if reason_code.is_failure:
            self.last_error = describe_refusal(reason_code, self.config)
            log.error("%s: %s", self.owner, self.last_error)
            return
        self.last_error = ""
        self.on_up(client)
        self.connected.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self.last_error = f"cannot connect to {self.config.host}:{self.config.port}"
        log.debug("%s: %s; retrying", self.owner, self.last_error)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        self.connected.clear()
        if reason_code.is_failure:
            self.last_error = f"disconnected: {reason_code}"

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            return
        self.on_message(topic, bytes(msg.payload))
