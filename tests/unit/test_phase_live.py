"""Phase-by-phase mode in the service: its config, the zones from frames and windows, the glue.

Pure code with an injected clock; the same paths on a real broker, with the reference
adapter as its own process, are in ``tests/test_phase_live_e2e.py``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from atcs.bus.feed import BusFeed
from atcs.bus.messages import MessageMeta, OverrideAction
from atcs.bus.override_state import OverrideState, encode_override_state
from atcs.bus.topics import Topics
from atcs.config import load_config
from atcs.config.bus import MqttConfig
from atcs.config.control import IntersectionConfig, intersection_spec
from atcs.config.phase_mode import signal_timing
from atcs.control import ControlLoop, PlanBook, Source
from atcs.control.frame_zones import frame_vehicles, zone_snapshot
from atcs.control.phase_live import LivePhase
from atcs.control.zones import DEFAULT_SPEED_M_S, zone_from_window
from atcs.errors import ConfigError
from atcs.metrics import FrameAnalysis
from atcs.metrics.analyzer import SegmentFrame
from atcs.signal_adapter import adapter_from_config
from atcs.types import (
    CameraId,
    CameraState,
    CameraStatus,
    Detections,
    Frame,
    FrameVehicle,
    FrameZone,
    IntersectionId,
    PhaseId,
    SegmentId,
    VehicleClass,
)
from controllers.phase.base import PhaseDecision
from controllers.phase.commands import CommandKind, ControlMode, PhaseCommand, SignalState
from controllers.phase.executor import SignalExecutor
from controllers.phase.observe import ZoneSnapshot
from controllers.phase.timing import Interval
from tests.unit.test_control_supervisor import IX, ix_config, override, window

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
TOPICS = Topics()
GEOMETRY = {SegmentId("n-in"): (60.0, 2), SegmentId("e-in"): (60.0, 1),
            SegmentId("n-out"): (60.0, 2)}  # fmt: skip
CAMERAS = {SegmentId("n-in"): CameraId("cam-n"), SegmentId("e-in"): CameraId("cam-e"),
           SegmentId("n-out"): CameraId("cam-n")}  # fmt: skip


def phase_config(**overrides: Any) -> IntersectionConfig:
    """The supervisor tests' intersection in phase mode (actuated, 3 s stale)."""
    settings = {"controller": "actuated", "state_stale_s": 3.0, **overrides.pop("phase_mode", {})}
    return ix_config(mode="phase", phase_mode=settings, **overrides)


def errors(**overrides: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        ix_config(**overrides)
    return str(caught.value)


# Config ------------------------------------------------------------------------------------


def test_cycle_mode_stays_the_default_and_phase_mode_needs_its_table() -> None:
    assert ix_config().mode == "cycle"
    assert "mode = 'phase' needs a [intersections.phase_mode] table" in errors(mode="phase")
    assert "only used with mode = 'phase'" in errors(phase_mode={"controller": "actuated"})
    text = errors(mode="phase", phase_mode={"controller": "cycle-webster"})
    assert "unknown phase controller 'cycle-webster'" in text
    for name in ("max-pressure", "greedy", "actuated", "delay-balance"):
        assert name in text  # the message lists what the registry offers
    assert phase_config().phase_mode is not None


def test_walk_and_pedestrian_clearance_must_fit_the_max_green_in_phase_mode() -> None:
    phases = ix_config().model_dump()["phases"]
    phases[1].update(pedestrian_crossing_m=12.0, walking_speed_m_s=1.0, walk_s=7.0,
                     max_green_s=25.0, min_green_s=5.0)  # fmt: skip
    plans = [{"starts_at": "00:00", "greens_s": {"north": 20.0, "east": 20.0}}]
    ok = phase_config(phases=phases, fallback_plans=plans)
    east = signal_timing(ok, "UTC").phases[1]
    assert (east.walk_s, east.ped_clear_s, east.green_floor_s) == (7.0, 12.0, 19.0)
    assert ix_config(phases=phases, fallback_plans=plans).mode == "cycle"
    # 19 s of walk + clearance does not fit an 18 s max green: the path says where
    phases[1]["max_green_s"] = 18.0
    plans = [{"starts_at": "00:00", "greens_s": {"north": 20.0, "east": 18.0}}]
    text = errors(mode="phase", phase_mode={"controller": "actuated"}, phases=phases,
                  fallback_plans=plans)  # fmt: skip
    assert "phase mode: phases[1] (east): min green / walk + clearance 19 s exceeds max" in text


def test_ite_inputs_raise_yellow_and_all_red_in_both_modes() -> None:
    phases = ix_config().model_dump()["phases"]
    phases[0].update(approach_speed_kmh=60.0, approach_grade=-0.02, clearance_width_m=24.0)
    cfg = phase_config(phases=phases)
    change = signal_timing(cfg, "UTC").changes[(PhaseId("north"), PhaseId("east"))]
    v = 60.0 / 3.6
    assert change.yellow_s == pytest.approx(1.0 + v / (2 * 3.05 - 2 * 0.02 * 9.81), abs=0.1)
    assert change.yellow_s >= 1.0 + v / (2 * 3.05 - 2 * 0.02 * 9.81)  # rounded up
    assert change.all_red_s >= (24.0 + 6.0) / v
    spec = intersection_spec(cfg, "UTC")
    assert spec.phases[0].yellow_s == change.yellow_s  # cycle plans use the same clearances
    assert signal_timing(cfg, "UTC").changes[(PhaseId("east"), PhaseId("north"))].yellow_s == 3.0


# Zones from windows -----------------------------------------------------------------------


def test_a_window_is_spread_into_queued_and_moving_vehicles() -> None:
    w = window("n-in", T0, vehicles=5.0, pcu=2.5, queue_m=14.0)
    zone = zone_from_window(w, 60.0, 2)
    halted = [v for v in zone.vehicles if v.halted]
    assert len(zone.vehicles) == 5
    assert len(halted) == 4
    assert max(v.distance_m for v in halted) <= 14.0
    assert zone.pcu == pytest.approx(2.5)
    no_queue = zone_from_window(window("n-in", T0, vehicles=3.0), 60.0, 1)
    assert all(v.halted for v in no_queue.vehicles)  # seen at a signal: waiting
    assert zone_from_window(window("n-in", T0, vehicles=0.0, pcu=0.0), 60.0, 1).vehicles == ()


# Zones from frames ------------------------------------------------------------------------


def segment_frame(segment: str, near_m: list[float] | None, speed_m_s: list[float] | None = None,
                  pcu: list[float] | None = None) -> SegmentFrame:  # fmt: skip
    """A segment's frame with the vehicles at ``near_m`` (None: no stop line)."""
    n = 0 if near_m is None else len(near_m)
    return SegmentFrame(
        segment_id=SegmentId(segment), vehicles=n, vehicles_by_class={VehicleClass.CAR: n},
        pcu=float(sum(pcu or [1.0] * n)), occupancy=0.1, queue_m=None,
        members=np.ones(n, np.bool_), member_pcu=np.asarray(pcu or [1.0] * n, np.float64),
        near_m=None if near_m is None else np.asarray(near_m, np.float64),
        speed_m_s=None if near_m is None else np.asarray(speed_m_s or [0.0] * n, np.float64),
    )  # fmt: skip


def analysed(at: datetime, *segments: SegmentFrame, camera: str = "cam-n") -> FrameAnalysis:
    """One camera's analysed frame at ``at`` holding ``segments``."""
    return FrameAnalysis(CameraId(camera), 1, at, None, Detections.empty(), segments, ())


def zone_from_frame(frame: SegmentFrame, length_m: float, lanes: int) -> ZoneSnapshot | None:
    """The zone a phase controller gets from ``frame`` (None: no stop line)."""
    vehicles = frame_vehicles(frame)
    return None if vehicles is None else zone_snapshot(frame.segment_id, vehicles, length_m, lanes)


def test_a_frame_gives_each_vehicle_its_distance_speed_and_pcu() -> None:
    frame = segment_frame("n-in", [30.0, -1.5, 12.0], [6.0, 0.2, float("nan")], [1.3, 1.0, 0.15])
    zone = zone_from_frame(frame, 60.0, 2)
    assert zone is not None
    assert (zone.segment_id, zone.length_m, zone.lanes) == ("n-in", 60.0, 2)
    # nearest first; over the line counts as at it; an unknown speed as moving
    assert [(v.distance_m, v.speed_m_s, v.pcu) for v in zone.vehicles] == [
        (0.0, pytest.approx(0.2), 1.0), (12.0, DEFAULT_SPEED_M_S, 0.15), (30.0, 6.0, 1.3)
    ]  # fmt: skip
    assert zone.halted_pcu == pytest.approx(1.0)
    assert zone_from_frame(segment_frame("n-in", None), 60.0, 2) is None  # no stop line
    assert zone_from_frame(segment_frame("n-in", []), 60.0, 2) == replace(zone, vehicles=())


# The loop's glue --------------------------------------------------------------------------


class Field:
    """The loop with one phase-mode intersection and a reference executor as the signal."""

    def __init__(self, **overrides: Any) -> None:
        self.now = T0
        self.live = LivePhase(phase_config(**overrides), "UTC", GEOMETRY,
                              segment_cameras=CAMERAS, seq_start=1000)  # fmt: skip
        self.sent: list[PhaseCommand] = []
        self.refused: list[tuple[IntersectionId, str]] = []
        self.loop = ControlLoop([], lambda plan: None, phases=[self.live],
                                send_command=self._send, clock=lambda: self.now)  # fmt: skip
        self.loop.on_command_refused(lambda ix, why, at: self.refused.append((ix, why)))
        self.signal = SignalExecutor(self.live.supervisor.timing, T0.timestamp())

    def _send(self, command: PhaseCommand) -> bool:
        self.sent.append(command)
        self.signal.receive(command, self.now.timestamp())
        return True

    def feed(self, camera_e_up: bool = True) -> None:
        windows = [window("n-in", self.now, vehicles=6.0, queue_m=20.0, camera="cam-n")]
        if camera_e_up:
            windows.append(window("e-in", self.now, vehicles=4.0, queue_m=10.0, camera="cam-e"))
        self.loop.on_metrics(windows)

    def run(self, seconds: float, *, report: bool = True, step_s: float = 0.25) -> None:
        end = self.now + timedelta(seconds=seconds)
        while self.now < end:
            self.now += timedelta(seconds=step_s)
            if report:
                self.loop.on_signal_state(self.signal.tick(self.now.timestamp()))
            self.loop.tick()

    def state(self) -> Any:
        return self.loop.state()[IX]

    def see(self, *segments: SegmentFrame, camera: str = "cam-n") -> None:
        """The engine hands over a frame of ``camera`` captured now."""
        image = np.zeros((4, 4, 3), np.uint8)
        self.loop.on_frame(Frame(CameraId(camera), 1, self.now, image), analysed(self.now,
                           *segments, camera=camera))  # fmt: skip

    def counts(self) -> dict[SegmentId, int]:
        """Vehicles per zone the controllers see now."""
        return {seg: len(z.vehicles) for seg, z in self.live.zones(self.now).items()}


def test_commands_follow_state_reports_once_a_second_within_the_envelope() -> None:
    f = Field()
    f.feed()
    f.run(2.0, report=False)
    assert f.sent == []  # nothing before the signal controller reports
    assert f.state().source is Source.FALLBACK
    assert f.state().stale == ("signal controller: no state report yet",)
    f.feed()
    f.run(10.0)
    assert 9 <= len(f.sent) <= 11  # one a second
    assert [c.seq for c in f.sent] == list(range(1001, 1001 + len(f.sent)))
    for c in f.sent:
        assert c.intersection_id == IX
        assert c.phase in ("north", "east")
        assert c.deadline_s - c.issued_s == pytest.approx(5.0)
        assert c.kind is CommandKind.SERVE_NEXT or c.until_s is not None
    state = f.state()
    assert state.source is Source.ADAPTIVE
    assert state.stale == ()
    assert state.signal is not None
    assert state.signal.controller_mode == "command"
    assert state.signal.commands_sent == len(f.sent)
    assert f.loop.counters().phase_commands_sent == len(f.sent)


def test_without_state_reports_commands_stop_and_the_intersection_falls_back() -> None:
    f = Field()
    f.feed()
    f.run(5.0)
    sent = len(f.sent)
    f.run(3.5, report=False)  # the signal controller went silent
    state = f.state()
    assert state.source is Source.FALLBACK
    assert state.stale[0].startswith("signal controller: last state 3.")
    assert state.history[-1].code == "signal_stale"
    assert len(f.sent) <= sent + 3  # within the 3 s it may still have been heard
    f.run(5.0, report=False)
    assert len(f.sent) <= sent + 3
    assert f.signal.tick(f.now.timestamp()).mode is ControlMode.LOCAL  # its deadline passed
    f.run(3.0)
    assert f.state().source is Source.ADAPTIVE
    assert len(f.sent) > sent + 3


def test_a_down_camera_puts_only_its_phases_on_recall() -> None:
    f = Field()
    f.feed()
    f.run(3.0)
    f.loop.on_camera_status(CameraStatus(CameraId("cam-e"), CameraState.OFFLINE, 0.0, None))
    f.feed(camera_e_up=False)
    f.run(2.0)
    state = f.state()
    assert state.source is Source.ADAPTIVE  # not the whole intersection to fallback
    assert state.signal is not None
    assert state.signal.recall == (PhaseId("east"),)
    assert any(e.code == "phase_recall" for e in state.history)
    # the actuated controller keeps calling the blind phase: east is served
    f.run(60.0)
    assert {c.phase for c in f.sent[-40:]} >= {PhaseId("east")}


def test_hold_stops_the_commands_until_release_and_fixed_is_refused() -> None:
    f = Field()
    f.feed()
    f.run(3.0)
    f.loop.on_override(override(OverrideAction.FIXED, plan_name="day"))
    f.run(1.0)
    assert f.loop.counters().rejected["override"] == 1
    f.loop.on_override(override(OverrideAction.HOLD))
    f.run(1.0)
    sent = len(f.sent)
    f.run(5.0)
    assert len(f.sent) == sent
    assert f.state().source is Source.HOLD
    f.loop.on_override(override(OverrideAction.RELEASE))
    f.run(3.0)
    assert len(f.sent) > sent
    assert f.state().source is Source.ADAPTIVE


class Rogue:
    """A controller that names a phase the intersection does not have."""

    name = "rogue"

    def decide(self, *args: Any) -> PhaseDecision:
        return PhaseDecision(PhaseId("south"), "no such phase")


def test_a_refused_command_never_leaves_and_is_handed_to_the_audit() -> None:
    f = Field()
    f.live.supervisor.controller = Rogue()
    f.feed()
    f.run(3.0)
    assert f.sent == []
    assert f.refused
    assert f.refused[0] == (IX, "wrong intersection or phase")
    assert f.state().last_reason_code == "command_refused"


def test_plans_and_acks_for_a_phase_intersection_are_rejected() -> None:
    f = Field()
    state = SignalState(IntersectionId("elsewhere"), T0.timestamp(), PhaseId("north"),
                        Interval.GREEN, T0.timestamp(), T0.timestamp(), None,
                        ControlMode.LOCAL, "")  # fmt: skip
    f.loop.on_signal_state(state)
    f.run(0.25, report=False)
    assert f.loop.counters().rejected["signalstate"] == 1
    assert f.loop.intersections == (IX,)
    assert f.loop.phase_intersections == (IX,)


# The room ---------------------------------------------------------------------------------


def test_the_room_shows_a_phase_intersections_signal_state_and_override() -> None:
    book = PlanBook([IX, "ix-2"], phase_mode={IX: ("actuated", 3.0)})
    now = datetime.now(UTC)
    signal = SignalExecutor(Field().live.supervisor.timing, now.timestamp() - 5.0)
    state = signal.tick(now.timestamp())
    book.on_signal_state(state)  # the room's bus checked its signature
    book.on_signal_state(replace(state, intersection_id=IntersectionId("ix-2")))
    shown = book.state()[IX]
    assert shown.signal is not None
    assert (shown.signal.phase, shown.signal.controller_mode) == ("north", "local")
    assert shown.controller == "actuated"
    # on its own plan: shown in fallback (the alarm rule reads that), with the reason
    assert shown.source is Source.FALLBACK
    assert shown.stale[0].startswith("signal controller on its time-of-day plan")
    assert book.counters().states_ignored == 1  # ix-2 runs cycle plans
    late = book.state(now + timedelta(seconds=10))[IX]
    assert late.stale[0].startswith("signal controller: last state 10.")
    # the control node's override state arrives through the room's feed
    feed = BusFeed(MqttConfig(), client_id="t", plans=True)
    feed.on_override_state(book.on_override_state)
    assert TOPICS.all_override_states() in feed._filters()
    assert TOPICS.all_states() not in feed._filters()  # states come signed, on the bus
    hold = OverrideState(IX, now, OverrideAction.HOLD, "budi", "parade", now - timedelta(0, 9))
    feed.handle(TOPICS.override_state(IX), encode_override_state(hold, MessageMeta("c", 1)))
    held = book.state()[IX]
    assert held.override is not None
    assert held.source is Source.HOLD
    assert (held.override.who, held.override.why) == ("budi", "parade")
    assert held.stale  # still shown: the controller runs its own plan
    released = OverrideState(IX, now + timedelta(seconds=1))
    feed.handle(TOPICS.override_state(IX), encode_override_state(released, MessageMeta("c", 2)))
    assert book.state()[IX].override is None
    assert book.counters().override_states == 2


def test_the_adapter_names_what_is_missing(repo_dir: Path) -> None:
    cfg = load_config(repo_dir / "config.toml")
    with pytest.raises(ConfigError, match="no intersection 'nope' in the config; known: simp"):
        adapter_from_config(cfg, "nope", controller_id="tsc-1", key_env=None)
    with pytest.raises(ConfigError, match=r"runs cycle plans: .* needs mode = 'phase'"):
        adapter_from_config(cfg, "simpang-demo", controller_id="tsc-1", key_env=None)


def test_a_fresh_frame_is_preferred_to_the_window_until_it_is_stale() -> None:
    f = Field()
    f.feed()  # windows: 6 vehicles on n-in, 4 on e-in
    assert f.counts() == {"n-in": 6, "e-in": 4}
    f.see(segment_frame("n-in", [2.0, 9.0], [0.0, 5.0]), segment_frame("n-out", [40.0], [7.0]))
    zones = f.live.zones(f.now)
    assert [(v.distance_m, v.halted) for v in zones[SegmentId("n-in")].vehicles] == [
        (2.0, True), (9.0, False)
    ]  # fmt: skip
    assert [v.distance_m for v in zones[SegmentId("n-out")].vehicles] == [40.0]  # from the mouth
    assert f.counts() == {"n-in": 2, "e-in": 4, "n-out": 1}
    f.now += timedelta(seconds=2.0)  # frame_stale_s: still fresh
    assert f.counts()[SegmentId("n-in")] == 2
    f.now += timedelta(seconds=0.5)  # older than 2 s: back to the window
    assert f.counts() == {"n-in": 6, "e-in": 4}
    f.see(segment_frame("n-in", [5.0]))
    old = analysed(f.now - timedelta(seconds=1), segment_frame("n-in", [1.0, 2.0, 3.0]))
    f.loop.on_frame(Frame(CameraId("cam-n"), 0, old.at, np.zeros((4, 4, 3), np.uint8)), old)
    assert f.counts()[SegmentId("n-in")] == 1  # an older frame does not replace a newer one


def test_without_a_stop_line_or_with_the_camera_down_the_frame_is_not_used() -> None:
    f = Field()
    f.feed()
    f.see(segment_frame("n-in", None), segment_frame("unwatched", [1.0]))
    assert f.counts() == {"n-in": 6, "e-in": 4}  # no distances: the window
    f.see(segment_frame("e-in", [3.0]), camera="cam-e")
    assert f.counts() == {"n-in": 6, "e-in": 1}
    f.loop.on_camera_status(CameraStatus(CameraId("cam-e"), CameraState.OFFLINE, 0.0, None))
    f.run(0.25, report=False)  # the tick applies the camera's status
    f.see(segment_frame("e-in", [3.0]), camera="cam-e")
    assert f.counts() == {"n-in": 6}  # down: no zone, east on recall
    assert f.state().signal.recall == (PhaseId("east"),)


def test_the_frame_stale_bound_is_configured_per_intersection() -> None:
    f = Field(phase_mode={"controller": "actuated", "frame_stale_s": 0.5})
    f.see(segment_frame("n-in", [5.0]))
    assert f.counts() == {"n-in": 1}
    f.now += timedelta(seconds=0.75)
    assert f.counts() == {}  # no window either: blind


def test_zones_from_the_bus_are_kept_like_frames_newest_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="atcs.control.phase_live")
    f = Field()
    f.feed()  # windows: 6 vehicles on n-in, 4 on e-in

    def zone(seg: str, n: int, *, ago_s: float = 0.0, camera: str = "cam-n") -> FrameZone:
        vehicles = tuple(FrameVehicle(3.0 * i, None, 1.0) for i in range(n))
        return FrameZone(CameraId(camera), SegmentId(seg), f.now - timedelta(seconds=ago_s),
                         vehicles)  # fmt: skip

    def sources() -> dict[SegmentId, str]:
        f.live.zones(f.now)
        return dict(f.state().signal.zones_from)

    f.loop.on_zone_frame(zone("n-in", 2))
    assert f.counts() == {"n-in": 2, "e-in": 4}
    assert sources() == {"n-in": "frame", "e-in": "window"}
    assert f.live.zones(f.now)[SegmentId("n-in")].vehicles[0].speed_m_s == DEFAULT_SPEED_M_S
    f.loop.on_zone_frame(zone("n-in", 5, ago_s=0.5))  # older than the kept one
    f.loop.on_zone_frame(zone("n-in", 7, camera="cam-e"))  # not the segment's camera
    f.loop.on_zone_frame(zone("n-in", 8, ago_s=-10.0))  # ten seconds in the future
    f.loop.on_zone_frame(zone("unwatched", 3))
    assert f.counts() == {"n-in": 2, "e-in": 4}
    assert f.live.zones_refused == {"older": 1, "camera": 1, "future": 1}
    assert f.loop.counters().as_map()["zones_refused"] == 3  # in the node's health
    warned = [r.getMessage() for r in caplog.records]
    assert any("segment n-in from camera cam-e" in w and "gives the segment camera cam-n" in w
               for w in warned), warned  # fmt: skip
    assert any("10.0 s ahead of this node's clock" in w and "NTP" in w for w in warned), warned
    assert not any("unwatched" in w for w in warned)
    f.now += timedelta(seconds=1.0)
    f.loop.on_zone_frame(zone("n-in", 3))
    f.loop.on_zone_frame(zone("e-in", 1, camera="cam-e"))
    assert f.counts() == {"n-in": 3, "e-in": 1}
    assert sources() == {"n-in": "frame", "e-in": "frame"}
    f.now += timedelta(seconds=2.5)  # older than frame_stale_s: back to the windows
    f.feed()
    assert sources() == {"n-in": "window", "e-in": "window"}
    assert f.counts() == {"n-in": 6, "e-in": 4}
