"""Simulated time as the engine sees it: SUMO seconds mapped to aware UTC datetimes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

SIM_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
"""The UTC datetime of SUMO time 0 s (scenario times of day keep their meaning: 25200 s is
07:00)."""


@dataclass(frozen=True, slots=True)
class SimClock:
    """Converts between SUMO seconds and aware UTC datetimes from ``epoch``."""

    epoch: datetime = SIM_EPOCH

    def at(self, sim_s: float) -> datetime:
        """Return the datetime of SUMO time ``sim_s`` seconds."""
        return self.epoch + timedelta(seconds=sim_s)

    def seconds(self, when: datetime) -> float:
        """Return the SUMO seconds of the aware datetime ``when``."""
        return (when - self.epoch).total_seconds()
