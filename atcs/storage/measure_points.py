"""Turning movements and incidents as InfluxDB points (docs/influxdb.md).

===================  =============================================  ========================
measurement          tags                                           time
===================  =============================================  ========================
``movement_counts``  site, camera, intersection, from_zone, to_zone window end
``incidents``        site, camera, segment, kind, slot              the incident's start
===================  =============================================  ========================

Zone ids, kinds and slots are few (configured, or a small number of overlapping incidents),
so they are tags; an incident's id and track id are fields. An incident is one row: its
start writes it (``active`` true) and its end writes the same series and time again with
``active`` false, ``ended`` and ``duration_s``: InfluxDB merges the fields, so the row
ends up with both. ``slot`` keeps overlapping incidents of one kind and segment that
started at the same instant in separate rows.
"""

from __future__ import annotations

from atcs.incidents import IncidentEvent
from atcs.storage.lineprotocol import FieldValue, Point
from atcs.types import MovementCounts, VehicleClass

MOVEMENT_COUNTS = "movement_counts"
INCIDENTS = "incidents"


def movement_points(counts: MovementCounts) -> list[Point]:
    """Return one ``movement_counts`` point per zone pair of the matrix, at the window end.

    Fields: ``count`` (integer, every class), ``count_<class>`` (integer) for every class,
    ``window_s`` and ``observed_s`` (s), ``partial`` and ``stale`` (booleans). Zero counts
    are written too: a pair with no vehicle reads 0, not missing.
    """
    pairs: dict[tuple[str, str], dict[VehicleClass, int]] = {}
    for c in counts.counts:
        pairs.setdefault((c.from_zone, c.to_zone), {})[c.vehicle_class] = c.count
    out: list[Point] = []
    for (origin, dest), by_class in pairs.items():
        fields: dict[str, FieldValue] = {"count": int(sum(by_class.values()))}
        for vc in VehicleClass:
            fields[f"count_{vc.label}"] = int(by_class.get(vc, 0))
        fields["window_s"] = float(counts.window_s)
        fields["observed_s"] = float(counts.observed_s)
        fields["partial"] = bool(counts.partial)
        fields["stale"] = bool(counts.stale)
        out.append(
            Point(
                measurement=MOVEMENT_COUNTS,
                time=counts.window_end,
                tags={
                    "site": str(counts.site_id),
                    "camera": str(counts.camera_id),
                    "intersection": str(counts.intersection_id),
                    "from_zone": str(origin),
                    "to_zone": str(dest),
                },
                fields=fields,
            )
        )
    return out


def incident_point(event: IncidentEvent) -> Point:
    """Return the ``incidents`` point of an incident at its start time (module docstring).

    Fields: ``incident_id`` and ``detail`` (strings), ``active`` (boolean), ``value``
    (float, when the kind has one), ``track_id`` (integer) and ``class`` (string) for a
    vehicle, ``x`` and ``y`` (normalised image position, when known); on the end event also
    ``duration_s`` and ``ended`` (ISO-8601 UTC string).
    """
    incident = event.incident
    fields: dict[str, FieldValue] = {
        "incident_id": incident.incident_id,
        "active": incident.active,
        "detail": incident.detail,
    }
    if incident.value is not None:
        fields["value"] = float(incident.value)
    if incident.track_id is not None:
        fields["track_id"] = int(incident.track_id)
    if incident.vehicle_class is not None:
        fields["class"] = incident.vehicle_class.label
    if incident.location is not None:
        fields["x"] = float(incident.location[0])
        fields["y"] = float(incident.location[1])
    if incident.ended_at is not None:
        fields["ended"] = incident.ended_at.isoformat()
        fields["duration_s"] = float(incident.duration_s or 0.0)
    return Point(
        measurement=INCIDENTS,
        time=incident.started_at,
        tags={
            "site": str(incident.site_id),
            "camera": str(incident.camera_id),
            "segment": str(incident.segment_id),
            "kind": incident.kind.value,
            "slot": str(incident.slot),
        },
        fields=fields,
    )
