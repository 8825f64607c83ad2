"""Control messages to the engine: signal controllers' plan acks and operators' overrides.

Both are signed (``auth``, see ``docs/security.md``), bounded tighter than measures
(:data:`~atcs.bus.codec.MAX_CONTROL_BYTES`) and declared once
(:class:`~atcs.bus.model.Message`): the schemas in ``atcs/contract``, the checks and the
codecs come from the declarations. ``load_*`` give the checked document (the control inbox
checks its signature), ``*_from_doc`` the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atcs.bus.messages import AckResult, Override, OverrideAction, PlanAck
from atcs.bus.model import Field, Message, Rule, Struct
from atcs.bus.topics import TopicKind
from atcs.bus.wire import Choice, DateTime, Id, MapOf, Number, Text, choice
from atcs.types import IntersectionId

AUTH = Field(
    "auth",
    Struct(
        (
            Field(
                "sender",
                Text(pattern="^[A-Za-z0-9._:@-]{1,64}$"),
                "Sender id as configured in mqtt.control_auth.senders.",
            ),
            Field("alg", Choice(("hmac-sha256", "ed25519"))),
            Field("issued_at", DateTime()),
            Field("expires_at", DateTime()),
            Field(
                "nonce",
                Text(pattern="^[A-Za-z0-9_-]{16,128}$"),
                "Unique per sender while the message is valid (replays are refused).",
            ),
            Field(
                "sig",
                Text(pattern="^[A-Za-z0-9_+/=-]{16,256}$"),
                "Signature, base64url without padding (HMAC-SHA256: 32 bytes; Ed25519: 64).",
            ),
        )
    ),
    "Authenticator (see docs/security.md): the signature covers the topic, a newline and "
    "the RFC 8785 canonical form of this payload without auth.sig.",
    attr=None,
    required=False,
)
"""The ``auth`` object of signed control messages (added by the signer, checked by
:class:`~atcs.bus.auth.ControlAuthenticator`; not part of the record)."""


def omit_empty(value: Any) -> bool:
    """Tell whether an optional value is empty (then left out of the payload)."""
    return not value


# Plan ack ------------------------------------------------------------------------------

TOPIC_INTERSECTION = Field(
    "intersection",
    Id(),
    "Optional; must equal the topic's intersection.",
    attr=None,
    get=lambda r: r.intersection_id,
    required=False,
)


def _rejected_needs_reason(doc: Mapping[str, Any]) -> str | None:
    if doc.get("result") == AckResult.REJECTED.value and "reason" not in doc:
        return "a rejected ack needs a reason"
    return None


PLAN_ACK: Message[PlanAck] = Message(
    TopicKind.PLAN_ACK,
    "PlanAck",
    "A signal controller's answer to a plan, on {prefix}/intersections/{ix}/plan/ack (QoS 1, "
    "not retained).",
    Struct(
        (
            TOPIC_INTERSECTION,
            Field("plan_id", Text(1, 128)),
            Field("result", choice(AckResult)),
            Field("reason", Text(max_length=1000), required=False, default=""),
            Field(
                "controller_id",
                Text(max_length=128),
                "The acknowledging signal controller.",
                required=False,
                default="",
                omit=omit_empty,
            ),
            Field("at", DateTime(), required=False),
            AUTH,
        ),
        PlanAck,
        rules=(
            Rule(
                {
                    "if": {"properties": {"result": {"const": "rejected"}}},
                    "then": {"required": ["reason"]},
                },
                _rejected_needs_reason,
            ),
        ),
    ),
    topic_key="intersection",
)


def encode_plan_ack(ack: PlanAck) -> bytes:
    """Encode what a signal controller sends on ``{p}/intersections/{ix}/plan/ack``."""
    return PLAN_ACK.encode(ack)


def load_plan_ack(payload: bytes | str, intersection: IntersectionId) -> dict[str, Any]:
    """Parse and check an ack received on the ack topic of ``intersection`` (a document)."""
    return PLAN_ACK.load(payload, intersection)


def decode_plan_ack(payload: bytes | str, intersection: IntersectionId) -> PlanAck:
    """Validate and read an ack received on the ack topic of ``intersection``."""
    return plan_ack_from_doc(load_plan_ack(payload, intersection), intersection)


def plan_ack_from_doc(doc: dict[str, Any], intersection: IntersectionId) -> PlanAck:
    """Return the :class:`PlanAck` of a document checked by :func:`load_plan_ack`."""
    return PLAN_ACK.read(doc, intersection_id=intersection)


# Override ------------------------------------------------------------------------------

_HAS_PLAN = {"anyOf": [{"required": ["plan_name"]}, {"required": ["greens_s"]}]}


def _override_plan_rule(doc: Mapping[str, Any]) -> str | None:
    has_plan = "plan_name" in doc or "greens_s" in doc
    action = doc.get("action")
    if action == OverrideAction.FIXED.value and not has_plan:
        return "override 'fixed' needs plan_name or greens_s"
    if action != OverrideAction.FIXED.value and has_plan:
        return f"override {action!r} takes no plan_name or greens_s"
    return None


OVERRIDE: Message[Override] = Message(
    TopicKind.OVERRIDE,
    "Override",
    "An operator's override of one intersection, on {prefix}/intersections/{ix}/override "
    "(QoS 1, not retained). hold: keep the running plan; fixed: run a named fixed plan or "
    "the given greens; release: back to the controllers.",
    Struct(
        (
            TOPIC_INTERSECTION,
            Field("action", choice(OverrideAction)),
            Field("who", Text(1, 128), "Operator name or badge."),
            Field("why", Text(1, 1000), "Reason, for the log."),
            Field("at", DateTime(), "When it was issued, ISO-8601 UTC.", required=False),
            AUTH,
            Field(
                "plan_name",
                Text(1, 128),
                "fixed: name of a configured fixed plan.",
                required=False,
            ),
            Field(
                "greens_s",
                MapOf(Number(exclusive_minimum=0), min_properties=1),
                "fixed: green per phase id, s.",
                get=lambda o: {str(k): float(v) for k, v in o.greens_s.items()},
                required=False,
                default={},
                omit=omit_empty,
            ),
        ),
        Override,
        rules=(
            Rule(
                {
                    "allOf": [
                        {
                            "if": {"properties": {"action": {"const": "fixed"}}},
                            "then": _HAS_PLAN,
                            "else": {"not": _HAS_PLAN},
                        }
                    ]
                },
                _override_plan_rule,
            ),
        ),
    ),
    topic_key="intersection",
)


def encode_override(override: Override) -> bytes:
    """Encode what an operator sends on ``{p}/intersections/{ix}/override``."""
    return OVERRIDE.encode(override)


def load_override(payload: bytes | str, intersection: IntersectionId) -> dict[str, Any]:
    """Parse and check an override received on the topic of ``intersection`` (a document)."""
    return OVERRIDE.load(payload, intersection)


def decode_override(payload: bytes | str, intersection: IntersectionId) -> Override:
    """Validate and read an override received on the override topic of ``intersection``."""
    return override_from_doc(load_override(payload, intersection), intersection)


def override_from_doc(doc: dict[str, Any], intersection: IntersectionId) -> Override:
    """Return the :class:`Override` of a document checked by :func:`load_override`."""
    return OVERRIDE.read(doc, intersection_id=intersection)
