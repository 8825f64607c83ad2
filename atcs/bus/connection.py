"""Build a paho-mqtt 2 client (VERSION2 callbacks) from :class:`~atcs.config.MqttConfig`.

Shared by the engine's publisher and by ``atcs watch``: protocol, session, credentials
(the password is read from the environment variable the config names, never logged), TLS,
reconnect backoff and the last will.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from atcs.config.bus import MqttConfig
from atcs.errors import BusError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Will:
    """A last will: published by the broker when the client vanishes without DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def default_client_id(site_id: str, role: str = "engine") -> str:
    """``atcs-<site>-<role>-<host name>``: stable across restarts on one machine."""
    host = socket.gethostname().split(".")[0] or "host"
    return f"atcs-{site_id}-{role}-{host}"[:128]


def read_password(cfg: MqttConfig, environ: Mapping[str, str] | None = None) -> str | None:
    """Return the password from the environment variable ``cfg.password_env`` (or None).

    Raises :class:`BusError` naming the variable (not its value) when it is missing.
    """
    if cfg.password_env is None:
        return None
    env = os.environ if environ is None else environ
    value = env.get(cfg.password_env)
    if value is None:
        raise BusError(
            f"mqtt.password_env: environment variable {cfg.password_env} is not set "
            f"(it must hold the password of MQTT user {cfg.username!r})"
        )
    return value


def _apply_tls(client: mqtt.Client, cfg: MqttConfig) -> None:
    for name in ("ca_file", "cert_file", "key_file"):
        path = getattr(cfg, name)
        if path is not None and not os.path.isfile(path):
            raise BusError(f"mqtt.{name}: file {path!r} not found")
    try:
        client.tls_set(
            ca_certs=cfg.ca_file,
            certfile=cfg.cert_file,
            keyfile=cfg.key_file,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise BusError(f"mqtt TLS settings cannot be used: {exc}") from None
    if cfg.tls_insecure:
        log.warning("MQTT TLS host name check is OFF (mqtt.tls_insecure = true)")
        client.tls_insecure_set(True)


def make_client(
    cfg: MqttConfig,
    client_id: str,
    *,
    will: Will | None = None,
    environ: Mapping[str, str] | None = None,
) -> mqtt.Client:
    """Return a configured, unconnected client; raise :class:`BusError` on bad settings."""
    v5 = cfg.protocol == "5"
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=None if v5 else cfg.clean_session,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        reconnect_on_failure=True,
    )
    if cfg.username is not None:
        client.username_pw_set(cfg.username, read_password(cfg, environ))
    if cfg.tls:
        _apply_tls(client, cfg)
    if will is not None:
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)
    return client


def connect_async(client: mqtt.Client, cfg: MqttConfig) -> None:
    """Start connecting in the background (``loop_start`` must follow or precede)."""
    if cfg.protocol == "5":
        props: Properties | None = None
        if not cfg.clean_session:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = cfg.session_expiry_s
        client.connect_async(
            cfg.host,
            cfg.port,
            keepalive=cfg.keepalive_s,
            clean_start=cfg.clean_session,
            properties=props,
        )
    else:
        client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s)


def describe_refusal(reason: object, cfg: MqttConfig) -> str:
    """Return a log line for a refused CONNECT, with a hint for the usual causes."""
    text = str(reason)
    hint = ""
    lowered = text.lower()
    if "not authorized" in lowered or "bad user name or password" in lowered:
        who = cfg.username or "(anonymous)"
        src = f"environment variable {cfg.password_env}" if cfg.password_env else "no password"
        hint = f"; check mqtt.username ({who}) and the password ({src})"
    elif "identifier" in lowered:
        hint = "; check mqtt.client_id"
    return f"MQTT broker {cfg.host}:{cfg.port} refused the connection: {text}{hint}"
