"""Signal control in the service against a real Mosquitto started by the suite.

The engine side is the real :class:`~atcs.bus.MqttBus` and :class:`~atcs.control.ControlLoop`
on the wall clock, ticked every 0.1 s and fed with segment windows the way the engine's
tick does. A real paho client plays the signal controller (it reads the retained plan and
sends acks) and the operator (it sends overrides). Timings are short (cycles of 14-20 s,
inputs stale after 3 s) so that the whole file runs in about a minute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from atcs.bus import AckResult, MqttBus, Override, OverrideAction, PlanAck, Topics
from atcs.bus.payloads import decode_timing_plan
from atcs.config.bus import MqttConfig
from atcs.config.control import intersection_spec
from atcs.control import ControlLoop, ControlSettings, EventKind, PlanState, Supervisor
from atcs.types import PhaseId, PlanMode, SiteId, TimingPlan
from controllers import IntersectionSpec, check
from tests.support.mosquitto import Collector, Mosquitto
from tests.support.signing import make_keys
from tests.unit.test_control_supervisor import IX, ix_config, window

pytestmark = pytest.mark.integration

TOPICS = Topics()
KEYS = make_keys()
STALE_S = 3.0
TICK_S = 0.1
WINDOW_S = 0.5


def service_spec() -> IntersectionSpec:
    """Two phases, greens 2-12 s, 3 s yellow, 1 s all-red: cycles of 12-20 s."""
    phase: dict[str, Any] = {
        "min_green_s": 2.0,
        "max_green_s": 12.0,
        "yellow_s": 3.0,
        "all_red_s": 1.0,
    }
    cfg = ix_config(
        phases=[
            {"id": "north", "segments": ["n-in"], **phase},
            {"id": "east", "segments": ["e-in"], **phase},
        ],
        cycle_min_s=12.0,
        cycle_max_s=20.0,
        stale_after_s=STALE_S,
        fallback_plans=[
            {"starts_at": "00:00", "name": "all-day", "greens_s": {"north": 3.0, "east": 3.0}},
            {"starts_at": "23:59", "name": "quiet", "greens_s": {"north": 2.0, "east": 2.0}},
        ],
    )
    return intersection_spec(cfg, "UTC")


@dataclass
class Service:
    """The engine's control path on the wall clock: bus, control loop, a ticking thread."""

    bus: MqttBus
    loop: ControlLoop
    spec: IntersectionSpec
    demand: dict[str, float] = field(default_factory=lambda: {"n-in": 900.0, "e-in": 300.0})
    feeding: threading.Event = field(default_factory=threading.Event)
    last_window_end: datetime | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="engine-tick", daemon=True)
        self.thread.start()

    def _run(self) -> None:  # what Engine.tick does: listeners first, then the control tick
        last_feed = 0.0
        while not self.stop.is_set():
            if self.feeding.is_set() and time.monotonic() - last_feed >= WINDOW_S:
                last_feed = time.monotonic()
                end = datetime.now(UTC)
                self.loop.on_metrics(
                    [
                        window(s, end, flow_veh_h=f, window_s=WINDOW_S)
                        for s, f in self.demand.items()
                    ]
                )
                self.last_window_end = end
            self.loop.tick()
            self.stop.wait(TICK_S)

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(5)
        self.bus.close(timeout_s=1.0)


@pytest.fixture
def service(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Service]:
    cfg = MqttConfig(
        host=mosquitto.host, port=mosquitto.port, reconnect_max_s=1, control_auth=KEYS.control_auth
    )
    bus = MqttBus(cfg, site_id=SiteId("demo"), state_dir=tmp_path / "state", environ=KEYS.environ)
    spec = service_spec()
    settings = ControlSettings(decision_lead_s=1.0, ack_timeout_cycles=0.2)
    loop = ControlLoop([Supervisor(spec, settings=settings)], bus.on_plan)
    bus.on_ack(loop.on_ack)
    bus.on_override(loop.on_override)
    bus.start()
    svc = Service(bus, loop, spec)
    yield svc
    svc.close()


def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@dataclass
class SeenPlan:
    at: datetime
    plan: TimingPlan
    retained: bool


class SignalController:
    """A real paho client on the plan topics: keeps every plan it gets, sends acks."""

    def __init__(self, broker: Mosquitto) -> None:
        self.collector = Collector(broker, TOPICS.all_plans())
        self._arrivals: dict[int, datetime] = {}
        self._lock = threading.Lock()
        inner = self.collector.client.on_message
        assert inner is not None

        def stamp(client: Any, userdata: Any, msg: Any) -> None:
            inner(client, userdata, msg)
            with self._lock:
                self._arrivals[len(self.collector.messages)] = datetime.now(UTC)

        self.collector.client.on_message = stamp

    def plans(self) -> list[SeenPlan]:
        with self._lock:
            arrivals = dict(self._arrivals)
        return [
            SeenPlan(
                arrivals.get(i + 1, datetime.now(UTC)),
                decode_timing_plan(m.payload, IX).record,
                m.retain,
            )
            for i, m in enumerate(self.collector.snapshot())
        ]

    def wait_plan(
        self, predicate: Callable[[TimingPlan], bool], after: int, timeout_s: float
    ) -> SeenPlan:
        assert _wait(lambda: any(predicate(p.plan) for p in self.plans()[after:]), timeout_s), [
            (p.plan.mode, p.plan.reason) for p in self.plans()
        ]
        return next(p for p in self.plans()[after:] if predicate(p.plan))

    def send(self, topic: str, payload: bytes) -> None:
        self.collector.client.publish(topic, payload, qos=1)

    def ack(self, plan_id: str, result: AckResult = AckResult.APPLIED, reason: str = "") -> None:
        self.send(TOPICS.plan_ack(IX), KEYS.ack(PlanAck(IX, plan_id, result, reason, "tsc-1")))

    def close(self) -> None:
        self.collector.close()


@pytest.fixture
def signal(mosquitto: Mosquitto) -> Iterator[Callable[[], SignalController]]:
    made: list[SignalController] = []

    def make() -> SignalController:
        made.append(SignalController(mosquitto))
        return made[-1]

    yield make
    for s in made:
        s.close()


def _control_subscribed(svc: Service, tsc: SignalController) -> None:
    """Wait until the engine receives control messages (an ack for a made-up plan)."""

    def probe() -> bool:
        tsc.ack("probe-plan")
        return _wait(lambda: svc.loop.counters().acks > 0, 0.5)

    assert _wait(probe, 10), "the engine never received an ack"


def _running_state(svc: Service) -> PlanState | None:
    running = svc.loop.state()[IX].running
    return None if running is None else running.state


def test_plans_go_out_retained_and_acks_are_tracked(
    service: Service, signal: Callable[[], SignalController], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="atcs.control")
    service.feeding.set()
    service.start()
    assert _wait(lambda: service.loop.counters().plans_published >= 1, 10)
    health = service.bus.health
    assert _wait(lambda: health()["published"] == 1 and health()["disk_queue"] == 0, 10)
    tsc = signal()  # subscribes after the plan went out: the broker kept it
    first = tsc.wait_plan(lambda p: True, 0, 10)
    assert first.retained
    assert first.plan.mode is PlanMode.ADAPTIVE
    assert first.plan.controller == "webster"
    assert check(service.spec, first.plan, None) == []
    assert first.plan == service.loop.state()[IX].running.plan  # type: ignore[union-attr]
    # no ack yet: unacknowledged once 0.2 of a cycle went by after it was due
    assert _wait(lambda: _running_state(service) is PlanState.UNACKNOWLEDGED, 10)
    assert f"plan {first.plan.plan_id} unacknowledged" in caplog.text
    _control_subscribed(service, tsc)
    tsc.ack(first.plan.plan_id)
    assert _wait(lambda: _running_state(service) is PlanState.APPLIED, 5)
    running = service.loop.state()[IX].running
    assert running is not None
    assert running.acked_by == "tsc-1"
    # an ack for a plan the engine never sent is rejected with a clear log line
    rejected_before = service.loop.counters().rejected["planack"]
    tsc.ack("ix-1-20000101T000000Z-00000000", AckResult.REJECTED, "no such plan here")
    assert _wait(lambda: service.loop.counters().rejected["planack"] > rejected_before, 5)
    assert "unknown plan id 'ix-1-20000101T000000Z-00000000'" in caplog.text
    assert _running_state(service) is PlanState.APPLIED
    # demand changes: the next plan comes before its cycle boundary; the signal rejects it
    seen = len(tsc.plans())
    service.demand["e-in"] = 900.0
    nxt = tsc.wait_plan(lambda p: p.plan_id != first.plan.plan_id, seen, 25)
    assert not nxt.retained
    assert nxt.plan.valid_from > nxt.at
    assert check(service.spec, nxt.plan, first.plan) == []
    tsc.ack(nxt.plan.plan_id, AckResult.REJECTED, "split below the local minimum")

    def rejected() -> bool:
        plans = service.loop.state()[IX].plans
        return any(
            p.plan.plan_id == nxt.plan.plan_id and p.state is PlanState.REJECTED for p in plans
        )

    assert _wait(rejected, 5)
    state = service.loop.state()[IX]
    assert state.pending is None
    assert state.running is not None
    assert state.running.plan.plan_id == first.plan.plan_id  # the signal keeps what it ran


def test_stale_data_switches_to_the_fallback_plan_on_the_bus_in_time_and_back(
    service: Service, signal: Callable[[], SignalController]
) -> None:
    tsc = signal()
    service.feeding.set()
    service.start()
    adaptive = tsc.wait_plan(lambda p: p.mode is PlanMode.ADAPTIVE, 0, 10)
    time.sleep(1.0)
    service.feeding.clear()  # the cameras go quiet
    time.sleep(2 * TICK_S)
    last_window = service.last_window_end
    assert last_window is not None
    seen = len(tsc.plans())
    fallback = tsc.wait_plan(lambda p: p.mode is PlanMode.FALLBACK, seen, STALE_S + 5)
    late_s = (fallback.at - last_window).total_seconds()
    assert STALE_S <= late_s <= STALE_S + 1.5, late_s  # one tick, delivery, a loaded CPU
    assert "stale inputs" in fallback.plan.reason
    assert "time-of-day plan '" in fallback.plan.reason
    assert fallback.plan.valid_from >= fallback.at - timedelta(seconds=0.5)
    assert check(service.spec, fallback.plan, adaptive.plan) == []
    assert service.loop.state()[IX].stale
    # data returns: adaptive again at the next regular decision (within two cycles)
    service.feeding.set()
    seen = len(tsc.plans())
    back = tsc.wait_plan(lambda p: p.mode is PlanMode.ADAPTIVE, seen, 2 * 20.0 + 3)
    assert back.plan.controller == "webster"
    plans = [p.plan for p in tsc.plans()]
    assert check(service.spec, back.plan, plans[plans.index(back.plan) - 1]) == []
    assert not service.loop.state()[IX].stale


def test_an_override_holds_until_released(
    service: Service, signal: Callable[[], SignalController], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="atcs.control")
    tsc = signal()
    service.feeding.set()
    service.start()
    first = tsc.wait_plan(lambda p: p.mode is PlanMode.ADAPTIVE, 0, 10)
    _control_subscribed(service, tsc)
    # a request the engine cannot honour is rejected and logged; nothing changes
    bad = Override(IX, OverrideAction.FIXED, "op-1", "try", plan_name="rush-hour")
    tsc.send(TOPICS.override(IX), KEYS.override(bad))
    assert _wait(lambda: service.loop.counters().rejected["override"] == 1, 5)
    assert "unknown plan 'rush-hour'; known: 'all-day', 'quiet'" in caplog.text
    seen = len(tsc.plans())
    hold = Override(IX, OverrideAction.HOLD, "Kompol Sari", "state visit convoy")
    tsc.send(TOPICS.override(IX), KEYS.override(hold))
    held = tsc.wait_plan(lambda p: p.mode is PlanMode.MANUAL, seen, 5)
    assert held.plan.controller == "manual"
    assert held.plan.phases == first.plan.phases
    assert "hold by Kompol Sari: state visit convoy" in held.plan.reason
    # demand swings; a regular decision passes and nothing new reaches the signal
    service.demand.update({"n-in": 200.0, "e-in": 1200.0})
    seen = len(tsc.plans())

    def decided_while_held() -> bool:
        history = service.loop.state()[IX].history
        return any(
            e.kind is EventKind.DECISION and "hold decision (next cycle boundary" in e.text
            for e in history
        )

    assert _wait(decided_while_held, 45)  # the held plan starts, then a cycle runs
    time.sleep(0.5)
    assert tsc.plans()[seen:] == []
    state = service.loop.state()[IX]
    assert state.override is not None
    assert state.override.who == "Kompol Sari"
    # release: adaptive again at once, one allowed step from the held plan
    release = Override(IX, OverrideAction.RELEASE, "Kompol Sari", "convoy passed")
    tsc.send(TOPICS.override(IX), KEYS.override(release))
    back = tsc.wait_plan(lambda p: p.mode is PlanMode.ADAPTIVE, seen, 5)
    assert check(service.spec, back.plan, held.plan) == []
    east = PhaseId("east")
    old_east = next(p.green_s for p in held.plan.phases if p.phase_id == east)
    new_east = next(p.green_s for p in back.plan.phases if p.phase_id == east)
    assert new_east > old_east
    assert service.loop.state()[IX].override is None
