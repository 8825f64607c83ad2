"""Configuration of the InfluxDB time-series store."""

from __future__ import annotations

from pydantic import Field

from atcs.config._base import StrictModel


class InfluxConfig(StrictModel):
    """Connection to InfluxDB."""

    url: str = Field(default="http://127.0.0.1:8086", description="Base URL of the server.")
