"""Operator actions in the room: signed overrides to the control node over the bus.

:class:`BusOverrides` is the room's :class:`~atcs.web.operator.OverrideTarget`. The room's
desk checks a request with the control side's rules (against the envelope in the city's
configuration and the plan on the bus), then :meth:`BusOverrides.hand_over` signs it with
the room's key (``[mqtt.control_auth.room_signer]``, valid ``valid_s``) and publishes it on
``{p}/intersections/{ix}/override`` at QoS 1, not retained, while the room's bus
connection is up (otherwise the operator is told at once, 503: nothing is queued, so a
stale action never fires later). The control node checks the signature, applies, audits
and expires it like any other override (``docs/security.md``); the room learns the result
from what it receives (:meth:`BusOverrides.in_force`: the control node's override state
naming the operator, or a manual plan naming the operator after the request; after a
release, a non-manual plan, or for a phase-by-phase intersection no override in force).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from atcs.bus.client import BusClient
from atcs.bus.keys import Algorithm, Signer, sign_payload
from atcs.bus.messages import Override, OverrideAction
from atcs.bus.payloads import encode_override
from atcs.bus.topics import Topics
from atcs.config import AtcsConfig
from atcs.config.control import intersection_spec
from atcs.control import IntersectionState, PlanBook
from atcs.control.overrides import accept_override
from atcs.control.phase_live import check_phase_override
from atcs.errors import ConfigError
from atcs.types import IntersectionId, PlanMode, TimingPlan
from atcs.web.operator import ApiError

log = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(seconds=2)
"""How far the control node's clock may lag the room's when matching an override's start."""


def room_signer(cfg: AtcsConfig, environ: Mapping[str, str] | None = None) -> Signer | None:
    """Return the room's signer from ``[mqtt.control_auth.room_signer]`` (None when unset).

    Raises :class:`~atcs.errors.BusError` naming the variable when the key is missing or bad.
    """
    if cfg.mqtt is None or cfg.mqtt.control_auth.room_signer is None:
        return None
    spec = cfg.mqtt.control_auth.room_signer
    return Signer.from_env(spec.id, Algorithm(spec.algorithm), spec.key_env, environ)


class BusOverrides:
    """Operator overrides from the room to the control node (module docstring)."""

    def __init__(
        self,
        cfg: AtcsConfig,
        bus: BusClient,
        plans: PlanBook,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if cfg.mqtt is None:
            raise ConfigError("room overrides need [mqtt]")
        self._bus = bus
        self._plans = plans
        self._topics = Topics(cfg.mqtt.prefix)
        auth = cfg.mqtt.control_auth
        self._valid_s = auth.room_signer.valid_s if auth.room_signer is not None else 60.0
        self._unsigned_ok = auth.insecure_allow_unsigned
        self._signer = room_signer(cfg, environ)
        if self._signer is None and not self._unsigned_ok:
            log.warning("room: no mqtt.control_auth.room_signer: operator actions will be refused")
        tz = cfg.site.timezone
        self._specs = {IntersectionId(ix.id): intersection_spec(ix, tz) for ix in cfg.intersections}
        self._phase_mode = {IntersectionId(i.id) for i in cfg.intersections if i.phase_mode}
        self.sent = 0

    @property
    def intersections(self) -> tuple[IntersectionId, ...]:
        """The city's intersections."""
        return self._plans.intersections

    def state(self, now: datetime | None = None) -> Mapping[IntersectionId, IntersectionState]:
        """Return the plans and acks on the bus."""
        return self._plans.state(now)

    def check(self, override: Override, running: TimingPlan | None, now: datetime) -> None:
        """Check with the control node's rules, from the city's configuration."""
        ix = override.intersection_id
        if ix in self._phase_mode:
            check_phase_override(ix, override)
        else:
            accept_override(self._specs[ix], override, running, now)

    def payload(self, override: Override) -> tuple[str, bytes]:
        """Return the topic and the signed payload of ``override``.

        Raises :class:`ApiError` 503 when the room has no key and unsigned overrides are
        not allowed.
        """
        topic = self._topics.override(override.intersection_id)
        raw = encode_override(override)
        if self._signer is not None:
            return topic, sign_payload(raw, topic, self._signer, valid_s=self._valid_s)
        if self._unsigned_ok:
            return topic, raw
        raise ApiError(
            503,
            "no_signing_key",
            "the room has no signing key (mqtt.control_auth.room_signer): the control node "
            "would refuse the override",
        )

    def hand_over(self, override: Override) -> str:
        """Sign and publish; :class:`ApiError` 503 when it cannot leave now."""
        topic, payload = self.payload(override)
        if not self._bus.publish_now(topic, payload):
            raise ApiError(
                503,
                "bus_unavailable",
                "the room is not connected to the broker: the override was not sent",
                retry_after_s=5.0,
            )
        self.sent += 1
        return f"sent to the control node on {topic}"

    def in_force(self, state: IntersectionState, override: Override) -> bool:
        """Whether the bus shows it (module docstring)."""
        held, asked = state.override, override.at
        if asked is None:
            return False
        releasing = override.action is OverrideAction.RELEASE
        if held is not None:  # the control node's override state
            return not releasing and held.who == override.who and held.since >= asked - CLOCK_SKEW
        running = state.running
        if running is None:  # phase by phase: only the override state tells
            return releasing
        if running.sent_at < asked:
            return False
        manual = running.plan.mode is PlanMode.MANUAL
        if releasing:
            return not manual
        return manual and f"by {override.who}:" in running.plan.reason
