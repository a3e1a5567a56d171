#!/bin/sh
# Add-on entry point: /data/options.json (+ the Supervisor's MQTT service) -> /data/engine.yaml -> the engine service.
# SAFECAM_HOME / SAFECAM_DATA default to the image's layout; tests point them at the repository and a temp dir.
set -eu
SAFECAM_HOME="${SAFECAM_HOME:-/opt/safecam}"
SAFECAM_DATA="${SAFECAM_DATA:-/data}"
cd "$SAFECAM_HOME"
python3 "$SAFECAM_HOME/addon/options_to_config.py" "$SAFECAM_DATA/options.json" "$SAFECAM_DATA/engine.yaml"
# Supervisor discovery (engine/supervisor.py): Home Assistant offers the cameras, paired with the engine's key
# (made here at first start, in /data; `serve` reads the same file). A failure is one warning: the engine starts.
python3 -m custom_components.safecam.engine announce --config "$SAFECAM_DATA/engine.yaml" || true
# exec: the engine is PID 1's child and gets SIGTERM directly (clean stop: final states, "offline").
exec python3 -m custom_components.safecam.engine serve --config "$SAFECAM_DATA/engine.yaml"
