"""Every MQTT topic of the contract, built from typed ids in this one module.

========================================  =====================  ==================
topic                                     direction              kind
========================================  =====================  ==================
``{p}/status``                            engine → all           engine status
``{p}/cameras/{camera}/status``           engine → all           camera status
``{p}/segments/{segment}/metrics``        engine → all           segment metrics
``{p}/segments/{segment}/zone``           engine → control       one frame's vehicles
``{p}/intersections/{ix}/plan``           engine → controllers   timing plan
``{p}/intersections/{ix}/plan/ack``       controller → engine    plan ack
``{p}/intersections/{ix}/override``       operator → engine      override
``{p}/intersections/{ix}/override/state`` engine → all           override state
``{p}/intersections/{ix}/command``        engine → controllers   phase command
``{p}/intersections/{ix}/state``          controller → engine    signal state
``{p}/movements/{ix}``                    engine → all           movement counts
``{p}/incidents/{segment}/events``        engine → all           incident event
``{p}/incidents/{segment}/state``         engine → all           incident state
``{p}/segments/{segment}/traffic-flow-``  engine → all           FIWARE
``observed``                                                     TrafficFlowObserved
``{p}/alarms/{kind}.{subject}/state``     engine → all           alarm
``{p}/nodes/{node}/status``               node → all             node status
========================================  =====================  ==================

``{p}`` is the configurable prefix (default ``atcs/v1``). Ids are single topic levels:
they must not contain ``/``, ``+``, ``#`` or NUL.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from atcs.errors import DataError, PayloadError
from atcs.types import CameraId, IntersectionId, SegmentId

DEFAULT_PREFIX = "atcs/v1"
_BAD_LEVEL = re.compile(r"[/+#\x00]")


class TopicKind(enum.Enum):
    """What a topic carries; the value names its JSON Schema in ``atcs/contract``."""

    ENGINE_STATUS = "engine_status"
    CAMERA_STATUS = "camera_status"
    SEGMENT_METRICS = "segment_metrics"
    SEGMENT_ZONE = "segment_zone"
    TIMING_PLAN = "timing_plan"
    PLAN_ACK = "plan_ack"
    OVERRIDE = "override"
    OVERRIDE_STATE = "override_state"
    PHASE_COMMAND = "phase_command"
    SIGNAL_STATE = "signal_state"
    MOVEMENT_COUNTS = "movement_counts"
    INCIDENT_EVENT = "incident_event"
    INCIDENT_STATE = "incident_state"
    TRAFFIC_FLOW_OBSERVED = "traffic_flow_observed"
    ALARM = "alarm"
    NODE_STATUS = "node_status"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    """A topic read back into its kind and id (``None`` for the engine status topic)."""

    kind: TopicKind
    ident: str | None


def _level(value: str, what: str) -> str:
    if not value or _BAD_LEVEL.search(value):
        raise DataError(f"{what} {value!r} cannot be an MQTT topic level")
    return value


@dataclass(frozen=True, slots=True)
class Topics:
    """Builds and parses the topics under one prefix (no leading or trailing ``/``)."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or self.prefix.startswith("/") or self.prefix.endswith("/"):
            raise DataError(f"topic prefix {self.prefix!r} must not be empty or start/end in '/'")
        for part in self.prefix.split("/"):
            _level(part, "topic prefix level")

    def engine_status(self) -> str:
        """``{p}/status``: retained online/offline of the engine (the last will)."""
        return f"{self.prefix}/status"

    def camera_status(self, camera: CameraId) -> str:
        """``{p}/cameras/{camera}/status``."""
        return f"{self.prefix}/cameras/{_level(camera, 'camera id')}/status"

    def segment_metrics(self, segment: SegmentId) -> str:
        """``{p}/segments/{segment}/metrics``."""
        return f"{self.prefix}/segments/{_level(segment, 'segment id')}/metrics"

    def segment_zone(self, segment: SegmentId) -> str:
        """``{p}/segments/{segment}/zone``: one frame's vehicles of a phase-mode segment."""
        return f"{self.prefix}/segments/{_level(segment, 'segment id')}/zone"

    def plan(self, intersection: IntersectionId) -> str:
        """``{p}/intersections/{ix}/plan``."""
        return f"{self.prefix}/intersections/{_level(intersection, 'intersection id')}/plan"

    def plan_ack(self, intersection: IntersectionId) -> str:
        """``{p}/intersections/{ix}/plan/ack``."""
        return f"{self.plan(intersection)}/ack"

    def override(self, intersection: IntersectionId) -> str:
        """``{p}/intersections/{ix}/override``."""
        return f"{self.prefix}/intersections/{_level(intersection, 'intersection id')}/override"

    def override_state(self, intersection: IntersectionId) -> str:
        """``{p}/intersections/{ix}/override/state``: the override in force (retained)."""
        return f"{self.override(intersection)}/state"

    def command(self, intersection: IntersectionId) -> str:
        """``{p}/intersections/{ix}/command``: phase-by-phase commands."""
        return f"{self.prefix}/intersections/{_level(intersection, 'intersection id')}/command"

    def state(self, intersection: IntersectionId) -> str:
        """``{p}/intersections/{ix}/state``: the signal controller's state."""
        return f"{self.prefix}/intersections/{_level(intersection, 'intersection id')}/state"

    def movements(self, intersection: IntersectionId) -> str:
        """``{p}/movements/{ix}``: turning-movement counts of an intersection per window."""
        return f"{self.prefix}/movements/{_level(intersection, 'intersection id')}"

    def incident_events(self, segment: SegmentId) -> str:
        """``{p}/incidents/{segment}/events``: starts and ends of a segment's incidents."""
        return f"{self.prefix}/incidents/{_level(segment, 'segment id')}/events"

    def incident_state(self, segment: SegmentId) -> str:
        """``{p}/incidents/{segment}/state``: a segment's open incidents (retained)."""
        return f"{self.prefix}/incidents/{_level(segment, 'segment id')}/state"

    def traffic_flow_observed(self, segment: SegmentId) -> str:
        """``{p}/segments/{segment}/traffic-flow-observed``: FIWARE rendering of a window."""
        return f"{self.prefix}/segments/{_level(segment, 'segment id')}/traffic-flow-observed"

    def alarm(self, key: str) -> str:
        """``{p}/alarms/{kind}.{subject}/state``: the retained state of one alarm key."""
        return f"{self.prefix}/alarms/{_level(key, 'alarm key')}/state"

    def node_status(self, node: str) -> str:
        """``{p}/nodes/{node}/status``: a node's role, cameras and state (retained, last will)."""
        return f"{self.prefix}/nodes/{_level(node, 'node id')}/status"

    # Subscription filters -------------------------------------------------------------

    def all_camera_status(self) -> str:
        """Filter matching every camera status topic."""
        return f"{self.prefix}/cameras/+/status"

    def all_segment_metrics(self) -> str:
        """Filter matching every segment metrics topic."""
        return f"{self.prefix}/segments/+/metrics"

    def all_segment_zones(self) -> str:
        """Filter matching every segment zone topic."""
        return f"{self.prefix}/segments/+/zone"

    def all_plans(self) -> str:
        """Filter matching every plan topic."""
        return f"{self.prefix}/intersections/+/plan"

    def all_plan_acks(self) -> str:
        """Filter matching every plan acknowledgement topic."""
        return f"{self.prefix}/intersections/+/plan/ack"

    def all_overrides(self) -> str:
        """Filter matching every operator override topic."""
        return f"{self.prefix}/intersections/+/override"

    def all_override_states(self) -> str:
        """Filter matching every override state topic."""
        return f"{self.prefix}/intersections/+/override/state"

    def all_states(self) -> str:
        """Filter matching every phase-by-phase signal-controller state topic."""
        return f"{self.prefix}/intersections/+/state"

    def all_node_status(self) -> str:
        """Filter matching every node status topic."""
        return f"{self.prefix}/nodes/+/status"

    # Parsing --------------------------------------------------------------------------

    def parse(self, topic: str) -> ParsedTopic:
        """Read ``topic`` back into its kind and id; raise :class:`PayloadError` if foreign."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            raise PayloadError(f"topic {topic!r} is not under prefix {self.prefix!r}")
        levels = topic[len(head) :].split("/")
        parsed = _parse_levels(levels)
        if parsed is None or (parsed.ident is not None and not parsed.ident):
            raise PayloadError(f"topic {topic!r} is not part of the atcs contract")
        return parsed


_SHAPES: dict[tuple[str, ...], TopicKind] = {
    ("cameras", "*", "status"): TopicKind.CAMERA_STATUS,
    ("segments", "*", "metrics"): TopicKind.SEGMENT_METRICS,
    ("segments", "*", "zone"): TopicKind.SEGMENT_ZONE,
    ("intersections", "*", "plan"): TopicKind.TIMING_PLAN,
    ("intersections", "*", "plan", "ack"): TopicKind.PLAN_ACK,
    ("intersections", "*", "override"): TopicKind.OVERRIDE,
    ("intersections", "*", "override", "state"): TopicKind.OVERRIDE_STATE,
    ("intersections", "*", "command"): TopicKind.PHASE_COMMAND,
    ("intersections", "*", "state"): TopicKind.SIGNAL_STATE,
    ("movements", "*"): TopicKind.MOVEMENT_COUNTS,
    ("incidents", "*", "events"): TopicKind.INCIDENT_EVENT,
    ("incidents", "*", "state"): TopicKind.INCIDENT_STATE,
    ("segments", "*", "traffic-flow-observed"): TopicKind.TRAFFIC_FLOW_OBSERVED,
    ("alarms", "*", "state"): TopicKind.ALARM,
    ("nodes", "*", "status"): TopicKind.NODE_STATUS,
}


def _parse_levels(levels: list[str]) -> ParsedTopic | None:
    if levels == ["status"]:
        return ParsedTopic(TopicKind.ENGINE_STATUS, None)
    if len(levels) < 2:
        return None
    shape = (levels[0], "*", *levels[2:])
    kind = _SHAPES.get(shape)
    if kind is None:
        return None
    return ParsedTopic(kind, levels[1])
