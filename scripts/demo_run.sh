#!/usr/bin/env bash
# Run the engine on the demo site (config.toml) with a local Mosquitto and InfluxDB.
# scripts/demo.sh runs this after scripts/setup.sh; run it directly once set up.
#
# Servers: a Mosquitto on 127.0.0.1:${ATCS_MQTT_PORT:-1883} and an InfluxDB 1.x on
# 127.0.0.1:${ATCS_INFLUX_PORT:-8086} are started when nothing answers there, with their data
# and logs under the state folder (${ATCS_STATE_DIR:-var}: mosquitto/, influxdb/, log/). Run
# as root, Mosquitto drops to its own user `mosquitto`, so its folder is given to that user
# (it saves its persistence file there); InfluxDB runs as the user running this script.
#
# Stopping: Ctrl-C, SIGTERM or SIGHUP stops the engine first (it closes and delivers its
# last window to the broker and the database), then the servers it started, in reverse
# order; when the engine exits on its own the servers stop too. The servers and the engine
# run in their own sessions, so a Ctrl-C in the terminal reaches only this script, which
# decides the order. Nothing it started outlives it (short of SIGKILL).
# Extra arguments go to `atcs run` (e.g. --duration 120).
set -euo pipefail
cd "$(dirname "$0")/.."
export YOLO_OFFLINE="${YOLO_OFFLINE:-1}" YOLO_AUTOINSTALL="${YOLO_AUTOINSTALL:-False}"
shared="${ATCS_SHARED_DIR:-../shared}"
if [ -z "${ATCS_MODEL:-}" ] && [ -d "$shared/models/yolo11n_int8_openvino_model" ]; then
  export ATCS_MODEL="$shared/models/yolo11n_int8_openvino_model"
fi
export ATCS_MEDIA_DIR="${ATCS_MEDIA_DIR:-$shared/media}"
mqtt_port="${ATCS_MQTT_PORT:-1883}"
influx_port="${ATCS_INFLUX_PORT:-8086}"
influx_rpc_port="${ATCS_INFLUX_RPC_PORT:-8088}"
export ATCS_MQTT_PORT="$mqtt_port" ATCS_INFLUX_URL="http://127.0.0.1:$influx_port"
mkdir -p "${ATCS_STATE_DIR:-var}/log"
state="$(cd "${ATCS_STATE_DIR:-var}" && pwd)"
export ATCS_STATE_DIR="$state"

server_pids=()   # in start order; stopped in reverse
engine_pid=""

say() { echo "demo: $*"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
running() {  # whether process $1 exists and is not a zombie
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [ "${stat:0:1}" != Z ]
}
stop_pid() {  # stop_pid PID SIGNAL SECONDS: signal, wait, then SIGKILL; reap it
  local pid="$1" i
  kill -s "$2" "$pid" 2>/dev/null || true
  for ((i = 0; i < $3 * 10; i++)); do running "$pid" || break; sleep 0.1; done
  if running "$pid"; then
    say "process $pid did not stop within $3 s; killing it"
    kill -s KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
stop_all() {  # the engine first, so that its last window still reaches the servers
  if [ -n "$engine_pid" ]; then
    stop_pid "$engine_pid" TERM 60
    engine_pid=""
  fi
  local i
  for ((i = ${#server_pids[@]} - 1; i >= 0; i--)); do stop_pid "${server_pids[$i]}" TERM 20; done
  server_pids=()
}
on_signal() {
  trap '' INT TERM HUP
  say "$1: stopping the engine, then the servers"
  stop_all
  exit "$2"
}
trap 'on_signal SIGINT 130' INT
trap 'on_signal SIGTERM 143' TERM
trap 'on_signal SIGHUP 129' HUP
trap stop_all EXIT

start_server() {  # start_server NAME LOG COMMAND...: in its own session, output to LOG
  local name="$1" log="$2"
  shift 2
  setsid "$@" >"$log" 2>&1 </dev/null &
  server_pids+=($!)
  say "started $name (pid $!, log $log)"
}
wait_port() {  # wait_port PORT SECONDS NAME LOG
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    port_open "$1" && return 0
    running "${server_pids[-1]}" || break
    sleep 0.1
  done
  say "$3 did not start on port $1; the end of $4:"
  tail -n 20 "$4" >&2 || true
  exit 1
}

if ! port_open "$mqtt_port"; then
  dir="$state/mosquitto"
  mkdir -p "$dir"
  conf=(
    "listener $mqtt_port 127.0.0.1" "allow_anonymous true" "persistence true"
    "persistence_location $dir/" "autosave_interval 300"
  )
  if [ "$(id -u)" = 0 ]; then
    # Mosquitto started as root drops to the user `mosquitto`: give it its folder, and
    # keep it as root only where that user cannot reach the folder (a closed parent).
    if id -u mosquitto >/dev/null 2>&1; then
      chown -R mosquitto: "$dir"
      if ! runuser -u mosquitto -- test -w "$dir" 2>/dev/null; then
        say "user mosquitto cannot reach $dir; the broker runs as root"
        conf+=("user root")
      fi
    else
      conf+=("user root")
    fi
  fi
  printf '%s\n' "${conf[@]}" >"$dir/mosquitto.conf"
  start_server Mosquitto "$state/log/mosquitto.log" mosquitto -c "$dir/mosquitto.conf"
  wait_port "$mqtt_port" 10 Mosquitto "$state/log/mosquitto.log"
fi
if ! port_open "$influx_port"; then
  dir="$state/influxdb"
  mkdir -p "$dir"
  if [ ! -w "$dir" ]; then
    say "cannot write $dir (owned by $(stat -c %U "$dir")); fix its owner or set ATCS_STATE_DIR"
    exit 1
  fi
  sed -e "s#@DIR@#$dir#g" -e "s#@HTTP_PORT@#$influx_port#g" -e "s#@RPC_PORT@#$influx_rpc_port#g" \
    seeds/influxdb-demo.conf >"$dir/influxdb.conf"
  start_server InfluxDB "$state/log/influxdb.log" influxd -config "$dir/influxdb.conf"
  wait_port "$influx_port" 30 InfluxDB "$state/log/influxdb.log"
  curl -s -XPOST "http://127.0.0.1:$influx_port/query" --data-urlencode 'q=CREATE DATABASE atcs' \
    >/dev/null || true
fi
cat <<TXT
demo: dashboard:          http://127.0.0.1:${ATCS_DASHBOARD_PORT:-8080}/  (video wall: add ?layout=wall)
demo: watch the bus:      mosquitto_sub -p $mqtt_port -v -t 'atcs/#'
demo: live table:         .venv/bin/atcs watch --config config.toml
demo: query the history:  influx -port $influx_port -database atcs -execute 'SELECT * FROM segment_metrics ORDER BY time DESC LIMIT 5'
demo: stop:               Ctrl-C (the engine delivers its last window, then the servers stop)
TXT
setsid .venv/bin/atcs run --config config.toml "$@" </dev/null &
engine_pid=$!
code=0
wait "$engine_pid" || code=$?
engine_pid=""
say "the engine exited (code $code); stopping the servers"
stop_all
exit "$code"
