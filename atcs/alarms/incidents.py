"""Incident events of the engine's detectors as incident reports for the alarms.

The engine's incident detectors (:mod:`atcs.incidents`) emit an :class:`IncidentEvent` at
each start and end; the alarms take an :class:`IncidentReport`. A wrong-way vehicle and a
spillback are major (they call for a unit or a retiming now); a stopped vehicle is major
too (a breakdown blocks a lane); a density jump is minor (it asks for a look at the camera).
"""

from __future__ import annotations

from atcs.alarms.model import IncidentReport, ParamValue, Severity
from atcs.incidents import IncidentEvent, IncidentKind

SEVERITY = {
    IncidentKind.STOPPED_VEHICLE: Severity.MAJOR,
    IncidentKind.WRONG_WAY: Severity.MAJOR,
    IncidentKind.SPILLBACK: Severity.MAJOR,
    IncidentKind.DENSITY_JUMP: Severity.MINOR,
}
"""Alarm severity of each incident kind."""


def incident_report(event: IncidentEvent) -> IncidentReport:
    """Return the alarm input of one incident start or end (``ended_at`` set on an end).

    Parameters shown with the alarm: ``value`` (the kind's number: seconds stopped, queue
    metres, PCU/km jump), ``track`` and ``class`` when a vehicle is involved.
    """
    incident = event.incident
    params: dict[str, ParamValue] = {}
    if incident.value is not None:
        params["value"] = round(incident.value, 1)
    if incident.track_id is not None:
        params["track"] = int(incident.track_id)
    if incident.vehicle_class is not None:
        params["class"] = incident.vehicle_class.label
    return IncidentReport(
        incident_id=incident.incident_id,
        kind=incident.kind.value,
        camera_id=str(incident.camera_id),
        segment_id=str(incident.segment_id),
        started_at=incident.started_at,
        ended_at=incident.ended_at,
        severity=SEVERITY[incident.kind],
        params=params,
    )
