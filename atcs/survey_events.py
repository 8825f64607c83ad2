"""The survey's turning movements and incidents: CSV rows and snapshot pictures.

``movements.csv`` has one row per intersection, window, zone pair and class (zeros
included, so a pivot table of the file is the full origin-destination matrix);
``incidents.csv`` one row per incident, in order of start, with the picture of the frame
that raised it in ``incidents/<incident_id>.jpg`` (at most :data:`MAX_SNAPSHOTS` a camera).
Times are seconds from the start of the recording and ISO-8601 UTC.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import cv2

from atcs.annotate import annotate_incident
from atcs.config import AtcsConfig
from atcs.incidents import Incident, IncidentEvent, IncidentPhase
from atcs.types import Detections, Image, MovementCounts

log = logging.getLogger(__name__)

MOVEMENT_COLUMNS = [
    "camera", "intersection", "window_start_s", "window_end_s", "window_start", "window_end",
    "observed_s", "partial", "from_zone", "to_zone", "class", "count",
]  # fmt: skip
INCIDENT_COLUMNS = [
    "incident_id", "camera", "segment", "kind", "start_s", "end_s", "started_at", "ended_at",
    "duration_s", "track_id", "class", "value", "x", "y", "detail", "snapshot",
]  # fmt: skip
MAX_SNAPSHOTS = 500
"""Most snapshot pictures a camera's survey writes (a flood of incidents fills no disk)."""
SNAPSHOT_FOLDER = "incidents"
_JPEG_QUALITY = 85


def _num(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def movement_rows(counts: MovementCounts, origin: datetime) -> list[list[object]]:
    """Return the ``movements.csv`` rows of one matrix (one per zone pair and class)."""
    head = [
        counts.camera_id,
        counts.intersection_id,
        _num((counts.window_start - origin).total_seconds(), 3),
        _num((counts.window_end - origin).total_seconds(), 3),
        counts.window_start.isoformat(),
        counts.window_end.isoformat(),
        _num(counts.observed_s, 3),
        int(counts.partial),
    ]
    return [[*head, c.from_zone, c.to_zone, c.vehicle_class.label, c.count] for c in counts.counts]


class IncidentLog:
    """The incidents of one camera's survey: their latest state and their snapshots."""

    def __init__(self, cfg: AtcsConfig, camera_id: str, out_dir: Path, origin: datetime) -> None:
        self._segments = {s.id: s for s in cfg.segments_of(camera_id)}
        self._out_dir = out_dir
        self._origin = origin
        self._incidents: dict[str, Incident] = {}
        self._snapshots: dict[str, str] = {}
        self.snapshots_skipped = 0

    def __len__(self) -> int:
        """Return the number of incidents seen."""
        return len(self._incidents)

    def on_events(
        self, events: Sequence[IncidentEvent], image: Image, detections: Detections
    ) -> None:
        """Keep each incident's latest state; picture the frame of every start."""
        for event in events:
            incident = event.incident
            self._incidents[incident.incident_id] = incident
            if event.phase is IncidentPhase.START:
                self._snapshot(incident, image, detections)

    def _snapshot(self, incident: Incident, image: Image, detections: Detections) -> None:
        if len(self._snapshots) >= MAX_SNAPSHOTS:
            self.snapshots_skipped += 1
            return
        folder = self._out_dir / SNAPSHOT_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{incident.incident_id}.jpg"
        picture = annotate_incident(
            image, incident, detections, self._segments.get(incident.segment_id)
        )
        if cv2.imwrite(str(folder / name), picture, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]):
            self._snapshots[incident.incident_id] = f"{SNAPSHOT_FOLDER}/{name}"
        else:
            log.error("could not write the snapshot %s", folder / name)

    def rows(self) -> list[list[object]]:
        """Return the ``incidents.csv`` rows, oldest start first (open ones: no end)."""
        out: list[list[object]] = []
        for i in sorted(self._incidents.values(), key=lambda i: (i.started_at, i.incident_id)):
            end = i.ended_at
            out.append(
                [
                    i.incident_id,
                    i.camera_id,
                    i.segment_id,
                    i.kind.value,
                    _num((i.started_at - self._origin).total_seconds(), 3),
                    "" if end is None else _num((end - self._origin).total_seconds(), 3),
                    i.started_at.isoformat(),
                    "" if end is None else end.isoformat(),
                    _num(i.duration_s, 3),
                    "" if i.track_id is None else int(i.track_id),
                    "" if i.vehicle_class is None else i.vehicle_class.label,
                    _num(i.value, 2),
                    "" if i.location is None else _num(i.location[0], 4),
                    "" if i.location is None else _num(i.location[1], 4),
                    i.detail,
                    self._snapshots.get(i.incident_id, ""),
                ]
            )
        return out
