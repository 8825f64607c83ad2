"""atcs: an adaptive traffic control system monitoring engine."""

__version__ = "0.1.0"
