"""The reference field adapter: the phase-by-phase signal controller on MQTT.

``atcs signal-controller --config FILE --intersection IX`` runs the reference
:class:`~controllers.phase.executor.SignalExecutor` of one intersection (its phases,
clearances and time-of-day plans from the same configuration file as the engine) behind
the bus contract; it is what a vendor wraps around a real controller (``docs/phase-control.md``):

- **Commands in** (``{p}/intersections/{ix}/command``, ``atcs.phase_command/1``): retained
  or empty messages are ignored; the payload is parsed within bounds and checked
  (:func:`~atcs.bus.phase_payloads.load_phase_command`), its signature verified against
  the engine's key (a sender with role ``engine`` in ``mqtt.control_auth.senders``; the
  lab setting ``insecure_allow_unsigned`` accepts unsigned ones), then handed to the
  executor, which refuses what breaks its own rules. Every refusal is counted and logged
  (throttled) with its reason.
- **State out** (``{p}/intersections/{ix}/state``, ``atcs.signal_state/1``): the executor
  runs every ``tick_s`` (0.1 s); its state is published at every change of phase,
  interval or mode and at least every ``state_every_s`` (1 s), signed as
  ``controller_id`` with the key in ``key_env``, QoS 0, not retained (a signed state is good
  once).
- **Local plan**: when commands stop or a deadline passes, the executor returns to its
  time-of-day plan on its own; nothing here is needed for that.
- **Detector faults**: the adapter reads the cameras' status
  (``{p}/cameras/+/status``); a phase whose approach segment is seen by a camera that is
  not ``streaming`` goes on recall (``SignalExecutor.set_recall``) until it streams again.

Times are the controller's clock (POSIX seconds, ``time.time``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping

import paho.mqtt.client as mqtt

from atcs.bus.auth import ControlAuthenticator
from atcs.bus.connection import connect_async, make_client
from atcs.bus.keys import Algorithm, Signer, sign_payload
from atcs.bus.payloads import decode_camera_status
from atcs.bus.phase_payloads import encode_signal_state, load_phase_command, phase_command_from_doc
from atcs.bus.topics import TopicKind, Topics
from atcs.config import AtcsConfig
from atcs.config.phase_mode import signal_timing
from atcs.errors import ConfigError, MessageAuthError, PayloadError
from atcs.logthrottle import ThrottledLog
from atcs.types import CameraId, CameraState, IntersectionId, PhaseId
from controllers.phase.commands import SignalState
from controllers.phase.executor import SignalExecutor

log = logging.getLogger(__name__)

STATE_VALID_S = 10.0
"""Validity of the signature of each state report, s."""


class SignalAdapter:
    """One intersection's reference signal controller on the bus (see the module docstring).

    ``signer`` signs the state reports (None: unsigned, for a lab broker);
    ``authenticator`` checks the commands' signatures.
    """

    def __init__(
        self,
        cfg: AtcsConfig,
        intersection: str,
        *,
        signer: Signer | None,
        authenticator: ControlAuthenticator,
        state_every_s: float = 1.0,
        tick_s: float = 0.1,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if cfg.mqtt is None:
            raise ConfigError("atcs signal-controller needs [mqtt]")
        found = [ix for ix in cfg.intersections if ix.id == intersection]
        if not found:
            known = ", ".join(ix.id for ix in cfg.intersections) or "none"
            raise ConfigError(f"no intersection {intersection!r} in the config; known: {known}")
        config = found[0]
        if config.mode != "phase":
            raise ConfigError(
                f"intersection {intersection!r} runs cycle plans: the phase-by-phase signal "
                "controller needs mode = 'phase' and its [intersections.phase_mode] table"
            )
        self.intersection_id = IntersectionId(config.id)
        self.executor = SignalExecutor(signal_timing(config, cfg.site.timezone), time.time())
        cameras = {s.id: CameraId(s.camera) for s in cfg.segments}
        self._phase_cameras: dict[PhaseId, frozenset[CameraId]] = {
            PhaseId(p.id): frozenset(cameras[s] for s in p.segments if s in cameras)
            for p in config.phases
        }
        self._down: set[CameraId] = set()
        self.topics = Topics(cfg.mqtt.prefix)
        self._signer = signer
        self._auth = authenticator
        self._state_every_s = state_every_s
        self._tick_s = tick_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.counts: Counter[str] = Counter()
        self._log = ThrottledLog(log, burst=10)
        self._client = make_client(cfg.mqtt, f"atcs-signal-{config.id}"[:128], environ=environ)
        self._mqtt = cfg.mqtt
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._last_key: tuple[str, str, str, str | None] | None = None
        self._last_sent = 0.0

    # Bus ---------------------------------------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        reason_code: object,
        properties: object,
    ) -> None:
        log.info("signal controller %s connected to the broker", self.intersection_id)
        client.subscribe(
            [(self.topics.command(self.intersection_id), 1), (self.topics.all_camera_status(), 1)]
        )

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            if msg.topic == self.topics.command(self.intersection_id):
                self._command(msg)
            else:
                self._camera(msg)
        except Exception:  # nothing may raise into paho
            self.counts["errors"] += 1
            log.exception("signal controller: message on %s failed", msg.topic)

    def _refuse(self, reason: str, detail: str) -> None:
        self.counts[f"commands_refused_{reason}"] += 1
        self._log.warning_for(
            reason, "%s: command refused (%s): %s", self.intersection_id, reason, detail
        )

    def _command(self, msg: mqtt.MQTTMessage) -> None:
        if msg.retain or not msg.payload:
            self.counts["commands_retained_ignored"] += 1
            return
        try:
            doc = load_phase_command(bytes(msg.payload), self.intersection_id)
            self._auth.check(TopicKind.PHASE_COMMAND, msg.topic, self.intersection_id, doc)
            command = phase_command_from_doc(doc, self.intersection_id)
        except MessageAuthError as exc:
            self._refuse(exc.reason, str(exc))
            return
        except PayloadError as exc:
            self._refuse("malformed", str(exc))
            return
        with self._lock:
            verdict = self.executor.receive(command, time.time())
        if verdict.accepted:
            self.counts["commands_accepted"] += 1
        else:
            self._refuse("executor", verdict.reason)

    def _camera(self, msg: mqtt.MQTTMessage) -> None:
        if not msg.payload:
            return
        try:
            ident = self.topics.parse(msg.topic).ident
            status = decode_camera_status(bytes(msg.payload), ident).record
        except PayloadError as exc:
            self.counts["camera_status_malformed"] += 1
            self._log.warning_for("camera", "camera status on %s refused: %s", msg.topic, exc)
            return
        with self._lock:
            if status.state is CameraState.STREAMING:
                self._down.discard(status.camera_id)
            elif any(status.camera_id in c for c in self._phase_cameras.values()):
                self._down.add(status.camera_id)
            for phase, cams in self._phase_cameras.items():
                on = bool(cams & self._down)
                if on != (phase in self.executor.state.recall):
                    log.warning(
                        "%s: phase %s %s recall (camera %s %s)", self.intersection_id, phase,
                        "on" if on else "off", status.camera_id, status.state.value,
                    )  # fmt: skip
                self.executor.set_recall(phase, on)

    def _publish(self, state: SignalState) -> None:
        topic = self.topics.state(self.intersection_id)
        controller_id = self._signer.sender if self._signer is not None else ""
        body = encode_signal_state(state, controller_id=controller_id)
        payload = body
        if self._signer is not None:
            payload = sign_payload(body, topic, self._signer, valid_s=STATE_VALID_S)
        info = self._client.publish(topic, payload, qos=0, retain=False)
        self.counts["states_published" if info.rc == mqtt.MQTT_ERR_SUCCESS else "states_lost"] += 1

    # Running -----------------------------------------------------------------------------

    def step(self, now_s: float) -> SignalState:
        """Advance the executor to ``now_s`` and publish its state when due."""
        with self._lock:
            state = self.executor.tick(now_s)
        key = (state.phase, state.interval.value, state.mode.value, state.next_phase)
        if key != self._last_key or now_s - self._last_sent >= self._state_every_s - 1e-3:
            if self._last_key is not None and key[2] != self._last_key[2]:
                log.warning("%s: now in %s mode: %s", self.intersection_id, key[2], state.reason)
            self._last_key, self._last_sent = key, now_s
            self._publish(state)
        return state

    def start(self) -> None:
        """Connect (in the background) and start paho's network thread."""
        connect_async(self._client, self._mqtt)
        self._client.loop_start()

    def stop(self) -> None:
        """Ask :meth:`run` to stop (safe from signal handlers)."""
        self._stop.set()

    def run(self, duration_s: float | None = None) -> None:
        """Start, run the executor until stopped or ``duration_s``, disconnect."""
        deadline = None if duration_s is None else time.monotonic() + duration_s
        self.start()
        try:
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                self.step(time.time())
                self._log.flush()
                self._stop.wait(self._tick_s)
        finally:
            self._client.disconnect()
            self._client.loop_stop()
            log.info("signal controller %s stopped: %s", self.intersection_id, dict(self.counts))


def adapter_from_config(
    cfg: AtcsConfig,
    intersection: str,
    *,
    controller_id: str,
    key_env: str | None,
    algorithm: str = "ed25519",
    environ: Mapping[str, str] | None = None,
) -> SignalAdapter:
    """Build the adapter: commands checked with ``mqtt.control_auth``, states signed.

    Without ``key_env`` the states leave unsigned (only a lab engine with
    ``insecure_allow_unsigned`` takes them). Raises :class:`ConfigError` or
    :class:`~atcs.errors.BusError` naming what is missing.
    """
    if cfg.mqtt is None:
        raise ConfigError("atcs signal-controller needs [mqtt]")
    signer = None
    if key_env:
        signer = Signer.from_env(controller_id, Algorithm(algorithm), key_env, environ)
    auth = ControlAuthenticator.from_config(cfg.mqtt.control_auth, environ)
    return SignalAdapter(cfg, intersection, signer=signer, authenticator=auth, environ=environ)
