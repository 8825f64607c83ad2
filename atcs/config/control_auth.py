"""Configuration of authenticated control messages on the bus (``[mqtt.control_auth]``).

Each sender of control messages (an operator console, a signal controller) is listed with
its id, role, algorithm and the NAME of the environment variable holding its key (HMAC:
the shared secret; Ed25519: the sender's public key). Keys never appear in the file.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from atcs.config._base import StrictModel, env_name

SENDER_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,64}$"

SenderRoleName = Literal["operator_console", "signal_controller"]
AlgorithmName = Literal["hmac-sha256", "ed25519"]


class ControlSenderConfig(StrictModel):
    """One sender allowed to send control messages, and where its key is."""

    id: str = Field(
        pattern=SENDER_ID_PATTERN,
        description="Sender id, as in the message's auth.sender (letters, digits, '._:@-').",
    )
    role: SenderRoleName = Field(
        description=(
            "operator_console: may send overrides; signal_controller: may send plan acks "
            "(and later controller state)."
        )
    )
    algorithm: AlgorithmName = Field(
        description="hmac-sha256 (shared secret) or ed25519 (public key here, private key "
        "on the sender).",
    )
    key_env: str = Field(
        max_length=128,
        description=(
            "NAME of the environment variable holding the key, base64: the HMAC secret "
            "(32 bytes or more) or the Ed25519 public key (32 bytes, or PEM)."
        ),
    )
    intersections: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="Intersections this sender may address; empty: all.",
    )

    @field_validator("key_env")
    @classmethod
    def _valid_env_name(cls, value: str) -> str:
        return env_name(value, "the key itself")


class ControlAuthConfig(StrictModel):
    """How the engine checks overrides and plan acks received on the bus."""

    insecure_allow_unsigned: bool = Field(
        default=False,
        description=(
            "LAB ONLY: accept unsigned overrides and acks (still audited; signed ones are "
            "still checked). Logged as a warning at every start."
        ),
    )
    max_validity_s: float = Field(
        default=300.0,
        ge=1.0,
        le=3600.0,
        description="Longest accepted span from a message's issued_at to its expires_at, s.",
    )
    clock_skew_s: float = Field(
        default=30.0,
        ge=0.0,
        le=600.0,
        description="Clock difference tolerated between a sender and the engine, s.",
    )
    replay_cache_max: int = Field(
        default=100_000,
        ge=100,
        le=10_000_000,
        description=(
            "Nonces remembered until their message expires (replays are refused); when "
            "full of unexpired nonces, new control messages are refused."
        ),
    )
    senders: list[ControlSenderConfig] = Field(
        default_factory=list,
        max_length=1000,
        description="Senders allowed to send control messages.",
    )

    @model_validator(mode="after")
    def _unique_senders(self) -> ControlAuthConfig:
        seen: set[str] = set()
        problems = []
        for i, sender in enumerate(self.senders):
            if sender.id in seen:
                problems.append(f"senders[{i}].id: duplicate sender {sender.id!r}")
            seen.add(sender.id)
        if problems:
            raise ValueError("; ".join(problems))
        return self
