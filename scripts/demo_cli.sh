#!/usr/bin/env bash
# The engine on its own (no Home Assistant): set up, then run the safecam engine CLI on a real demo clip
# with a zone and a gate. Writes the JSON lines and the anonymized video to run/demo/ and prints the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
SHARED="$(cd .. && pwd)/shared"
export SAFECAM_MODEL_MIRROR="${SAFECAM_MODEL_MIRROR:-$SHARED/models}"
CLIP="${1:-$SHARED/data/pedestrians/tud_stadtmitte.mp4}"
mkdir -p run/demo
.venv/bin/python -m custom_components.safecam.engine run "$CLIP" --config scripts/demo_scene.yaml \
  --out-jsonl run/demo/result.jsonl --out-video run/demo/anonymized.mp4
tail -n 1 run/demo/result.jsonl
echo "JSON lines: run/demo/result.jsonl    anonymized video: run/demo/anonymized.mp4"
