#!/usr/bin/env bash
# Make Debian's firmware visible to QEMU run from its build directory.
# Usage: firmware-links.sh BUILD_DIR DIR[:DIR...]
# QEMU relocates its configured firmware path (--firmwarepath) under
# BUILD_DIR/qemu-bundle when it runs from the build tree.
set -euo pipefail

build=${1:?usage: firmware-links.sh BUILD_DIR DIRS}
IFS=: read -r -a dirs <<< "${2:?usage: firmware-links.sh BUILD_DIR DIRS}"
for d in "${dirs[@]}"; do
    [ -d "$d" ] || { echo "firmware-links.sh: $d missing (scripts/deps.sh installs it)" >&2; exit 1; }
    link="$build/qemu-bundle$d"
    [ -L "$link" ] && [ "$(readlink "$link")" = "$d" ] && continue
    mkdir -p "$(dirname "$link")"
    rm -rf "$link"
    ln -s "$d" "$link"
done
