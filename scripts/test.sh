#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every check: ruff, mypy --strict and the whole test suite.
# The suite starts its own Mosquitto, InfluxDB and nginx on free loopback ports.
# Shared clips and models are read from ../shared (override with ATCS_SHARED_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=False YOLO_VERBOSE=False
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check atcs detectors controllers tests benchmarks scripts
echo "== mypy --strict"
.venv/bin/mypy atcs detectors controllers tests benchmarks scripts
echo "== pytest"
.venv/bin/python -m pytest "$@"
