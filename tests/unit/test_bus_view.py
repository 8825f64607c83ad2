"""The phase view ``bus``: each second's vehicles delivered late, some lost, windows when stale."""

from __future__ import annotations

import pytest

from atcs.errors import SimulationError
from atcs.sim.bus_view import BusZones
from atcs.sim.camera_errors import PERFECT, CameraErrors
from atcs.sim.loop import bus_view
from atcs.sim.setup import LoopOptions
from atcs.sim.window_view import check_phase_view
from tests.unit.test_window_view import E_OUT, N_IN, _windows, _zone


def test_without_age_or_loss_a_decision_sees_the_step_just_ended() -> None:
    bus = BusZones(_windows(), age_s=0.0, loss=0.0)
    for t in (1.0, 2.0, 3.0):
        zone = _zone(N_IN, *[(7.0 * k, 0.0) for k in range(int(t))])
        bus.add(t, {N_IN: zone})
        assert bus.view(t).zones == {N_IN: zone}
    assert (bus.sent, bus.lost, bus.from_windows) == (3, 0, 0)


def test_a_zone_arrives_age_s_late() -> None:
    bus = BusZones(_windows(), age_s=1.0, loss=0.0)
    first, second = _zone(N_IN, (1.0, 0.0)), _zone(N_IN, (1.0, 0.0), (8.0, 0.0))
    bus.add(1.0, {N_IN: first})
    assert bus.view(1.0).zones == {}  # in flight; no window has closed yet either
    bus.add(2.0, {N_IN: second})
    assert bus.view(2.0).zones == {N_IN: first}
    assert bus.view(3.0).zones == {N_IN: second}


def test_lost_zones_leave_the_last_one_until_it_is_stale_then_the_windows_take_over() -> None:
    bus = BusZones(_windows(window_s=1.0), age_s=0.0, loss=0.0, stale_s=2.0)
    seen = _zone(N_IN, (1.0, 0.0), (8.0, 0.0))
    bus.add(1.0, {N_IN: seen, E_OUT: _zone(E_OUT)})
    bus.add(2.0, {N_IN: seen, E_OUT: _zone(E_OUT)})
    bus.loss = 0.999_999  # every later message is lost
    bus.add(3.0, {N_IN: _zone(N_IN)})
    assert bus.view(3.0).zones[N_IN] is seen  # captured 1 s ago: still fresh
    bus.add(4.0, {N_IN: _zone(N_IN)})
    assert bus.view(4.0).zones[N_IN] is seen  # 2 s: the limit
    queue = _zone(N_IN, (1.0, 0.0), (8.0, 0.0), (15.0, 0.0))
    bus.add(5.0, {N_IN: queue})  # lost too, but measured in the window that ends now
    from_windows = bus.view(5.0).zones[N_IN]  # 3 s old: the window (4..5 s) instead
    assert from_windows is not seen
    assert len(from_windows.vehicles) == 3
    assert all(v.halted for v in from_windows.vehicles)
    assert bus.lost == 3
    assert bus.from_windows == 1
    assert E_OUT not in bus.view(5.0).zones  # stale, and its camera saw nothing in the window


def test_the_loss_rate_is_drawn_from_the_seed() -> None:
    def lost(seed: int) -> int:
        bus = BusZones(_windows(), age_s=1.0, loss=0.2, seed=seed)
        for t in range(1, 2001):
            bus.add(float(t), {N_IN: _zone(N_IN)})
        return bus.lost

    assert lost(1) == lost(1)
    assert 300 <= lost(1) <= 500  # 20 % of 2 000, within about five standard deviations
    assert lost(1) != lost(2)


def test_the_run_builds_its_bus_view_on_its_own_seed_not_the_cameras() -> None:
    def lost(seed: int, perfect: bool) -> int:
        errors = PERFECT if perfect else CameraErrors(seed=seed)
        options = LoopOptions(errors=errors, phase_view="bus", zone_loss=0.2, seed=seed)
        bus = bus_view(_windows(), options)
        assert bus is not None
        for t in range(1, 2001):
            bus.add(float(t), {N_IN: _zone(N_IN)})
        return bus.lost

    # perfect cameras share one seed (0): the losses still follow each run's seed
    assert lost(3, perfect=True) == lost(3, perfect=False)
    assert lost(3, perfect=True) != lost(4, perfect=True)
    assert bus_view(_windows(), LoopOptions(phase_view="windows")) is None
    assert bus_view(None, LoopOptions(phase_view="bus")) is None


def test_a_down_camera_has_no_zone_even_with_a_fresh_message() -> None:
    bus = BusZones(_windows(), age_s=0.0, loss=0.0)
    bus.add(1.0, {N_IN: _zone(N_IN, (1.0, 0.0)), E_OUT: _zone(E_OUT)})
    assert set(bus.view(1.0, down={N_IN}).zones) == {E_OUT}


def test_bad_settings_are_refused() -> None:
    assert check_phase_view("bus") == "bus"
    with pytest.raises(SimulationError, match="zone age"):
        BusZones(_windows(), age_s=-1.0, loss=0.0)
    with pytest.raises(SimulationError, match="zone loss"):
        BusZones(_windows(), age_s=1.0, loss=1.0)
