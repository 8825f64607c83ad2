"""FIWARE ``TrafficFlowObserved`` rendering of segment windows (NGSI-LD, key-values).

A city data platform built on FIWARE (an NGSI-LD context broker such as Orion-LD, with
QuantumLeap or Mintaka for history) takes these entities as they are. One entity per
segment (``id`` = ``fiware.entity_prefix`` + site + ``:`` + segment), updated by every
window; the mapping from the engine's measures (docs/measures.md, "FIWARE"):

===================  ===================================================================
attribute            from
===================  ===================================================================
dateObserved         ``window_start/window_end`` (ISO-8601 interval, UTC)
dateObservedFrom/To  ``window_start``, ``window_end``
intensity            vehicles that crossed the segment's lines in their approach direction
                     in the window (left out for a segment without a counting line)
occupancy            ``occupancy`` (mean covered fraction of the segment polygon)
averageVehicleSpeed  ``speed_kmh`` (left out without a calibration or a measured vehicle)
congested            ``congested``
name                 the segment's name, else its id
dataProvider         ``fiware.data_provider`` (left out when empty)
===================  ===================================================================

Stale windows (no frame) are not rendered: no observation was made.
"""

from __future__ import annotations

from typing import Any

from atcs.bus.codec import iso_utc
from atcs.config import FiwareConfig
from atcs.types import SegmentMetrics

CONTEXT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/"
    "master/context.jsonld"
)
"""JSON-LD context of the Smart Data Models transportation domain."""
ENTITY_TYPE = "TrafficFlowObserved"


def traffic_flow_observed(
    metrics: SegmentMetrics, config: FiwareConfig, segment_name: str = ""
) -> dict[str, Any] | None:
    """Return the entity of one segment window (module table); None for a stale window."""
    if metrics.stale:
        return None
    start, end = iso_utc(metrics.window_start), iso_utc(metrics.window_end)
    entity: dict[str, Any] = {
        "id": f"{config.entity_prefix}{metrics.site_id}:{metrics.segment_id}",
        "type": ENTITY_TYPE,
        "dateObserved": f"{start}/{end}",
        "dateObservedFrom": start,
        "dateObservedTo": end,
    }
    if metrics.flows:
        entity["intensity"] = sum(f.count for f in metrics.flows if f.approach)
    entity["occupancy"] = min(1.0, max(0.0, float(metrics.occupancy)))
    if metrics.speed_kmh is not None:
        entity["averageVehicleSpeed"] = float(metrics.speed_kmh)
    entity["congested"] = bool(metrics.congested)
    entity["name"] = segment_name or str(metrics.segment_id)
    if config.data_provider:
        entity["dataProvider"] = config.data_provider
    entity["@context"] = [CONTEXT]
    return entity
