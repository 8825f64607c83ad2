"""Signing and checking control messages: keys, signatures, times, replays, roles (pure)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from atcs.bus.auth import ControlAuthenticator, SenderRole
from atcs.bus.keys import Algorithm, Signer, new_key, sign_document, signed_bytes
from atcs.bus.messages import Override, OverrideAction
from atcs.bus.payloads import encode_override, load_override
from atcs.bus.replay import ReplayCache
from atcs.bus.topics import TopicKind, Topics
from atcs.config.control_auth import ControlAuthConfig
from atcs.errors import BusError, MessageAuthError
from atcs.types import IntersectionId
from tests.support.signing import CONSOLE, CONTROLLER, make_keys

IX = IntersectionId("ix-1")
TOPIC = Topics().override(IX)
NOW = datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
KEYS = make_keys()
HOLD = Override(IX, OverrideAction.HOLD, "Kompol Sari", "accident")


def authenticator(**settings: Any) -> ControlAuthenticator:
    cfg = ControlAuthConfig.model_validate({**KEYS.control_auth, **settings})
    return ControlAuthenticator.from_config(cfg, KEYS.environ)


def signed(signer: Signer = KEYS.console, **options: Any) -> dict[str, Any]:
    options.setdefault("now", NOW)
    doc = json.loads(encode_override(HOLD))
    return sign_document(doc, options.pop("topic", TOPIC), signer, **options)


def check(auth: ControlAuthenticator, doc: dict[str, Any], at: datetime = NOW) -> str | None:
    raw = json.dumps(doc).encode()
    return auth.check(TopicKind.OVERRIDE, TOPIC, IX, load_override(raw, IX), at).sender


def refusal(auth: ControlAuthenticator, doc: dict[str, Any], at: datetime = NOW) -> str:
    with pytest.raises(MessageAuthError) as info:
        check(auth, doc, at)
    return info.value.reason


def test_signed_messages_pass_once_with_either_algorithm() -> None:
    auth = authenticator()
    doc = signed()
    assert doc["auth"]["sender"] == CONSOLE
    assert doc["auth"]["alg"] == "hmac-sha256"
    assert check(auth, doc) == CONSOLE
    assert refusal(auth, doc) == "replayed"
    # the Ed25519 controller may sign acks, not overrides
    assert refusal(auth, signed(KEYS.controller)) == "not_allowed"
    ack_topic = Topics().plan_ack(IX)
    ack = {"schema": "atcs.plan_ack/1", "plan_id": "p-1", "result": "applied"}
    ack_doc = sign_document(ack, ack_topic, KEYS.controller, now=NOW)
    assert ack_doc["auth"]["alg"] == "ed25519"
    verified = auth.check(TopicKind.PLAN_ACK, ack_topic, IX, ack_doc, NOW)
    assert (verified.sender, verified.role) == (CONTROLLER, SenderRole.SIGNAL_CONTROLLER)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.pop("auth"), "unsigned"),
        (lambda d: d.update(why="something else"), "bad_signature"),
        (lambda d: d["auth"].update(sender="console-2"), "unknown_sender"),
        (lambda d: d["auth"].update(alg="ed25519"), "bad_signature"),
        (lambda d: d["auth"].update(sig=d["auth"]["sig"][::-1]), "bad_signature"),
        (lambda d: d["auth"].update(nonce="A" * 22), "bad_signature"),
    ],
)
def test_tampered_messages_are_refused(change: Any, reason: str) -> None:
    doc = signed()
    change(doc)
    assert refusal(authenticator(), doc) == reason


def test_the_signature_binds_the_topic() -> None:
    other = signed(topic=Topics().override(IntersectionId("ix-2")))
    assert refusal(authenticator(), other) == "bad_signature"


def test_times_expiry_skew_and_validity() -> None:
    auth = authenticator(clock_skew_s=30, max_validity_s=300)
    assert check(auth, signed(valid_s=60), NOW + timedelta(seconds=89)) == CONSOLE
    assert refusal(auth, signed(valid_s=60), NOW + timedelta(seconds=91)) == "expired"
    assert check(auth, signed(), NOW - timedelta(seconds=29)) == CONSOLE
    assert refusal(auth, signed(), NOW - timedelta(seconds=31)) == "not_yet_valid"
    assert refusal(auth, signed(valid_s=301)) == "bad_times"


def test_scoped_senders_and_the_insecure_lab_setting() -> None:
    senders = [dict(s) for s in KEYS.control_auth["senders"]]
    senders[0]["intersections"] = ["ix-9"]
    assert refusal(authenticator(senders=senders), signed()) == "not_allowed"
    lab = authenticator(insecure_allow_unsigned=True)
    unsigned = json.loads(encode_override(HOLD))
    assert check(lab, unsigned) is None
    forged = signed()
    forged["why"] = "changed"
    assert refusal(lab, forged) == "bad_signature"  # signed messages are still checked


def test_replay_cache_forgets_expired_nonces_and_fails_closed_when_full() -> None:
    cache = ReplayCache(max_entries=2)
    cache.check_and_add("a", "n1", expires_at=100.0, now=0.0)
    cache.check_and_add("a", "n2", expires_at=200.0, now=0.0)
    with pytest.raises(MessageAuthError, match="replay cache full"):
        cache.check_and_add("a", "n3", expires_at=200.0, now=50.0)
    cache.check_and_add("a", "n3", expires_at=300.0, now=150.0)  # n1 expired, room again
    assert len(cache) == 2
    with pytest.raises(MessageAuthError, match="replayed"):
        cache.check_and_add("a", "n2", expires_at=400.0, now=160.0)


def test_keys_from_the_environment_name_the_variable_never_the_value() -> None:
    cfg = ControlAuthConfig.model_validate(KEYS.control_auth)
    with pytest.raises(BusError, match="ATCS_TEST_CONSOLE_KEY is not set"):
        ControlAuthenticator.from_config(cfg, {})
    short = base64.b64encode(b"x" * 16).decode()
    with pytest.raises(BusError, match="fewer than 32") as info:
        ControlAuthenticator.from_config(cfg, {**KEYS.environ, "ATCS_TEST_CONSOLE_KEY": short})
    assert short not in str(info.value)
    with pytest.raises(BusError, match="not an Ed25519 public key"):
        ControlAuthenticator.from_config(cfg, {**KEYS.environ, "ATCS_TEST_TSC_PUBLIC_KEY": "@@"})
    # PEM works for Ed25519 on both sides
    private = Ed25519PrivateKey.generate()
    pem_private = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    pem_public = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    auth = ControlAuthenticator.from_config(
        cfg, {**KEYS.environ, "ATCS_TEST_TSC_PUBLIC_KEY": pem_public}
    )
    signer = Signer.from_key(CONTROLLER, Algorithm.ED25519, pem_private)
    ack_topic = Topics().plan_ack(IX)
    ack = {"schema": "atcs.plan_ack/1", "plan_id": "p-1", "result": "applied"}
    doc = sign_document(ack, ack_topic, signer, now=NOW)
    assert auth.check(TopicKind.PLAN_ACK, ack_topic, IX, doc, NOW).sender == CONTROLLER


def test_what_is_signed_is_the_topic_and_the_canonical_payload() -> None:
    secret, engine_side = new_key(Algorithm.HMAC_SHA256)
    assert secret == engine_side
    doc = sign_document(
        {"schema": "atcs.override/1", "why": "x", "greens_s": {"b": 25.0, "a": 1e21}},
        "t/1",
        Signer.from_key("s", Algorithm.HMAC_SHA256, secret),
        now=NOW,
        nonce="n" * 16,
    )
    assert signed_bytes("t/1", doc) == (
        b't/1\n{"auth":{"alg":"hmac-sha256","expires_at":"2026-03-01T07:31:00.000000Z",'
        b'"issued_at":"2026-03-01T07:30:00.000000Z","nonce":"nnnnnnnnnnnnnnnn","sender":"s"},'
        b'"greens_s":{"a":1e+21,"b":25},"schema":"atcs.override/1","why":"x"}'
    )


def test_the_command_line_makes_keys_and_signs_what_the_engine_accepts(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from atcs.cli import main

    assert main(["new-signing-key", "--algorithm", "ed25519"]) == 0
    lines = dict(
        line.split(": ", 1) for line in capsys.readouterr().out.splitlines() if ": " in line
    )
    monkeypatch.setenv("CONSOLE_PRIVATE", lines["sender"])
    payload = tmp_path / "hold.json"
    payload.write_bytes(encode_override(HOLD))
    args = ["sign-message", "--topic", TOPIC, "--sender", CONSOLE, "--algorithm", "ed25519",
            "--key-env", "CONSOLE_PRIVATE", str(payload)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    senders = [{"id": CONSOLE, "role": "operator_console", "algorithm": "ed25519",
                "key_env": "CONSOLE_PUBLIC"}]  # fmt: skip
    cfg = ControlAuthConfig.model_validate({"senders": senders})
    auth = ControlAuthenticator.from_config(cfg, {"CONSOLE_PUBLIC": lines["engine"]})
    doc = load_override(out.strip().encode(), IX)
    assert auth.check(TopicKind.OVERRIDE, TOPIC, IX, doc).sender == CONSOLE
    assert main([*args[:-1], str(tmp_path / "missing.json")]) == 2
    assert main([*args[:-3], "--key-env", "UNSET_VARIABLE", str(payload)]) == 2
    assert "UNSET_VARIABLE is not set" in capsys.readouterr().err
