"""The MQTT bus's health as typed records (the ``/api/health`` and ``/metrics`` source)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from atcs.bus.topics import TopicKind


@dataclass(frozen=True, slots=True)
class SenderCounters:
    """The publishing worker's counters (counts of messages) and queue sizes."""

    published: int = 0
    """Messages the broker acknowledged."""
    dropped_memory: int = 0
    """Messages dropped from the memory queue (full while the disk refused writes)."""
    rejected_by_broker: int = 0
    """MQTT 5 PUBACKs with a failure reason code."""
    bad_messages: int = 0
    """Messages that could not be encoded or given a topic (never sent)."""
    dropped: Mapping[TopicKind, int] = field(default_factory=dict)
    """Messages the outbox's bound dropped, by kind (``dropped_<kind>`` in the map)."""
    memory_queue: int = 0
    """Messages waiting in memory (before start, or while the disk refuses the outbox)."""
    disk_queue: int = 0
    """Messages journaled in the outbox and not yet acknowledged."""
    inflight: int = 0
    """Messages handed to paho and not yet acknowledged."""
    queue_error: str = ""
    """The outbox's last write error ("" while writes succeed)."""

    def as_map(self) -> dict[str, int | str]:
        """Return the flat map (``dropped_<kind>`` for every kind the bound may drop)."""
        out: dict[str, int | str] = {
            "published": self.published,
            "dropped_memory": self.dropped_memory,
            "rejected_by_broker": self.rejected_by_broker,
            "bad_messages": self.bad_messages,
        }
        out.update({f"dropped_{kind.value}": n for kind, n in self.dropped.items()})
        out.update(
            memory_queue=self.memory_queue,
            disk_queue=self.disk_queue,
            inflight=self.inflight,
            queue_error=self.queue_error,
        )
        return out


@dataclass(frozen=True, slots=True)
class ControlInboxCounters:
    """The control inbox's messages (``control_*`` in the map), all present from the start."""

    received: int = 0
    accepted: int = 0
    malformed: int = 0
    refused: int = 0
    """Messages refused by the signature check (any reason)."""
    refused_by_reason: Mapping[str, int] = field(default_factory=dict)
    """Refusals by reason (``control_refused_<reason>``); only reasons seen so far."""
    rate_limited: int = 0
    retained_ignored: int = 0
    """Retained control messages ignored (a command is never replayed from the broker)."""
    states: int = 0
    """Signal states accepted."""
    handler_errors: int = 0
    log_suppressed: int = 0
    """Log lines the throttle held back."""
    audit_recorded: int = 0
    audit_suppressed: int = 0
    replay_entries: int = 0
    """Entries in the replay guard (a size, not a count since start)."""

    def as_map(self) -> dict[str, int]:
        """Return the counters, each key after ``control_``."""
        out = {
            "control_received": self.received,
            "control_accepted": self.accepted,
            "control_malformed": self.malformed,
            "control_refused": self.refused,
        }
        out.update({f"control_refused_{why}": n for why, n in self.refused_by_reason.items()})
        out.update(
            control_rate_limited=self.rate_limited,
            control_retained_ignored=self.retained_ignored,
            control_states=self.states,
            control_handler_errors=self.handler_errors,
            control_log_suppressed=self.log_suppressed,
            control_audit_recorded=self.audit_recorded,
            control_audit_suppressed=self.audit_suppressed,
            control_replay_entries=self.replay_entries,
        )
        return out


@dataclass(frozen=True, slots=True)
class PhaseCommandCounters:
    """Phase commands to signal controllers (``phase_commands_*`` in the map)."""

    sent: int = 0
    dropped_offline: int = 0
    """Commands not sent because the bus was not connected."""
    unsigned_refused: int = 0
    """Commands not sent for want of a signing key."""

    def as_map(self) -> dict[str, int]:
        """Return the counters, each key after ``phase_commands_``."""
        return {
            "phase_commands_sent": self.sent,
            "phase_commands_dropped_offline": self.dropped_offline,
            "phase_commands_unsigned_refused": self.unsigned_refused,
        }


@dataclass(frozen=True, slots=True)
class ZoneCounters:
    """Per-frame segment zones published (``zones_*`` in the map)."""

    sent: int = 0
    dropped_offline: int = 0
    """Zones not sent because the bus was not connected (never queued: stale in seconds)."""

    def as_map(self) -> dict[str, int]:
        """Return the counters, each key after ``zones_``."""
        return {"zones_sent": self.sent, "zones_dropped_offline": self.dropped_offline}


@dataclass(frozen=True, slots=True)
class MqttHealth:
    """The bus's connection, worker and control counters (counts unless a unit is given)."""

    connects: int
    """Successful connections to the broker."""
    disconnects: int
    """Connections lost or closed."""
    connect_failures: int
    """Connection attempts that failed."""
    subscriptions_granted: int
    """Topic filters the broker acknowledged (each SUBACK's granted codes, every connect)."""
    subscriptions_refused: int
    """Topic filters the broker refused (its ACL): those control messages will not arrive."""
    connected: bool
    """Connected, and paho's network thread alive."""
    network_thread_alive: bool
    network_thread_deaths: int
    network_thread_restarts: int
    callback_errors: int
    """Exceptions caught in paho callbacks."""
    last_error: str
    control_auth: str
    """``required`` (signed control messages) or ``insecure``."""
    refused_after_close: int
    """Messages handed over after close (not queued)."""
    sender: SenderCounters
    control: ControlInboxCounters
    """The control inbox's counters (``control_*``)."""
    commands: PhaseCommandCounters
    """The phase command sender's counters (``phase_commands_*``)."""
    zones: ZoneCounters = ZoneCounters()
    """The per-frame zones' counters (``zones_*``)."""

    def as_map(self) -> dict[str, float | int | str | bool]:
        """Return the flat map ``health()`` and the HTTP API show."""
        out: dict[str, float | int | str | bool] = {
            "connects": self.connects,
            "disconnects": self.disconnects,
            "connect_failures": self.connect_failures,
            "subscriptions_granted": self.subscriptions_granted,
            "subscriptions_refused": self.subscriptions_refused,
            "connected": self.connected,
            "network_thread_alive": self.network_thread_alive,
            "network_thread_deaths": self.network_thread_deaths,
            "network_thread_restarts": self.network_thread_restarts,
            "callback_errors": self.callback_errors,
            "last_error": self.last_error,
            "control_auth": self.control_auth,
            "refused_after_close": self.refused_after_close,
        }
        out.update(self.sender.as_map())
        out.update(self.control.as_map())
        out.update(self.commands.as_map())
        out.update(self.zones.as_map())
        return out


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """A bus feed's (control or room subscriber's) connection and message counts."""

    connected: bool
    """Subscribed, and paho's network thread alive."""
    network_thread_alive: bool
    received: int
    """Messages received."""
    malformed: int
    """Messages that could not be decoded (dropped)."""
    duplicates: int
    """Copies the de-duplication by ``stream`` and ``seq`` dropped."""
    nodes: int
    """Nodes of the city seen on the bus."""
    last_error: str
    zones_unwanted: int = 0
    """Per-frame zones of a segment no handler here asked for (another node's share)."""

    def as_map(self) -> dict[str, float | int | str | bool]:
        """Return the flat map ``health()`` and the HTTP API show."""
        return {
            "connected": self.connected,
            "network_thread_alive": self.network_thread_alive,
            "received": self.received,
            "malformed": self.malformed,
            "duplicates": self.duplicates,
            "nodes": self.nodes,
            "last_error": self.last_error,
            "zones_unwanted": self.zones_unwanted,
        }


@dataclass(frozen=True, slots=True)
class AnnouncerHealth:
    """A node's status connection: up or not, and how often it announced itself."""

    connected: bool
    announced: int
    """Retained ``online`` statuses published (one per connection, then every keepalive)."""
    last_error: str

    def as_map(self) -> dict[str, float | int | str | bool]:
        """Return the flat map ``health()`` shows."""
        return {
            "connected": self.connected,
            "announced": self.announced,
            "last_error": self.last_error,
        }
