"""Records that exist only on the bus: engine status, plan acks, operator overrides.

The measures themselves (:class:`~atcs.types.SegmentMetrics`, :class:`~atcs.types.CameraStatus`,
:class:`~atcs.types.TimingPlan`) live in :mod:`atcs.types`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from atcs.types import IntersectionId, PhaseId, SiteId


class EngineState(enum.Enum):
    """Availability of an engine on ``{p}/status``."""

    ONLINE = "online"
    OFFLINE = "offline"


class AckResult(enum.Enum):
    """What a signal controller did with a plan."""

    APPLIED = "applied"
    REJECTED = "rejected"


class OverrideAction(enum.Enum):
    """An operator's request for one intersection.

    ``HOLD`` keeps the running plan (no controller updates); ``FIXED`` runs a named fixed
    plan or the given greens; ``RELEASE`` hands control back to the controllers.
    """

    HOLD = "hold"
    FIXED = "fixed"
    RELEASE = "release"


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """Identity of one message the engine queued.

    ``stream`` names the engine's disk queue (new when the queue file is created) and
    ``seq`` grows by one per queued message.

    A subscriber that drops any message whose ``seq`` is not above the last one it kept for
    that ``stream`` and topic sees every message exactly once, in order.
    """

    stream: str
    seq: int


@dataclass(frozen=True, slots=True)
class EngineStatus:
    """Availability of the engine; ``at`` is absent in the last will (set at connect time)."""

    state: EngineState
    version: str
    site_id: SiteId
    client_id: str
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PlanAck:
    """A signal controller's answer to a plan: applied or rejected, with a reason.

    ``controller_id`` names the acknowledging device when it says so; ``at`` is when it
    answered (UTC) when it says so.
    """

    intersection_id: IntersectionId
    plan_id: str
    result: AckResult
    reason: str = ""
    controller_id: str = ""
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Override:
    """An operator's override of one intersection.

    For ``FIXED`` either ``plan_name`` names a configured fixed plan or ``greens_s`` gives
    the green of each phase in seconds (the safety envelope still checks the result).
    ``who`` and ``why`` are required for the log; ``at`` is when it was issued (UTC).
    """

    intersection_id: IntersectionId
    action: OverrideAction
    who: str
    why: str
    at: datetime | None = None
    plan_name: str | None = None
    greens_s: Mapping[PhaseId, float] = field(default_factory=dict)
