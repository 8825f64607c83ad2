"""Typed counters of the control loop and the room's plan book (``/api/health``, ``/metrics``).

Each ``counters()`` returns one of these; ``as_map()`` gives the map ``/api/health`` shows
and ``/metrics`` exposes as ``atcs_control_events{event=...}``. Every counter is there, at
0, from the start. Every value is a count of messages or events since start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

REJECTED_KINDS = ("timingplan", "planack", "override", "signalstate")
"""Message kinds the loop may reject (``<kind>_rejected`` in the map)."""


class CounterRecord(Protocol):
    """A typed counter record: what a :class:`~atcs.control.view.ControlView` counts."""

    def as_map(self) -> dict[str, int]:
        """Return every counter by its map key."""
        ...


@dataclass(frozen=True, slots=True)
class ControlLoopCounters:
    """The control loop's messages taken and rejected, plans and commands sent, failures."""

    plans_offered: int = 0
    """Plans offered for adoption (from the bus or a planner)."""
    plans_published: int = 0
    publish_failures: int = 0
    acks: int = 0
    """Plan acks taken."""
    overrides: int = 0
    """Operator overrides applied at a tick."""
    operator_refused_full: int = 0
    """Overrides refused because the operator queue was full."""
    signal_states: int = 0
    """Phase-mode signal states taken."""
    inbox_dropped: int = 0
    """Bus messages dropped because the inbox was full."""
    tick_failures: int = 0
    phase_commands_sent: int = 0
    phase_commands_not_sent: int = 0
    phase_commands_refused: int = 0
    """Phase commands the safety check refused (never sent)."""
    rejected: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(REJECTED_KINDS, 0))
    """Messages rejected (unknown or wrong-mode intersection), by lower-case kind."""
    zones_refused: int = 0
    """Per-frame zones a phase-mode intersection did not keep (another camera's, ahead of
    this node's clock, or older than the one kept)."""

    @classmethod
    def of(cls, counts: Mapping[str, int]) -> ControlLoopCounters:
        """Build the record from the loop's tallies (``<kind>_rejected`` keys for rejections)."""
        rejected = dict.fromkeys(REJECTED_KINDS, 0)
        for key, n in counts.items():
            if key.endswith("_rejected"):
                rejected[key.removesuffix("_rejected")] = n
        c = counts.get
        return cls(
            c("plans_offered", 0), c("plans_published", 0), c("publish_failures", 0),
            c("acks", 0), c("overrides", 0), c("operator_refused_full", 0),
            c("signal_states", 0), c("inbox_dropped", 0), c("tick_failures", 0),
            c("phase_commands_sent", 0), c("phase_commands_not_sent", 0),
            c("phase_commands_refused", 0), rejected, c("zones_refused", 0),
        )  # fmt: skip

    def as_map(self) -> dict[str, int]:
        """Return the counters (``<kind>_rejected`` for every kind, 0 where none was)."""
        out = {
            "plans_offered": self.plans_offered,
            "plans_published": self.plans_published,
            "publish_failures": self.publish_failures,
            "acks": self.acks,
            "overrides": self.overrides,
            "operator_refused_full": self.operator_refused_full,
            "signal_states": self.signal_states,
            "inbox_dropped": self.inbox_dropped,
            "tick_failures": self.tick_failures,
            "phase_commands_sent": self.phase_commands_sent,
            "phase_commands_not_sent": self.phase_commands_not_sent,
            "phase_commands_refused": self.phase_commands_refused,
            "zones_refused": self.zones_refused,
        }
        out.update({f"{kind}_rejected": n for kind, n in self.rejected.items()})
        return out


@dataclass(frozen=True, slots=True)
class PlanBookCounters:
    """The room's plan book: plans, acks and states from the bus, taken and ignored."""

    plans_received: int = 0
    plans_ignored: int = 0
    """Plans of an intersection not configured here."""
    acks: int = 0
    acks_ignored: int = 0
    override_states: int = 0
    override_states_ignored: int = 0
    states_ignored: int = 0
    """Signal states of an intersection that is not in phase mode here."""

    def as_map(self) -> dict[str, int]:
        """Return the counters."""
        return {
            "plans_received": self.plans_received,
            "plans_ignored": self.plans_ignored,
            "acks": self.acks,
            "acks_ignored": self.acks_ignored,
            "override_states": self.override_states,
            "override_states_ignored": self.override_states_ignored,
            "states_ignored": self.states_ignored,
        }
