"""The per-intersection supervisor with an injected clock: when it decides, who decides,
what reaches the signal (always inside the envelope), fallback, overrides and acks.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from atcs.bus.messages import AckResult, Override, OverrideAction, PlanAck
from atcs.config.control import IntersectionConfig, intersection_spec
from atcs.control import ControlSettings, EventKind, PlanState, Source, Supervisor
from atcs.errors import ControlError
from atcs.types import (
    CameraId,
    CameraState,
    CameraStatus,
    Direction,
    FlowCount,
    IntersectionId,
    LevelOfService,
    LineId,
    PhaseId,
    PhaseTiming,
    PlanMode,
    SegmentId,
    SegmentMetrics,
    SiteId,
    TimingPlan,
    VehicleClass,
)
from controllers import IntersectionSpec, check, next_cycle_boundary

T0 = datetime(2024, 5, 6, 1, 0, tzinfo=UTC)  # 01:00 UTC: the "night" plan of ix_config()
IX = IntersectionId("ix-1")
STALE_S = 30.0


def ix_config(**overrides: Any) -> IntersectionConfig:
    """Two phases fed by ``n-in`` and ``e-in``: min 10 s, max 60 s, 3 s yellow, 2 s all-red."""
    doc: dict[str, Any] = {
        "id": IX,
        "controller": "webster",
        "phases": [
            {
                "id": "north",
                "segments": ["n-in"],
                "exit_segments": ["n-out"],
                "min_green_s": 10.0,
                "max_green_s": 60.0,
                "saturation_flow_pcu_h": 1800.0,
            },
            {
                "id": "east",
                "segments": ["e-in"],
                "min_green_s": 10.0,
                "max_green_s": 60.0,
                "saturation_flow_pcu_h": 1800.0,
            },
        ],
        "cycle_min_s": 40.0,
        "cycle_max_s": 120.0,
        "max_cycle_step_s": 10.0,
        "max_split_step_s": 5.0,
        "stale_after_s": STALE_S,
        "fallback_plans": [
            {"starts_at": "00:00", "name": "night", "greens_s": {"north": 20.0, "east": 20.0}},
            {"starts_at": "06:00", "name": "day", "greens_s": {"north": 40.0, "east": 30.0}},
            {"starts_at": "22:00", "greens_s": {"north": 15.0, "east": 15.0}},
        ],
    }
    doc.update(overrides)
    return IntersectionConfig.model_validate(doc)


def ix_spec(**overrides: Any) -> IntersectionSpec:
    return intersection_spec(ix_config(**overrides), "UTC")


def window(
    segment: str,
    end: datetime,
    *,
    flow_veh_h: float = 600.0,
    pcu: float = 5.0,
    vehicles: float = 5.0,
    flows: Sequence[FlowCount] = (),
    queue_m: float | None = None,
    stale: bool = False,
    camera: str = "cam-1",
    window_s: float = 10.0,
) -> SegmentMetrics:
    return SegmentMetrics(
        site_id=SiteId("demo"),
        camera_id=CameraId(camera),
        segment_id=SegmentId(segment),
        window_start=end - timedelta(seconds=window_s),
        window_end=end,
        frames=0 if stale else 20,
        vehicles=0.0 if stale else vehicles,
        vehicles_by_class={},
        pcu=0.0 if stale else pcu,
        density_pcu_km_lane=0.0,
        occupancy=0.0,
        flow_veh_h=0.0 if stale else flow_veh_h,
        flows=tuple(flows),
        queue_m=queue_m,
        queue_max_m=queue_m,
        los=LevelOfService.A,
        congested=False,
        stale=stale,
    )


def flow(vehicle_class: VehicleClass, flow_veh_h: float, line: str = "l1") -> FlowCount:
    return FlowCount(
        LineId(line), vehicle_class, Direction.FORWARD, round(flow_veh_h / 360), flow_veh_h
    )


def override(action: OverrideAction, **kw: Any) -> Override:
    kw.setdefault("who", "operator-7")
    kw.setdefault("why", "incident on the north approach")
    kw.setdefault("intersection_id", IX)
    return Override(action=action, **kw)


def g(**greens_s: float) -> dict[PhaseId, float]:
    return {PhaseId(k): v for k, v in greens_s.items()}


def ack(plan: TimingPlan, result: AckResult = AckResult.APPLIED, **kw: Any) -> PlanAck:
    kw.setdefault("reason", "" if result is AckResult.APPLIED else "cannot run it")
    return PlanAck(IX, plan.plan_id, result, controller_id="tsc-1", **kw)


def greens(plan: TimingPlan) -> list[float]:
    return [p.green_s for p in plan.phases]


def is_boundary(plan: TimingPlan, running: TimingPlan, at: datetime) -> bool:
    return abs((next_cycle_boundary(running, at) - at).total_seconds()) < 1e-3


Feed = Callable[[datetime], Mapping[str, float]]
"""Flow (veh/h) per segment to report at a time; a missing segment reports nothing."""


def steady(north: float = 600.0, east: float = 300.0) -> Feed:
    return lambda _now: {"n-in": north, "e-in": east, "n-out": 2.0}


def busier(now: datetime) -> Mapping[str, float]:
    """Demand that rises after T0, so that every decision changes the plan for a while."""
    return {"n-in": 600.0 if now <= T0 else 1400.0, "e-in": 300.0}


@dataclass
class Published:
    at: datetime
    plan: TimingPlan
    running_before: TimingPlan | None


@dataclass
class Harness:
    """A supervisor, a clock it does not own, and every plan it published (all checked)."""

    spec: IntersectionSpec
    settings: ControlSettings = field(default_factory=ControlSettings)
    now: datetime = T0
    published: list[Published] = field(default_factory=list)
    feed: Feed | None = None
    window_s: float = 10.0
    sup: Supervisor = field(init=False)
    _last_window: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.sup = Supervisor(self.spec, settings=self.settings)
        self._last_window = self.now

    def tick(self) -> list[TimingPlan]:
        before = self.sup.running
        plans = self.sup.tick(self.now)
        for plan in plans:
            after = self.sup.running  # in force now: a pending plan may have started this tick
            if after is not None and after is not plan:
                before = after
            problems = check(self.spec, plan, before)
            assert problems == [], f"published plan breaks the envelope: {problems}"
            self.published.append(Published(self.now, plan, before))
        return plans

    def run(self, seconds: float, step_s: float = 1.0) -> list[TimingPlan]:
        """Advance the clock, close windows from ``feed`` and tick every ``step_s``."""
        out: list[TimingPlan] = []
        end = self.now + timedelta(seconds=seconds)
        while self.now < end:
            self.now += timedelta(seconds=step_s)
            if (self.now - self._last_window).total_seconds() >= self.window_s:
                self._last_window = self.now
                if self.feed is not None:
                    values = self.feed(self.now)
                    self.sup.on_metrics(
                        [window(s, self.now, flow_veh_h=f) for s, f in values.items()]
                    )
            out += self.tick()
        return out

    def run_until(self, predicate: Callable[[TimingPlan], bool], limit_s: float) -> Published:
        start = len(self.published)
        end = self.now + timedelta(seconds=limit_s)
        while self.now < end:
            self.run(1.0)
            for item in self.published[start:]:
                if predicate(item.plan):
                    return item
        raise AssertionError(f"no such plan within {limit_s} s: {self.published[start:]}")

    @property
    def last(self) -> TimingPlan:
        return self.published[-1].plan


def started(feed: Feed | None = None, **settings: Any) -> Harness:
    """A harness whose intersection already runs an adaptive plan on fresh measures."""
    feed = feed or steady()
    h = Harness(ix_spec(), ControlSettings(**settings), feed=feed)
    h.sup.on_metrics([window(s, h.now, flow_veh_h=f) for s, f in feed(h.now).items()])
    h.tick()
    assert h.last.mode is PlanMode.ADAPTIVE
    return h


# --- Start-up and the regular decision -----------------------------------------------------


def test_start_up_without_measures_runs_the_time_of_day_plan_at_once() -> None:
    h = Harness(ix_spec())
    [plan] = h.tick()
    assert plan.mode is PlanMode.FALLBACK
    assert plan.controller == "webster"
    assert greens(plan) == [20.0, 20.0]  # the "night" plan at 01:00 UTC
    assert plan.valid_from == T0
    assert "stale inputs" in plan.reason
    assert "no measures yet" in plan.reason
    assert h.sup.running == plan
    state = h.sup.state(h.now)
    assert state.source is Source.FALLBACK
    assert state.mode is PlanMode.FALLBACK
    assert state.running is not None
    assert state.running.state is PlanState.SENT


def test_fresh_measures_go_adaptive_at_the_next_cycle_boundary_once_per_cycle() -> None:
    h = Harness(ix_spec(), ControlSettings(decision_lead_s=5.0), feed=steady())
    [first] = h.tick()
    assert first.mode is PlanMode.FALLBACK  # cycle 50 s from T0
    assert h.run(44.0) == []  # measures arrive, but the cycle runs on until 5 s before its end
    [second] = h.run(1.0)
    assert h.now == T0 + timedelta(seconds=45)
    assert second.mode is PlanMode.ADAPTIVE
    assert second.controller == "webster"
    assert second.valid_from == T0 + timedelta(seconds=50)
    assert second.data_age_s is not None
    assert second.data_age_s <= 10.0
    # once per cycle from then on: each plan decided lead seconds before a boundary of the last
    h.run(600.0)
    decided = [p for i, p in enumerate(h.published) if i and p.plan is not h.published[i - 1].plan]
    for prev, item in itertools.pairwise(decided):
        assert is_boundary(item.plan, prev.plan, item.plan.valid_from)
        assert timedelta(seconds=4) < item.plan.valid_from - item.at <= timedelta(seconds=5)
    assert all(item.plan.mode is PlanMode.ADAPTIVE for item in decided)
    history = h.sup.state(h.now).history
    decisions = [e for e in history if e.kind in (EventKind.DECISION, EventKind.PUBLISHED)]
    cycles = [p.plan.cycle_s for p in decided]
    assert 600.0 / max(cycles) - 1 <= len(decisions) - 1 <= 600.0 / min(cycles) + 1


def test_adaptive_plans_follow_demand_within_the_step_limits() -> None:
    demand = {"north": 300.0}
    h = started(lambda _now: {"n-in": demand["north"], "e-in": 300.0})
    demand["north"] = 1200.0  # Webster wants a much longer north green and cycle
    h.run(900.0)
    plans = [p.plan for p in h.published]
    for prev, cur in itertools.pairwise(plans):
        assert abs(cur.cycle_s - prev.cycle_s) <= 10.0 + 1e-6
        for a, b in zip(prev.phases, cur.phases, strict=True):
            assert abs(a.green_s - b.green_s) <= 5.0 + 1e-6
    assert plans[-1].phases[0].green_s > plans[0].phases[0].green_s + 15.0


def test_an_unchanged_plan_is_not_resent_but_republished_periodically() -> None:
    h = Harness(ix_spec(controller="fixed"), ControlSettings(republish_every_s=300.0))
    [plan] = h.tick()
    assert h.run(299.0) == []
    decisions = [e for e in h.sup.state(h.now).history if e.kind is EventKind.DECISION]
    assert any("unchanged" in e.text for e in decisions)
    [again] = h.run(1.0)
    assert again is plan
    state = h.sup.state(h.now)
    assert state.running is not None
    assert state.running.publishes == 2


# --- Stale inputs --------------------------------------------------------------------------


def test_stale_measures_switch_to_fallback_within_stale_after_s_and_back() -> None:
    alive = {"on": True}

    def feed(now: datetime) -> Mapping[str, float]:
        return {"n-in": 900.0, "e-in": 300.0} if alive["on"] else {}

    h = started(feed)
    h.run(200.0)
    adaptive = h.last
    alive["on"] = False
    last_window = h._last_window  # the end of the last window fed
    item = h.run_until(lambda p: p.mode is PlanMode.FALLBACK, STALE_S + 20.0)
    late_s = (item.at - last_window).total_seconds()
    assert STALE_S < late_s <= STALE_S + 1.0
    assert item.plan.controller == "webster"
    assert "stale inputs" in item.plan.reason
    assert "stale after 30 s" in item.plan.reason
    assert item.running_before is not None
    assert is_boundary(item.plan, item.running_before, item.plan.valid_from)
    assert item.plan.valid_from - item.at <= timedelta(seconds=item.running_before.cycle_s)
    assert h.sup.state(h.now).stale
    h.run(120.0)  # fallback holds while the data stays away (walking to the night plan)
    assert all(p.plan.mode is PlanMode.FALLBACK for p in h.published if p.at > item.at)
    # data returns: adaptive again at the next regular decision, stepping from the fallback
    alive["on"] = True
    returned = h.now
    back = h.run_until(lambda p: p.mode is PlanMode.ADAPTIVE, 130.0)
    assert back.at - returned <= timedelta(seconds=back.running_before.cycle_s + 10.0)  # type: ignore[union-attr]
    assert not h.sup.state(h.now).stale
    assert adaptive.mode is PlanMode.ADAPTIVE


def test_stale_windows_are_skipped_so_a_dead_camera_goes_stale() -> None:
    h = started()
    # the camera is down: the analyzer closes windows with no frame (stale, zeros)
    h.feed = None
    for k in range(1, 6):
        end = h.now + timedelta(seconds=10 * k)
        h.sup.on_metrics([window("n-in", end, stale=True), window("e-in", end, stale=True)])
    item = h.run_until(lambda p: p.mode is PlanMode.FALLBACK, STALE_S + 15.0)
    assert "n-in" in item.plan.reason
    assert h.sup.board.stale_windows_skipped == 10


def test_a_camera_reported_down_switches_to_fallback_at_once() -> None:
    h = started()
    h.run(30.0)
    h.sup.on_camera_status(CameraStatus(CameraId("cam-1"), CameraState.OFFLINE, 0.0, None), h.now)
    [plan] = h.tick()
    assert plan.mode is PlanMode.FALLBACK
    assert "camera cam-1 is offline" in plan.reason
    h.sup.on_camera_status(
        CameraStatus(CameraId("cam-1"), CameraState.STREAMING, 2.0, h.now), h.now
    )
    assert h.tick() == []  # back to adaptive only at the next regular decision
    back = h.run_until(lambda p: p.mode is PlanMode.ADAPTIVE, 130.0)
    assert back.plan.controller == "webster"


# --- Overrides -----------------------------------------------------------------------------


def test_hold_keeps_the_running_timings_until_release(caplog: pytest.LogCaptureFixture) -> None:
    demand = {"north": 600.0}
    h = started(lambda _now: {"n-in": demand["north"], "e-in": 300.0})
    h.run(100.0)
    held = h.sup.running
    assert held is not None
    with caplog.at_level(logging.INFO, logger="atcs.control.supervisor"):
        h.sup.apply_override(override(OverrideAction.HOLD), h.now)
        [plan] = h.tick()
    assert plan.mode is PlanMode.MANUAL
    assert plan.controller == "manual"
    assert plan.phases == held.phases
    assert plan.cycle_s == held.cycle_s
    assert "hold by operator-7: incident on the north approach" in plan.reason
    assert "hold by operator-7" in caplog.text
    demand["north"] = 1500.0  # the controller would change the plan now
    assert h.run(250.0) == []
    state = h.sup.state(h.now)
    assert state.source is Source.HOLD
    assert state.override is not None
    assert state.override.who == "operator-7"
    assert state.running is not None
    assert state.running.plan.phases == held.phases
    h.sup.apply_override(override(OverrideAction.RELEASE, why="cleared"), h.now)
    [released] = h.tick()
    assert released.mode is PlanMode.ADAPTIVE
    assert released.phases[0].green_s == held.phases[0].green_s + 5.0  # one step at a time
    assert h.sup.state(h.now).override is None


def test_hold_outranks_stale_inputs() -> None:
    h = started()
    h.sup.apply_override(override(OverrideAction.HOLD), h.now)
    h.tick()
    h.feed = None
    assert h.run(200.0) == []
    assert h.sup.state(h.now).stale
    assert h.sup.running is not None
    assert h.sup.running.mode is PlanMode.MANUAL


def test_fixed_plan_by_name_walks_to_it_in_allowed_steps() -> None:
    h = started(lambda _now: {"n-in": 200.0, "e-in": 200.0})
    h.sup.apply_override(override(OverrideAction.FIXED, plan_name="day"), h.now)
    first = h.run_until(lambda p: p.mode is PlanMode.MANUAL, 2.0).plan
    assert first.controller == "manual"
    assert "fixed plan 'day' by operator-7" in first.reason
    h.run(600.0)
    assert greens(h.last) == [40.0, 30.0]  # reached, one allowed step per cycle
    assert all(p.plan.mode is PlanMode.MANUAL for p in h.published if p.at >= h.published[1].at)


def test_fixed_explicit_greens_and_unnamed_plan_by_start_time() -> None:
    h = started()
    h.sup.apply_override(
        override(OverrideAction.FIXED, greens_s=g(north=25.0, east=15.0)),
        h.now,
    )
    h.run(400.0)
    assert greens(h.last) == [25.0, 15.0]
    h.sup.apply_override(override(OverrideAction.FIXED, plan_name="22:00"), h.now)
    h.run(400.0)
    assert greens(h.last) == [15.0, 15.0]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (override(OverrideAction.HOLD, who=""), "without 'who'"),
        (override(OverrideAction.FIXED, plan_name="day", why="  "), "without 'why'"),
        (override(OverrideAction.FIXED), "needs either plan_name or greens_s (neither"),
        (
            override(OverrideAction.FIXED, plan_name="day", greens_s=g(north=20.0)),
            "(both given)",
        ),
        (override(OverrideAction.FIXED, plan_name="rush"), "unknown plan 'rush'; known: 'night'"),
        (
            override(OverrideAction.FIXED, greens_s=g(north=20.0)),
            "must give every phase; missing ['east']",
        ),
        (
            override(OverrideAction.FIXED, greens_s=g(north=20.0, east=20.0, west=9.0)),
            "unknown phases ['west']",
        ),
        (
            override(OverrideAction.FIXED, greens_s=g(north=90.0, east=20.0)),
            "outside the safety envelope",
        ),
        (override(OverrideAction.HOLD, plan_name="day"), "takes no plan_name"),
        (override(OverrideAction.HOLD, intersection_id=IntersectionId("ix-9")), "'ix-9'"),
    ],
)
def test_bad_overrides_are_rejected_with_a_clear_message(
    request_: Override, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    h = started()
    before = h.sup.running
    with caplog.at_level(logging.WARNING), pytest.raises(ControlError) as info:
        h.sup.apply_override(request_, h.now)
    assert message in str(info.value)
    assert "override rejected" in caplog.text
    assert message in caplog.text
    assert h.tick() == []
    assert h.sup.running is before
    assert h.sup.state(h.now).override is None
    assert h.sup.state(h.now).history[-1].kind is EventKind.REJECTED


def test_hold_with_nothing_running_is_rejected_and_release_alone_is_harmless() -> None:
    h = Harness(ix_spec())
    with pytest.raises(ControlError, match="no plan is running to hold"):
        h.sup.apply_override(override(OverrideAction.HOLD), h.now)
    h.tick()
    h.sup.apply_override(override(OverrideAction.RELEASE), h.now)
    assert h.tick() == []
    assert "no override was in force" in h.sup.state(h.now).history[-1].text


# --- Acks ----------------------------------------------------------------------------------


def test_acks_move_plans_to_applied_or_rejected() -> None:
    h = started(busier)
    first = h.last
    h.sup.on_ack(ack(first), h.now)
    assert h.sup.ack_state(first.plan_id) is PlanState.APPLIED
    pending = h.run_until(lambda p: p is not first, 130.0).plan
    assert h.sup.state(h.now).pending is not None
    h.sup.on_ack(ack(pending, AckResult.REJECTED, reason="split below local minimum"), h.now)
    state = h.sup.state(h.now)
    assert state.pending is None
    assert state.running is not None
    assert state.running.plan is first  # the signal keeps what it runs
    rejected = next(p for p in state.plans if p.plan is pending)
    assert rejected.state is PlanState.REJECTED
    assert rejected.detail == "split below local minimum"
    assert rejected.acked_by == "tsc-1"
    # the next decision publishes again (even if unchanged) so the retained plan is true
    again = h.run_until(lambda p: p is not pending, 130.0)
    assert again.running_before is first


def test_a_plan_rejected_after_it_started_reverts_to_the_previous_one() -> None:
    h = started(busier)
    first = h.last
    second = h.run_until(lambda p: p is not first, 130.0).plan
    h.now = second.valid_from + timedelta(seconds=1)
    h.tick()
    assert h.sup.running is second
    h.sup.on_ack(ack(second, AckResult.REJECTED), h.now)
    assert h.sup.running is first


@pytest.mark.parametrize("plan_id", ["ix-1-20240506T010000Z-deadbeef", ""])
def test_an_ack_for_an_unknown_plan_is_rejected(
    plan_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    h = started()
    with caplog.at_level(logging.WARNING), pytest.raises(ControlError, match="unknown plan id"):
        h.sup.on_ack(PlanAck(IX, plan_id, AckResult.APPLIED), h.now)
    assert "ack rejected" in caplog.text
    assert h.sup.state(h.now).running.state is PlanState.SENT  # type: ignore[union-attr]


def test_an_ack_for_another_intersection_is_rejected() -> None:
    h = started()
    with pytest.raises(ControlError, match="'ix-2' reached intersection 'ix-1'"):
        h.sup.on_ack(PlanAck(IntersectionId("ix-2"), h.last.plan_id, AckResult.APPLIED), h.now)


def test_no_ack_for_too_long_marks_the_plan_unacknowledged_and_a_late_ack_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = started(ack_timeout_cycles=2.0, decision_lead_s=5.0)
    plan = h.last
    with caplog.at_level(logging.WARNING):
        h.run(2 * plan.cycle_s - 2.0)
        assert h.sup.ack_state(plan.plan_id) is PlanState.SENT
        h.run(3.0)
    assert h.sup.ack_state(plan.plan_id) is PlanState.UNACKNOWLEDGED
    assert f"plan {plan.plan_id} unacknowledged" in caplog.text
    h.sup.on_ack(ack(plan), h.now)
    assert h.sup.ack_state(plan.plan_id) is PlanState.APPLIED


def test_a_superseded_plan_needs_no_ack() -> None:
    h = started(busier)
    first = h.last
    pending = h.run_until(lambda p: p is not first, 130.0).plan
    h.sup.on_camera_status(CameraStatus(CameraId("cam-1"), CameraState.STALLED, 0.0, None), h.now)
    [fallback] = h.tick()
    assert fallback.valid_from == pending.valid_from
    assert h.sup.ack_state(pending.plan_id) is PlanState.SUPERSEDED
    h.run(400.0)
    assert h.sup.ack_state(pending.plan_id) is PlanState.SUPERSEDED


# --- Plans offered from elsewhere ------------------------------------------------------------


def test_adopting_a_retained_plan_and_rejecting_foreign_ones() -> None:
    spec = ix_spec()
    h = Harness(spec, feed=steady())
    base = TimingPlan(
        intersection_id=IX,
        plan_id="retained",
        controller="webster",
        mode=PlanMode.ADAPTIVE,
        cycle_s=60.0,
        offset_s=0.0,
        phases=(
            PhaseTiming(PhaseId("north"), 30.0, 3.0, 2.0),
            PhaseTiming(PhaseId("east"), 20.0, 3.0, 2.0),
        ),
        valid_from=T0 - timedelta(seconds=30),
        reason="from the last run",
    )
    foreign = TimingPlan(**{**_fields(base), "controller": "scats", "plan_id": "x"})
    with pytest.raises(ControlError, match="unknown controller 'scats'"):
        h.sup.adopt(foreign, h.now)
    broken = TimingPlan(**{**_fields(base), "phases": base.phases[:1], "plan_id": "y"})
    with pytest.raises(ControlError, match="differ from the intersection"):
        h.sup.adopt(broken, h.now)
    h.sup.adopt(base, h.now)
    assert h.sup.running is base
    h.sup.on_metrics([window(s, h.now, flow_veh_h=f) for s, f in steady()(h.now).items()])
    assert h.tick() == []  # next decision 5 s before the adopted plan's boundary at T0 + 30 s
    [plan] = h.run(25.0)
    assert plan.valid_from == T0 + timedelta(seconds=30)
    assert h.published[-1].running_before is base
    with pytest.raises(ControlError, match="already controls"):
        h.sup.adopt(TimingPlan(**{**_fields(base), "plan_id": "z"}), h.now)


def _fields(plan: TimingPlan) -> dict[str, Any]:
    return {name: getattr(plan, name) for name in TimingPlan.__dataclass_fields__}


# --- Memory and the envelope under random operation ----------------------------------------


def test_history_and_tracked_plans_stay_bounded() -> None:
    h = started(history_max=20, tracked_plans_max=5)
    h.feed = lambda now: {"n-in": 300.0 + (now.minute % 7) * 150.0, "e-in": 300.0}
    h.run(3 * 3600.0, step_s=2.0)
    state = h.sup.state(h.now)
    assert len(h.published) > 50
    assert len(state.plans) <= 5
    assert len(state.history) == 20


@pytest.mark.parametrize("seed", range(6))
def test_every_published_plan_keeps_the_envelope_under_random_operation(seed: int) -> None:
    rng = random.Random(seed)
    controller = ["webster", "max-pressure", "fixed"][seed % 3]
    h = Harness(ix_spec(controller=controller), ControlSettings(decision_lead_s=rng.uniform(1, 8)))
    h.now = T0 + timedelta(hours=rng.uniform(0, 24))
    demand = {"n-in": 300.0, "e-in": 300.0, "n-out": 100.0}
    h.feed = lambda _now: dict(demand)
    for _ in range(150):
        event = rng.random()
        if event < 0.05:
            h.feed = None if h.feed is not None else (lambda _now: dict(demand))
        elif event < 0.08 and h.sup.running is not None:
            h.sup.apply_override(override(OverrideAction.HOLD), h.now)
        elif event < 0.11:
            name = rng.choice(["night", "day", "22:00"])
            h.sup.apply_override(override(OverrideAction.FIXED, plan_name=name), h.now)
        elif event < 0.16:
            h.sup.apply_override(override(OverrideAction.RELEASE), h.now)
        elif event < 0.2 and h.published:
            result = rng.choice(list(AckResult))
            h.sup.on_ack(ack(rng.choice(h.published[-3:]).plan, result), h.now)
        for seg, value in demand.items():
            demand[seg] = max(0.0, value * rng.uniform(0.6, 1.6))
        h.run(rng.uniform(5.0, 60.0), step_s=rng.choice([0.25, 1.0, 3.0]))
    # checked plan by plan in Harness.tick; the walk must have exercised every source
    modes = {p.plan.mode for p in h.published}
    assert PlanMode.MANUAL in modes
    assert PlanMode.FALLBACK in modes
