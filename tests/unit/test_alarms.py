"""Alarm rules and the alarm list: exact onsets and ends, acknowledgement, bounds, watch time."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from atcs.alarms import AlarmChange, AlarmKind, AlarmManager, AlarmRules, IncidentReport
from atcs.alarms.incidents import SEVERITY, incident_report
from atcs.alarms.model import Severity
from atcs.bus.alarms import decode_alarm, encode_alarm
from atcs.bus.messages import MessageMeta
from atcs.bus.monitor import Snapshot
from atcs.config.room import AlarmsConfig
from atcs.errors import AlarmError
from atcs.incidents import Incident, IncidentEvent, IncidentKind, IncidentPhase
from atcs.storage.points import alarm_point
from atcs.types import (
    CameraId,
    CameraState,
    CameraStatus,
    LevelOfService,
    SegmentId,
    SegmentMetrics,
    SiteId,
    TrackId,
    VehicleClass,
)
from atcs.watch import View, render_table
from tests.support.samples import metrics

T0 = datetime(2025, 1, 6, 7, 0, tzinfo=UTC)


def _window(i: int, los: LevelOfService) -> SegmentMetrics:
    m = metrics(segment="s1", camera="c1")
    start = T0 + timedelta(seconds=10 * i)
    return dataclasses.replace(
        m, window_start=start, window_end=start + timedelta(seconds=10), los=los
    )


def _rules() -> AlarmRules:
    cfg = AlarmsConfig(onset_windows=3, clear_windows=2, camera_down_after_s=10, stale_after_s=60)
    return AlarmRules(cfg, segment_cameras={"s1": "c1"}, cameras=["c1"], started_at=T0)


def test_congestion_needs_n_windows_and_clears_after_m() -> None:
    rules = _rules()
    seq = [LevelOfService.E, LevelOfService.F, LevelOfService.D, LevelOfService.E,
           LevelOfService.E, LevelOfService.F, LevelOfService.C, LevelOfService.E,
           LevelOfService.B, LevelOfService.A]  # fmt: skip
    active = []
    for i, los in enumerate(seq):
        rules.on_metrics([_window(i, los)])
        now = T0 + timedelta(seconds=10 * i + 10)
        found = [c for c in rules.conditions(now) if c.kind is AlarmKind.CONGESTION]
        active.append(bool(found))
        if found:
            assert found[0].since == T0 + timedelta(seconds=30), "starts at the first bad window"
    assert active == [False, False, False, False, False, True, True, True, True, False]


def test_camera_down_after_its_grace_and_stale_data_not_while_down() -> None:
    rules = _rules()
    down = CameraStatus(CameraId("c1"), CameraState.RECONNECTING, 0.0, None, "refused")
    rules.on_camera_status(down, T0 + timedelta(seconds=5))
    kinds = {c.kind for c in rules.conditions(T0 + timedelta(seconds=14))}
    assert AlarmKind.CAMERA_DOWN not in kinds
    kinds = {c.kind for c in rules.conditions(T0 + timedelta(seconds=90))}
    assert kinds == {AlarmKind.CAMERA_DOWN}, "the camera, not its stale segment"
    rules.on_camera_status(CameraStatus(CameraId("c1"), CameraState.STREAMING, 5.0, T0, ""), T0)
    kinds = {c.kind for c in rules.conditions(T0 + timedelta(seconds=90))}
    assert kinds == {AlarmKind.STALE_DATA}


def test_nodes_and_incidents_raise_and_end() -> None:
    rules = _rules()
    rules.on_node("edge-2", False, T0)
    assert not rules.conditions(T0), "a node never seen online raises nothing"
    rules.on_node("edge-2", True, T0)
    rules.on_node("edge-2", False, T0 + timedelta(seconds=1))
    report = IncidentReport("i/1", "wrong_way", "c1", "s1", T0, params={"track": 7})
    rules.on_incident(report)
    found = {c.kind: c for c in rules.conditions(T0 + timedelta(seconds=2))}
    assert set(found) == {AlarmKind.NODE_DOWN, AlarmKind.INCIDENT}
    assert found[AlarmKind.INCIDENT].code == "incident.wrong_way"
    assert found[AlarmKind.INCIDENT].subject == "s1~i_1"
    rules.on_incident(IncidentReport("i/1", "wrong_way", "c1", "s1", T0, ended_at=T0))
    rules.on_node("edge-2", True, T0 + timedelta(seconds=3))
    assert not rules.conditions(T0 + timedelta(seconds=4))


def test_an_incident_shorter_than_the_check_period_still_raises_and_ends() -> None:
    rules = _rules()
    rules.on_incident(IncidentReport("i/2", "spillback", "c1", "s1", T0))
    rules.on_incident(IncidentReport("i/2", "spillback", "c1", "s1", T0, ended_at=T0))
    (found,) = rules.conditions(T0 + timedelta(seconds=1))
    assert found.code == "incident.spillback"
    assert rules.conditions(T0 + timedelta(seconds=2)) == []


def test_engine_incident_events_become_incident_alarms() -> None:
    car = Incident(
        "motorway-southbound/wrong_way/7", IncidentKind.WRONG_WAY, SiteId("site"),
        CameraId("c1"), SegmentId("s1"), T0, track_id=TrackId(7),
        vehicle_class=VehicleClass.MOTORCYCLE, value=31.26,
    )  # fmt: skip
    jump = dataclasses.replace(car, incident_id="j", kind=IncidentKind.DENSITY_JUMP)
    start = incident_report(IncidentEvent(IncidentPhase.START, car, T0, (car,)))
    assert start == IncidentReport(
        car.incident_id, "wrong_way", "c1", "s1", T0, None, Severity.MAJOR,
        {"value": 31.3, "track": 7, "class": "motorcycle"},
    )  # fmt: skip
    assert incident_report(IncidentEvent(IncidentPhase.START, jump, T0, ())).severity is (
        Severity.MINOR
    )
    ended = dataclasses.replace(car, ended_at=T0 + timedelta(seconds=3))
    end = incident_report(IncidentEvent(IncidentPhase.END, ended, T0, ()))
    assert end.ended_at == T0 + timedelta(seconds=3)
    assert {k for k in SEVERITY} == set(IncidentKind), "every kind has a severity"


def test_manager_raises_ends_acknowledges_once_and_tells_the_outputs() -> None:
    seen: list[AlarmChange] = []
    manager = AlarmManager("site", history_max=10)
    manager.listeners.append(lambda e: seen.append(e.change))
    rules = _rules()
    rules.on_node("n", True, T0)
    rules.on_node("n", False, T0)
    (event,) = manager.update(rules.conditions(T0), T0)
    ident = event.alarm.alarm_id
    with pytest.raises(AlarmError, match="comment"):
        manager.acknowledge(ident, "ani", "  ", T0)
    manager.acknowledge(ident, "ani", "checked the rack", T0)
    with pytest.raises(AlarmError, match="already"):
        manager.acknowledge(ident, "budi", "again", T0)
    assert manager.current()[0].acked_by == "ani", "acknowledged but still active"
    manager.update([], T0 + timedelta(seconds=5))
    assert manager.current() == []
    assert manager.history()[0].ended_at == T0 + timedelta(seconds=5)
    assert seen == [AlarmChange.RAISED, AlarmChange.ACKNOWLEDGED, AlarmChange.ENDED]
    with pytest.raises(AlarmError, match="unknown"):
        manager.acknowledge("nope", "ani", "x", T0)


def test_unacknowledged_ended_alarms_are_bounded() -> None:
    manager = AlarmManager("site", history_max=10)
    rules = _rules()
    for i in range(30):
        at = T0 + timedelta(seconds=i)
        rules.on_node("n", True, at)
        rules.on_node("n", False, at)
        manager.update(rules.conditions(at), at)
        rules.on_node("n", True, at)
        manager.update(rules.conditions(at), at)
    assert len(manager.current()) <= 10
    assert manager.counts["expired"] >= 20


def test_alarm_payload_and_point_round_trip() -> None:
    manager = AlarmManager("site")
    rules = _rules()
    rules.on_node("n", True, T0)
    rules.on_node("n", False, T0)
    (event,) = manager.update(rules.conditions(T0), T0)
    back = decode_alarm(encode_alarm(event, MessageMeta("s", 1))).record
    assert back.alarm == event.alarm
    assert back.change is AlarmChange.RAISED
    point = alarm_point(event)
    assert point.tags == {"site": "site", "kind": "node_down", "subject": "n",
                          "severity": "critical", "change": "raised"}  # fmt: skip


def test_watch_shows_the_site_zone() -> None:
    snap = Snapshot(segments={}, cameras={}, connected=True, received=0, malformed=0, last_error="")
    head = render_table(snap, T0, View("t", color=False, timezone="Asia/Makassar"))[0]
    assert "15:00:00 WITA" in head
