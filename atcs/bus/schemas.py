"""The JSON Schemas of the MQTT contract (``atcs/contract/*.schema.json``) and validation.

Schemas are read from the installed package on first use and cached; nothing happens at
import time.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match

from atcs.bus.topics import TopicKind
from atcs.errors import PayloadError

SCHEMA_IDS: dict[TopicKind, str] = {kind: f"atcs.{kind.value}/1" for kind in TopicKind}
"""The ``schema`` field value of each payload kind (kind and major version)."""


def schema_file_name(kind: TopicKind) -> str:
    """File name of the JSON Schema of ``kind`` inside ``atcs/contract``."""
    return f"{kind.value}.schema.json"


def load_schema(kind: TopicKind) -> dict[str, Any]:
    """Return the JSON Schema document of ``kind`` as a dict (a fresh copy)."""
    return json.loads(_schema_text(kind))  # type: ignore[no-any-return]


@functools.cache
def _schema_text(kind: TopicKind) -> str:
    ref = resources.files("atcs").joinpath("contract", schema_file_name(kind))
    return ref.read_text(encoding="utf-8")


@functools.cache
def _validator(kind: TopicKind) -> Draft7Validator:
    schema = load_schema(kind)
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def validate(kind: TopicKind, document: object) -> None:
    """Check ``document`` against the schema of ``kind``; raise :class:`PayloadError`.

    The message names the failing field path and the rule it breaks (the most relevant
    error first).
    """
    validator = _validator(kind)
    errors = list(validator.iter_errors(document))
    if not errors:
        return
    first = best_match(errors)
    if first is None:  # pragma: no cover - best_match returns one when errors exist
        first = errors[0]
    path = "/".join(str(p) for p in first.absolute_path) or "(payload)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise PayloadError(f"{kind.value} payload breaks its schema at {path}: {first.message}{more}")
