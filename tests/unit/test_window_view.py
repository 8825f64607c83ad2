"""The phase view ``windows``: detected vehicles measured as the live service's windows."""

from __future__ import annotations

import pytest

from atcs.control.zones import zone_from_measures
from atcs.errors import SimulationError
from atcs.sim.specs import CameraZone, SegmentLanes
from atcs.sim.window_view import WindowZones, check_phase_view
from atcs.types import SegmentId
from controllers.phase.observe import ZoneSnapshot, ZoneVehicle

N_IN, E_OUT = SegmentId("n-in"), SegmentId("e-out")


def _segment(seg_id: SegmentId, *, exit_zone: bool) -> SegmentLanes:
    zone = CameraZone("l_0", ("l_0",), 0.0, 60.0, 60.0)
    return SegmentLanes(seg_id, ("l_0",), (zone,), exit_zone)


def _zone(seg_id: SegmentId, *vehicles: tuple[float, float]) -> ZoneSnapshot:
    return ZoneSnapshot(seg_id, tuple(ZoneVehicle(d, v, 1.0) for d, v in vehicles), 60.0, 1)


def _windows(window_s: float = 10.0) -> WindowZones:
    segments = [_segment(N_IN, exit_zone=False), _segment(E_OUT, exit_zone=True)]
    return WindowZones(segments, window_s)


def test_nothing_is_known_before_the_first_window_closes() -> None:
    view = _windows()
    view.add(1.0, {N_IN: _zone(N_IN, (2.0, 0.0))})
    assert view.view(1.0).zones == {}


def test_a_window_is_the_mean_of_its_steps_and_lags_until_the_next_closes() -> None:
    view = _windows(window_s=2.0)
    queue = _zone(N_IN, (1.0, 0.0), (8.0, 0.0), (15.0, 0.0), (22.0, 0.0))
    view.add(1.0, {N_IN: queue})
    view.add(2.0, {N_IN: queue})
    view.add(3.0, {N_IN: queue})  # closes 1..3 s: four queued vehicles
    first = view.view(3.0).zones[N_IN]
    assert len(first.vehicles) == 4
    assert all(v.halted for v in first.vehicles)
    gone = _zone(N_IN)
    view.add(4.0, {N_IN: gone})
    assert len(view.view(4.0).zones[N_IN].vehicles) == 4  # the newest window still says so
    view.add(5.0, {N_IN: gone})
    assert view.view(5.0).zones[N_IN].vehicles == ()


def test_the_queue_is_measured_from_the_stop_line_as_live() -> None:
    view = _windows(window_s=1.0)
    # the head has left (moving at 6 m/s), three stand further back: no queue at the line
    discharging = _zone(N_IN, (2.0, 6.0), (30.0, 0.0), (37.0, 0.0), (44.0, 0.0))
    view.add(0.0, {N_IN: discharging})
    view.add(1.0, {N_IN: discharging})
    zone = view.view(1.0).zones[N_IN]
    assert len(zone.vehicles) == 4
    assert not any(v.halted for v in zone.vehicles)  # spread as moving at the mean speed
    assert all(v.speed_m_s == pytest.approx(1.5) for v in zone.vehicles)


def test_an_exit_is_queued_only_when_its_mean_speed_is_below_walking_pace() -> None:
    view = _windows(window_s=1.0)
    view.add(0.0, {E_OUT: _zone(E_OUT, (3.0, 10.0), (9.0, 9.0))})
    view.add(1.0, {E_OUT: _zone(E_OUT, (3.0, 10.0), (9.0, 9.0))})
    assert not any(v.halted for v in view.view(1.0).zones[E_OUT].vehicles)
    view.add(2.0, {E_OUT: _zone(E_OUT, (3.0, 0.0), (9.0, 0.5))})
    assert all(v.halted for v in view.view(2.0).zones[E_OUT].vehicles)


def test_a_down_camera_or_an_unseen_segment_has_no_zone() -> None:
    view = _windows(window_s=1.0)
    view.add(0.0, {N_IN: _zone(N_IN, (1.0, 0.0)), E_OUT: _zone(E_OUT)})
    view.add(1.0, {N_IN: _zone(N_IN, (1.0, 0.0))})
    assert set(view.view(1.0).zones) == {N_IN, E_OUT}
    assert set(view.view(1.0, down={N_IN}).zones) == {E_OUT}
    view.add(2.0, {E_OUT: _zone(E_OUT)})  # the approach's camera saw nothing this window
    assert set(view.view(2.0).zones) == {E_OUT}


def test_bad_settings_are_refused() -> None:
    assert check_phase_view("windows") == "windows"
    with pytest.raises(SimulationError, match="unknown phase view"):
        check_phase_view("oracle")
    with pytest.raises(SimulationError, match="must be positive"):
        _windows(window_s=0.0)


def test_an_exit_without_queue_or_speed_is_not_taken_as_jammed() -> None:
    approach = zone_from_measures(
        N_IN, vehicles=3.0, pcu=3.0, queue_m=None, speed_kmh=None, length_m=60.0, lanes=1
    )
    assert all(v.halted for v in approach.vehicles)  # waiting at a signal
    leaving = zone_from_measures(
        E_OUT,
        vehicles=3.0,
        pcu=3.0,
        queue_m=None,
        speed_kmh=None,
        length_m=60.0,
        lanes=1,
        exit_zone=True,
    )
    assert len(leaving.vehicles) == 3
    assert not any(v.halted for v in leaving.vehicles)
