#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the engine on the demo site in seeds/ with config.toml.
# Starts a local Mosquitto (127.0.0.1:1883) and InfluxDB (127.0.0.1:8086) when none answers
# there, with their data under var/. Extra arguments go to `atcs run` (e.g. --duration 120).
# Offline, the detector runs from ../shared/models (override with ATCS_MODEL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export YOLO_OFFLINE="${YOLO_OFFLINE:-1}" YOLO_AUTOINSTALL="${YOLO_AUTOINSTALL:-False}"
shared="${ATCS_SHARED_DIR:-../shared}"
if [ -z "${ATCS_MODEL:-}" ] && [ -d "$shared/models/yolo11n_int8_openvino_model" ]; then
  export ATCS_MODEL="$shared/models/yolo11n_int8_openvino_model"
fi
export ATCS_MEDIA_DIR="${ATCS_MEDIA_DIR:-$shared/media}"
mkdir -p var/log
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 1883; then
  mkdir -p var/mosquitto
  printf 'listener 1883 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\n' \
    "$PWD/var/mosquitto" > var/mosquitto/mosquitto.conf
  mosquitto -c var/mosquitto/mosquitto.conf > var/log/mosquitto.log 2>&1 &
  pids+=($!)
  echo "demo: started Mosquitto on 127.0.0.1:1883 (log var/log/mosquitto.log)"
fi
if ! port_open 8086; then
  mkdir -p var/influxdb
  sed "s#@DIR@#$PWD/var/influxdb#g" seeds/influxdb-demo.conf > var/influxdb/influxdb.conf
  influxd -config var/influxdb/influxdb.conf > var/log/influxdb.log 2>&1 &
  pids+=($!)
  for _ in $(seq 1 50); do port_open 8086 && break; sleep 0.2; done
  curl -s -XPOST 'http://127.0.0.1:8086/query' --data-urlencode 'q=CREATE DATABASE atcs' >/dev/null || true
  echo "demo: started InfluxDB on 127.0.0.1:8086 (log var/log/influxdb.log)"
fi
cat <<TXT
demo: dashboard:          http://127.0.0.1:${ATCS_DASHBOARD_PORT:-8080}/  (video wall: add ?layout=wall)
demo: watch the bus:      mosquitto_sub -v -t 'atcs/#'
demo: live table:         .venv/bin/atcs watch --config config.toml
demo: query the history:  influx -database atcs -execute 'SELECT * FROM segment_metrics ORDER BY time DESC LIMIT 5'
TXT
.venv/bin/atcs run --config config.toml "$@"
