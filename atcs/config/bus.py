"""Configuration of the MQTT bus (broker connection, session, security and the disk queue)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from atcs.config._base import StrictModel, env_name
from atcs.config.control_auth import ControlAuthConfig

_TOPIC_LEVEL_BAD = re.compile(r"[+#\x00]")


class MqttConfig(StrictModel):
    """Connection to the MQTT broker and the engine's outgoing message queue.

    The password is never in the file: ``password_env`` names the environment variable
    that holds it. Relative TLS file paths are relative to the working directory.
    """

    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        max_length=253,
        description="Broker host name or address.",
    )
    port: int = Field(default=1883, ge=1, le=65535, description="Broker TCP port.")
    prefix: str = Field(
        default="atcs/v1",
        max_length=128,
        description="Topic prefix: topic levels without wildcards.",
    )
    client_id: str | None = Field(
        default=None,
        max_length=128,
        description=(
            "MQTT client id; none: 'atcs-<site>-<host name>'. Set a stable id for a "
            "persistent session."
        ),
    )
    protocol: Literal["3.1.1", "5"] = Field(
        default="3.1.1", description="MQTT protocol version: 3.1.1 or 5."
    )
    clean_session: bool = Field(
        default=True,
        description=(
            "True: a clean session on every connect. False: a persistent session, so the "
            "broker keeps subscriptions and queued acks/overrides while the engine is away."
        ),
    )
    session_expiry_s: int = Field(
        default=3600,
        ge=0,
        le=4294967295,
        description="MQTT 5 only: how long (s) the broker keeps a persistent session.",
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="Keepalive interval, s.")
    reconnect_min_s: int = Field(
        default=1, ge=1, le=600, description="First reconnect delay (s); doubles each try."
    )
    reconnect_max_s: int = Field(
        default=60, ge=1, le=3600, description="Longest reconnect delay, s."
    )
    username: str | None = Field(
        default=None, max_length=256, description="User name; none: anonymous."
    )
    password_env: str | None = Field(
        default=None,
        max_length=128,
        description="Name of the environment variable holding the password (never the password).",
    )
    tls: bool = Field(default=False, description="Connect with TLS.")
    ca_file: str | None = Field(
        default=None,
        max_length=4096,
        description="PEM file of the CA(s) to trust; none: the system CAs.",
    )
    cert_file: str | None = Field(
        default=None,
        max_length=4096,
        description="PEM client certificate for mutual TLS (needs key_file).",
    )
    key_file: str | None = Field(
        default=None, max_length=4096, description="PEM private key of cert_file."
    )
    tls_insecure: bool = Field(
        default=False,
        description="Skip checking the broker's host name against its certificate (tests only).",
    )
    inflight_max: int = Field(
        default=32,
        ge=1,
        le=1000,
        description="Most messages sent to the broker and not yet acknowledged at once.",
    )
    queue_max_messages: int = Field(
        default=100_000,
        ge=10,
        le=10_000_000,
        description=(
            "Bound of the messages in the outbox (service.state_dir/outbox.sqlite3) for "
            "outages; when reached the oldest metrics are dropped first."
        ),
    )
    memory_queue_max: int = Field(
        default=10_000,
        ge=10,
        le=1_000_000,
        description=(
            "Messages waiting in memory while the disk refuses the outbox (or before start)."
        ),
    )
    control_auth: ControlAuthConfig = Field(
        default_factory=ControlAuthConfig,
        description=(
            "Authentication of overrides and plan acks received on the bus (see "
            "docs/security.md); by default unsigned ones are refused and audited."
        ),
    )

    @field_validator("prefix")
    @classmethod
    def _valid_prefix(cls, value: str) -> str:
        if not value or value.startswith("/") or value.endswith("/"):
            raise ValueError("must be non-empty and must not start or end with '/'")
        if _TOPIC_LEVEL_BAD.search(value) or "//" in value:
            raise ValueError("must not contain '+', '#', NUL or empty levels")
        return value

    @field_validator("password_env")
    @classmethod
    def _valid_env_name(cls, value: str | None) -> str | None:
        return None if value is None else env_name(value, "the password itself")

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        problems = []
        if (self.cert_file is None) != (self.key_file is None):
            problems.append("cert_file and key_file: set both or neither")
        if not self.tls:
            for name in ("ca_file", "cert_file", "key_file"):
                if getattr(self, name) is not None:
                    problems.append(f"{name}: needs tls = true")
            if self.tls_insecure:
                problems.append("tls_insecure: needs tls = true")
        if self.password_env is not None and self.username is None:
            problems.append("password_env: needs a username")
        if self.reconnect_max_s < self.reconnect_min_s:
            problems.append("reconnect_max_s: must not be below reconnect_min_s")
        if problems:
            raise ValueError("; ".join(problems))
        return self
