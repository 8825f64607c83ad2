"""A signal controller as SUMO's traffic light sees it: plans in, states and acks out.

:class:`SignalBridge` stands where a field signal controller stands. It receives plans only
as the JSON payloads of ``{p}/intersections/{ix}/plan`` (decoded with the bus contract),
checks them the way a controller's own firmware would (right intersection, right phases,
finite durations, yellow >= 3 s, all-red >= 1 s), keeps the newest as pending, switches to
it at the first cycle boundary at or after its ``valid_from``, and answers each plan with
the payload of ``.../plan/ack`` (applied, or rejected with the reason). Every step it says
which SUMO state string the light shows. Durations run on the controller's tick (the SUMO
step). No SUMO I/O here.

Offsets are honoured as a coordinated controller does: the cycles of a time-of-day plan,
or of any plan with a non-zero offset, should start when the POSIX time minus ``offset_s``
is a multiple of ``cycle_s`` (one reference for every controller on NTP, so
intersections with a common cycle keep their relative offsets).
When a cycle starts off that grid, the controller transitions: it lengthens or shortens
the greens of that cycle, whichever way is shorter, within the safety envelope (each green
within its min and max and within ``max_split_step_s`` of what it showed the cycle before,
the cycle within its bounds and within ``max_cycle_step_s`` of the one before), and keeps
doing so cycle after cycle until the grid is reached. Since the engine's next plan keeps
the step limits against the plan that ran, not against a transition cycle, every cycle is
first brought within the step limits of the one shown before.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from atcs.bus.messages import AckResult, PlanAck
from atcs.bus.payloads import decode_timing_plan, encode_plan_ack
from atcs.errors import PayloadError
from atcs.sim.clock import SimClock
from atcs.sim.specs import SimIntersection
from atcs.types import PlanMode, TimingPlan

log = logging.getLogger(__name__)

MIN_YELLOW_S = 3.0
MIN_ALL_RED_S = 1.0
_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Interval:
    """One interval of a running cycle: phase index, kind, SUMO state, length in ticks."""

    phase: int
    kind: str
    state: str
    ticks: int


@dataclass(frozen=True, slots=True)
class _Loaded:
    plan: TimingPlan
    intervals: tuple[Interval, ...]
    cycle_ticks: int
    valid_from_s: float


class SignalBridge:
    """One emulated signal controller driving one SUMO traffic light.

    ``tick_s`` is the controller's (and SUMO's) time step in seconds; ``device_id`` names
    the controller in its acks.
    """

    def __init__(self, intersection: SimIntersection, clock: SimClock, tick_s: float) -> None:
        self._ix = intersection
        self._clock = clock
        self._tick_s = tick_s
        self._running: _Loaded | None = None
        self._pending: _Loaded | None = None
        self._cycle_start_s = 0.0
        self._extra: tuple[int, ...] = ()
        self._shown: tuple[int, ...] = ()
        self._shown_cycle = 0
        self._shown_from_s = 0.0
        self.transition_cycles = 0
        self.device_id = f"sim-bridge:{intersection.tls_id}"[:128]
        self.applied = 0
        self.rejected = 0

    @property
    def running(self) -> TimingPlan | None:
        """The plan the light runs now (None before the first plan)."""
        return None if self._running is None else self._running.plan

    @property
    def cycle_start_s(self) -> float:
        """SUMO time (s) at which the current cycle started."""
        return self._cycle_start_s

    def next_boundary_s(self) -> float | None:
        """SUMO time (s) of the end of the current cycle (None before the first plan)."""
        if self._running is None:
            return None
        ticks = self._running.cycle_ticks + sum(self._extra)
        return self._cycle_start_s + ticks * self._tick_s

    def _ack(self, plan_id: str, result: AckResult, reason: str, now_s: float) -> bytes:
        if result is AckResult.APPLIED:
            self.applied += 1
        else:
            self.rejected += 1
        ack = PlanAck(
            intersection_id=self._ix.spec.intersection_id,
            plan_id=plan_id,
            result=result,
            reason=reason,
            controller_id=self.device_id,
            at=self._clock.at(now_s),
        )
        return encode_plan_ack(ack)

    def _problems(self, plan: TimingPlan) -> list[str]:
        out: list[str] = []
        if plan.intersection_id != self._ix.spec.intersection_id:
            out.append(
                f"plan for {plan.intersection_id!r}, this is {self._ix.spec.intersection_id!r}"
            )
        want = [p.phase_id for p in self._ix.spec.phases]
        got = [p.phase_id for p in plan.phases]
        if got != want:
            out.append(f"phases {got} differ from this controller's {want}")
            return out
        for p in plan.phases:
            values = (p.green_s, p.yellow_s, p.all_red_s)
            if not all(math.isfinite(v) and v >= 0 for v in values):
                out.append(f"phase {p.phase_id}: durations must be finite and >= 0")
            elif p.yellow_s < MIN_YELLOW_S - _EPS or p.all_red_s < MIN_ALL_RED_S - _EPS:
                out.append(
                    f"phase {p.phase_id}: yellow {p.yellow_s:g} s / all-red {p.all_red_s:g} s "
                    f"below the controller's {MIN_YELLOW_S:g} / {MIN_ALL_RED_S:g} s"
                )
        return out

    def _ticks(self, seconds: float) -> int:
        return max(0, round(seconds / self._tick_s))

    def _load(self, plan: TimingPlan) -> _Loaded:
        intervals: list[Interval] = []
        for k, timing in enumerate(plan.phases):
            sig = self._ix.signals[k]
            for kind, state, seconds in (
                ("green", sig.green, timing.green_s),
                ("yellow", sig.yellow, timing.yellow_s),
                ("all_red", sig.all_red, timing.all_red_s),
            ):
                ticks = self._ticks(seconds)
                if abs(ticks * self._tick_s - seconds) > _EPS:
                    log.debug(
                        "%s: %s %s of %g s runs as %d ticks",
                        self._ix.tls_id,
                        timing.phase_id,
                        kind,
                        seconds,
                        ticks,
                    )
                if ticks:
                    intervals.append(Interval(k, kind, state, ticks))
        cycle_ticks = sum(i.ticks for i in intervals)
        return _Loaded(plan, tuple(intervals), cycle_ticks, self._clock.seconds(plan.valid_from))

    def receive(self, payload: bytes, now_s: float) -> list[bytes]:
        """Take one plan payload at SUMO time ``now_s``; return the acks it causes now.

        A plan that breaks the controller's checks is rejected at once; a pending plan
        replaced by a newer one is rejected as superseded. The plan already running sent
        again (the engine refreshes its retained plan) goes on as it is and is acked as
        applied; the pending plan sent again stays pending. Undecodable payloads are logged
        and dropped (there is no plan id to answer).
        """
        try:
            plan = decode_timing_plan(payload, self._ix.spec.intersection_id).record
        except PayloadError as exc:
            log.warning("%s: plan payload refused: %s", self._ix.tls_id, exc)
            return []
        problems = self._problems(plan)
        if problems:
            reason = "; ".join(problems)
            log.warning("%s: plan %s rejected: %s", self._ix.tls_id, plan.plan_id, reason)
            return [self._ack(plan.plan_id, AckResult.REJECTED, reason, now_s)]
        if self._running is not None and plan.plan_id == self._running.plan.plan_id:
            if self._pending is None:
                return [self._ack(plan.plan_id, AckResult.APPLIED, "already running", now_s)]
        elif self._pending is not None and plan.plan_id == self._pending.plan.plan_id:
            return []
        loaded = self._load(plan)
        if loaded.cycle_ticks <= 0:
            return [self._ack(plan.plan_id, AckResult.REJECTED, "empty cycle", now_s)]
        acks: list[bytes] = []
        if self._pending is not None:
            acks.append(
                self._ack(
                    self._pending.plan.plan_id,
                    AckResult.REJECTED,
                    f"superseded by {plan.plan_id} before it started",
                    now_s,
                )
            )
        self._pending = loaded
        return acks

    def step(self, now_s: float) -> tuple[str | None, list[bytes]]:
        """Return the state to show from ``now_s`` for one tick and any acks (plans applied).

        Returns None as state before the first plan arrived (the light keeps its own
        program).
        """
        acks: list[bytes] = []
        pending = self._pending
        if self._running is None and pending is not None:
            acks.append(self._apply(pending, now_s))
        boundary = self.next_boundary_s()
        if boundary is not None and now_s >= boundary - _EPS:
            self._cycle_start_s = boundary
            self._shown = self._greens_shown()
            self._shown_cycle = round((boundary - self._shown_from_s) / self._tick_s)
            self._shown_from_s = boundary
            pending = self._pending
            if pending is not None and pending.valid_from_s <= now_s + _EPS:
                acks.append(self._apply(pending, now_s))
            else:
                self._align(now_s)
        running = self._running
        if running is None:
            return None, acks
        elapsed = round((now_s - self._cycle_start_s) / self._tick_s)
        for interval, extra in zip(running.intervals, self._extra, strict=True):
            if elapsed < interval.ticks + extra:
                return interval.state, acks
            elapsed -= interval.ticks + extra
        return running.intervals[-1].state, acks

    def _greens_shown(self) -> tuple[int, ...]:
        """Green ticks per phase of the cycle just ended (empty before the first)."""
        running = self._running
        if running is None:
            return ()
        out = [0] * len(self._ix.signals)
        for interval, extra in zip(running.intervals, self._extra, strict=True):
            if interval.kind == "green":
                out[interval.phase] += interval.ticks + extra
        return tuple(out)

    def _align(self, now_s: float) -> None:
        """Set this cycle's green changes: within the steps of the last cycle, towards the grid.

        The cycle the light just showed may itself have been a transition, while the plan
        the engine sends next keeps the step limits against the *plan* that ran; so each
        cycle is first brought within the step limits of what was shown, then moved as far
        towards the offset grid as the limits leave.
        """
        running = self._running
        self._extra = tuple(0 for _ in running.intervals) if running is not None else ()
        if running is None or not self._shown:
            return
        spec = self._ix.spec
        cycle = running.cycle_ticks
        split = self._ticks(spec.max_split_step_s)
        bounds: dict[int, tuple[int, int]] = {}
        for k, interval in enumerate(running.intervals):
            if interval.kind == "green":
                phase = spec.phases[interval.phase]
                shown = self._shown[interval.phase]
                low = max(self._ticks(phase.min_green_s), shown - split) - interval.ticks
                high = min(self._ticks(phase.max_green_s), shown + split) - interval.ticks
                bounds[k] = (min(low, 0), max(high, 0)) if low > high else (low, high)
        step = self._ticks(spec.max_cycle_step_s)
        total_low = max(self._shown_cycle - step, self._ticks(spec.cycle_min_s)) - cycle
        total_high = min(self._shown_cycle + step, self._ticks(spec.cycle_max_s)) - cycle
        extra = [min(max(0, low), high) for low, high in bounds.values()]
        want = 0
        plan = running.plan
        if plan.mode is PlanMode.FALLBACK or plan.offset_s > 0:
            posix = round(self._clock.at(now_s).timestamp() / self._tick_s)
            lag = (self._ticks(plan.offset_s) - posix) % cycle
            want = lag if lag <= cycle - lag else lag - cycle
        target = min(max(want, total_low), total_high) if total_low <= total_high else 0
        delta = target - sum(extra)
        for n, (low, high) in enumerate(bounds.values()):
            move = min(max(delta, low - extra[n]), high - extra[n])
            extra[n] += move
            delta -= move
        out = [0] * len(running.intervals)
        for n, k in enumerate(bounds):
            out[k] = extra[n]
        self._extra = tuple(out)
        if any(out):
            self.transition_cycles += 1

    def _apply(self, loaded: _Loaded, now_s: float) -> bytes:
        first = self._running is None
        self._pending = None
        self._running = loaded
        self._cycle_start_s = now_s
        if first:
            self._shown_from_s = now_s
        self._align(now_s)
        late = now_s - loaded.valid_from_s
        reason = f"running from {self._clock.at(now_s).isoformat()}"
        if late > _EPS:
            reason += f" ({late:g} s after its valid_from, at the next cycle boundary)"
        log.debug("%s: plan %s applied at %g s", self._ix.tls_id, loaded.plan.plan_id, now_s)
        return self._ack(loaded.plan.plan_id, AckResult.APPLIED, reason, now_s)
