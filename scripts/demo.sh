#!/usr/bin/env bash
# The main job: set up, then run the deployed shape: a real, current Home Assistant (.venv-hass) + Mosquitto +
# the safecam engine as its own process (the add-on's entry point) on a looping demo camera (a local RTSP stream
# of a real clip), the camera added from MQTT discovery with the engine's pairing key, one zone, one gate, a site
# and the Safecam dashboard. Prints the URL, the login and where the pairing key is; runs in the foreground until
# Ctrl-C, which stops everything it started (by PID). Re-running reuses the config dir (run/ha/service).
# Options go to scripts/ha/run_ha.py (--engine embedded: the analysis inside Home Assistant instead, in
# run/ha/config; --port, --config-dir, --source file, --background, --stop).
# The engine-only demo (no Home Assistant) is scripts/demo_cli.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
SHARED="$(cd .. && pwd)/shared"
export SAFECAM_MODEL_MIRROR="${SAFECAM_MODEL_MIRROR:-$SHARED/models}"
exec .venv/bin/python scripts/ha/run_ha.py "$@"
