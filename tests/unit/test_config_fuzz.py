"""Fuzz the config loader with hypothesis: no input escapes as anything but ConfigError.

Every failure is one :class:`ConfigError` whose lines start with a field path, and every
accepted config builds the engine's parts (analyzers, control loop, summary) with finite
numbers, valid polygons, a known time zone and log level, and its audit log inside the
state folder. The inputs are in :mod:`tests.support.config_fuzz`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

from atcs.config import parse_config
from tests.support.config_fuzz import (
    BASE,
    engine_problems,
    hostile_documents,
    judge,
    judge_file,
    mutated_trees,
    toml_text,
)

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ALLOWED = {"refused", "accepted"}


def test_the_base_config_is_accepted_and_runs() -> None:
    cfg = parse_config(BASE, Path("/srv/atcs"), environ={})
    assert engine_problems(cfg) == []
    assert judge_file(toml_text(BASE).encode()) == "accepted"


@FUZZ
@given(mutated_trees())
def test_mutated_trees(tree: dict[str, Any]) -> None:
    assert judge(lambda: parse_config(tree, Path("/srv/atcs"), environ={})) in ALLOWED


@FUZZ
@given(mutated_trees())
def test_mutated_files(tree: dict[str, Any]) -> None:
    assert judge_file(toml_text(tree).encode()) in ALLOWED


@FUZZ
@given(hostile_documents)
def test_hostile_documents(data: bytes) -> None:
    assert judge_file(data) in ALLOWED
