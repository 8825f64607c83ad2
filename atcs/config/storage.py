"""Configuration of the InfluxDB time-series store.

Two server protocols: ``api = "v1"`` speaks InfluxDB 1.x's ``/write`` and ``/query``
(database, retention policy, user, password); ``api = "v2"`` uses the ``influxdb-client``
package against InfluxDB 1.8+ (compatibility API), 2.x and 3.x (org, bucket, token).
Secrets are never in the file: the config names the environment variable that holds them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from atcs.config._base import StrictModel

InfluxApi = Literal["v1", "v2"]
Precision = Literal["s", "ms", "us", "ns"]


class InfluxConfig(StrictModel):
    """Connection to InfluxDB, batching, retry and the on-disk spool."""

    api: InfluxApi = Field(
        default="v1",
        description="Server protocol: v1 (/write, /query; InfluxDB 1.x) or v2 (influxdb-client).",
    )
    url: str = Field(
        default="http://127.0.0.1:8086",
        max_length=2048,
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="Base URL of the server (http:// or https://), without credentials.",
    )
    # v1
    database: str = Field(default="atcs", max_length=256, description="v1: database written to.")
    retention_policy: str = Field(
        default="",
        max_length=256,
        description="v1: retention policy; empty: the database's default.",
    )
    username: str = Field(
        default="", max_length=256, description="v1: user name; empty: no authentication."
    )
    password_env: str = Field(
        default="ATCS_INFLUX_PASSWORD",
        max_length=128,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="v1: name of the environment variable holding the password.",
    )
    create_database: bool = Field(
        default=True,
        description=(
            "v1: when the server says the database does not exist, run CREATE DATABASE "
            "(needs admin rights where authentication is on) and write again."
        ),
    )
    # v2
    org: str = Field(
        default="-",
        max_length=256,
        description="v2: organisation name or id ('-' for InfluxDB 1.8).",
    )
    bucket: str = Field(
        default="atcs",
        max_length=256,
        description="v2: bucket ('database/retention-policy' for InfluxDB 1.8).",
    )
    token_env: str = Field(
        default="ATCS_INFLUX_TOKEN",
        max_length=128,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="v2: name of the environment variable holding the API token "
        "('user:password' for InfluxDB 1.8).",
    )
    # both
    precision: Precision = Field(
        default="ms", description="Timestamp precision of written points: s, ms, us or ns."
    )
    batch_size: int = Field(
        default=1000, ge=1, le=50_000, description="Most points in one write request."
    )
    flush_interval_s: float = Field(
        default=1.0,
        gt=0.0,
        le=300.0,
        description="Longest time (s) a journaled point waits before a write is sent.",
    )
    timeout_s: float = Field(
        default=10.0, gt=0.0, le=300.0, description="Timeout (s) of one HTTP request."
    )
    retry_initial_s: float = Field(
        default=1.0,
        gt=0.0,
        le=3600.0,
        description="First retry delay (s) after a failed write; doubles.",
    )
    retry_max_s: float = Field(
        default=60.0, gt=0.0, le=3600.0, description="Longest retry delay, s."
    )
    queue_max_points: int = Field(
        default=100_000,
        ge=1,
        le=10_000_000,
        description=(
            "Most points waiting in memory (before start, or while the disk refuses the "
            "outbox); more are refused."
        ),
    )
    spool_max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=4096,
        le=1 << 40,
        description=(
            "Size bound in bytes of the points not yet stored, in the outbox "
            "(service.state_dir/outbox.sqlite3); when it is reached new points are refused, "
            "counted and logged, and what is spooled is kept."
        ),
    )
    verify_tls: bool = Field(default=True, description="Verify the server's TLS certificate.")
    ca_file: str | None = Field(
        default=None,
        max_length=4096,
        description="CA bundle (PEM) to verify the server; none: system CAs.",
    )

    @model_validator(mode="after")
    def _per_api(self) -> InfluxConfig:
        if self.api == "v1" and not self.database:
            raise ValueError("database: required when api = 'v1'")
        if self.api == "v2" and not self.bucket:
            raise ValueError("bucket: required when api = 'v2'")
        if self.api == "v2" and not self.org:
            raise ValueError("org: required when api = 'v2' (use '-' for InfluxDB 1.8)")
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry_max_s: must not be less than retry_initial_s")
        return self
