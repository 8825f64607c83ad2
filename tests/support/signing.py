"""Keys and signed control messages for tests (the operator console and a signal controller).

:func:`make_keys` makes fresh keys: an HMAC-SHA256 secret for the console ``console-1``
(role ``operator_console``) and an Ed25519 key pair for the controller ``tsc-1`` (role
``signal_controller``). ``Keys.environ`` holds what the engine reads (the HMAC secret and
the Ed25519 *public* key); ``Keys.control_auth`` is the matching ``[mqtt.control_auth]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from atcs.bus.keys import Algorithm, Signer, new_key, sign_payload
from atcs.bus.messages import Override, PlanAck
from atcs.bus.payloads import encode_override, encode_plan_ack
from atcs.bus.topics import Topics

CONSOLE = "console-1"
CONTROLLER = "tsc-1"
CONSOLE_ENV = "ATCS_TEST_CONSOLE_KEY"
CONTROLLER_ENV = "ATCS_TEST_TSC_PUBLIC_KEY"
TOPICS = Topics()


@dataclass(frozen=True)
class Keys:
    """Signers of the console and the controller, the engine's environment and settings."""

    console: Signer
    controller: Signer
    environ: dict[str, str]
    control_auth: dict[str, Any]

    def override(self, override: Override, **options: Any) -> bytes:
        """``override`` signed by the console for its topic (``options``: valid_s, now ...)."""
        topic = TOPICS.override(override.intersection_id)
        return sign_payload(encode_override(override), topic, self.console, **options)

    def ack(self, ack: PlanAck, **options: Any) -> bytes:
        """``ack`` signed by the controller for its topic."""
        topic = TOPICS.plan_ack(ack.intersection_id)
        return sign_payload(encode_plan_ack(ack), topic, self.controller, **options)


def make_keys(**settings: Any) -> Keys:
    """Fresh keys; ``settings`` go into ``control_auth`` (e.g. insecure_allow_unsigned)."""
    secret, _ = new_key(Algorithm.HMAC_SHA256)
    private, public = new_key(Algorithm.ED25519)
    control_auth = {
        "senders": [
            {"id": CONSOLE, "role": "operator_console", "algorithm": "hmac-sha256",
             "key_env": CONSOLE_ENV},
            {"id": CONTROLLER, "role": "signal_controller", "algorithm": "ed25519",
             "key_env": CONTROLLER_ENV},
        ],
        **settings,
    }  # fmt: skip
    return Keys(
        console=Signer.from_key(CONSOLE, Algorithm.HMAC_SHA256, secret),
        controller=Signer.from_key(CONTROLLER, Algorithm.ED25519, private),
        environ={CONSOLE_ENV: secret, CONTROLLER_ENV: public},
        control_auth=control_auth,
    )


TEST_KEYS = make_keys()
"""The keys the ``make_bus`` fixture's buses accept (made once per test session)."""
