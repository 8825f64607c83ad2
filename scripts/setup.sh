#!/usr/bin/env bash
# Set up everything atcs needs on a Debian machine, idempotently:
# Debian packages (when missing), a virtual environment in .venv and the Python packages.
# Usage: bash scripts/setup.sh    (run as root for the Debian packages)
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(python3 python3-venv python3-dev curl ca-certificates mosquitto mosquitto-clients influxdb influxdb-client nginx ffmpeg rtsp-server-perl openssl chromium)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root or install them)" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The Debian packages enable their own services; the engine starts its own instances.
for svc in mosquitto influxdb nginx; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled "$svc" >/dev/null 2>&1; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done

# Python 3.11 or newer: prefer the one on PATH, else Debian's.
PY=""
for candidate in python3 python3.13 python3.12 python3.11 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    PY=$(command -v "$candidate"); break
  fi
done
[ -n "$PY" ] || { echo "setup: Python 3.11+ not found" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PY"
  "$PY" -m venv .venv
fi
VPIP=(.venv/bin/python -m pip install --disable-pip-version-check -q)
stamp=.venv/.atcs-setup
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
"${VPIP[@]}" --upgrade pip wheel setuptools
# ultralytics needs torch and torchvision; this pair imports together on CPU machines.
case "$(uname -m)" in
  aarch64) "${VPIP[@]}" torch==2.9.1 torchvision==0.24.1 ;;
  *) "${VPIP[@]}" torch==2.14.1 torchvision==0.29.1 ;;
esac
"${VPIP[@]}" -e ".[dev,sim]"
echo "$want" > "$stamp"
echo "setup: done (.venv ready)"
