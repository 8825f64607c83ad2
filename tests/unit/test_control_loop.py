"""The engine-facing control loop: config wiring, thread-safe inputs, isolation, snapshots."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from atcs.bus.messages import AckResult, OverrideAction, PlanAck
from atcs.bus.override_state import OverrideState
from atcs.config import AtcsConfig, parse_config
from atcs.control import ControlLoop, ControlSettings, PlanState, Source
from atcs.errors import ControlError
from atcs.types import (
    CameraId,
    CameraState,
    CameraStatus,
    IntersectionId,
    PhaseId,
    PlanMode,
    SegmentId,
    TimingPlan,
    VehicleClass,
)
from controllers import check
from tests.unit.test_control_supervisor import IX, T0, flow, ix_config, override, window

IX2 = IntersectionId("ix-2")


def config(tmp_path: Path) -> AtcsConfig:
    segment = {"polygon": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]], "length_m": 50.0, "lanes": 2}
    second = ix_config().model_dump(mode="json")
    second["id"] = IX2
    raw: dict[str, Any] = {
        "site": {"id": "demo", "timezone": "UTC"},
        "cameras": [{"id": "cam-n", "source": "n.mp4"}, {"id": "cam-e", "source": "e.mp4"}],
        "segments": [
            {"id": "n-in", "camera": "cam-n", "movement": "opposed", **segment},
            {"id": "n-out", "camera": "cam-n", **segment},
            {"id": "e-in", "camera": "cam-e", **segment},
        ],
        "intersections": [ix_config().model_dump(mode="json"), second],
    }
    return parse_config(raw, tmp_path, environ={})


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def make_loop(tmp_path: Path, published: list[TimingPlan], **kw: Any) -> tuple[ControlLoop, Clock]:
    clock = Clock()
    loop = ControlLoop.from_config(config(tmp_path), published.append, clock=clock, **kw)
    return loop, clock


def feed(loop: ControlLoop, at: datetime) -> None:
    loop.on_metrics([window("n-in", at), window("e-in", at), window("n-out", at)])


def test_from_config_builds_a_supervisor_per_intersection_with_the_config_inputs(
    tmp_path: Path,
) -> None:
    published: list[TimingPlan] = []
    loop, _clock = make_loop(tmp_path, published)
    assert loop.intersections == (IX, IX2)
    board = loop.supervisor(IX).board
    loop.on_metrics(
        [window("n-in", T0, flow_veh_h=720.0, flows=[flow(VehicleClass.MOTORCYCLE, 720.0)])]
    )
    loop.on_metrics([window("e-in", T0)])
    assert board.measures(T0)[PhaseId("north")].flow_pcu_h == pytest.approx(720 * 0.40)  # opposed
    assert board.camera_of(SegmentId("e-in")) == CameraId("cam-e")
    with pytest.raises(ControlError, match="no intersection 'ix-9'"):
        loop.supervisor(IntersectionId("ix-9"))
    plans = loop.tick()  # the injected clock
    assert sorted(p.intersection_id for p in plans) == [IX, IX2]
    assert all(p.valid_from == T0 for p in plans)
    assert published == plans
    assert loop.counters().plans_published == 2


def test_acks_and_overrides_from_another_thread_wait_for_the_tick(tmp_path: Path) -> None:
    published: list[TimingPlan] = []
    loop, clock = make_loop(tmp_path, published)
    feed(loop, T0)
    [first, _] = loop.tick()
    clock.advance(1.0)

    def network_thread() -> None:
        loop.on_ack(PlanAck(IX, first.plan_id, AckResult.APPLIED, controller_id="tsc-1"))
        loop.on_override(override(OverrideAction.HOLD))

    worker = threading.Thread(target=network_thread)
    worker.start()
    worker.join()
    state = loop.state()[IX]
    assert state.running is not None
    assert state.running.state is PlanState.SENT  # not applied before the tick
    assert state.override is None
    published.clear()
    [held] = loop.tick()
    state = loop.state()[IX]
    assert state.override is not None
    assert state.source is Source.HOLD
    assert state.override.who == "operator-7"
    assert next(p for p in state.plans if p.plan is first).state is PlanState.APPLIED
    assert held.mode is PlanMode.MANUAL
    assert held.phases == first.phases
    assert published == [held]
    assert loop.counters().acks == 1
    assert loop.counters().overrides == 1


def test_override_states_leave_at_start_and_on_each_change(tmp_path: Path) -> None:
    loop, clock = make_loop(tmp_path, [])
    states: list[OverrideState] = []
    loop.on_override_state(states.append)
    feed(loop, T0)
    loop.tick()
    assert [(o.intersection_id, o.in_force) for o in states] == [(IX, False), (IX2, False)]
    states.clear()
    loop.tick(clock.advance(1.0))
    assert states == []  # nothing changed
    loop.on_override(override(OverrideAction.HOLD))
    at = clock.advance(1.0)
    loop.tick()
    assert [(o.intersection_id, o.action, o.who, o.since, o.at) for o in states] == [
        (IX, OverrideAction.HOLD, "operator-7", at, at)
    ]
    assert states[0].greens_s  # the held plan's greens
    states.clear()
    loop.on_override(override(OverrideAction.RELEASE, why="cleared"))
    loop.tick(clock.advance(1.0))
    assert [(o.intersection_id, o.in_force) for o in states] == [(IX, False)]


def test_messages_for_unknown_intersections_or_plans_are_logged_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    published: list[TimingPlan] = []
    loop, _clock = make_loop(tmp_path, published)
    loop.tick()
    ghost = IntersectionId("ix-ghost")
    loop.on_ack(PlanAck(ghost, "p-1", AckResult.APPLIED))
    loop.on_ack(PlanAck(IX, "p-unknown", AckResult.REJECTED, reason="no"))
    loop.on_override(override(OverrideAction.RELEASE, intersection_id=ghost))
    loop.on_override(override(OverrideAction.FIXED, plan_name="nope"))
    with caplog.at_level(logging.WARNING):
        assert loop.tick() == []
    assert "ack for unknown intersection 'ix-ghost' rejected; known: ix-1, ix-2" in caplog.text
    assert "override for unknown intersection 'ix-ghost' rejected" in caplog.text
    assert "unknown plan id 'p-unknown'" in caplog.text
    assert "unknown plan 'nope'" in caplog.text
    counts = loop.counters()
    assert counts.rejected["planack"] == 2
    assert counts.rejected["override"] == 2


def test_texts_from_the_bus_reach_logs_and_events_bounded_and_on_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    published: list[TimingPlan] = []
    loop, _clock = make_loop(tmp_path, published)
    [first, _] = loop.tick()
    loop.on_ack(PlanAck(IntersectionId("g" * 10_000), "p-1", AckResult.APPLIED))
    loop.on_override(override(OverrideAction.HOLD, who="eve\nFORGED", why="why\r\x1b[2J"))
    rejected = "forged\n" + "x" * 5000
    loop.on_ack(
        PlanAck(IX, first.plan_id, AckResult.REJECTED, controller_id="c\n1", reason=rejected)
    )
    with caplog.at_level(logging.INFO):
        loop.tick()
    lines = [r.getMessage() for r in caplog.records]
    assert all("\n" not in line and "\x1b" not in line for line in lines), lines
    assert all(len(line) < 2300 for line in lines), max(map(len, lines))
    ghost = next(line for line in lines if "unknown intersection" in line)
    assert "g" * 100 + "…(+9900 chars)" in ghost
    events = [e.text for e in loop.state()[IX].history]
    assert any("eve\\x0aFORGED" in text for text in events), events


def test_a_plan_from_an_unknown_controller_is_rejected(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    published: list[TimingPlan] = []
    loop, _clock = make_loop(tmp_path, published)
    loop.tick()
    sample = published[0]
    fields = {name: getattr(sample, name) for name in TimingPlan.__dataclass_fields__}
    loop.adopt(TimingPlan(**{**fields, "controller": "scats", "plan_id": "foreign"}))
    with caplog.at_level(logging.WARNING):
        loop.tick()
    assert "comes from unknown controller 'scats'" in caplog.text
    assert loop.counters().rejected["timingplan"] == 1
    assert loop.state()[sample.intersection_id].running.plan is sample  # type: ignore[union-attr]


def test_the_inbox_is_bounded_and_drops_the_oldest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    published: list[TimingPlan] = []
    loop, _clock = make_loop(tmp_path, published)
    small = ControlLoop([loop.supervisor(IX)], published.append, clock=_clock, inbox_max=3)
    small.tick()
    with caplog.at_level(logging.WARNING):
        for i in range(5):
            small.on_ack(PlanAck(IX, f"p-{i}", AckResult.APPLIED))
    assert small.counters().inbox_dropped == 2
    assert "control inbox full" in caplog.text
    small.tick()
    assert small.counters().acks == 3


def test_operator_commands_are_never_dropped_behind_acks(tmp_path: Path) -> None:
    published: list[TimingPlan] = []
    loop, clock = make_loop(tmp_path, published)
    small = ControlLoop([loop.supervisor(IX)], published.append, clock=clock, inbox_max=3)
    small.tick()
    for i in range(500):
        small.on_ack(PlanAck(IX, f"bogus-{i}", AckResult.REJECTED, "flood"))
        if i == 250:
            small.on_override(override(OverrideAction.HOLD, who="Kompol Sari"))
    small.tick()
    state = small.state()[IX]
    assert state.override is not None
    assert state.override.who == "Kompol Sari"
    counts = small.counters()
    assert counts.overrides == 1
    assert counts.inbox_dropped == 497
    # a full operator queue refuses the newest command, and keeps the waiting ones
    for i in range(4):
        small.on_override(override(OverrideAction.RELEASE, why=f"r{i}"))
    assert small.counters().operator_refused_full == 1
    small.tick()
    assert small.counters().overrides == 4


def test_a_failing_publisher_does_not_stop_control(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[TimingPlan] = []

    def flaky(plan: TimingPlan) -> None:
        seen.append(plan)
        if plan.intersection_id == IX:
            raise RuntimeError("sink is broken")

    clock = Clock()
    loop = ControlLoop.from_config(config(tmp_path), flaky, clock=clock)
    with caplog.at_level(logging.ERROR):
        plans = loop.tick()
    assert len(plans) == 2
    assert len(seen) == 2
    assert loop.counters().publish_failures == 1
    assert loop.counters().plans_published == 1
    assert "publishing plan" in caplog.text


def test_camera_health_reaches_every_intersection(tmp_path: Path) -> None:
    published: list[TimingPlan] = []
    loop, clock = make_loop(tmp_path, published, settings=ControlSettings(decision_lead_s=5))
    feed(loop, T0)
    loop.tick()
    assert all(p.mode is PlanMode.ADAPTIVE for p in published)
    published.clear()
    clock.advance(5.0)
    feed(loop, clock.now)
    loop.on_camera_status(CameraStatus(CameraId("cam-e"), CameraState.OFFLINE, 0.0, None))
    plans = loop.tick()
    assert sorted(p.intersection_id for p in plans) == [IX, IX2]
    assert all(p.mode is PlanMode.FALLBACK for p in plans)
    assert all("camera cam-e is offline" in p.reason for p in plans)


def test_inputs_from_many_threads_while_ticking(tmp_path: Path) -> None:
    published: list[TimingPlan] = []
    loop, clock = make_loop(tmp_path, published)
    stop = threading.Event()
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            i = 0
            while not stop.is_set():
                i += 1
                feed(loop, clock.now)
                loop.on_ack(PlanAck(IX, f"p-{i}", AckResult.APPLIED))
                action = OverrideAction.HOLD if i % 2 else OverrideAction.RELEASE
                loop.on_override(override(action))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    running: dict[IntersectionId, TimingPlan | None] = {IX: None, IX2: None}
    for _ in range(400):
        before = {ix: loop.supervisor(ix).running for ix in running}
        for plan in loop.tick(clock.advance(0.5)):
            after = loop.supervisor(plan.intersection_id).running
            base = (
                after if after is not None and after is not plan else before[plan.intersection_id]
            )
            spec = loop.supervisor(plan.intersection_id).spec
            assert check(spec, plan, base) == []
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert loop.counters().tick_failures == 0
    assert loop.counters().overrides > 0
    assert any(p.mode is PlanMode.MANUAL for p in published)
