"""Configuration of the MQTT bus."""

from __future__ import annotations

from pydantic import Field

from atcs.config._base import StrictModel


class MqttConfig(StrictModel):
    """Connection to the MQTT broker."""

    host: str = Field(default="127.0.0.1", description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker TCP port.")
    prefix: str = Field(default="atcs/v1", description="Topic prefix.")
