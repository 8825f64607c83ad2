"""The engine's exception tree: catch :class:`AtcsError` to catch everything the engine raises.

::

    AtcsError
    ├── ConfigError          a configuration file or value is wrong (names the field path)
    ├── DataError            a value breaks a data contract (shapes, ranges, units)
    ├── SourceError          a camera source cannot be opened or read
    ├── DetectorError        a detection model is missing, unreadable or fails
    ├── BusError             the MQTT bus cannot be used (connection, auth, payload)
    │   └── PayloadError     a received message is malformed or foreign
    │       └── MessageAuthError  a control message is unsigned, forged, expired or replayed
    ├── StorageError         the time-series database cannot be used
    │   └── SpoolFullError   the on-disk spool reached its size bound
    ├── OutboxError          the engine's durable outbox (its journal file) cannot be used
    │   └── OutboxFullError  a lane of the outbox reached its size bound
    ├── ControlError         a timing plan or control request is invalid
    │   └── SafetyError      a plan breaks the safety envelope and cannot be repaired
    ├── SimulationError      the traffic simulator cannot run a scenario
    └── AlarmError           an alarm request is invalid (unknown alarm, already acknowledged)
"""

from __future__ import annotations


class AtcsError(Exception):
    """Base of every error the engine raises on purpose."""


class ConfigError(AtcsError):
    """A configuration file or value is wrong; the message names every field path."""


class DataError(AtcsError, ValueError):
    """A value breaks a data contract (array shapes, ranges, units)."""


class SourceError(AtcsError):
    """A camera source cannot be opened or read."""


class DetectorError(AtcsError):
    """A detection model is missing, unreadable or fails to run."""


class BusError(AtcsError):
    """The MQTT bus cannot be used."""


class PayloadError(BusError):
    """A received MQTT message is malformed, foreign or breaks the schema."""


class MessageAuthError(PayloadError):
    """A control message is unsigned, badly signed, expired, replayed or not allowed.

    ``reason`` is a short stable code (``unsigned``, ``unknown_sender``, ``not_allowed``,
    ``bad_signature``, ``expired``, ``not_yet_valid``, ``replayed``, ``rate_limited`` ...)
    for counters and audit records; the message says the rest.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class StorageError(AtcsError):
    """The time-series database cannot be used."""


class SpoolFullError(StorageError):
    """The on-disk spool reached its configured size bound."""


class OutboxError(AtcsError):
    """The engine's durable outbox (its journal file) cannot be opened or written."""


class OutboxFullError(OutboxError):
    """A lane of the outbox reached its size bound and refuses new entries."""


class ControlError(AtcsError):
    """A timing plan, acknowledgement or operator request is invalid."""


class SafetyError(ControlError):
    """A plan breaks the safety envelope and cannot be repaired."""


class SimulationError(AtcsError):
    """The traffic simulator cannot run a scenario."""


class AlarmError(AtcsError):
    """An alarm request is invalid: unknown alarm, already acknowledged, empty comment."""
