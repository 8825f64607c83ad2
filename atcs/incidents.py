"""Incidents: what the engine raises for an operator, and how the service hands them on.

The detection (pure code, per camera) is in :mod:`atcs.metrics.incidents`; this module holds
the records every consumer shares (MQTT bus, InfluxDB store, survey CSV, an alarm manager):

- :class:`Incident`: one incident of one segment with its start, its end once over, and
  what raised it;
- :class:`IncidentEvent`: its start or its end, with the segment's open incidents after it
  (the retained state a dashboard shows);
- :data:`IncidentListener`: the callback the service calls on its analysis thread for every
  event, in order (``Engine.incident_listeners``). A listener must return at once and must
  not raise; an exception is logged and the next listener still runs.

Kinds (docs/measures.md has the rules and thresholds):

=================  ======================================================  =============
kind               raised when                                             ``value``
=================  ======================================================  =============
stopped_vehicle    a vehicle stays stopped outside a queue for N seconds   s stopped
wrong_way          a track crosses a one-way segment's line the wrong way  none
spillback          the queue reaches past the segment's spillback point    queue, m
density_jump       a window's density jumps above its recent baseline      pcu/km/lane
=================  ======================================================  =============
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from atcs.types import CameraId, SegmentId, SiteId, TrackId, VehicleClass


class IncidentKind(enum.Enum):
    """What kind of incident (the value is used in topics, CSV and InfluxDB tags)."""

    STOPPED_VEHICLE = "stopped_vehicle"
    WRONG_WAY = "wrong_way"
    SPILLBACK = "spillback"
    DENSITY_JUMP = "density_jump"


class IncidentPhase(enum.Enum):
    """Whether an event starts or ends its incident."""

    START = "start"
    END = "end"


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident of one segment (see the module docstring for the kinds).

    ``started_at`` is when the condition began (a stopped vehicle: when it stopped; it is
    raised ``stopped_after_s`` later), ``ended_at`` when it was over (None while open);
    both aware UTC. ``track_id`` and ``vehicle_class`` name the vehicle for stopped-vehicle
    and wrong-way incidents; ``location`` is where to look, normalised [x, y] image
    coordinates (the vehicle's bottom centre, the back of the queue); ``value`` the kind's
    number (module table); ``detail`` a sentence for people. ``slot`` is the lowest number
    not taken by another open incident of the same kind in the same segment (0 unless
    several overlap): stored rows of overlapping incidents stay apart with it.
    """

    incident_id: str
    kind: IncidentKind
    site_id: SiteId
    camera_id: CameraId
    segment_id: SegmentId
    started_at: datetime
    ended_at: datetime | None = None
    track_id: TrackId | None = None
    vehicle_class: VehicleClass | None = None
    location: tuple[float, float] | None = None
    value: float | None = None
    detail: str = ""
    slot: int = 0

    @property
    def active(self) -> bool:
        """True while the incident is not over."""
        return self.ended_at is None

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end; None while open."""
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """The start or the end of an incident.

    ``at`` is when the engine decided (aware UTC; for a start after a hold time, later than
    ``incident.started_at``); ``incident`` is the incident as of this event (``ended_at``
    set on an end); ``active`` lists the segment's open incidents after the event, oldest
    first (what a retained state message carries).
    """

    phase: IncidentPhase
    incident: Incident
    at: datetime
    active: tuple[Incident, ...]


IncidentListener = Callable[[IncidentEvent], None]
"""Called on the analysis thread for every incident event, in order; returns at once."""
