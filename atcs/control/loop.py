"""The service side of signal control: one supervisor per intersection, fed by the engine.

:class:`ControlLoop` plugs into the engine: :meth:`ControlLoop.on_metrics` is a metrics
listener, :meth:`ControlLoop.tick` runs from the engine's tick, and the plans it decides
leave through one ``publish_plan`` callback (the engine hands each plan to every sink's
``on_plan``: the bus publishes it retained on ``{p}/intersections/{ix}/plan``, the store
writes a ``signal_plan`` point).

Acks, overrides, retained plans and camera health may arrive on other threads (paho's
network thread): those calls only put the message in a bounded inbox (the oldest is dropped
when it is full, and counted); :meth:`tick` applies them in arrival order before deciding.
A message that cannot be honoured (unknown intersection, unknown plan id, an override
without who/why ...) is logged with its reason and counted; it never stops the loop.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from atcs.bus.messages import Override, PlanAck
from atcs.config import AtcsConfig
from atcs.config.control import intersection_spec
from atcs.control.state import ControlSettings, IntersectionState
from atcs.control.supervisor import Supervisor
from atcs.errors import ControlError
from atcs.text import printable
from atcs.types import CameraId, CameraStatus, IntersectionId, SegmentId, SegmentMetrics, TimingPlan

log = logging.getLogger(__name__)

PlanPublisher = Callable[[TimingPlan], None]
Clock = Callable[[], datetime]
_Message = PlanAck | Override | TimingPlan | CameraStatus

INBOX_MAX = 1000
"""Messages waiting for the next tick; beyond this the oldest is dropped."""


def utc_now() -> datetime:
    """Return the current time, aware UTC."""
    return datetime.now(UTC)


class ControlLoop:
    """Supervisors of every configured intersection behind one thread-safe front."""

    def __init__(
        self,
        supervisors: Sequence[Supervisor],
        publish_plan: PlanPublisher,
        *,
        clock: Clock = utc_now,
        inbox_max: int = INBOX_MAX,
    ) -> None:
        self._supervisors: dict[IntersectionId, Supervisor] = {}
        for sup in supervisors:
            if sup.spec.intersection_id in self._supervisors:
                raise ControlError(f"intersection {sup.spec.intersection_id!r} given twice")
            self._supervisors[sup.spec.intersection_id] = sup
        self._publish = publish_plan
        self._clock = clock
        self._lock = threading.Lock()
        self._inbox: deque[_Message] = deque()
        self._inbox_max = inbox_max
        self._counts: Counter[str] = Counter()

    @classmethod
    def from_config(
        cls,
        cfg: AtcsConfig,
        publish_plan: PlanPublisher,
        *,
        settings: ControlSettings | None = None,
        clock: Clock = utc_now,
    ) -> ControlLoop:
        """One supervisor per ``cfg.intersections`` entry, with the config's PCU factors."""
        movements = {SegmentId(s.id): s.movement for s in cfg.segments}
        cameras = {SegmentId(s.id): CameraId(s.camera) for s in cfg.segments}
        supervisors = [
            Supervisor(
                intersection_spec(ix, cfg.site.timezone),
                settings=settings,
                pcu=cfg.pcu,
                movements=movements,
                segment_cameras=cameras,
            )
            for ix in cfg.intersections
        ]
        return cls(supervisors, publish_plan, clock=clock)

    @property
    def intersections(self) -> tuple[IntersectionId, ...]:
        """The intersections this loop controls."""
        return tuple(self._supervisors)

    def supervisor(self, intersection: IntersectionId) -> Supervisor:
        """Return the supervisor of ``intersection`` (:class:`ControlError` when unknown)."""
        sup = self._supervisors.get(intersection)
        if sup is None:
            raise ControlError(f"no intersection {intersection!r} in this control loop")
        return sup

    # Inputs (any thread) -----------------------------------------------------------------

    def on_metrics(self, metrics: Sequence[SegmentMetrics]) -> None:
        """Engine metrics listener: take the windows that just closed."""
        with self._lock:
            for sup in self._supervisors.values():
                sup.on_metrics(metrics)

    def on_ack(self, ack: PlanAck) -> None:
        """Take a signal controller's ack (applied at the next tick)."""
        self._put(ack)

    def on_override(self, override: Override) -> None:
        """Take an operator override (applied at the next tick)."""
        self._put(override)

    def on_camera_status(self, status: CameraStatus) -> None:
        """Take a camera's health (a camera that is not streaming makes its segments stale)."""
        self._put(status)

    def adopt(self, plan: TimingPlan) -> None:
        """Take a plan found on the bus (a retained plan at start-up) as what the signal runs."""
        self._put(plan)

    def _put(self, message: _Message) -> None:
        with self._lock:
            if len(self._inbox) >= self._inbox_max:
                dropped = self._inbox.popleft()
                self._counts["inbox_dropped"] += 1
                log.warning(
                    "control inbox full (%d): dropped the oldest message (%s)",
                    self._inbox_max,
                    type(dropped).__name__,
                )
            self._inbox.append(message)

    # The tick (engine thread) ------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> list[TimingPlan]:
        """Apply waiting messages, let every supervisor decide, publish; return what left."""
        at = self._clock() if now is None else now
        out: list[TimingPlan] = []
        with self._lock:
            waiting = list(self._inbox)
            self._inbox.clear()
            for message in waiting:
                self._apply(message, at)
            for ix, sup in self._supervisors.items():
                try:
                    out += sup.tick(at)
                except Exception:  # one intersection's failure must not stop the others
                    self._counts["tick_failures"] += 1
                    log.exception("control tick failed for intersection %s", ix)
        for plan in out:
            try:
                self._publish(plan)
                self._counts["plans_published"] += 1
            except Exception:  # a sink's failure must not stop control
                self._counts["publish_failures"] += 1
                log.exception("publishing plan %s failed", plan.plan_id)
        return out

    def _target(self, ix: IntersectionId, what: str) -> Supervisor:
        sup = self._supervisors.get(ix)
        if sup is None:
            known = ", ".join(self._supervisors) or "none"
            text = (
                f"{what} for unknown intersection '{printable(ix, 100)}' rejected; known: {known}"
            )
            log.warning("%s", text)
            raise ControlError(text)
        return sup

    def _apply(self, message: _Message, now: datetime) -> None:
        kind = type(message).__name__
        try:
            if isinstance(message, CameraStatus):
                for sup in self._supervisors.values():
                    sup.on_camera_status(message, now)
                return
            if isinstance(message, PlanAck):
                self._counts["acks"] += 1
                self._target(message.intersection_id, "ack").on_ack(message, now)
            elif isinstance(message, Override):
                self._counts["overrides"] += 1
                self._target(message.intersection_id, "override").apply_override(message, now)
            else:
                self._counts["plans_offered"] += 1
                self._target(message.intersection_id, "plan").adopt(message, now)
        except ControlError as exc:  # already logged with its reason where it was found
            self._counts[f"{kind.lower()}_rejected"] += 1
            log.debug("%s rejected: %s", kind, exc)

    # Reporting ---------------------------------------------------------------------------

    def state(self, now: datetime | None = None) -> Mapping[IntersectionId, IntersectionState]:
        """Return a snapshot per intersection (running plan, mode, reason, acks, history)."""
        at = self._clock() if now is None else now
        with self._lock:
            return {ix: sup.state(at) for ix, sup in self._supervisors.items()}

    def counters(self) -> dict[str, int]:
        """Messages taken and rejected, plans published, failures (for health)."""
        with self._lock:
            return dict(self._counts)
