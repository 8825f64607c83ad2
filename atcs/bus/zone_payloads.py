"""Codec of the per-frame zone of a segment: one frame's vehicles, for phase-by-phase control.

``{p}/segments/{segment}/zone`` carries ``atcs.segment_zone/1`` (measuring node → control
node, QoS 0, not retained, at most once a second per segment): for a segment with a stop
line that feeds a phase-mode intersection's phases or exits, the vehicles of the newest
frame with their distance from the stop line, speed and PCU (:class:`~atcs.types.FrameZone`).
It is worth nothing after ``frame_stale_s`` (2 s by default), so it skips the disk queue and
carries no ``stream`` or ``seq``: a lost one is replaced a second later.

Declared once (:class:`~atcs.bus.model.Message`): the schema in ``atcs/contract``, the field
checks and the codec come from the declaration. The decoder bounds the payload, the list
(at most :data:`~atcs.control.zones.MAX_ZONE_VEHICLES` vehicles) and every number (finite,
within range) and raises only :class:`~atcs.errors.PayloadError`. The encoder clips each
value into its range (an outlier speed of a tracker's jump is sent as the largest allowed).
"""

from __future__ import annotations

import math

from atcs.bus.model import Field, Message, Struct
from atcs.bus.topics import TopicKind
from atcs.bus.wire import ArrayOf, DateTime, Id, Nullable, Number
from atcs.config.core import MAX_PCU
from atcs.control.zones import MAX_ZONE_VEHICLES
from atcs.types import FrameVehicle, FrameZone, SiteId

MAX_DISTANCE_M = 10_000.0
"""Largest distance from the stop line on the bus, m (segments are at most 5 km long)."""
MAX_SPEED_M_S = 100.0
"""Largest speed on the bus, m/s (360 km/h: larger ones are tracker jumps, sent as this)."""


def _clip(value: float, top: float) -> float:
    return round(min(max(value, 0.0), top), 3) if math.isfinite(value) else top


def _speed(v: FrameVehicle) -> float | None:
    speed = v.speed_m_s
    return None if speed is None or math.isnan(speed) else _clip(speed, MAX_SPEED_M_S)


VEHICLE = Struct(
    (
        Field(
            "distance_m",
            Number(minimum=0, maximum=MAX_DISTANCE_M),
            "From the stop line to the box's nearest corner along the segment, m (0: at or "
            "over the line).",
            get=lambda v: _clip(v.distance_m, MAX_DISTANCE_M),
        ),
        Field(
            "speed_m_s",
            Nullable(Number(minimum=0, maximum=MAX_SPEED_M_S)),
            "Speed along the segment, m/s; null while unknown (a track seen once).",
            get=_speed,
        ),
        Field(
            "pcu",
            Number(minimum=0, maximum=MAX_PCU),
            "Passenger-car units of the vehicle's class on the segment.",
            get=lambda v: _clip(v.pcu, MAX_PCU),
        ),
    ),
    FrameVehicle,
    name="zoneVehicle",
)

SEGMENT_ZONE: Message[FrameZone] = Message(
    TopicKind.SEGMENT_ZONE,
    "SegmentZone",
    "The vehicles of one frame in a segment with a stop line that feeds a phase-mode "
    "intersection, for the control node's phase controllers: published by the node that "
    "measures the segment at most once a second per segment (the newest frame) on "
    "{prefix}/segments/{segment}/zone (QoS 0, not retained: stale after "
    "intersections.phase_mode.frame_stale_s).",
    Struct(
        (
            Field("site", Id(), "Site id.", attr=None),
            Field("camera", Id(), "Camera that took the frame.", attr="camera_id"),
            Field("segment", Id(), "Segment id (also in the topic).", attr="segment_id"),
            Field("at", DateTime(), "Capture time of the frame, ISO-8601 UTC."),
            Field(
                "vehicles",
                ArrayOf(VEHICLE, max_items=MAX_ZONE_VEHICLES),
                f"The frame's vehicles in the segment, nearest the stop line first (at most "
                f"{MAX_ZONE_VEHICLES}).",
                get=lambda z: z.vehicles[:MAX_ZONE_VEHICLES],
            ),
        ),
        FrameZone,
    ),
    topic_key="segment",
)


def encode_segment_zone(site: SiteId, zone: FrameZone) -> bytes:
    """One :class:`FrameZone` as the payload of ``{p}/segments/{segment}/zone``."""
    return SEGMENT_ZONE.encode(zone, site=site)


def decode_segment_zone(payload: bytes | str, topic_ident: str | None = None) -> FrameZone:
    """Validate and read a zone payload (``topic_ident``: the topic's segment)."""
    return SEGMENT_ZONE.decode(payload, topic_ident).record
