"""Whether an operator override is in force: ``{p}/intersections/{ix}/override/state``.

The control node (roles ``control`` and ``all``) holds the operators' overrides; it
publishes each intersection's override state, retained, when the control loop starts and
whenever an override begins, changes or ends, so that a room node (which has no control
loop) shows a held intersection and raises the same ``intersection_manual`` alarm as the
single process. Declared once (:data:`OVERRIDE_STATE`); the schema
``atcs/contract/override_state.schema.json`` comes from the declaration. Like plans, it is
not signed: the broker's ACL lets only the engine's user write it (``docs/security.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from atcs.bus.codec import Received
from atcs.bus.messages import MessageMeta, OverrideAction
from atcs.bus.model import Field, Message, Rule, Struct
from atcs.bus.topics import TopicKind
from atcs.bus.wire import Boolean, DateTime, Id, MapOf, Number, Text, choice
from atcs.types import IntersectionId

_IN_FORCE_KEYS = ("action", "who", "why", "since")
_ONLY_IN_FORCE = (*_IN_FORCE_KEYS, "plan_name", "greens_s")


@dataclass(frozen=True, slots=True)
class OverrideState:
    """One intersection's override as its control node holds it (``action`` None: none).

    ``at`` is when the control node published the state (UTC); ``since`` when the override
    began; ``greens_s`` the greens of a ``fixed`` or ``hold`` override, s per phase id.
    """

    intersection_id: IntersectionId
    at: datetime
    action: OverrideAction | None = None
    who: str = ""
    why: str = ""
    since: datetime | None = None
    plan_name: str | None = None
    greens_s: Mapping[str, float] = field(default_factory=dict)

    @property
    def in_force(self) -> bool:
        """Whether an override is in force."""
        return self.action is not None


def _empty(value: Any) -> bool:
    return not value


def _in_force_rule(doc: Mapping[str, Any]) -> str | None:
    if doc.get("in_force") is True:
        missing = [k for k in _IN_FORCE_KEYS if k not in doc]
        if missing:
            return f"an override in force needs {', '.join(missing)}"
        if doc["action"] == OverrideAction.RELEASE.value:
            return "an override in force is a hold or a fixed plan, not a release"
        return None
    named = [k for k in _ONLY_IN_FORCE if k in doc]
    if named:
        return f"no override in force, yet the payload has {', '.join(named)}"
    return None


OVERRIDE_STATE: Message[OverrideState] = Message(
    TopicKind.OVERRIDE_STATE,
    "OverrideState",
    "Whether an operator override is in force at one intersection, published by its control "
    "node retained (QoS 1) on {prefix}/intersections/{ix}/override/state when control starts "
    "and whenever an override begins, changes or ends.",
    Struct(
        (
            Field("intersection", Id(), attr="intersection_id"),
            Field(
                "in_force",
                Boolean(),
                "true while an operator's hold or fixed plan is in force.",
                attr=None,
                get=lambda s: s.in_force,
            ),
            Field("at", DateTime(), "When the control node published this state, ISO-8601 UTC."),
            Field(
                "action", choice(OverrideAction), "hold or fixed (in force only).", required=False
            ),
            Field(
                "who",
                Text(1, 128),
                "Operator name or badge.",
                required=False,
                default="",
                omit=_empty,
            ),
            Field(
                "why",
                Text(1, 1000),
                "The operator's reason.",
                required=False,
                default="",
                omit=_empty,
            ),
            Field("since", DateTime(), "When the override began, ISO-8601 UTC.", required=False),
            Field(
                "plan_name",
                Text(1, 128),
                "fixed: the configured fixed plan it runs.",
                required=False,
            ),
            Field(
                "greens_s",
                MapOf(Number(exclusive_minimum=0), min_properties=1),
                "fixed or hold: green per phase id, s.",
                get=lambda s: {str(k): float(v) for k, v in s.greens_s.items()} or None,
                required=False,
                default={},
            ),
        ),
        OverrideState,
        rules=(
            Rule(
                {
                    "if": {"properties": {"in_force": {"const": True}}},
                    "then": {
                        "required": list(_IN_FORCE_KEYS),
                        "properties": {"action": {"enum": ["hold", "fixed"]}},
                    },
                    "else": {"not": {"anyOf": [{"required": [k]} for k in _ONLY_IN_FORCE]}},
                },
                _in_force_rule,
            ),
        ),
    ),
    streamed=True,
    topic_key="intersection",
)


def encode_override_state(state: OverrideState, meta: MessageMeta) -> bytes:
    """One :class:`OverrideState` as the payload of ``{p}/intersections/{ix}/override/state``."""
    return OVERRIDE_STATE.encode(state, meta)


def decode_override_state(
    payload: bytes | str, topic_ident: str | None = None
) -> Received[OverrideState]:
    """Validate and read an override state (``topic_ident``: the intersection in the topic)."""
    return OVERRIDE_STATE.decode(payload, topic_ident)
