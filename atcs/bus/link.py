"""The engine's connection to the broker: paho's connection callbacks and their counters.

:class:`BrokerLink` tracks whether the engine is connected, why it is not (refused
password, unreachable broker, TLS failure: logged once, with a hint, then retried with
backoff), counts connects, disconnects and failures, tells the sender when the connection
comes and goes, and on every connect calls ``on_up`` (announce ``online``, subscribe),
so subscriptions survive reconnects. A subscription the broker refuses (its ACL) is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from atcs.bus.connection import describe_refusal
from atcs.bus.sender import Sender
from atcs.config.bus import MqttConfig

log = logging.getLogger(__name__)


class BrokerLink:
    """Connection state of one client (see the module docstring); paho callbacks in ``on_*``."""

    def __init__(
        self,
        config: MqttConfig,
        client_id: str,
        *,
        sender: Callable[[], Sender | None],
        on_up: Callable[[mqtt.Client], None],
        closing: Callable[[], bool],
    ) -> None:
        self.config = config
        self.client_id = client_id
        self._sender = sender
        self._on_up = on_up
        self._closing = closing
        self.counts: dict[str, int] = {
            "connects": 0,
            "disconnects": 0,
            "connect_failures": 0,
            "subscriptions_granted": 0,
            "subscriptions_refused": 0,
        }
        self.connected = False
        self.last_error = ""
        self._failing = False

    def _on_disk(self) -> int:
        sender = self._sender()
        return len(sender.outbox) if sender is not None else 0

    def on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        """Paho ``on_connect``: a refusal is logged once; success announces and subscribes."""
        if reason_code.is_failure:
            text = describe_refusal(reason_code, self.config)
            if text != self.last_error:
                log.error("%s; retrying with backoff", text)
            self.last_error = text
            return
        sender = self._sender()
        if sender is not None:
            sender.connected()
        self.connected = True
        self.counts["connects"] += 1
        self.last_error = ""
        self._failing = False
        log.info(
            "MQTT connected to %s:%d as %s (session present: %s, %d message(s) on disk)",
            self.config.host,
            self.config.port,
            self.client_id,
            flags.session_present,
            self._on_disk(),
        )
        self._on_up(client)

    def on_connect_fail(
        self,
        client: mqtt.Client,
        userdata: object,
        detail: str = "unreachable, refused or TLS failure",
    ) -> None:
        """Paho ``on_connect_fail``: counted; logged once until the next success."""
        self.counts["connect_failures"] += 1
        text = f"cannot connect to MQTT broker {self.config.host}:{self.config.port} ({detail})"
        if not self._failing:
            log.warning(
                "%s; retrying every %d..%d s",
                text,
                self.config.reconnect_min_s,
                self.config.reconnect_max_s,
            )
        else:
            log.debug("%s; still retrying", text)
        self._failing = True
        self.last_error = text

    def on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        """Paho ``on_disconnect``: the sender stops handing over; paho reconnects."""
        sender = self._sender()
        was = sender.disconnected() if sender is not None else self.connected
        self.connected = False
        closing = self._closing()
        if not was and not closing and "refused" not in self.last_error:
            self.on_connect_fail(
                client, userdata, f"connection closed before CONNACK: {reason_code}"
            )
        if not was:
            return
        self.counts["disconnects"] += 1
        if closing:
            log.info("MQTT disconnected from %s:%d", self.config.host, self.config.port)
        else:
            log.warning(
                "MQTT connection to %s:%d lost (%s); %d message(s) on disk; reconnecting",
                self.config.host,
                self.config.port,
                reason_code,
                self._on_disk(),
            )

    def on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: object,
    ) -> None:
        """Paho ``on_subscribe``: counted; a refused subscription (broker ACL) is logged."""
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        self.counts["subscriptions_refused"] += len(refused)
        self.counts["subscriptions_granted"] += len(reason_codes) - len(refused)
        if refused:
            log.error(
                "MQTT broker refused a subscription (%s): control messages will not arrive; "
                "check the broker's ACL for user %s",
                ", ".join(refused),
                self.config.username or "(anonymous)",
            )
