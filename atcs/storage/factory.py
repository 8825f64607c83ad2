"""Build the writer the configuration asks for, reading its secret from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

from atcs.config.storage import InfluxConfig
from atcs.errors import ConfigError
from atcs.storage.base import InfluxWriter
from atcs.storage.v1 import V1Writer
from atcs.storage.v2 import V2Writer


def make_writer(config: InfluxConfig, environ: Mapping[str, str] | None = None) -> InfluxWriter:
    """Return a :class:`V1Writer` or :class:`V2Writer` for ``config``.

    The v1 password is read from the variable named by ``config.password_env`` and the v2
    token from ``config.token_env`` (``environ`` defaults to ``os.environ``). A v1 user name
    without a password is a :class:`ConfigError`; a missing v2 token means no
    authentication (InfluxDB 1.8 with authentication off, or a proxy that adds it).
    """
    env = os.environ if environ is None else environ
    if config.api == "v1":
        password = env.get(config.password_env, "")
        if config.username and not password:
            raise ConfigError(
                f"influx.username is {config.username!r} but the environment variable "
                f"{config.password_env} (influx.password_env) holding its password is not set"
            )
        return V1Writer(config, password)
    return V2Writer(config, env.get(config.token_env, ""))


def make_query_client(config: InfluxConfig, environ: Mapping[str, str] | None = None) -> V1Writer:
    """Return a client of the InfluxQL ``/query`` endpoint for reading history.

    ``api = "v1"``: the configured database with its user and password. ``api = "v2"``: the
    v1-compatible ``/query`` of InfluxDB 1.8+ and 2.x, database = the bucket's name (2.x needs
    a DBRP mapping of it), authenticated with the token.
    """
    env = os.environ if environ is None else environ
    if config.api == "v1":
        return V1Writer(config, env.get(config.password_env, ""))
    database = config.bucket.split("/", 1)[0]
    compat = config.model_copy(update={"database": database, "username": ""})
    return V1Writer(compat, token=env.get(config.token_env, ""))
