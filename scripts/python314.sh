#!/usr/bin/env bash
# Prints the path of a CPython 3.14 interpreter, building it once from ../shared/tools/python (about 9 min on
# 2 cores) into a cache outside the checkout, so later runs and CI on the same machine reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=3.14.7
SHA256=3b48dac8fb59f62eaa67ac83c1eb12bda1b7a08406dd286e252c11a66be27f81
PREFIX="${SAFECAM_PYTHON_CACHE:-$HOME/.cache/safecam/python-$VERSION}"
PY="$PREFIX/bin/python3.14"
if [ -x "$PY" ] && "$PY" -c 'import ssl, sqlite3, zlib, bz2, lzma, ctypes' 2>/dev/null; then
  echo "$PY"; exit 0
fi
TARBALL="$(cd ../shared/tools/python && pwd)/Python-$VERSION.tar.xz"
echo "$SHA256  $TARBALL" | sha256sum -c --quiet - >&2
BUILD_DEPS=(build-essential libgdbm-dev libzstd-dev libssl-dev libffi-dev zlib1g-dev libbz2-dev liblzma-dev
  libsqlite3-dev libreadline-dev uuid-dev libncurses-dev xz-utils)
missing=()
for p in "${BUILD_DEPS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
tar -C "$WORK" -xJf "$TARBALL"
( cd "$WORK/Python-$VERSION" && ./configure -q --prefix="$PREFIX" --with-ensurepip=install >&2 \
  && make -s -j"$(nproc)" >&2 2>"$WORK/make.log" && make -s install >&2 2>>"$WORK/make.log" ) \
  || { tail -30 "$WORK/make.log" >&2; exit 1; }
"$PY" -c 'import ssl, sqlite3, zlib, bz2, lzma, ctypes' >&2
echo "$PY"
