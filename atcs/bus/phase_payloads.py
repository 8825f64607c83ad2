"""Codecs of the phase-by-phase contract: phase commands and signal-controller states.

``{p}/intersections/{ix}/command`` carries ``atcs.phase_command/1`` (engine → signal
controller, QoS 1, not retained); ``{p}/intersections/{ix}/state`` carries
``atcs.signal_state/1`` (signal controller → engine, at least once a second, QoS 0,
retained). The records are :class:`~controllers.phase.commands.PhaseCommand` and
:class:`~controllers.phase.commands.SignalState`, whose times are controller seconds;
on the bus they are ISO-8601 UTC datetimes, converted with a :class:`Clock` (POSIX
seconds by default; the simulator passes its own).

Both messages are declared once (:class:`~atcs.bus.model.Message`): the schemas in
``atcs/contract``, the field checks and the codecs come from the declarations. Both may carry the
``auth`` object of signed control messages (``docs/security.md``): the engine signs its
commands and checks the signatures of the states it receives
(:class:`~atcs.bus.control.ControlInbox`); :func:`load_signal_state` and
:func:`load_phase_command` give the checked document, ``*_from_doc`` the record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from atcs.bus.control_payloads import AUTH, omit_empty
from atcs.bus.model import Field, Message, Struct
from atcs.bus.topics import TopicKind
from atcs.bus.wire import ArrayOf, DateTime, Id, Integer, Number, Text, choice
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

INTERSECTION = Field("intersection", Id(), attr=None, get=lambda r: r.intersection_id)
"""The topic's intersection (required on these topics)."""


# Phase command -------------------------------------------------------------------------

PHASE_COMMAND: Message[dict[str, Any]] = Message(
    TopicKind.PHASE_COMMAND,
    "PhaseCommand",
    "A phase-by-phase command from the engine to a signal controller on "
    "{prefix}/intersections/{ix}/command (QoS 1, not retained). The controller keeps its own "
    "minimum and maximum greens, clearances and pedestrian intervals whatever it receives, "
    "refuses commands out of order or past their deadline, and runs its local time-of-day "
    "plan when no command is valid.",
    Struct(
        (
            INTERSECTION,
            Field(
                "command",
                choice(CommandKind),
                "serve_next: end the green in force as soon as its minimums allow and serve "
                "`phase` next (naming the phase in green holds it); extend: hold `phase`, the "
                "green in force, until `until`.",
                attr="kind",
            ),
            Field("phase", Id()),
            Field("issued_at", DateTime()),
            Field("deadline", DateTime(), "The command is void after this time."),
            Field(
                "seq",
                Integer(),
                "Increases with every command to the intersection; an older one is refused.",
            ),
            Field(
                "until",
                DateTime(),
                "extend only: hold until this time (at most the deadline).",
                required=False,
            ),
            Field(
                "reason",
                Text(max_length=_MAX_REASON, cut=True),
                required=False,
                default="",
                omit=omit_empty,
            ),
            AUTH,
        ),
    ),
    topic_key="intersection",
)


def _when(seconds: float | None, clock: Clock) -> datetime | None:
    return None if seconds is None else clock.to_datetime(seconds)


def _seconds(when: datetime | None, clock: Clock) -> float | None:
    return None if when is None else clock.to_seconds(when)


def encode_phase_command(command: PhaseCommand, clock: Clock = POSIX) -> bytes:
    """Encode what the engine sends on ``{p}/intersections/{ix}/command``."""
    return PHASE_COMMAND.encode(
        command,
        issued_at=clock.to_datetime(command.issued_s),
        deadline=clock.to_datetime(command.deadline_s),
        until=_when(command.until_s, clock),
    )


def load_phase_command(payload: bytes | str, intersection: IntersectionId) -> dict[str, Any]:
    """Parse and check a command received on the command topic of ``intersection``."""
    return PHASE_COMMAND.load(payload, intersection)


def decode_phase_command(
    payload: bytes | str, intersection: IntersectionId, clock: Clock = POSIX
) -> PhaseCommand:
    """Read a command received on the command topic of ``intersection``."""
    return phase_command_from_doc(load_phase_command(payload, intersection), intersection, clock)


def phase_command_from_doc(
    doc: dict[str, Any], intersection: IntersectionId, clock: Clock = POSIX
) -> PhaseCommand:
    """Return the :class:`PhaseCommand` of a document checked by :func:`load_phase_command`."""
    v = PHASE_COMMAND.read(doc)
    return PhaseCommand(
        intersection_id=intersection,
        kind=v["kind"],
        phase=v["phase"],
        issued_s=clock.to_seconds(v["issued_at"]),
        deadline_s=clock.to_seconds(v["deadline"]),
        until_s=_seconds(v["until"], clock),
        seq=v["seq"],
        reason=v["reason"],
    )


# Signal state --------------------------------------------------------------------------

SIGNAL_STATE: Message[dict[str, Any]] = Message(
    TopicKind.SIGNAL_STATE,
    "SignalState",
    "A phase-by-phase signal controller's state (SPaT-like), at least once a second on "
    "{prefix}/intersections/{ix}/state (QoS 0, not retained: each signed state is used once).",
    Struct(
        (
            INTERSECTION,
            Field("at", DateTime()),
            Field(
                "phase",
                Id(),
                "The phase in green, or the one being cleared during yellow and all-red.",
            ),
            Field("interval", choice(Interval)),
            Field("interval_started_at", DateTime()),
            Field(
                "time_in_interval_s",
                Number(minimum=0),
                "Time since the interval began, s.",
                get=lambda s: round(max(0.0, s.time_in_interval_s), 6),
            ),
            Field("green_started_at", DateTime()),
            Field(
                "mode",
                choice(ControlMode),
                "command: a valid engine command rules; local: the controller's time-of-day plan.",
            ),
            Field("reason", Text(max_length=_MAX_REASON, cut=True), required=False, default=""),
            Field(
                "recall",
                ArrayOf(Id(), max_items=64, into=frozenset),
                "Phases on recall (their detection failed).",
                get=lambda s: sorted(s.recall),
                required=False,
                default=frozenset(),
            ),
            Field(
                "next_phase",
                Id(),
                "During yellow and all-red: the phase that follows.",
                required=False,
            ),
            Field("command_seq", Integer(), "The last command accepted.", required=False),
            Field(
                "controller_id",
                Text(max_length=_MAX_ID, cut=True),
                attr=None,
                required=False,
                omit=omit_empty,
            ),
            AUTH,
        ),
    ),
    topic_key="intersection",
)


def encode_signal_state(state: SignalState, clock: Clock = POSIX, controller_id: str = "") -> bytes:
    """Encode what a signal controller sends on ``{p}/intersections/{ix}/state``."""
    return SIGNAL_STATE.encode(
        state,
        at=clock.to_datetime(state.at_s),
        interval_started_at=clock.to_datetime(state.interval_started_s),
        green_started_at=clock.to_datetime(state.green_started_s),
        controller_id=controller_id,
    )


def load_signal_state(payload: bytes | str, intersection: IntersectionId) -> dict[str, Any]:
    """Parse and check a state received on the state topic of ``intersection``."""
    return SIGNAL_STATE.load(payload, intersection)


def decode_signal_state(
    payload: bytes | str, intersection: IntersectionId, clock: Clock = POSIX
) -> SignalState:
    """Read a state received on the state topic of ``intersection``."""
    return signal_state_from_doc(load_signal_state(payload, intersection), intersection, clock)


def signal_state_from_doc(
    doc: dict[str, Any], intersection: IntersectionId, clock: Clock = POSIX
) -> SignalState:
    """Return the :class:`SignalState` of a document checked by :func:`load_signal_state`."""
    v = SIGNAL_STATE.read(doc)
    return SignalState(
        intersection_id=intersection,
        at_s=clock.to_seconds(v["at"]),
        phase=PhaseId(v["phase"]),
        interval=v["interval"],
        interval_started_s=clock.to_seconds(v["interval_started_at"]),
        green_started_s=clock.to_seconds(v["green_started_at"]),
        next_phase=v["next_phase"],
        mode=v["mode"],
        reason=v["reason"],
        recall=v["recall"],
        command_seq=v["command_seq"],
    )
