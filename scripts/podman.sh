#!/usr/bin/env bash
# podman with the flags this machine kind needs (no Docker daemon; measured in ../shared/docs/ENVIRONMENT.md):
#   CONTAINERS_CONF with `default_ulimits = []` (crun/runc fail on setrlimit otherwise),
#   --runtime runc --cgroup-manager cgroupfs (hybrid cgroups).
# Usage: scripts/podman.sh ARGS...   e.g. scripts/podman.sh run --rm --network host IMAGE
set -euo pipefail
if ! command -v podman >/dev/null 2>&1; then
  echo "scripts/podman.sh: podman is not installed (apt-get install podman runc; scripts/setup.sh lists them)" >&2
  exit 127
fi
conf="${XDG_CACHE_HOME:-$HOME/.cache}/safecam/containers.conf"
if [ ! -f "$conf" ]; then
  mkdir -p "$(dirname "$conf")"
  printf '[containers]\ndefault_ulimits = []\n' > "$conf.tmp.$$" && mv "$conf.tmp.$$" "$conf"
fi
export CONTAINERS_CONF="$conf"
exec podman --runtime runc --cgroup-manager cgroupfs "$@"
