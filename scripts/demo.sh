#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the engine on the demo site in seeds/ with config.toml
# and its own Mosquitto and InfluxDB (scripts/demo_run.sh: ports, folders and how stopping
# works are described there). Extra arguments go to `atcs run` (e.g. --duration 120).
# Offline, the detector runs from ../shared/models (override with ATCS_MODEL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec bash scripts/demo_run.sh "$@"
