#!/usr/bin/env bash
# One-time (idempotent) setup of a fresh Debian 12 machine: system packages and three venvs, each rebuilt only when
# its lock (or interpreter) changed:
#   .venv       Python 3.14, current Home Assistant + its test harness (requirements/lock.txt): lint, types, the suite
#   .venv-min   pyenv's Python 3.13.0, the oldest HA we declare (hacs.json) + the OpenVINO engine (lock-min.txt)
#   .venv-hass  Python 3.14, a real `hass` of the newest release PyPI serves (lock-hass.txt): the end-to-end tests
#   .venv-engine pyenv's Python 3.13.0, the engine as `pip install safecam-engine` gives it: the wheel of this checkout
#               (rebuilt when the engine's files change) on the dependencies pinned in lock-engine.txt (compiled from
#               the wheel's own dependencies, for x86-64 and aarch64: `uv pip compile --universal`); the demo and
#               the end-to-end tests run its `safecam-engine serve` (the entry point the add-on image runs)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(ffmpeg libturbojpeg0 mosquitto chromium podman runc debootstrap
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-tools)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY313="$(pyenv prefix 3.13.0 2>/dev/null)/bin/python3"
[ -x "$PY313" ] || { echo "Python 3.13.0 from pyenv is required (pyenv install 3.13.0)" >&2; exit 1; }
PY314="$(bash scripts/python314.sh)"  # built once from ../shared/tools/python (about 9 min), then cached
if uv --version >/dev/null 2>&1; then  # a pyenv shim may exist for a version not selected: run it, do not just look it up
  UV=(uv)
else  # installed into pyenv's 3.13.0 and run as a module: no PATH or shim rehash needed
  "$PY313" -m uv --version >/dev/null 2>&1 || "$PY313" -m pip install -q --disable-pip-version-check uv==0.13.9
  UV=("$PY313" -m uv)
fi

# venv DIR PYTHON LOCK: (re)build DIR from LOCK unless its stamp says it already holds exactly that.
venv() {
  local dir=$1 py=$2 lock=$3 stamp
  stamp="$(printf '# python %s\n' "$py"; cat "$lock")"
  [ -x "$dir/bin/python" ] && [ "$stamp" = "$(cat "$dir/.safecam-lock" 2>/dev/null)" ] && return 0
  if [ -L "$dir" ] || [ "$("$dir/bin/python" -c 'import sys; print(sys.base_prefix)' 2>/dev/null)" \
      != "$("$py" -c 'import sys; print(sys.prefix)')" ]; then
    rm -rf "$dir"  # another interpreter (or a link to a shared venv): start over
    "${UV[@]}" venv -q -p "$py" "$dir"
  fi
  # sync, not install: packages a lock dropped go (onnxruntime and onnxruntime-openvino share files)
  "${UV[@]}" pip sync -q -p "$dir/bin/python" --compile-bytecode "$lock"
  printf '%s\n' "$stamp" > "$dir/.safecam-lock"
}
venv .venv "$PY314" requirements/lock.txt
venv .venv-min "$PY313" requirements/lock-min.txt
venv .venv-hass "$PY314" requirements/lock-hass.txt
venv .venv-engine "$PY313" requirements/lock-engine.txt

# The engine's wheel into .venv-engine (--no-deps: the lock holds them), built from this checkout when what goes into
# it (pyproject.toml's wheel target and metadata hook, the engine, the contract, our PPE model, the readme) or the
# lock changed.
ENGINE_INPUTS=(pyproject.toml LICENSE scripts/hatch_requirements.py docs/engine.md custom_components/safecam/contract.py
  custom_components/safecam/engine models/ppe/ppe_helmet_vest.onnx models/ppe/MODEL_CARD.md requirements/lock-engine.txt)
engine_stamp="$(find "${ENGINE_INPUTS[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort \
  | xargs sha256sum | sha256sum | cut -c1-64)"
if [ ! -x .venv-engine/bin/safecam-engine ] || [ "$engine_stamp" != "$(cat .venv-engine/.safecam-wheel 2>/dev/null)" ]; then
  dist="$(mktemp -d)"
  "${UV[@]}" build -q --wheel -o "$dist" .
  "${UV[@]}" pip install -q -p .venv-engine/bin/python --no-deps --reinstall --compile-bytecode "$dist"/safecam_engine-*.whl
  rm -rf "$dist"
  printf '%s\n' "$engine_stamp" > .venv-engine/.safecam-wheel
fi
