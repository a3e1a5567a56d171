#!/usr/bin/env bash
# Build the add-on image localhost/safecam-engine:<version> from addon/Dockerfile the way the release workflow and
# the Supervisor do (context = the repository root, the base given as BUILD_FROM), on a Debian trixie base made
# here with debootstrap (no image registry is reachable from this machine kind).
#   scripts/image.sh            # prints the image reference as the last stdout line; progress goes to stderr
# Cached under ~/.cache/safecam (SAFECAM_CACHE): the base's root filesystem as a tarball, imported once as
# localhost/safecam-base-debian:trixie. The app image is rebuilt only when the hash of its inputs (the base, the
# Dockerfile, its ignore file and every file its COPY lines name) differs from the one in the image's label.
# Build-time only, never in the image: $PIP_CERT (this machine's CA bundle, for pip) and the model mirror folder
# (SAFECAM_MODELS_DIR, default ../shared/models), both mounted read-only.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PODMAN="$REPO/scripts/podman.sh"
CACHE="${SAFECAM_CACHE:-$HOME/.cache/safecam}"
DOCKERFILE=addon/Dockerfile
IGNOREFILE=addon/Dockerfile.dockerignore
BASE=localhost/safecam-base-debian:trixie
VERSION=$(sed -n 's/^__version__ = "\([^"]*\)".*/\1/p' "$REPO/custom_components/safecam/engine/__init__.py")
IMAGE="localhost/safecam-engine:$VERSION"
LABEL=io.safecam.inputs
case "$(uname -m)" in x86_64) ARCH=amd64 ;; aarch64) ARCH=aarch64 ;; *) echo "image.sh: unsupported $(uname -m)" >&2; exit 2 ;; esac

log() { echo "image.sh: $*" >&2; }
since() { echo "$(($(date +%s) - $1)) s"; }

base_image() {
  "$PODMAN" image exists "$BASE" && return 0
  local tarball="$CACHE/trixie-base.tar" rootfs="$CACHE/trixie-rootfs" t0
  t0=$(date +%s)
  if [ ! -s "$tarball" ]; then
    # A root filesystem left by an earlier run (or scripts/setup.sh) is reused when it has the venv module.
    if [ ! -f "$rootfs/usr/lib/python3.13/venv/__init__.py" ] || [ ! -f "$rootfs/etc/ssl/certs/ca-certificates.crt" ]; then
      command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install debootstrap)"; exit 2; }
      log "debootstrap trixie (minbase + python3, python3-venv, ca-certificates) into $rootfs"
      rm -rf "$rootfs.tmp"
      mkdir -p "$CACHE"
      debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates trixie "$rootfs.tmp" \
        http://deb.debian.org/debian >&2
      rm -rf "$rootfs" && mv "$rootfs.tmp" "$rootfs"
    fi
    tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  fi
  "$PODMAN" import "$tarball" "$BASE" >&2
  log "base $BASE ready in $(since "$t0")"
}

# Every file the image is made of (what the Dockerfile's COPY lines name, relative to the context), with its mode.
inputs_hash() {
  local sources
  sources=$(sed -n -e '/^COPY --from/d' -e 's/^COPY[[:space:]]\+//p' "$REPO/$DOCKERFILE" | awk '{NF--; print}' | tr ' ' '\n')
  {
    "$PODMAN" image inspect --format '{{.Id}}' "$BASE"
    # shellcheck disable=SC2086  # word splitting intended: the COPY sources
    (cd "$REPO" && find $DOCKERFILE $IGNOREFILE $sources -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort \
      | while read -r f; do printf '%s %s %s\n' "$f" "$(stat -c %a "$f")" "$(sha256sum < "$f" | cut -c1-64)"; done)
  } | sha256sum | cut -c1-64
}

base_image
hash=$(inputs_hash)
old=$("$PODMAN" image inspect --format "{{.Id}} {{index .Labels \"$LABEL\"}}" "$IMAGE" 2>/dev/null || true)
if [ "${old#* }" = "$hash" ]; then
  log "$IMAGE is up to date (inputs $hash)"
else
  args=(build --network host -f "$DOCKERFILE" --ignorefile "$IGNOREFILE"
        --build-arg "BUILD_FROM=$BASE" --build-arg "BUILD_ARCH=$ARCH" --build-arg "BUILD_VERSION=$VERSION"
        --label "$LABEL=$hash" -t "$IMAGE")
  if [ -n "${PIP_CERT:-}" ]; then
    args+=(-v "$(realpath "$PIP_CERT"):/mnt/pip-cert.pem:ro" --build-arg PIP_CERT=/mnt/pip-cert.pem)
  fi
  models="${SAFECAM_MODELS_DIR:-$REPO/../shared/models}"
  if [ -d "$models" ]; then
    args+=(-v "$(realpath "$models"):/mnt/models:ro" --build-arg MODEL_MIRROR=/mnt/models)
  fi
  t0=$(date +%s)
  log "building $IMAGE (inputs $hash)"
  (cd "$REPO" && "$PODMAN" "${args[@]}" .) >&2
  log "built $IMAGE in $(since "$t0"), $("$PODMAN" image inspect --format '{{.Size}}' "$IMAGE") bytes"
  # The image this one replaces (now untagged): removed by its ID, never by a broad prune.
  if [ -n "$old" ] && [ "${old%% *}" != "$("$PODMAN" image inspect --format '{{.Id}}' "$IMAGE")" ]; then
    "$PODMAN" rmi "${old%% *}" >/dev/null 2>&1 || true
  fi
fi
echo "$IMAGE"
