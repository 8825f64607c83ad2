"""Turning movements, incidents and the FIWARE rendering on a real Mosquitto and InfluxDB."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from atcs.bus import Topics
from atcs.bus.measure_payloads import (
    decode_incident_event,
    decode_incident_state,
    decode_movement_counts,
    decode_traffic_flow_observed,
)
from atcs.bus.schemas import load_schema
from atcs.config import FiwareConfig
from atcs.config.storage import InfluxConfig
from atcs.incidents import IncidentEvent, IncidentKind, IncidentPhase
from atcs.storage import InfluxSink
from atcs.storage.lineprotocol import timestamp
from atcs.types import SiteId
from tests.support import samples as s
from tests.support import wait
from tests.support.buses import BusFactory
from tests.support.influxdb import InfluxServer, new_db
from tests.support.mosquitto import Collector, Mosquitto

pytestmark = pytest.mark.integration

TOPICS = Topics()


def _valid(topic: str, payload: bytes) -> dict[str, Any]:
    doc = json.loads(payload)
    errors = list(Draft7Validator(load_schema(TOPICS.parse(topic).kind)).iter_errors(doc))
    assert not errors, f"{topic}: {errors[0].message}"
    return doc  # type: ignore[no-any-return]


def test_bus_publishes_movements_incidents_and_fiware(
    mosquitto: Mosquitto, make_bus: BusFactory, collectors: list[Collector]
) -> None:
    live = Collector(mosquitto, "atcs/v1/#")
    collectors.append(live)
    bus = make_bus(mosquitto, fiware=FiwareConfig(enabled=True), segment_names={"seg-a": "Jl. A"})
    bus.on_movements([s.movements(0), s.movements(1, "ix-2")])
    bus.on_incident(s.incident_event(IncidentPhase.START))
    bus.on_incident(s.incident_event(IncidentPhase.END))
    bus.on_metrics([s.metrics(0)])
    wanted = 1 + 2 + 4 + 2  # status, two matrices, two events with their states, metrics+FIWARE
    assert live.wait_for(lambda ms: len(ms) >= wanted, 10), live.snapshot()
    got = [m for m in live.snapshot() if m.topic != "atcs/v1/status"]
    for m in got:
        _valid(m.topic, m.payload)
    topics = [m.topic for m in got]
    assert topics == [
        "atcs/v1/movements/ix-1",
        "atcs/v1/movements/ix-2",
        "atcs/v1/incidents/seg-a/events",
        "atcs/v1/incidents/seg-a/state",
        "atcs/v1/incidents/seg-a/events",
        "atcs/v1/incidents/seg-a/state",
        "atcs/v1/segments/seg-a/metrics",
        "atcs/v1/segments/seg-a/traffic-flow-observed",
    ]
    assert decode_movement_counts(got[0].payload, "ix-1").record == s.movements(0)
    start, end = (decode_incident_event(got[i].payload, "seg-a").record for i in (2, 4))
    assert (start.phase, end.phase) == (IncidentPhase.START, IncidentPhase.END)
    assert end.incident.duration_s == 45.0
    assert len(decode_incident_state(got[3].payload, "seg-a").record) == 2
    entity = decode_traffic_flow_observed(got[7].payload)
    assert (entity["name"], entity["averageVehicleSpeed"]) == ("Jl. A", 41.5)

    # A dashboard starting now gets the retained state (the spillback still open) and the
    # latest matrices, but no old event.
    late = Collector(mosquitto, "atcs/v1/#")
    collectors.append(late)
    assert late.wait_for(lambda ms: len(ms) >= 6, 10), late.snapshot()
    retained = {m.topic: m for m in late.snapshot()}
    assert all(m.retain for m in retained.values())
    assert "atcs/v1/incidents/seg-a/events" not in retained
    (still_open,) = decode_incident_state(
        retained["atcs/v1/incidents/seg-a/state"].payload, "seg-a"
    ).record
    assert still_open.kind is IncidentKind.SPILLBACK
    assert "atcs/v1/segments/seg-a/traffic-flow-observed" in retained


FAST: dict[str, Any] = {"flush_interval_s": 0.05, "retry_initial_s": 0.05, "batch_size": 50}


def test_store_writes_movement_counts_and_one_row_per_incident(
    influxdb: InfluxServer, tmp_path: Path
) -> None:
    db = new_db()
    cfg = InfluxConfig.model_validate({"api": "v1", "url": influxdb.url, "database": db, **FAST})
    sink = InfluxSink(cfg, SiteId("demo"), tmp_path)
    sink.start()
    sink.on_movements([s.movements(0), s.movements(1)])
    start = s.incident_event(IncidentPhase.START)
    # a second stopped vehicle of the same segment, started at the same instant: slot 1
    twin = s.incident(slot=1, serial=3)
    sink.on_incident(start)
    sink.on_incident(IncidentEvent(IncidentPhase.START, twin, start.at, (twin,)))
    sink.on_incident(s.incident_event(IncidentPhase.END))
    # 2 windows x 2 zone pairs, 3 incident points (the end rewrites the start's row)
    wait.wait_for(lambda: int(sink.health()["points_written"]) == 7, 20.0)
    sink.close()

    rows = influxdb.rows("SELECT * FROM movement_counts GROUP BY *", db)
    assert len(rows) == 4
    first = [r for r in rows if r["from_zone"] == "arm-a"]
    assert [r["time"] for r in first] == [
        timestamp(s.T0 + timedelta(seconds=10 * k), "ms") for k in (1, 2)
    ]
    assert [(r["count"], r["count_car"], r["count_bus"]) for r in first] == [(3, 3, 0), (4, 4, 0)]
    back = [r for r in rows if r["from_zone"] == "arm-b"]
    assert [(r["count"], r["count_motorcycle"]) for r in back] == [(5, 1), (5, 1)]
    assert {(r["intersection"], r["to_zone"], r["partial"]) for r in first} == {
        ("ix-1", "arm-b", False)
    }

    incidents = influxdb.rows("SELECT * FROM incidents GROUP BY *", db)
    by_slot = {r["slot"]: r for r in incidents}
    assert sorted(by_slot) == ["0", "1"]
    ended, open_ = by_slot["0"], by_slot["1"]
    assert ended["time"] == open_["time"] == timestamp(s.T0, "ms")
    assert (ended["kind"], ended["segment"], ended["class"], ended["track_id"]) == (
        "stopped_vehicle", "seg-a", "car", 17,
    )  # fmt: skip
    assert (ended["active"], ended["duration_s"], ended["value"]) == (False, 45.0, 31.5)
    assert ended["incident_id"] == "seg-a-stopped_vehicle-1"
    assert (open_["active"], open_["duration_s"]) == (True, None)
    tag_keys = influxdb.query("SHOW TAG KEYS", db)[0]["series"]
    keys = {t["name"]: sorted(v[0] for v in t["values"]) for t in tag_keys}
    assert keys == {
        "incidents": ["camera", "kind", "segment", "site", "slot"],
        "movement_counts": ["camera", "from_zone", "intersection", "site", "to_zone"],
    }
