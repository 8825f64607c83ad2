"""Shared pieces of the configuration models: the strict base model and value helpers."""

from __future__ import annotations

import os
import re

from pydantic import BaseModel, ConfigDict

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors and models are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def env_name(value: str, what: str) -> str:
    """Return ``value`` if it can name an environment variable; ValueError saying ``what``."""
    if not _ENV_NAME.match(value):
        raise ValueError(
            f"must be the NAME of an environment variable (letters, digits, '_'), not {what}"
        )
    return value


def expand_env(text: str, environ: dict[str, str] | None = None) -> str:
    """Replace ``${NAME}`` and ``${NAME:-default}`` in ``text`` from the environment.

    A reference to an unset variable without a default is left as it is, so that the
    caller can report it.
    """
    env = dict(os.environ) if environ is None else environ

    def _sub(match: re.Match[str]) -> str:
        name = match.group("name")
        if name in env and env[name] != "":
            return env[name]
        default = match.group("default")
        return default if default is not None else match.group(0)

    return _ENV_REF.sub(_sub, text)


def unresolved_env(text: str) -> list[str]:
    """Names of ``${NAME}`` references still present in ``text``."""
    return [m.group("name") for m in _ENV_REF.finditer(text)]
