"""Configuration of the long-running service process."""

from __future__ import annotations

from pydantic import Field

from atcs.config._base import StrictModel


class ServiceConfig(StrictModel):
    """Process-wide settings of ``atcs run``."""

    state_dir: str = Field(
        default="var",
        description="Folder for on-disk queues and spools; relative to the config file.",
    )
    log_level: str = Field(default="INFO", description="Logging level: DEBUG, INFO, WARNING.")
    frame_queue_size: int = Field(
        default=2, ge=1, le=64, description="Frames waiting per camera; the oldest is dropped."
    )
