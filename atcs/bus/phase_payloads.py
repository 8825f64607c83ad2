"""Codecs of the phase-by-phase contract: phase commands and signal-controller states.

``{p}/intersections/{ix}/command`` carries ``atcs.phase_command/1`` (engine → signal
controller, QoS 1, not retained); ``{p}/intersections/{ix}/state`` carries
``atcs.signal_state/1`` (signal controller → engine, at least once a second, QoS 0,
retained). The records are :class:`~controllers.phase.commands.PhaseCommand` and
:class:`~controllers.phase.commands.SignalState`, whose times are controller seconds;
on the bus they are ISO-8601 UTC datetimes, converted with a :class:`Clock` (POSIX
seconds by default; the simulator passes its own).

These topics run at one message per second per intersection, so decoding checks every
field by hand (about a tenth of a JSON Schema validation's cost) against the same rules
as ``atcs/contract/phase_command.schema.json`` and ``signal_state.schema.json``; a test
keeps the two in step. Both may carry the ``auth`` object of signed control messages
(``docs/security.md``): the engine signs its commands and checks the signatures of the
states it receives (:class:`~atcs.bus.control.ControlInbox`); :func:`load_signal_state`
and :func:`load_phase_command` give the checked document, ``*_from_doc`` the record.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from atcs.bus.codec import iso_utc, max_bytes
from atcs.bus.jsontext import parse_object
from atcs.bus.schemas import SCHEMA_IDS
from atcs.bus.topics import TopicKind
from atcs.errors import PayloadError
from atcs.types import IntersectionId, PhaseId
from controllers.phase.commands import CommandKind, ControlMode, PhaseCommand, SignalState
from controllers.phase.timing import Interval

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_ID = 128
_MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class Clock:
    """Converts controller seconds to datetimes and back (default: POSIX seconds)."""

    to_datetime: Callable[[float], datetime] = lambda s: _EPOCH + timedelta(seconds=s)
    to_seconds: Callable[[datetime], float] = lambda d: (d - _EPOCH).total_seconds()


POSIX = Clock()


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, allow_nan=False, separators=(",", ":")).encode("utf-8")


def _load(kind: TopicKind, payload: bytes | str, intersection: IntersectionId) -> dict[str, Any]:
    raw = payload.encode("utf-8", "replace") if isinstance(payload, str) else bytes(payload)
    doc = parse_object(raw, kind.value, max_bytes=max_bytes(kind))
    if not isinstance(doc, dict):
        raise PayloadError(f"{kind.value} payload is not a JSON object")
    if doc.get("schema") != SCHEMA_IDS[kind]:
        raise PayloadError(
            f"foreign message: schema {doc.get('schema')!r} is not {SCHEMA_IDS[kind]!r}"
        )
    if doc.get("intersection") != intersection:
        raise PayloadError(
            f"payload intersection {doc.get('intersection')!r} does not match the topic's "
            f"{intersection!r}"
        )
    return doc


def _check_keys(
    kind: TopicKind, doc: dict[str, Any], required: set[str], optional: set[str]
) -> None:
    missing = required - set(doc)
    if missing:
        raise PayloadError(f"{kind.value} payload lacks {', '.join(sorted(missing))}")
    extra = set(doc) - required - optional
    if extra:
        raise PayloadError(f"{kind.value} payload has unknown field(s) {', '.join(sorted(extra))}")


def _ident(doc: dict[str, Any], key: str) -> str:
    value = doc[key]
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= _MAX_ID
        or any(c in value for c in "/+#\x00")
    ):
        raise PayloadError(f"{key} {value!r} is not an id (1-128 characters, no / + # NUL)")
    return value


def _time(doc: dict[str, Any], key: str, clock: Clock) -> float:
    value = doc[key]
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise PayloadError(f"{key} {value!r} is not an ISO-8601 datetime with a time zone")
    return clock.to_seconds(when)


def _text(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key, "")
    if not isinstance(value, str) or len(value) > _MAX_REASON:
        raise PayloadError(f"{key} must be text of at most {_MAX_REASON} characters")
    return value


def _count(doc: dict[str, Any], key: str) -> int:
    value = doc[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise PayloadError(f"{key} {value!r} is not a non-negative integer")
    return value


def _enum(doc: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = doc[key]
    if value not in allowed:
        raise PayloadError(f"{key} {value!r} is none of {', '.join(allowed)}")
    return str(value)


# Phase command -------------------------------------------------------------------------


def encode_phase_command(command: PhaseCommand, clock: Clock = POSIX) -> bytes:
    """Encode what the engine sends on ``{p}/intersections/{ix}/command``."""
    doc: dict[str, Any] = {
        "schema": SCHEMA_IDS[TopicKind.PHASE_COMMAND],
        "intersection": command.intersection_id,
        "command": command.kind.value,
        "phase": command.phase,
        "issued_at": iso_utc(clock.to_datetime(command.issued_s)),
        "deadline": iso_utc(clock.to_datetime(command.deadline_s)),
        "seq": command.seq,
    }
    if command.until_s is not None:
        doc["until"] = iso_utc(clock.to_datetime(command.until_s))
    if command.reason:
        doc["reason"] = command.reason[:_MAX_REASON]
    return _dump(doc)


def load_phase_command(payload: bytes | str, intersection: IntersectionId) -> dict[str, Any]:
    """Parse and check a command received on the command topic of ``intersection``."""
    kind = TopicKind.PHASE_COMMAND
    doc = _load(kind, payload, intersection)
    required = {"schema", "intersection", "command", "phase", "issued_at", "deadline", "seq"}
    _check_keys(kind, doc, required, {"until", "reason", "auth"})
    return doc


def decode_phase_command(
    payload: bytes | str, intersection: IntersectionId, clock: Clock = POSIX
) -> PhaseCommand:
    """Read a command received on the command topic of ``intersection``."""
    return phase_command_from_doc(load_phase_command(payload, intersection), intersection, clock)


def phase_command_from_doc(
    doc: dict[str, Any], intersection: IntersectionId, clock: Clock = POSIX
) -> PhaseCommand:
    """Return the :class:`PhaseCommand` of a document checked by :func:`load_phase_command`."""
    return PhaseCommand(
        intersection_id=intersection,
        kind=CommandKind(_enum(doc, "command", tuple(k.value for k in CommandKind))),
        phase=PhaseId(_ident(doc, "phase")),
        issued_s=_time(doc, "issued_at", clock),
        deadline_s=_time(doc, "deadline", clock),
        until_s=_time(doc, "until", clock) if "until" in doc else None,
        seq=_count(doc, "seq"),
        reason=_text(doc, "reason"),
    )


# Signal state --------------------------------------------------------------------------


def encode_signal_state(state: SignalState, clock: Clock = POSIX, controller_id: str = "") -> bytes:
    """Encode what a signal controller sends on ``{p}/intersections/{ix}/state``."""
    doc: dict[str, Any] = {
        "schema": SCHEMA_IDS[TopicKind.SIGNAL_STATE],
        "intersection": state.intersection_id,
        "at": iso_utc(clock.to_datetime(state.at_s)),
        "phase": state.phase,
        "interval": state.interval.value,
        "interval_started_at": iso_utc(clock.to_datetime(state.interval_started_s)),
        "time_in_interval_s": round(max(0.0, state.time_in_interval_s), 6),
        "green_started_at": iso_utc(clock.to_datetime(state.green_started_s)),
        "mode": state.mode.value,
        "reason": state.reason[:_MAX_REASON],
        "recall": sorted(state.recall),
    }
    if state.next_phase is not None:
        doc["next_phase"] = state.next_phase
    if state.command_seq is not None:
        doc["command_seq"] = state.command_seq
    if controller_id:
        doc["controller_id"] = controller_id[:_MAX_ID]
    return _dump(doc)


def load_signal_state(payload: bytes | str, intersection: IntersectionId) -> dict[str, Any]:
    """Parse and check a state received on the state topic of ``intersection``."""
    kind = TopicKind.SIGNAL_STATE
    doc = _load(kind, payload, intersection)
    required = {
        "schema", "intersection", "at", "phase", "interval", "interval_started_at",
        "time_in_interval_s", "green_started_at", "mode",
    }  # fmt: skip
    optional = {"next_phase", "reason", "recall", "command_seq", "controller_id", "auth"}
    _check_keys(kind, doc, required, optional)
    return doc


def decode_signal_state(
    payload: bytes | str, intersection: IntersectionId, clock: Clock = POSIX
) -> SignalState:
    """Read a state received on the state topic of ``intersection``."""
    return signal_state_from_doc(load_signal_state(payload, intersection), intersection, clock)


def signal_state_from_doc(
    doc: dict[str, Any], intersection: IntersectionId, clock: Clock = POSIX
) -> SignalState:
    """Return the :class:`SignalState` of a document checked by :func:`load_signal_state`."""
    in_interval = doc["time_in_interval_s"]
    if (
        not isinstance(in_interval, int | float)
        or not math.isfinite(in_interval)
        or in_interval < 0
    ):
        raise PayloadError(f"time_in_interval_s {in_interval!r} is not a duration")
    recall = doc.get("recall", [])
    if not isinstance(recall, list) or len(recall) > 64:
        raise PayloadError("recall must be a list of at most 64 phase ids")
    return SignalState(
        intersection_id=intersection,
        at_s=_time(doc, "at", clock),
        phase=PhaseId(_ident(doc, "phase")),
        interval=Interval(_enum(doc, "interval", tuple(i.value for i in Interval))),
        interval_started_s=_time(doc, "interval_started_at", clock),
        green_started_s=_time(doc, "green_started_at", clock),
        next_phase=PhaseId(_ident(doc, "next_phase")) if "next_phase" in doc else None,
        mode=ControlMode(_enum(doc, "mode", tuple(m.value for m in ControlMode))),
        reason=_text(doc, "reason"),
        recall=frozenset(PhaseId(_ident({"recall": r}, "recall")) for r in recall),
        command_seq=_count(doc, "command_seq") if "command_seq" in doc else None,
    )
