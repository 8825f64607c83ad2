"""Messages declared once: the schema files, the checks and the codecs come from one model.

The committed ``atcs/contract/*.schema.json`` must equal what the declarations generate,
and the declarations' own field checks (what the decoders run) must accept and refuse
exactly what a JSON Schema validator accepts and refuses with the published schema, for
valid payloads of every kind mutated by hypothesis.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator

from atcs.alarms.model import Alarm, AlarmChange, AlarmEvent, AlarmKind, Severity, SubjectType
from atcs.bus.alarms import encode_alarm
from atcs.bus.catalog import MESSAGES, main, render, render_asyncapi, stale_files, write_all
from atcs.bus.fiware import traffic_flow_observed
from atcs.bus.jsontext import parse_object
from atcs.bus.measure_payloads import (
    encode_incident_event,
    encode_incident_state,
    encode_movement_counts,
    encode_traffic_flow_observed,
)
from atcs.bus.messages import (
    AckResult,
    EngineState,
    EngineStatus,
    MessageMeta,
    Override,
    OverrideAction,
    PlanAck,
)
from atcs.bus.model import Field, Message, Rule, Struct
from atcs.bus.nodes import NodeRole, encode_node_status, node_status_of
from atcs.bus.override_state import OverrideState, encode_override_state
from atcs.bus.payloads import (
    encode_camera_status,
    encode_engine_status,
    encode_override,
    encode_plan_ack,
    encode_segment_metrics,
    encode_timing_plan,
)
from atcs.bus.phase_payloads import encode_phase_command, encode_signal_state
from atcs.bus.schemas import load_schema
from atcs.bus.topics import TopicKind
from atcs.bus.wire import ArrayOf, Choice, Id, Integer, Nullable, Number, Text
from atcs.bus.zone_payloads import encode_segment_zone
from atcs.config import FiwareConfig
from atcs.errors import PayloadError
from atcs.types import IntersectionId, PhaseId, SiteId
from controllers.phase.commands import CommandKind, ControlMode, PhaseCommand, SignalState
from controllers.phase.timing import Interval
from tests.support import samples as s
from tests.support.fuzz import mutated

META = MessageMeta("stream-1", 7)
IX = IntersectionId("ix-1")
T0 = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)
POSIX_T0 = T0.timestamp()


def _valid() -> dict[TopicKind, bytes]:
    site = SiteId("demo")
    alarm = Alarm("a-1", AlarmKind.CONGESTION, SubjectType.SEGMENT, "seg-a", Severity.MAJOR,
                  "congestion", {"los": "F", "density": 61.5}, T0)  # fmt: skip
    entity = traffic_flow_observed(s.metrics(0), FiwareConfig(enabled=True, data_provider="D"))
    assert entity is not None
    command = PhaseCommand(IX, CommandKind.EXTEND, PhaseId("north"), POSIX_T0, POSIX_T0 + 5,
                           POSIX_T0 + 5, 42, "platoon")  # fmt: skip
    state = SignalState(IX, POSIX_T0 + 3.5, PhaseId("north"), Interval.YELLOW, POSIX_T0 + 1,
                        POSIX_T0 - 20, PhaseId("east"), ControlMode.COMMAND, "serve_next east",
                        frozenset({PhaseId("west")}), 41)  # fmt: skip
    return {
        TopicKind.ENGINE_STATUS: encode_engine_status(
            EngineStatus(EngineState.ONLINE, "0.1.0", site, "atcs-demo", T0)
        ),
        TopicKind.CAMERA_STATUS: encode_camera_status(site, s.camera_status(), META),
        TopicKind.SEGMENT_METRICS: encode_segment_metrics(s.metrics(0), META),
        TopicKind.SEGMENT_ZONE: encode_segment_zone(site, s.frame_zone()),
        TopicKind.TIMING_PLAN: encode_timing_plan(site, s.plan(), META),
        TopicKind.PLAN_ACK: encode_plan_ack(
            PlanAck(IX, "p-1", AckResult.REJECTED, "min green", "ctl-7", T0)
        ),
        TopicKind.OVERRIDE: encode_override(
            Override(IX, OverrideAction.FIXED, "op", "parade", T0, None, {PhaseId("ns"): 40.0})
        ),
        TopicKind.OVERRIDE_STATE: encode_override_state(
            OverrideState(IX, T0, OverrideAction.FIXED, "op", "parade", T0, "parade", {"ns": 40.0}),
            META,
        ),
        TopicKind.PHASE_COMMAND: encode_phase_command(command),
        TopicKind.SIGNAL_STATE: encode_signal_state(state, controller_id="cabinet-7"),
        TopicKind.MOVEMENT_COUNTS: encode_movement_counts(s.movements(), META),
        TopicKind.INCIDENT_EVENT: encode_incident_event(s.incident_event(), META),
        TopicKind.INCIDENT_STATE: encode_incident_state(s.incident_event(), META),
        TopicKind.TRAFFIC_FLOW_OBSERVED: encode_traffic_flow_observed(entity, META),
        TopicKind.ALARM: encode_alarm(AlarmEvent(AlarmChange.RAISED, T0, alarm, "demo"), META),
        TopicKind.NODE_STATUS: encode_node_status(
            node_status_of("edge-0", NodeRole.EDGE, "demo", ["cam-1"])
        ),
    }


VALID = _valid()
AGREE = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_every_kind_is_declared_once() -> None:
    assert set(MESSAGES) == set(TopicKind)
    assert set(VALID) == set(TopicKind)


def test_committed_schema_files_are_generated_from_the_declarations() -> None:
    assert stale_files() == [], "run: python -m atcs.bus.catalog"
    assert main(["--check"]) == 0


def test_the_generator_writes_what_the_check_expects(tmp_path: Path) -> None:
    (tmp_path / "plan_ack.schema.json").write_text("{}", encoding="utf-8")
    assert len(stale_files(tmp_path)) == len(TopicKind) + 1  # and asyncapi.yaml
    assert len(write_all(tmp_path)) == len(TopicKind) + 1
    assert stale_files(tmp_path) == []
    assert (tmp_path / "asyncapi.yaml").read_text(encoding="utf-8") == render_asyncapi()
    written = json.loads((tmp_path / "plan_ack.schema.json").read_text(encoding="utf-8"))
    assert written == load_schema(TopicKind.PLAN_ACK)
    assert render(TopicKind.PLAN_ACK).endswith("}\n")


@pytest.mark.parametrize("kind", list(TopicKind), ids=[k.value for k in TopicKind])
def test_valid_payloads_pass_the_model_and_the_published_schema(kind: TopicKind) -> None:
    doc = json.loads(VALID[kind])
    assert list(Draft7Validator(load_schema(kind)).iter_errors(doc)) == []
    assert MESSAGES[kind].load(VALID[kind]) == doc


@pytest.mark.parametrize("kind", list(TopicKind), ids=[k.value for k in TopicKind])
@AGREE
@given(data=st.data())
def test_model_checks_refuse_exactly_what_the_schema_refuses(
    kind: TopicKind, data: st.DataObject
) -> None:
    payload = data.draw(mutated(VALID[kind]))
    try:
        doc = parse_object(payload, kind.value, max_bytes=1 << 20)
    except PayloadError:
        return  # the parser's bounds come before both checks
    schema_errors = list(Draft7Validator(load_schema(kind)).iter_errors(doc))
    refusal = ""
    try:
        MESSAGES[kind].load(payload)
    except PayloadError as exc:
        refusal = str(exc)
    if schema_errors:
        assert refusal, f"the model accepted {doc!r}: {schema_errors[0].message}"
    else:
        assert not refusal, f"the model refused a payload the schema accepts: {refusal}"


# The parts, on a small declaration -------------------------------------------------------


def _small() -> Message[dict[str, Any]]:
    def both_or_none(doc: Any) -> str | None:
        return "a needs b" if "a" in doc and "b" not in doc else None

    return Message(
        TopicKind.PLAN_ACK,
        "Small",
        "A small message.",
        Struct(
            (
                Field("n", Integer(1), "A count."),
                Field("a", Nullable(Number(maximum=1)), required=False),
                Field("b", Text(max_length=3, cut=True), required=False, omit=lambda v: not v),
                Field("ids", ArrayOf(Id(), max_items=2), required=False, default=()),
                Field("c", Choice(("x", "y")), required=False),
            ),
            rules=(Rule({"dependencies": {"a": ["b"]}}, both_or_none),),
        ),
    )


def test_errors_name_the_field_and_the_rule() -> None:
    m = _small()
    cases = {
        b'{"schema":"atcs.plan_ack/1"}': "lacks n",
        b'{"schema":"atcs.plan_ack/1","n":0}': "n 0 is not a at least 1, integer",
        b'{"schema":"atcs.plan_ack/1","n":1,"z":1}': "unknown field",
        b'{"schema":"atcs.plan_ack/1","n":1,"a":2,"b":"x"}': "a 2 is above its maximum 1",
        b'{"schema":"atcs.plan_ack/1","n":1,"ids":["ok","a/b"]}': r"ids\[1\] 'a/b' is not an id",
        b'{"schema":"atcs.plan_ack/1","n":1,"c":"z"}': "c 'z' is none of x, y",
        b'{"schema":"atcs.plan_ack/1","n":1,"a":0.5}': "a needs b",
        b'{"schema":"atcs.override/1","n":1}': "foreign message",
    }
    for payload, why in cases.items():
        with pytest.raises(PayloadError, match=why):
            m.load(payload)
    assert m.read(m.load(b'{"schema":"atcs.plan_ack/1","n":2.0}')) == {
        "n": 2, "a": None, "b": None, "ids": (), "c": None,
    }  # fmt: skip


def test_encoding_leaves_out_what_the_declaration_says_and_cuts_long_text() -> None:
    m = _small()
    record: dict[str, Any] = {"n": 3, "a": None, "b": "", "ids": ["i"], "c": None}
    got = json.loads(m.encode(record, **record))
    assert got == {"schema": "atcs.plan_ack/1", "n": 3, "a": None, "ids": ["i"]}
    record = {**record, "b": "long text", "c": "x", "ids": ()}
    got = json.loads(m.encode(SimpleNamespace(**record), META))
    assert got == {"schema": "atcs.plan_ack/1", "n": 3, "a": None, "b": "lon", "ids": [],
                   "c": "x", "stream": "stream-1", "seq": 7}  # fmt: skip
    schema = m.schema()
    assert schema["required"] == ["schema", "n"]
    assert schema["properties"]["a"] == {"type": ["number", "null"], "maximum": 1}
    assert schema["properties"]["ids"]["items"] == {"$ref": "#/definitions/id"}
    assert schema["dependencies"] == {"a": ["b"]}
    Draft7Validator.check_schema(schema)


def test_one_name_cannot_stand_for_two_schemas() -> None:
    m: Message[dict[str, Any]] = Message(
        TopicKind.ALARM, "Two ids", "Ids of two lengths.",
        Struct((Field("a", Id()), Field("b", Id(256)))),
    )  # fmt: skip
    with pytest.raises(ValueError, match="two different schemas"):
        m.schema()
