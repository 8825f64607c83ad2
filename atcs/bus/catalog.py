"""Every message of the contract, and the contract files generated from them.

``python -m atcs.bus.catalog`` rewrites ``atcs/contract/*.schema.json`` from the message
declarations and ``atcs/contract/asyncapi.yaml`` from them, the topics and the channel
table of :mod:`atcs.bus.asyncapi` (``--check`` only says which files differ, exit status
1); a test fails when a committed file drifts from its declaration.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from atcs.bus import asyncapi
from atcs.bus.alarms import ALARM
from atcs.bus.control_payloads import OVERRIDE, PLAN_ACK
from atcs.bus.measure_payloads import (
    INCIDENT_EVENT,
    INCIDENT_STATE,
    MOVEMENT_COUNTS,
    TRAFFIC_FLOW_OBSERVED,
)
from atcs.bus.model import Message
from atcs.bus.nodes import NODE_STATUS
from atcs.bus.override_state import OVERRIDE_STATE
from atcs.bus.payloads import CAMERA_STATUS, ENGINE_STATUS, SEGMENT_METRICS, TIMING_PLAN
from atcs.bus.phase_payloads import PHASE_COMMAND, SIGNAL_STATE
from atcs.bus.schemas import schema_file_name
from atcs.bus.topics import TopicKind
from atcs.bus.zone_payloads import SEGMENT_ZONE

MESSAGES: dict[TopicKind, Message[Any]] = {
    m.kind: m
    for m in (
        ENGINE_STATUS,
        CAMERA_STATUS,
        SEGMENT_METRICS,
        SEGMENT_ZONE,
        TIMING_PLAN,
        PLAN_ACK,
        OVERRIDE,
        OVERRIDE_STATE,
        PHASE_COMMAND,
        SIGNAL_STATE,
        MOVEMENT_COUNTS,
        INCIDENT_EVENT,
        INCIDENT_STATE,
        TRAFFIC_FLOW_OBSERVED,
        ALARM,
        NODE_STATUS,
    )
}
"""The declaration of each topic kind."""

CONTRACT_DIR = Path(__file__).resolve().parent.parent / "contract"


def render(kind: TopicKind) -> str:
    """Return the text of the schema file of ``kind`` (two-space JSON, a final newline)."""
    return json.dumps(MESSAGES[kind].schema(), indent=2, ensure_ascii=False) + "\n"


def render_asyncapi() -> str:
    """Return the text of ``asyncapi.yaml``."""
    return asyncapi.render({kind: m.description for kind, m in MESSAGES.items()})


def _files() -> dict[str, str]:
    out = {schema_file_name(kind): render(kind) for kind in TopicKind}
    out[asyncapi.FILE_NAME] = render_asyncapi()
    return out


def stale_files(directory: Path = CONTRACT_DIR) -> list[str]:
    """Names of the contract files in ``directory`` that differ from what is generated."""
    stale = []
    for name, text in _files().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def write_all(directory: Path = CONTRACT_DIR) -> list[str]:
    """Rewrite the stale contract files of ``directory``; return their names."""
    stale = []
    for name, text in _files().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            stale.append(name)
    return stale


def main(argv: list[str]) -> int:
    """Write (or with ``--check`` only list) the schema files that differ; exit status."""
    if "--check" in argv:
        stale = stale_files()
        for name in stale:
            print(f"{name} differs from its declaration", file=sys.stderr)
        return 1 if stale else 0
    for name in write_all():
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
