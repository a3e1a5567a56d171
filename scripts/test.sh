#!/usr/bin/env bash
# The test command: sets up what is missing (idempotent), then
#   lint and types, and the whole suite, in .venv (Python 3.14, current Home Assistant + its test harness, CPU EP);
#   the Home Assistant tests and the OpenVINO ones again in .venv-min (Python 3.13.0, the minimum HA hacs.json
#   declares, onnxruntime-openvino): `-m "ha or openvino"`.
# Arguments go to both pytest runs. Every step runs and prints its time; the exit status is the first failing
# step's own (pytest's exit codes included).
set -uo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash scripts/setup.sh || exit $?
echo "=== setup: $((SECONDS - start)) s"
export SAFECAM_MODEL_MIRROR="${SAFECAM_MODEL_MIRROR:-$(cd .. && pwd)/shared/models}"
PATHS=(custom_components bench tests models scripts addon)

status=0
step() {  # step NAME COMMAND...
  local name=$1 start=$SECONDS rc=0
  shift
  echo "=== $name"
  "$@" || rc=$?
  echo "=== $name: exit $rc, $((SECONDS - start)) s"
  if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then status=$rc; fi
}
step "ruff" .venv/bin/ruff check "${PATHS[@]}"
step "ruff format" .venv/bin/ruff format --check "${PATHS[@]}"
step "mypy" .venv/bin/mypy --no-incremental custom_components/safecam
step "pytest, current HA ($(.venv/bin/python -c 'import homeassistant.const as c; print(c.__version__)'))" \
  .venv/bin/python -m pytest "$@"
step "pytest -m 'ha or openvino', minimum HA ($(.venv-min/bin/python -c 'import homeassistant.const as c; print(c.__version__)'))" \
  .venv-min/bin/python -m pytest -m "ha or openvino" "$@"
exit "$status"
