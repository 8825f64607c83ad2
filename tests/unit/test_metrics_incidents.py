"""Incident state machines on hand-built vehicles and windows, and through the analyzer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from atcs.config import AtcsConfig, IncidentsConfig
from atcs.incidents import IncidentEvent, IncidentKind, IncidentPhase
from atcs.metrics import CameraAnalyzer
from atcs.metrics.incidents import CameraIncidents, SegmentIncidentSpec, SegmentVehicles
from atcs.types import (
    CameraId,
    Detections,
    LevelOfService,
    SegmentId,
    SegmentMetrics,
    SiteId,
    TrackId,
    VehicleClass,
)

T0 = datetime(2024, 5, 1, 7, 0, 0, tzinfo=UTC)
SEG = SegmentId("road")
CAR, MOTO = VehicleClass.CAR, VehicleClass.MOTORCYCLE


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def machine(**cfg: Any) -> CameraIncidents:
    settings = {"stopped_after_s": 10.0, "spillback_after_s": 4.0, "clear_after_s": 3.0} | cfg
    return CameraIncidents(
        site_id="site",
        camera_id="cam",
        segments=[SegmentIncidentSpec(SEG, 40.0, (0.5, 0.9), (0.5, 0.5))],
        config=IncidentsConfig.model_validate(settings),
        max_tracks=100,
    )


def vehicles(
    rows: list[tuple[int, str]], queue_m: float | None = None, in_queue: tuple[int, ...] = ()
) -> SegmentVehicles:
    """Vehicles by (track id, state): state 'stopped', 'moving', 'slow' (neither) or '?'."""
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    states = [r[1] for r in rows]
    return SegmentVehicles(
        segment_id=SEG,
        track_ids=ids,
        class_ids=np.array([int(CAR)] * len(rows), dtype=np.int64),
        known=np.array([s != "?" for s in states], dtype=np.bool_),
        stopped=np.array([s == "stopped" for s in states], dtype=np.bool_),
        moving=np.array([s == "moving" for s in states], dtype=np.bool_),
        in_queue=np.array([int(i) in in_queue for i in ids], dtype=np.bool_),
        locations=np.full((len(rows), 2), 0.25),
        queue_m=queue_m,
    )


def play(m: CameraIncidents, frames: list[tuple[float, SegmentVehicles]]) -> list[IncidentEvent]:
    events: list[IncidentEvent] = []
    for t, veh in frames:
        m.on_frame(at(t), [veh])
        events += m.take()
    return events


def test_a_vehicle_stopped_outside_a_queue_raises_after_the_hold_and_ends_when_it_moves() -> None:
    m = machine()
    frames = [(t, vehicles([(5, "moving"), (9, "moving")])) for t in (0.0, 1.0)]
    frames += [(float(t), vehicles([(5, "stopped"), (9, "moving")])) for t in range(2, 13)]
    frames += [(13.0, vehicles([(5, "?"), (9, "moving")]))]  # unknown speed: nothing changes
    frames += [(14.0, vehicles([(5, "slow"), (9, "moving")]))]  # not moving yet
    frames += [(15.0, vehicles([(5, "moving"), (9, "moving")]))]
    start, end = play(m, frames)
    assert (start.phase, start.at, start.incident.started_at) == (
        IncidentPhase.START,
        at(12),
        at(2),
    )
    inc = start.incident
    assert (inc.kind, inc.track_id, inc.vehicle_class, inc.value) == (
        IncidentKind.STOPPED_VEHICLE, 5, CAR, 10.0,
    )  # fmt: skip
    assert start.active == (inc,)
    assert (end.phase, end.incident.ended_at, end.incident.duration_s) == (
        IncidentPhase.END, at(15), 13.0,
    )  # fmt: skip
    assert end.incident.incident_id == inc.incident_id
    assert end.active == ()
    assert m.open_incidents() == []


def test_a_wait_is_broken_by_a_move_a_queue_or_a_jam() -> None:
    m = machine()
    frames = [(float(t), vehicles([(5, "stopped")])) for t in range(0, 8)]
    frames += [(8.0, vehicles([(5, "slow")]))]  # slow but not stopped: the wait restarts
    frames += [(float(t), vehicles([(5, "stopped")])) for t in range(9, 18)]
    frames += [(18.0, vehicles([(5, "stopped")], in_queue=(5,)))]  # joins the stop-line queue
    frames += [(float(t), vehicles([(5, "stopped")])) for t in range(19, 28)]
    jam = [(5, "stopped"), (6, "stopped"), (7, "stopped"), (8, "moving"), (9, "moving")]
    frames += [(28.0, vehicles(jam))]  # three of five stopped: a jam, not an incident
    frames += [(float(t), vehicles([(5, "stopped")])) for t in range(29, 38)]
    assert play(m, frames) == []
    (start,) = play(m, [(39.0, vehicles([(5, "stopped")]))])
    assert start.incident.started_at == at(29)


def test_a_track_ending_ends_its_incident_and_overlaps_take_slots() -> None:
    m = machine(stopped_after_s=2.0)
    events = play(m, [(float(t), vehicles([(1, "stopped"), (2, "stopped")])) for t in range(4)])
    assert [(e.incident.track_id, e.incident.slot) for e in events] == [(1, 0), (2, 1)]
    assert [len(e.active) for e in events] == [1, 2]
    m.tracks_ended(at(5), [1])
    (end,) = m.take()
    assert (end.phase, end.incident.track_id, end.incident.ended_at) == (
        IncidentPhase.END, 1, at(5),
    )  # fmt: skip
    assert [i.track_id for i in end.active] == [2]
    events = play(m, [(float(t), vehicles([(3, "stopped")])) for t in range(6, 9)])
    assert [e.incident.slot for e in events] == [0]  # slot 0 is free again


def test_open_incidents_are_bounded() -> None:
    m = machine(stopped_after_s=1.0, max_active_per_camera=2)
    rows = [(i, "stopped") for i in range(1, 4)] + [(i, "moving") for i in range(4, 8)]
    events = play(m, [(0.0, vehicles(rows)), (1.0, vehicles(rows))])
    assert len(events) == 2
    assert m.dropped == 1


def test_wrong_way_once_per_track_until_it_ends() -> None:
    m = machine()
    m.on_wrong_way(at(1), SEG, TrackId(4), MOTO, location=(0.2, 0.3), detail="against")
    m.on_wrong_way(at(2), SEG, TrackId(4), MOTO, location=(0.2, 0.2), detail="again")
    (start,) = m.take()
    assert (start.incident.kind, start.incident.track_id, start.incident.location) == (
        IncidentKind.WRONG_WAY, 4, (0.2, 0.3),
    )  # fmt: skip
    m.tracks_ended(at(3), [4])
    (end,) = m.take()
    assert (end.phase, end.incident.duration_s) == (IncidentPhase.END, 2.0)
    machine(kinds=("stopped_vehicle",)).on_wrong_way(
        at(1), SEG, TrackId(4), MOTO, location=None, detail=""
    )


def test_spillback_holds_then_clears() -> None:
    m = machine()
    queue = [0.0, 41.0, 45.0, 30.0, 42.0, 43.0, 44.0, 45.0, 46.0, 20.0, 41.0, 10.0, 10.0, 10.0]
    queue += [10.0]
    events = play(m, [(float(t), vehicles([], queue_m=q)) for t, q in enumerate(queue)])
    start, end = events
    # over the 40 m point from t=4 (t=1..2 was too short), held 4 s at t=8
    assert (start.at, start.incident.started_at, start.incident.value) == (at(8), at(4), 46.0)
    assert start.incident.location == (0.5, 0.9)
    # short of it from t=11 (t=9 was interrupted at t=10), cleared 3 s later
    assert (end.at, end.incident.ended_at) == (at(14), at(11))


def window(start_s: float, density: float, *, stale: bool = False, partial: bool = False) -> Any:
    return SegmentMetrics(
        site_id=SiteId("site"), camera_id=CameraId("cam"), segment_id=SEG,
        window_start=at(start_s), window_end=at(start_s + 10), frames=0 if stale else 50,
        vehicles=0.0, vehicles_by_class={}, pcu=0.0, density_pcu_km_lane=density,
        occupancy=0.0, flow_veh_h=0.0, flows=(), queue_m=None, queue_max_m=None,
        los=LevelOfService.A, congested=False, stale=stale,
        observed_s=3.0 if partial else 10.0, partial=partial,
    )  # fmt: skip


def test_density_jump_against_the_baseline() -> None:
    m = machine(density_baseline_windows=3, density_jump_pcu_km_lane=10.0, density_jump_ratio=2.0)
    m.on_windows([window(0, 50.0), window(10, 6.0)])  # baseline still learning: no jump
    m.on_windows([window(20, 8.0), window(30, 40.0, partial=True), window(40, 0.0, stale=True)])
    assert m.take() == []
    # baseline (50 + 6 + 8) / 3 = 21.3: the trigger is max(21.3 + 10, 2 * 21.3) = 42.7
    m.on_windows([window(50, 42.0), window(60, 7.0), window(70, 4.0), window(80, 3.0)])
    assert m.take() == []
    # baseline now (7 + 4 + 3) / 3 = 4.67: trigger max(14.67, 9.33) = 14.67
    m.on_windows([window(90, 20.0), window(100, 60.0), window(110, 14.0)])
    start, end = m.take()
    assert (start.incident.started_at, start.at, start.incident.value) == (at(90), at(100), 20.0)
    assert (end.incident.ended_at, end.at) == (at(110), at(120))
    # the jump's windows did not enter the baseline: 14 joins it after the end
    m.on_windows([window(120, 18.0)])
    (again,) = m.take()
    assert again.incident.value == 18.0


W, H = 640, 320
ORIGIN = datetime(2024, 5, 1, 7, 0, 0, tzinfo=UTC)


def config(**segment: Any) -> AtcsConfig:
    raw: dict[str, Any] = {
        "site": {"id": "site"},
        "cameras": [{"id": "cam", "source": "clip.mp4"}],
        "segments": [
            {
                "id": "road",
                "camera": "cam",
                "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
                "length_m": 50.0,
                "lanes": 2,
                **segment,
            },
        ],
        "lines": [
            {
                "id": "count",
                "camera": "cam",
                "segment": "road",
                "points": [[0.0, 0.5], [1.0, 0.5]],
                "approach_direction": "forward",
            },
        ],
        "analysis": {"window_s": 10.0, "crossing_confirm_frames": 2},
        "incidents": {"stopped_after_s": 3.0},
    }
    return AtcsConfig.model_validate(raw)


def frame(boxes: list[list[float]]) -> Detections:
    return Detections(
        xyxy=np.array(boxes, dtype=np.float32).reshape(-1, 4),
        confidence=np.full(len(boxes), 0.9, dtype=np.float32),
        class_id=np.full(len(boxes), int(CAR), dtype=np.int64),
    )


def test_analyzer_raises_a_stopped_vehicle_without_a_metre_scale() -> None:
    an = CameraAnalyzer.from_config(config(), "cam", W, H, ORIGIN)
    parked = [100.0, 200.0, 160.0, 240.0]  # still; a second car passes by
    events: list[IncidentEvent] = []
    for k in range(30):  # 6 s at 5 frames/s
        passing = [400.0 + 6 * k, 40.0 + 8 * k, 460.0 + 6 * k, 80.0 + 8 * k]
        an.update(k, ORIGIN + timedelta(seconds=0.2 * k), 0.2 * k, frame([parked, passing]))
        events += an.take_events().incidents
    (start,) = events
    assert start.incident.kind is IncidentKind.STOPPED_VEHICLE
    assert start.incident.location == pytest.approx((130 / W, 240 / H))
    # stopped from its second frame (the first has no speed), raised 3 s later
    assert start.incident.started_at == ORIGIN + timedelta(seconds=0.2)
    assert start.at == ORIGIN + timedelta(seconds=3.2)


def test_analyzer_raises_wrong_way_on_a_one_way_segment_only() -> None:
    for one_way, expected in ((True, [IncidentPhase.START, IncidentPhase.END]), (False, [])):
        an = CameraAnalyzer.from_config(config(one_way=one_way), "cam", W, H, ORIGIN)
        events: list[IncidentEvent] = []
        for k in range(12):  # upwards across the line: backward, against its approach
            y = 280.0 - 20 * k
            an.update(
                k, ORIGIN + timedelta(seconds=0.2 * k), 0.2 * k, frame([[300, y - 40, 340, y]])
            )
            events += an.take_events().incidents
        for k in range(12, 24):  # the track is gone: it ends after track_max_age_s
            an.update(k, ORIGIN + timedelta(seconds=0.2 * k), 0.2 * k, frame([]))
            events += an.take_events().incidents
        assert [e.phase for e in events] == expected
        if expected:
            assert events[0].incident.kind is IncidentKind.WRONG_WAY
            assert "against the one-way traffic" in events[0].incident.detail


def test_config_refuses_a_spillback_point_without_a_stop_line() -> None:
    with pytest.raises(ValueError, match="spillback_point: needs a stop_line"):
        config(spillback_point=[0.5, 0.9])
    cfg = config(spillback_point=[0.5, 0.9], stop_line=[[0, 0.1], [1, 0.1]])
    an = CameraAnalyzer.from_config(cfg, "cam", W, H, ORIGIN)
    (geom,) = an.segments
    # the polygon's far edge (y = 1) is 50 m from the stop line (y = 0.1): 0.9 of the way
    assert geom.spillback_m == pytest.approx(50.0 * 0.8 / 0.9)
