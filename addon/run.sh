#!/bin/sh
# Add-on entry point: /data/options.json (+ the Supervisor's MQTT service) -> /data/engine.yaml -> the engine service.
# SAFECAM_HOME / SAFECAM_DATA default to the image's layout; tests point them at the repository and a temp dir.
# python3 and safecam-engine are the image's venv (first on PATH): the engine as its wheel installs it.
set -eu
SAFECAM_HOME="${SAFECAM_HOME:-/opt/safecam}"
SAFECAM_DATA="${SAFECAM_DATA:-/data}"
python3 "$SAFECAM_HOME/addon/options_to_config.py" "$SAFECAM_DATA/options.json" "$SAFECAM_DATA/engine.yaml"
# Supervisor discovery (engine/supervisor.py): Home Assistant offers the cameras, paired with the engine's key
# (made here at first start, in /data; `serve` reads the same file). A failure is one warning: the engine starts.
safecam-engine announce --config "$SAFECAM_DATA/engine.yaml" || true
# exec: the engine gets SIGTERM directly from the init (clean stop: final states, "offline").
exec safecam-engine serve --config "$SAFECAM_DATA/engine.yaml"
