#!/usr/bin/env bash
# The test command: sets up what is missing (idempotent), then lints, type-checks and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export SAFECAM_MODEL_MIRROR="${SAFECAM_MODEL_MIRROR:-$(cd .. && pwd)/shared/models}"
.venv/bin/ruff check custom_components bench tests models scripts addon
.venv/bin/ruff format --check custom_components bench tests models scripts addon
.venv/bin/mypy --no-incremental custom_components/safecam
.venv/bin/python -m pytest "$@"
