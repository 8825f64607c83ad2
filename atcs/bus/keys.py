"""Keys of authenticated control messages, and signing them (the sender's side).

Keys live in environment variables, base64-encoded (standard or URL-safe alphabet,
padding optional): an HMAC-SHA256 secret of 32 bytes or more; an Ed25519 public key
(32 bytes) on the engine and the matching private key (the 32-byte seed) on the sender.
PEM (``-----BEGIN PUBLIC KEY-----`` / ``PRIVATE KEY``) is accepted for Ed25519 too. A key
is never logged: errors name the variable, not its value.

:func:`sign_document` adds the ``auth`` object to a payload (see ``docs/security.md``);
:func:`new_key` makes a fresh key (``atcs new-signing-key``).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from atcs.bus.canonical import canonical_json
from atcs.bus.codec import dump, iso_utc
from atcs.errors import BusError, DataError

MIN_HMAC_KEY_BYTES = 32
NONCE_BYTES = 16


class Algorithm(enum.Enum):
    """How a control message is signed."""

    HMAC_SHA256 = "hmac-sha256"
    ED25519 = "ed25519"


def b64decode(text: str) -> bytes:
    """Decode standard or URL-safe base64, with or without padding; ValueError if not base64."""
    cleaned = "".join(text.split()).replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None


def b64url(data: bytes) -> str:
    """URL-safe base64 without padding (how signatures are written)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def read_key_text(env_name: str, environ: Mapping[str, str] | None = None) -> str:
    """Return the value of ``env_name``; :class:`BusError` naming the variable when unset."""
    env = os.environ if environ is None else environ
    value = env.get(env_name)
    if not value:
        raise BusError(f"environment variable {env_name} is not set (it must hold a key)")
    return value


def _pem(text: str) -> bool:
    return text.lstrip().startswith("-----BEGIN")


def hmac_key(text: str, where: str) -> bytes:
    """Return the HMAC secret in ``text`` (base64, >= 32 bytes); BusError naming ``where``."""
    try:
        key = b64decode(text)
    except ValueError:
        raise BusError(f"{where}: the HMAC key is not base64") from None
    if len(key) < MIN_HMAC_KEY_BYTES:
        raise BusError(f"{where}: the HMAC key has {len(key)} bytes, fewer than 32")
    return key


def ed25519_public(text: str, where: str) -> Ed25519PublicKey:
    """Return the Ed25519 public key in ``text`` (base64 of 32 bytes, or PEM)."""
    try:
        if _pem(text):
            key = serialization.load_pem_public_key(text.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not an Ed25519 key")
            return key
        return Ed25519PublicKey.from_public_bytes(b64decode(text))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise BusError(f"{where}: not an Ed25519 public key (base64 of 32 bytes, or PEM)") from None


def ed25519_private(text: str, where: str) -> Ed25519PrivateKey:
    """Return the Ed25519 private key in ``text`` (base64 of the 32-byte seed, or PEM)."""
    try:
        if _pem(text):
            key = serialization.load_pem_private_key(text.encode(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError("not an Ed25519 key")
            return key
        return Ed25519PrivateKey.from_private_bytes(b64decode(text))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise BusError(
            f"{where}: not an Ed25519 private key (base64 of 32 bytes, or PEM)"
        ) from None


def signed_bytes(topic: str, doc: Mapping[str, Any]) -> bytes:
    """Return what a signature covers: topic, newline, canonical payload minus ``auth.sig``."""
    body = dict(doc)
    auth = body.get("auth")
    if isinstance(auth, dict):
        body["auth"] = {k: v for k, v in auth.items() if k != "sig"}
    return topic.encode("utf-8") + b"\n" + canonical_json(body)


Verify = Callable[[bytes, bytes], bool]
"""``verify(message, signature)``: True when ``signature`` is right for ``message``."""


def hmac_verifier(key: bytes) -> Verify:
    """Check HMAC-SHA256 signatures made with ``key`` (constant-time comparison)."""

    def verify(message: bytes, signature: bytes) -> bool:
        return hmac.compare_digest(hmac.new(key, message, hashlib.sha256).digest(), signature)

    return verify


def ed25519_verifier(key: Ed25519PublicKey) -> Verify:
    """Check Ed25519 signatures made with the private half of ``key``."""

    def verify(message: bytes, signature: bytes) -> bool:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    return verify


def load_verifier(algorithm: Algorithm, text: str, where: str) -> Verify:
    """Return the signature check of ``algorithm`` for the key ``text`` (from the environment)."""
    if algorithm is Algorithm.HMAC_SHA256:
        return hmac_verifier(hmac_key(text, where))
    return ed25519_verifier(ed25519_public(text, where))


@dataclass(frozen=True, slots=True)
class Signer:
    """Signs control messages as ``sender`` (an operator console or a signal controller)."""

    sender: str
    algorithm: Algorithm
    sign_bytes: Callable[[bytes], bytes]

    @classmethod
    def from_key(cls, sender: str, algorithm: Algorithm, text: str, where: str = "key") -> Signer:
        """Return a signer with the key ``text`` (base64 HMAC secret or Ed25519 private key)."""
        if algorithm is Algorithm.HMAC_SHA256:
            secret = hmac_key(text, where)
            return cls(sender, algorithm, lambda m: hmac.new(secret, m, hashlib.sha256).digest())
        private = ed25519_private(text, where)
        return cls(sender, algorithm, private.sign)

    @classmethod
    def from_env(
        cls,
        sender: str,
        algorithm: Algorithm,
        env_name: str,
        environ: Mapping[str, str] | None = None,
    ) -> Signer:
        """Return a signer whose key is in the environment variable ``env_name``."""
        return cls.from_key(sender, algorithm, read_key_text(env_name, environ), env_name)


def sign_document(
    doc: Mapping[str, Any],
    topic: str,
    signer: Signer,
    *,
    now: datetime | None = None,
    valid_s: float = 60.0,
    nonce: str | None = None,
) -> dict[str, Any]:
    """Return ``doc`` with an ``auth`` object: sender, algorithm, times, nonce, signature.

    ``valid_s`` is how long the message stays valid after ``now`` (default: the clock).
    Raises :class:`DataError` for a value JSON cannot hold or a non-positive ``valid_s``.
    """
    if not valid_s > 0:
        raise DataError(f"valid_s must be positive, got {valid_s!r}")
    at = now or datetime.now(UTC)
    body = {k: v for k, v in doc.items() if k != "auth"}
    body["auth"] = {
        "sender": signer.sender,
        "alg": signer.algorithm.value,
        "issued_at": iso_utc(at),
        "expires_at": iso_utc(at + timedelta(seconds=valid_s)),
        "nonce": nonce or b64url(secrets.token_bytes(NONCE_BYTES)),
    }
    body["auth"]["sig"] = b64url(signer.sign_bytes(signed_bytes(topic, body)))
    return body


def new_key(algorithm: Algorithm) -> tuple[str, str]:
    """Return a fresh key: (secret for the sender, key for the engine's environment), base64.

    HMAC: the same secret twice. Ed25519: the private seed and the public key.
    """
    if algorithm is Algorithm.HMAC_SHA256:
        secret = base64.b64encode(secrets.token_bytes(MIN_HMAC_KEY_BYTES)).decode()
        return secret, secret
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(seed).decode(), base64.b64encode(public).decode()


def sign_payload(
    payload: bytes | str,
    topic: str,
    signer: Signer,
    *,
    now: datetime | None = None,
    valid_s: float = 60.0,
    nonce: str | None = None,
) -> bytes:
    """Return the JSON ``payload`` (an object) signed for ``topic`` (see :func:`sign_document`).

    Raises :class:`DataError` when ``payload`` is not a JSON object.
    """
    try:
        doc = json.loads(payload)
    except ValueError as exc:
        raise DataError(f"the payload to sign is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DataError("the payload to sign must be a JSON object")
    signed = sign_document(doc, topic, signer, now=now, valid_s=valid_s, nonce=nonce)
    return dump(signed)
