"""Configuration of authenticated control messages on the bus (``[mqtt.control_auth]``).

Each sender of control messages (an operator console, a signal controller) is listed with
its id, role, algorithm and the NAME of the environment variable holding its key (HMAC:
the shared secret; Ed25519: the sender's public key). Keys never appear in the file.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from atcs.config._base import StrictModel, env_name

SENDER_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,64}$"

SenderRoleName = Literal["operator_console", "signal_controller", "engine"]
AlgorithmName = Literal["hmac-sha256", "ed25519"]
KeyEnvName = Annotated[
    str, Field(max_length=128), AfterValidator(lambda v: env_name(v, "the key itself"))
]
"""The NAME of an environment variable holding a key (never the key itself)."""


class ControlSenderConfig(StrictModel):
    """One sender allowed to send control messages, and where its key is."""

    id: str = Field(
        pattern=SENDER_ID_PATTERN,
        description="Sender id, as in the message's auth.sender (letters, digits, '._:@-').",
    )
    role: SenderRoleName = Field(
        description=(
            "operator_console: may send overrides; signal_controller: may send plan acks "
            "and phase-by-phase controller states; engine: may send phase commands (for a "
            "signal controller's adapter checking the engine)."
        )
    )
    algorithm: AlgorithmName = Field(
        description="hmac-sha256 (shared secret) or ed25519 (public key here, private key "
        "on the sender).",
    )
    key_env: KeyEnvName = Field(
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


class CommandSignerConfig(StrictModel):
    """The engine's own key, with which it signs the phase commands it sends."""

    id: str = Field(
        default="atcs-engine",
        pattern=SENDER_ID_PATTERN,
        description="The engine's sender id in its commands' auth.sender.",
    )
    algorithm: AlgorithmName = Field(
        default="ed25519",
        description="ed25519 (the controllers hold only the public key) or hmac-sha256.",
    )
    key_env: KeyEnvName = Field(
        description=(
            "NAME of the environment variable holding the engine's signing key, base64: "
            "the Ed25519 private key (32-byte seed, or PEM) or the HMAC secret."
        ),
    )
    valid_s: float = Field(
        default=30.0,
        ge=1.0,
        le=300.0,
        description="How long a signed command stays valid after it is sent, s.",
    )


class RoomSignerConfig(StrictModel):
    """The room node's own key, with which it signs the operator overrides it sends."""

    id: str = Field(
        default="atcs-room",
        pattern=SENDER_ID_PATTERN,
        description=(
            "The room's sender id in its overrides' auth.sender; the control node lists it "
            "in senders with role operator_console."
        ),
    )
    algorithm: AlgorithmName = Field(
        default="ed25519",
        description="ed25519 (the control node holds only the public key) or hmac-sha256.",
    )
    key_env: KeyEnvName = Field(
        description=(
            "NAME of the environment variable holding the room's signing key, base64: the "
            "Ed25519 private key (32-byte seed, or PEM) or the HMAC secret."
        ),
    )
    valid_s: float = Field(
        default=60.0,
        ge=1.0,
        le=300.0,
        description="How long a signed override stays valid after it is sent, s.",
    )


class ControlAuthConfig(StrictModel):
    """How the engine checks the control messages it receives and signs those it sends."""

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
    command_signer: CommandSignerConfig | None = Field(
        default=None,
        description=(
            "The engine's signing key for phase-by-phase commands; without it the engine "
            "sends none (unless insecure_allow_unsigned)."
        ),
    )

    room_signer: RoomSignerConfig | None = Field(
        default=None,
        description=(
            "The room node's signing key for the overrides its operators make; without it "
            "the room's operator actions are refused (unless insecure_allow_unsigned)."
        ),
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
