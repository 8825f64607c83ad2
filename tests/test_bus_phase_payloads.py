"""The phase-by-phase contract: command and state codecs agree with their JSON Schemas."""

from __future__ import annotations

import json
from typing import Any

import pytest

from atcs.bus.phase_payloads import (
    decode_phase_command,
    decode_signal_state,
    encode_phase_command,
    encode_signal_state,
)
from atcs.bus.schemas import validate
from atcs.bus.topics import TopicKind, Topics
from atcs.errors import PayloadError
from atcs.types import IntersectionId, PhaseId
from controllers.phase.commands import CommandKind, ControlMode, PhaseCommand, SignalState
from controllers.phase.timing import Interval

IX = IntersectionId("simpang-1")
T0 = 1_733_400_000.25


def command(**kw: Any) -> PhaseCommand:
    base: dict[str, Any] = {
        "intersection_id": IX,
        "kind": CommandKind.EXTEND,
        "phase": PhaseId("north"),
        "issued_s": T0,
        "deadline_s": T0 + 5,
        "until_s": T0 + 5,
        "seq": 42,
        "reason": "platoon",
    }
    base.update(kw)
    return PhaseCommand(**base)


def state() -> SignalState:
    return SignalState(
        IX, T0 + 3.5, PhaseId("north"), Interval.YELLOW, T0 + 1, T0 - 20, PhaseId("east"),
        ControlMode.COMMAND, "serve_next east", frozenset({PhaseId("west")}), 41,
    )  # fmt: skip


def test_topics_for_commands_and_states() -> None:
    t = Topics("p/q")
    assert t.command(IX) == "p/q/intersections/simpang-1/command"
    assert t.state(IX) == "p/q/intersections/simpang-1/state"
    assert t.parse(t.command(IX)).kind is TopicKind.PHASE_COMMAND
    assert t.parse(t.state(IX)).kind is TopicKind.SIGNAL_STATE


@pytest.mark.parametrize(
    "record", [command(), command(kind=CommandKind.SERVE_NEXT, until_s=None, reason="")]
)
def test_command_round_trip_matches_the_schema(record: PhaseCommand) -> None:
    payload = encode_phase_command(record)
    validate(TopicKind.PHASE_COMMAND, json.loads(payload))
    back = decode_phase_command(payload, IX)
    assert back == record


def test_state_round_trip_matches_the_schema() -> None:
    payload = encode_signal_state(state(), controller_id="cabinet-7")
    doc = json.loads(payload)
    validate(TopicKind.SIGNAL_STATE, doc)
    assert doc["time_in_interval_s"] == pytest.approx(2.5)
    assert decode_signal_state(payload, IX) == state()


def _command_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(encode_phase_command(command()))
    return doc


BAD_COMMANDS: list[tuple[str, Any, str]] = [
    ("schema", "atcs.timing_plan/1", "foreign message"),
    ("intersection", "other", "does not match"),
    ("command", "force_off", "none of"),
    ("phase", "a/b", "not an id"),
    ("deadline", "2024-01-01T07:00:00", "time zone"),
    ("seq", -1, "non-negative"),
    ("extra", 1, "unknown field"),
]


@pytest.mark.parametrize(("key", "value", "why"), BAD_COMMANDS)
def test_bad_commands_are_refused_like_the_schema_does(key: str, value: Any, why: str) -> None:
    doc = _command_doc()
    doc[key] = value
    payload = json.dumps(doc).encode()
    with pytest.raises(PayloadError, match=why):
        decode_phase_command(payload, IX)
    if key != "intersection":  # the topic check is the decoder's, not the schema's
        with pytest.raises(PayloadError):
            validate(TopicKind.PHASE_COMMAND, doc)


def test_bad_states_are_refused() -> None:
    good: dict[str, Any] = json.loads(encode_signal_state(state()))
    for key, value in (("interval", "flashing"), ("time_in_interval_s", -1), ("mode", "x")):
        doc = {**good, key: value}
        with pytest.raises(PayloadError):
            decode_signal_state(json.dumps(doc), IX)
        with pytest.raises(PayloadError):
            validate(TopicKind.SIGNAL_STATE, doc)
    missing = {k: v for k, v in good.items() if k != "phase"}
    with pytest.raises(PayloadError, match="lacks phase"):
        decode_signal_state(json.dumps(missing), IX)
    with pytest.raises(PayloadError, match="not UTF-8"):
        decode_signal_state(b"\xff", IX)
