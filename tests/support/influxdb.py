"""Test fixtures: influxdb (filled in by its integration work)."""
