"""Configuration of signalised intersections (completed by the signal-timing work)."""

from __future__ import annotations

from atcs.config._base import StrictModel
from atcs.config.core import Identifier


class IntersectionConfig(StrictModel):
    """One signalised intersection."""

    id: Identifier
