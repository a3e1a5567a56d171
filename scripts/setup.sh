#!/usr/bin/env bash
# One-time (idempotent) setup of a fresh Debian machine: system packages, .venv with pinned Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(ffmpeg libturbojpeg0 mosquitto chromium
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-tools)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="$(pyenv prefix 3.13.0 2>/dev/null)/bin/python3"
[ -x "$PY" ] || { echo "Python 3.13.0 from pyenv is required (pyenv install 3.13.0)" >&2; exit 1; }
if command -v uv >/dev/null 2>&1; then
  UV=(uv)
else  # installed into pyenv's 3.13.0 and run as a module: no PATH or shim rehash needed
  "$PY" -m pip install -q --disable-pip-version-check uv==0.13.9
  UV=("$PY" -m uv)
fi

if [ ! -x .venv/bin/python ] || ! cmp -s requirements/lock.txt .venv/.safecam-lock 2>/dev/null; then
  [ -x .venv/bin/python ] || "${UV[@]}" venv -q -p "$PY" .venv
  "${UV[@]}" pip install -q -p .venv/bin/python --compile-bytecode -r requirements/lock.txt
  cp requirements/lock.txt .venv/.safecam-lock
fi
