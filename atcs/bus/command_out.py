"""Phase commands leaving the engine: signed with the engine's key, sent now or never.

A phase command ("serve phase X next", "extend the green until T") is valid for seconds,
so it never goes through the disk queue: :class:`PhaseCommandSender` publishes it at once
(QoS 1, not retained) while the broker is connected and drops it otherwise (counted); the
signal controller then falls back to its local plan when the last command's deadline
passes, as the contract says.

Every command is signed as ``mqtt.control_auth.command_signer`` (``docs/security.md``):
the signal controller's adapter checks it with the engine's public key (or the shared
secret) and refuses forged, altered, replayed or stale commands. Without a signing key the
engine sends no command at all, unless the lab setting ``insecure_allow_unsigned`` is on.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping

import paho.mqtt.client as mqtt

from atcs.bus.codec import dump
from atcs.bus.health import PhaseCommandCounters
from atcs.bus.keys import Algorithm, Signer, sign_document
from atcs.bus.phase_payloads import POSIX, Clock, encode_phase_command
from atcs.bus.topics import Topics
from atcs.config.control_auth import ControlAuthConfig
from atcs.logthrottle import ThrottledLog
from controllers.phase.commands import PhaseCommand

log = logging.getLogger(__name__)


class PhaseCommandSender:
    """Signs and publishes phase commands (see the module docstring)."""

    def __init__(
        self,
        topics: Topics,
        config: ControlAuthConfig,
        signer: Signer | None,
        clock: Clock = POSIX,
    ) -> None:
        self._topics = topics
        self._config = config
        self._signer = signer
        self._clock = clock
        self._counts: Counter[str] = Counter()
        self._log = ThrottledLog(log, burst=10)

    @classmethod
    def from_config(
        cls,
        topics: Topics,
        config: ControlAuthConfig,
        environ: Mapping[str, str] | None = None,
        clock: Clock = POSIX,
    ) -> PhaseCommandSender:
        """Read the engine's signing key; :class:`BusError` naming the variable if unusable."""
        signer = None
        spec = config.command_signer
        if spec is not None:
            signer = Signer.from_env(spec.id, Algorithm(spec.algorithm), spec.key_env, environ)
        return cls(topics, config, signer, clock)

    def payload(self, command: PhaseCommand) -> bytes | None:
        """Return the signed payload of ``command`` (None: it may not be sent unsigned)."""
        body = encode_phase_command(command, self._clock)
        if self._signer is None:
            if self._config.insecure_allow_unsigned:
                return body
            self._counts["phase_commands_unsigned_refused"] += 1
            self._log.warning_for(
                "unsigned command",
                "phase command for %s not sent: no mqtt.control_auth.command_signer key",
                command.intersection_id,
            )
            return None
        spec = self._config.command_signer
        valid_s = spec.valid_s if spec is not None else 30.0
        topic = self._topics.command(command.intersection_id)
        return dump(sign_document(json.loads(body), topic, self._signer, valid_s=valid_s))

    def send(self, client: mqtt.Client | None, connected: bool, command: PhaseCommand) -> bool:
        """Publish ``command`` now (QoS 1, not retained); False when it was not sent."""
        if client is None or not connected:
            self._counts["phase_commands_dropped_offline"] += 1
            return False
        payload = self.payload(command)
        if payload is None:
            return False
        info = client.publish(
            self._topics.command(command.intersection_id), payload, qos=1, retain=False
        )
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._counts["phase_commands_dropped_offline"] += 1
            return False
        self._counts["phase_commands_sent"] += 1
        return True

    def counters(self) -> PhaseCommandCounters:
        """Commands sent, dropped while offline, refused for want of a key."""
        c = self._counts
        return PhaseCommandCounters(
            c["phase_commands_sent"],
            c["phase_commands_dropped_offline"],
            c["phase_commands_unsigned_refused"],
        )

    def housekeeping(self) -> None:
        """Write the due log summary (about once a second)."""
        self._log.flush()
