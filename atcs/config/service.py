"""Configuration of the long-running service process."""

from __future__ import annotations

from pydantic import Field

from atcs.config._base import LogLevel, PathText, StrictModel


class ServiceConfig(StrictModel):
    """Process-wide settings of ``atcs run``."""

    state_dir: PathText = Field(
        default="var",
        description="Folder for on-disk queues and spools; relative to the config file.",
    )
    log_level: LogLevel = Field(
        default="INFO",
        description=(
            "Logging level of atcs run: DEBUG, INFO, WARNING, ERROR or CRITICAL "
            "(--verbose on the command line means DEBUG)."
        ),
    )
    frame_queue_size: int = Field(
        default=2, ge=1, le=64, description="Frames waiting per camera; the oldest is dropped."
    )
    cpu_budget_cores: float | None = Field(
        default=None,
        gt=0.0,
        le=1024.0,
        description=(
            "CPU cores the engine may use for cameras (decode, detection, analysis, output); "
            "none: every core the process may run on. Above it the engine reports itself "
            "over budget."
        ),
    )
    budget_every_s: float = Field(
        default=10.0,
        ge=1.0,
        le=3600.0,
        description="How often the engine compares analysed with wanted frames and CPU, s.",
    )
