"""Control messages from the bus in the audit log of operator actions.

The engine keeps one audit log (:class:`atcs.web.audit.AuditLog`: a JSON-lines file under
the state folder, and ``operator_action`` points in InfluxDB when configured). The
dashboard writes operators' actions there; :func:`attach_bus_audit` makes the MQTT bus
write there too what became of overrides and acks it received (accepted, or refused with
the reason: unsigned, bad signature, replayed ...). Without a dashboard the same file is
used, kept by an :class:`AuditTrail` sink that starts before and closes after the bus.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from atcs.bus.verdicts import ControlVerdict
from atcs.config import AtcsConfig, DashboardConfig
from atcs.health_records import AuditTrailHealth
from atcs.types import CameraStatus, SegmentMetrics, TimingPlan
from atcs.web.audit import AuditLog, AuditRecord

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from atcs.bus import MqttBus
    from atcs.control import ControlLoop
    from atcs.service import Engine
    from atcs.types import IntersectionId

DEFAULT_AUDIT_FILE: str = DashboardConfig.model_fields["audit_file"].default


def verdict_record(verdict: ControlVerdict, site_id: str) -> AuditRecord:
    """Return the audit record of ``verdict`` (``role``: ``mqtt <role>``, ``remote``: topic).

    ``user`` is the operator named in an override (or the acknowledging controller),
    ``detail`` names the sender and, for a refusal, starts with its reason code.
    """
    detail = verdict.detail if verdict.accepted else f"{verdict.reason}: {verdict.detail}"
    if verdict.sender:
        detail = f"sender {verdict.sender}; {detail}"
    return AuditRecord(
        at=verdict.at,
        site_id=site_id,
        user=verdict.who or verdict.sender or "(unknown)",
        role=f"mqtt {verdict.role}",
        intersection_id=verdict.intersection,
        action=verdict.action or verdict.kind.value,
        reason=verdict.why,
        outcome="accepted" if verdict.accepted else "refused",
        detail=detail,
        plan_name=verdict.plan_name,
        greens_s=dict(verdict.greens_s),
        remote=f"mqtt {verdict.topic}",
    )


class AuditTrail:
    """A sink that only starts and closes the audit log (when no dashboard owns it)."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit

    def start(self) -> None:
        """Create the audit folder and start the InfluxDB writer."""
        self.audit.start()

    def on_metrics(self, metrics: Sequence[SegmentMetrics]) -> None:
        """Ignore measures."""

    def on_camera_status(self, status: CameraStatus) -> None:
        """Ignore camera health."""

    def on_plan(self, plan: TimingPlan) -> None:
        """Ignore plans."""

    def status(self) -> AuditTrailHealth:
        """Return the audit log's counters and what waits for InfluxDB."""
        return AuditTrailHealth(self.audit.counters(), self.audit.pending())

    def health(self) -> Mapping[str, float | int | str | bool]:
        """:meth:`status` as a flat map."""
        return self.status().as_map()

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what waits for InfluxDB and stop."""
        self.audit.close(timeout_s)


def record_verdicts(bus: MqttBus, audit: AuditLog, site_id: str) -> None:
    """Make ``bus`` write what became of every control message it receives to ``audit``."""

    def record(verdict: ControlVerdict) -> None:
        audit.record(verdict_record(verdict, site_id))

    bus.on_verdict(record)


def attach_bus_audit(
    engine: Engine, bus: MqttBus, cfg: AtcsConfig, audit: AuditLog | None = None
) -> AuditLog:
    """Record the bus's control verdicts in ``audit`` (the dashboard's) or a log of its own."""
    if audit is None:
        audit = AuditLog(Path(cfg.service.state_dir) / DEFAULT_AUDIT_FILE, cfg.influx)
        engine.sinks.insert(0, AuditTrail(audit))
    record_verdicts(bus, audit, cfg.site.id)
    return audit


def record_command_refusals(control: ControlLoop, audit: AuditLog, site_id: str) -> None:
    """Write every phase command the engine's envelope refuses to ``audit``."""

    def record(intersection: IntersectionId, why: str, at: datetime) -> None:
        audit.record(
            AuditRecord(
                at=at,
                site_id=site_id,
                user="engine",
                role="engine envelope",
                intersection_id=intersection,
                action="phase_command",
                reason=why[:500],
                outcome="refused",
                detail=f"envelope: {why}"[:500],
            )
        )

    control.on_command_refused(record)
