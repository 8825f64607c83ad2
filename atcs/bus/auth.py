"""Authenticated control messages: who may send what, and checking each message.

Control messages (operator overrides, plan acks, signal-controller states to the engine;
phase commands from the engine to a signal controller) carry an ``auth`` object::

    "auth": {"sender": "console-1", "alg": "hmac-sha256" | "ed25519",
             "issued_at": "2026-03-01T07:30:00.000000Z", "expires_at": "...Z",
             "nonce": "<16-128 of A-Z a-z 0-9 _ ->", "sig": "<base64url>"}

The signature covers the topic, a newline and the RFC 8785 canonical form of the payload
without ``auth.sig`` (:func:`atcs.bus.keys.signed_bytes`). :class:`ControlAuthenticator`
checks, in this order: a known sender, its role may send this kind, it may address this
intersection, the algorithm it is configured with, the signature, the times (expiry after
issue, validity no longer than ``max_validity_s``, not issued in the future nor expired
beyond ``clock_skew_s``) and that the nonce was not seen before (:class:`ReplayCache`).
Only a message with a good signature reaches the replay cache, so a forger cannot fill it.
Unsigned messages are refused unless the lab setting ``insecure_allow_unsigned`` is on.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from atcs.bus.codec import parse_time
from atcs.bus.keys import Algorithm, Verify, b64decode, load_verifier, read_key_text, signed_bytes
from atcs.bus.replay import ReplayCache
from atcs.bus.topics import TopicKind
from atcs.config.control_auth import ControlAuthConfig
from atcs.errors import MessageAuthError
from atcs.text import printable

log = logging.getLogger(__name__)


class SenderRole(enum.Enum):
    """What a sender of control messages is."""

    OPERATOR_CONSOLE = "operator_console"
    SIGNAL_CONTROLLER = "signal_controller"
    ENGINE = "engine"


ROLE_KINDS: dict[SenderRole, frozenset[TopicKind]] = {
    SenderRole.OPERATOR_CONSOLE: frozenset({TopicKind.OVERRIDE}),
    SenderRole.SIGNAL_CONTROLLER: frozenset({TopicKind.PLAN_ACK, TopicKind.SIGNAL_STATE}),
    SenderRole.ENGINE: frozenset({TopicKind.PHASE_COMMAND}),
}
"""The kinds of control message each role may send (``engine``: checked by a signal
controller's adapter, which configures the engine as its one sender)."""


@dataclass(frozen=True, slots=True)
class SenderKey:
    """A configured sender: id, role, algorithm, signature check, intersections (empty: all)."""

    sender: str
    role: SenderRole
    algorithm: Algorithm
    verify: Verify
    intersections: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Verified:
    """Who sent an accepted control message (``sender`` None: unsigned, lab setting)."""

    sender: str | None
    role: SenderRole | None
    algorithm: Algorithm | None

    @property
    def label(self) -> str:
        """``sender (role, algorithm)`` or ``unsigned (insecure lab setting)``, for logs."""
        if self.sender is None or self.role is None or self.algorithm is None:
            return "unsigned (insecure lab setting)"
        return f"{self.sender} ({self.role.value}, {self.algorithm.value})"


def claimed_sender(doc: Mapping[str, Any]) -> str:
    """Return the sender a document claims (unverified; empty when it has no ``auth``), for logs."""
    auth = doc.get("auth")
    return str(auth.get("sender", ""))[:64] if isinstance(auth, dict) else ""


class ControlAuthenticator:
    """Checks the ``auth`` object of control messages (see the module docstring)."""

    def __init__(self, config: ControlAuthConfig, senders: Mapping[str, SenderKey]) -> None:
        self.config = config
        self._senders = dict(senders)
        self._replay = ReplayCache(config.replay_cache_max)

    @classmethod
    def from_config(
        cls, config: ControlAuthConfig, environ: Mapping[str, str] | None = None
    ) -> ControlAuthenticator:
        """Read every sender's key from the environment; :class:`BusError` naming the variable."""
        senders = {}
        for s in config.senders:
            algorithm = Algorithm(s.algorithm)
            text = read_key_text(s.key_env, environ)
            where = f"mqtt.control_auth sender {s.id} ({s.key_env})"
            verify = load_verifier(algorithm, text, where)
            senders[s.id] = SenderKey(
                s.id, SenderRole(s.role), algorithm, verify, frozenset(s.intersections)
            )
        if config.insecure_allow_unsigned:
            log.warning(
                "INSECURE: mqtt.control_auth.insecure_allow_unsigned is on: anyone who can "
                "publish on the broker can override signals and forge acks (lab use only)"
            )
        return cls(config, senders)

    @property
    def senders(self) -> tuple[str, ...]:
        """Ids of the configured senders."""
        return tuple(self._senders)

    def replay_entries(self) -> int:
        """Nonces remembered now."""
        return len(self._replay)

    def check(
        self,
        kind: TopicKind,
        topic: str,
        intersection: str,
        doc: Mapping[str, Any],
        now: datetime | None = None,
    ) -> Verified:
        """Return who sent ``doc`` (received on ``topic``); raise :class:`MessageAuthError`."""
        at = now or datetime.now(UTC)
        auth = doc.get("auth")
        if not isinstance(auth, dict):
            if self.config.insecure_allow_unsigned:
                return Verified(None, None, None)
            raise MessageAuthError(
                "unsigned", f"unsigned {kind.value}: control messages must be signed"
            )
        key = self._sender(kind, intersection, auth)
        self._check_signature(key, topic, doc, auth)
        expires = self._check_times(auth, at)
        self._replay.check_and_add(key.sender, str(auth["nonce"]), expires, at.timestamp())
        return Verified(key.sender, key.role, key.algorithm)

    def _sender(self, kind: TopicKind, intersection: str, auth: Mapping[str, Any]) -> SenderKey:
        name = str(auth.get("sender", ""))
        key = self._senders.get(name)
        if key is None:
            raise MessageAuthError("unknown_sender", f"unknown sender {name[:64]!r}")
        if kind not in ROLE_KINDS[key.role]:
            raise MessageAuthError(
                "not_allowed", f"sender {name!r} ({key.role.value}) may not send {kind.value}"
            )
        if key.intersections and intersection not in key.intersections:
            raise MessageAuthError(
                "not_allowed", f"sender {name!r} may not address intersection {intersection!r}"
            )
        return key

    def _check_signature(
        self, key: SenderKey, topic: str, doc: Mapping[str, Any], auth: Mapping[str, Any]
    ) -> None:
        if auth.get("alg") != key.algorithm.value:
            raise MessageAuthError(
                "bad_signature",
                f"sender {key.sender!r} signs with {key.algorithm.value}, "
                f"not {str(auth.get('alg'))[:32]!r}",
            )
        try:
            signature = b64decode(str(auth.get("sig", "")))
        except ValueError:
            raise MessageAuthError("bad_signature", "signature is not base64") from None
        if not key.verify(signed_bytes(topic, doc), signature):
            raise MessageAuthError(
                "bad_signature",
                f"bad signature for sender {key.sender!r} on {printable(topic, 200)}",
            )

    def _check_times(self, auth: Mapping[str, Any], now: datetime) -> float:
        """Return when the nonce may be forgotten (POSIX s); raise for bad or stale times."""
        issued = parse_time(str(auth.get("issued_at")))
        expires = parse_time(str(auth.get("expires_at")))
        skew = timedelta(seconds=self.config.clock_skew_s)
        span_s = (expires - issued).total_seconds()
        if span_s <= 0:
            raise MessageAuthError("bad_times", "expires_at is not after issued_at")
        if span_s > self.config.max_validity_s:
            raise MessageAuthError(
                "bad_times",
                f"valid for {span_s:.0f} s, longer than {self.config.max_validity_s:g} s",
            )
        if issued > now + skew:
            raise MessageAuthError(
                "not_yet_valid",
                f"issued {(issued - now).total_seconds():.0f} s in the future "
                f"(clock skew allowed: {self.config.clock_skew_s:g} s)",
            )
        if expires + skew < now:
            raise MessageAuthError(
                "expired", f"expired {(now - expires).total_seconds():.0f} s ago"
            )
        return (expires + skew).timestamp()
