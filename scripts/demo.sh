#!/usr/bin/env bash
# The main job: set up, then run a real Home Assistant with safecam on a looping demo camera
# (a local RTSP stream of a real clip), one zone and one gate. Prints the URL and the login;
# runs in the foreground until Ctrl-C, which stops Home Assistant and the camera.
# Options go to scripts/ha/run_ha.py (--port, --config-dir, --source file, --background, --stop).
# --engine service: the deployed shape instead (the engine as its own process + Mosquitto + a current
# Home Assistant from .venv-hass, the camera added from MQTT discovery), as with the add-on on HA OS.
# The engine-only demo (no Home Assistant) is scripts/demo_cli.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
SHARED="$(cd .. && pwd)/shared"
export SAFECAM_MODEL_MIRROR="${SAFECAM_MODEL_MIRROR:-$SHARED/models}"
exec .venv/bin/python scripts/ha/run_ha.py "$@"
