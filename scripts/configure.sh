#!/usr/bin/env bash
# Configure a QEMU build directory once; again, from scratch, only when the
# configure flags change.  Usage: configure.sh SRC_DIR BUILD_DIR FLAGS...
set -euo pipefail

src=${1:?usage: configure.sh SRC BUILD FLAGS...}
build=${2:?usage: configure.sh SRC BUILD FLAGS...}
shift 2
flags="$*"

if [ -f "$build/build.ninja" ] && [ -f "$build/configure.flags" ] &&
   [ "$(cat "$build/configure.flags")" = "$flags" ]; then
    exit 0
fi
if [ -d "$build" ]; then
    echo "configure.sh: configure flags changed: reconfiguring $build from scratch"
    rm -rf "$build"
fi
mkdir -p "$build"
echo "configure.sh: $src -> $build"
if ! (cd "$build" && "$src/configure" "$@" > configure.log 2>&1); then
    tail -20 "$build/configure.log"
    echo "configure.sh: configure failed, see $build/configure.log" >&2
    exit 1
fi
echo "$flags" > "$build/configure.flags"
