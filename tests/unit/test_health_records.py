"""The typed health records (bus, store, alarms, audit, dashboard, probes) give the same maps.

``/api/health`` and ``/metrics`` show these maps: the keys, their order and their types
are pinned here (docs/mqtt.md and docs/influxdb.md list them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from atcs.alarms import AlarmService
from atcs.audit_trail import AuditTrail
from atcs.bus import MqttBus
from atcs.bus.command_out import PhaseCommandSender
from atcs.bus.control import ControlInbox
from atcs.bus.health import (
    AnnouncerHealth,
    ControlInboxCounters,
    FeedHealth,
    MqttHealth,
    PhaseCommandCounters,
    SenderCounters,
)
from atcs.bus.outbox import DROP_ORDER
from atcs.bus.topics import TopicKind, Topics
from atcs.config.bus import MqttConfig
from atcs.config.control_auth import ControlAuthConfig
from atcs.config.storage import InfluxConfig
from atcs.control.counters import ControlLoopCounters, PlanBookCounters
from atcs.control.loop import ControlLoop
from atcs.control.view import PlanBook
from atcs.health_records import (
    AlarmCounters,
    AlarmHealth,
    AuditCounters,
    DashboardCounters,
    DashboardHealth,
    ProbeServerHealth,
)
from atcs.roles.health import HealthServer, node_health
from atcs.storage import InfluxSink
from atcs.storage.health import InfluxCounters, InfluxHealth
from atcs.types import SiteId
from atcs.web.audit import AuditLog, AuditRecord
from tests.unit.test_nodes import city

CONTROL_KEYS = [
    "control_received", "control_accepted", "control_malformed", "control_refused",
    "control_rate_limited", "control_retained_ignored", "control_states",
    "control_handler_errors", "control_log_suppressed", "control_audit_recorded",
    "control_audit_suppressed", "control_replay_entries",
]  # fmt: skip
COMMAND_KEYS = [
    "phase_commands_sent", "phase_commands_dropped_offline", "phase_commands_unsigned_refused",
]  # fmt: skip

INFLUX_KEYS = [
    "points_accepted", "points_written", "points_spooled", "points_replayed",
    "points_rejected", "points_invalid", "points_refused_queue_full",
    "points_refused_spool_full", "points_lost_spool_error", "write_failures", "state",
    "connected", "last_error", "since_last_write_s", "spool_full", "target", "queue_points",
    "spool_points", "spool_bytes", "spool_batches", "spool_max_bytes",
]  # fmt: skip


def test_the_store_record_gives_the_documented_map(tmp_path: Path) -> None:
    record = InfluxHealth(
        InfluxCounters(points_accepted=5, points_written=3, write_failures=1),
        state="unreachable", last_error="refused", since_last_write_s=-1.0, spool_full=False,
        target="http://127.0.0.1:8086 db=atcs", queue_points=0, spool_points=2,
        spool_bytes=900, spool_batches=1, spool_max_bytes=1024,
    )  # fmt: skip
    flat = record.as_map()
    assert list(flat) == INFLUX_KEYS
    assert (flat["points_accepted"], flat["write_failures"], flat["connected"]) == (5, 1, False)
    sink = InfluxSink(InfluxConfig(url="http://127.0.0.1:9"), SiteId("s"), tmp_path)
    assert list(sink.health()) == INFLUX_KEYS
    assert sink.health() == sink.status().as_map()
    assert sink.status().state == "starting"


def test_the_bus_record_gives_the_documented_map(tmp_path: Path) -> None:
    sender = SenderCounters(published=7, bad_messages=1, dropped={TopicKind.SEGMENT_METRICS: 2})
    record = MqttHealth(
        connects=1, disconnects=0, connect_failures=2, subscriptions_granted=3,
        subscriptions_refused=0, connected=True,
        network_thread_alive=True, network_thread_deaths=0, network_thread_restarts=0,
        callback_errors=0, last_error="", control_auth="required", refused_after_close=0,
        sender=sender, control=ControlInboxCounters(received=4, refused_by_reason={"expired": 1}),
        commands=PhaseCommandCounters(sent=1),
    )  # fmt: skip
    flat = record.as_map()
    assert list(flat) == [
        "connects", "disconnects", "connect_failures", "subscriptions_granted",
        "subscriptions_refused", "connected", "network_thread_alive",
        "network_thread_deaths", "network_thread_restarts", "callback_errors", "last_error",
        "control_auth", "refused_after_close", "published", "dropped_memory",
        "rejected_by_broker", "bad_messages", "dropped_segment_metrics", "memory_queue",
        "disk_queue", "inflight", "queue_error", *CONTROL_KEYS[:4], "control_refused_expired",
        *CONTROL_KEYS[4:], *COMMAND_KEYS, "zones_sent", "zones_dropped_offline",
    ]  # fmt: skip
    assert (flat["control_received"], flat["phase_commands_sent"]) == (4, 1)
    assert (flat["subscriptions_granted"], flat["subscriptions_refused"]) == (3, 0)
    assert (flat["published"], flat["dropped_segment_metrics"], flat["connected"]) == (7, 2, True)
    bus = MqttBus(MqttConfig(), site_id=SiteId("s"), state_dir=tmp_path)
    health = bus.health()
    assert health == bus.status().as_map()
    assert [k for k in health if k.startswith("dropped_") and k != "dropped_memory"] == [
        f"dropped_{kind.value}" for kind in DROP_ORDER
    ]
    assert (health["connected"], health["disk_queue"], health["control_auth"]) == (
        False, 0, "required",
    )  # fmt: skip


def test_the_feed_and_announcer_records_give_their_maps() -> None:
    feed = FeedHealth(True, True, received=9, malformed=1, duplicates=2, nodes=3, last_error="")
    assert feed.as_map() == {
        "connected": True, "network_thread_alive": True, "received": 9, "malformed": 1,
        "duplicates": 2, "nodes": 3, "last_error": "", "zones_unwanted": 0,
    }  # fmt: skip
    assert list(AnnouncerHealth(False, 4, "refused").as_map().items()) == [
        ("connected", False), ("announced", 4), ("last_error", "refused"),
    ]  # fmt: skip


def test_alarm_audit_dashboard_and_probe_records_give_the_same_maps(tmp_path: Path) -> None:
    alarms = AlarmService(city(), [])
    assert list(alarms.health().items()) == [
        ("raised", 0), ("ended", 0), ("acknowledged", 0), ("expired", 0),
        ("output_failures", 0), ("current", 0), ("connected", True),
    ]  # fmt: skip
    assert alarms.status() == AlarmHealth(AlarmCounters(), 0)
    audit = AuditLog(tmp_path / "audit.jsonl", None)
    audit.start()
    try:
        audit.record(AuditRecord(datetime.now(UTC), "s", "op", "mqtt operator_console", "ix-1",
                                 "hold", "parade", "accepted"))  # fmt: skip
        trail = AuditTrail(audit)
        assert list(trail.health().items()) == [
            ("connected", True), ("state", "writing"), ("records", 1), ("points_written", 0),
            ("points_dropped", 0), ("write_failures", 0), ("pending", 0),
        ]  # fmt: skip
    finally:
        audit.close()
    dashboard = DashboardHealth(True, 2, 40, 5, 1, 0, AuditCounters(records=3))
    assert list(dashboard.as_map()) == [
        "connected", "sessions", "windows", "snapshots", "snapshot_failures", "audit_pending",
        "audit_records", "audit_points_written", "audit_points_dropped", "audit_write_failures",
    ]  # fmt: skip
    assert dashboard.as_map()["audit_records"] == 3
    probe = HealthServer(lambda: node_health("n", "room", None, []), "127.0.0.1", 0)
    assert probe.health() == {"connected": False, "requests": 0}
    assert probe.status() == ProbeServerHealth(False, 0)


def test_every_counter_is_there_at_zero_from_the_start() -> None:
    """Prometheus sees each counter from the start; open keys (by reason) keep their names."""
    loop = ControlLoop([], lambda plan: None).counters()
    assert loop == ControlLoopCounters()
    assert list(loop.as_map()) == [
        "plans_offered", "plans_published", "publish_failures", "acks", "overrides",
        "operator_refused_full", "signal_states", "inbox_dropped", "tick_failures",
        "phase_commands_sent", "phase_commands_not_sent", "phase_commands_refused",
        "zones_refused", "timingplan_rejected", "planack_rejected", "override_rejected",
        "signalstate_rejected",
    ]  # fmt: skip
    assert set(loop.as_map().values()) == {0}
    rejected = ControlLoopCounters.of({"acks": 2, "planack_rejected": 1}).as_map()
    assert (rejected["acks"], rejected["planack_rejected"], rejected["override_rejected"]) == (
        2, 1, 0,
    )  # fmt: skip
    book = PlanBook(["ix-1"]).counters()
    assert book == PlanBookCounters()
    assert book.as_map() == dict.fromkeys(
        ["plans_received", "plans_ignored", "acks", "acks_ignored", "override_states",
         "override_states_ignored", "states_ignored"], 0,
    )  # fmt: skip
    inbox = ControlInbox(Topics()).counters()
    assert list(inbox.as_map()) == CONTROL_KEYS
    assert set(inbox.as_map().values()) == {0}
    commands = PhaseCommandSender(Topics(), ControlAuthConfig(), None).counters()
    assert commands.as_map() == dict.fromkeys(COMMAND_KEYS, 0)
    dash = DashboardCounters.of({})
    assert dash.as_map() == {
        "login_ok": 0, "actions_unauthenticated": 0, "actions_forbidden": 0,
        "metrics_refused": 0, "login_wrong_password": 0, "login_delayed": 0, "login_busy": 0,
    }  # fmt: skip
    named = DashboardCounters.of({"login_ok": 3, "login_delayed": 2, "login_new_code": 1})
    assert (named.login_ok, named.by_name["login_delayed"]) == (3, 2)
    assert named.as_map()["login_new_code"] == 1
