"""Test fixtures: mosquitto (filled in by its integration work)."""
