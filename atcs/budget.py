"""The CPU budget of a node: analysed frames against wanted frames, per camera profile.

Counting cameras (5-10 frames/s, tracks and line counts) are served first by the detector
worker; density cameras (about 1 frame/s) share what is left. Every ``every_s`` seconds
the :class:`BudgetMonitor` compares, per profile, the frames the streaming cameras should
give (their ``sample_fps``) with the frames analysed, counts the frames dropped from the
cameras' queues, and measures the CPU the process used against its budget. The node is
*over budget* when frames are dropped or fall short by more than :data:`SHORTFALL_SHARE`,
or the CPU used passes the budget: the engine then says so in one warning with the
numbers (and again every :data:`REPEAT_S` while it lasts) instead of lagging silently, and
says when it is back within budget.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from atcs.config import CameraConfig

log = logging.getLogger(__name__)

SHORTFALL_SHARE = 0.05
"""Analysed frames this much below the wanted ones (share) count as over budget."""
CPU_MARGIN = 1.02
"""CPU use up to this multiple of the budget is measurement noise, not over budget."""
REPEAT_S = 60.0
"""While over budget, the warning is repeated this often, s."""
PROFILES = ("counting", "density")


def available_cores() -> float:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return float(len(os.sched_getaffinity(0)))
    return float(os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class ProfileLoad:
    """One camera profile over one interval: cameras streaming, frames/s wanted and got."""

    profile: str
    cameras: int
    target_fps: float
    analysed_fps: float
    dropped: int

    @property
    def short(self) -> bool:
        """Frames dropped, or analysed frames short of the target by more than 5 %."""
        return self.dropped > 0 or self.analysed_fps < (1 - SHORTFALL_SHARE) * self.target_fps


@dataclass(frozen=True, slots=True)
class BudgetReport:
    """The node over one interval: per profile, CPU used against the budget (cores)."""

    interval_s: float
    cores_budget: float
    cores_used: float
    detector_busy: float
    profiles: tuple[ProfileLoad, ...]

    @property
    def over(self) -> bool:
        """True when a profile falls short or the CPU used passes the budget."""
        return any(p.short for p in self.profiles) or (
            self.cores_used > CPU_MARGIN * self.cores_budget
        )

    def describe(self) -> str:
        """One line: per profile cameras, fps got / wanted, drops; CPU and detector load."""
        parts = [
            f"{p.profile}: {p.cameras} cameras, {p.analysed_fps:.1f} of {p.target_fps:.1f} "
            f"frames/s analysed, {p.dropped} dropped"
            for p in self.profiles
            if p.cameras
        ]
        parts.append(
            f"cpu {self.cores_used:.2f} of {self.cores_budget:.2f} cores, "
            f"detector busy {100 * self.detector_busy:.0f} %"
        )
        return "; ".join(parts)


class BudgetMonitor:
    """Keeps the counters of one interval and turns them into a :class:`BudgetReport`.

    Fed by the engine: :meth:`analysed` for every analysed frame, :meth:`report` with the
    cameras' cumulative drop counts, the detector's cumulative busy seconds and the
    process's CPU seconds. Bounded: one counter per configured camera.
    """

    def __init__(
        self, cameras: Iterable[CameraConfig], cores_budget: float | None, every_s: float
    ) -> None:
        self._profile = {c.id: c.profile for c in cameras}
        self._rate = {c.id: c.sample_fps for c in cameras}
        self.cores_budget = cores_budget if cores_budget is not None else available_cores()
        self.every_s = every_s
        self._frames = dict.fromkeys(self._profile, 0)
        self._start: tuple[float, dict[str, int], float, float] | None = None
        self.last: BudgetReport | None = None
        self._over_since_log: float | None = None

    def analysed(self, camera_id: str) -> None:
        """Count one analysed frame of ``camera_id``."""
        if camera_id in self._frames:
            self._frames[camera_id] += 1

    def report(
        self,
        now_s: float,
        streaming: Iterable[str],
        dropped: Mapping[str, int],
        detector_busy_s: float,
        cpu_s: float,
    ) -> BudgetReport | None:
        """Return the report of the interval ending at ``now_s`` (monotonic s) once it is due.

        ``streaming``: the cameras delivering frames now; ``dropped``: frames dropped from
        each camera's queue since start; ``detector_busy_s`` and ``cpu_s``: cumulative.
        """
        if self._start is None:
            self._start = (now_s, dict(dropped), detector_busy_s, cpu_s)
            self._frames = dict.fromkeys(self._frames, 0)
            return None
        started, drops0, busy0, cpu0 = self._start
        interval = now_s - started
        if interval < self.every_s:
            return None
        live = set(streaming)
        loads = []
        for profile in PROFILES:
            ids = [c for c, p in self._profile.items() if p == profile and c in live]
            loads.append(
                ProfileLoad(
                    profile=profile,
                    cameras=len(ids),
                    target_fps=sum(self._rate[c] for c in ids),
                    analysed_fps=sum(self._frames[c] for c in ids) / interval,
                    dropped=sum(dropped.get(c, 0) - drops0.get(c, 0) for c in ids),
                )
            )
        report = BudgetReport(
            interval_s=interval,
            cores_budget=self.cores_budget,
            cores_used=(cpu_s - cpu0) / interval,
            detector_busy=min(1.0, (detector_busy_s - busy0) / interval),
            profiles=tuple(loads),
        )
        self._log(now_s, report)
        self.last = report
        self._start = (now_s, dict(dropped), detector_busy_s, cpu_s)
        self._frames = dict.fromkeys(self._frames, 0)
        return report

    def _log(self, now_s: float, report: BudgetReport) -> None:
        if report.over:
            since = self._over_since_log
            if since is None or now_s - since >= REPEAT_S:
                self._over_since_log = now_s
                log.warning(
                    "over budget: %s; reduce the cameras or their sample_fps on this node, "
                    "or give it more cores",
                    report.describe(),
                )
        elif self._over_since_log is not None:
            self._over_since_log = None
            log.info("back within budget: %s", report.describe())
