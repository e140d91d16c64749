#!/usr/bin/env bash
# Build QEMU's x86 option ROMs (linuxboot_dma.bin for -kernel, kvmvapic,
# multiboot, pvh) from the source tree with the host gcc.  configure skips
# them when it finds no i386 cross compiler, but they need only -m16, which
# the host gcc and binutils handle; links them where the build-tree binary
# looks for them.  Usage: optionroms.sh SRC BUILD
set -euo pipefail
src=${1:?usage: optionroms.sh SRC BUILD}
build=${2:?usage: optionroms.sh SRC BUILD}
dir=$build/pc-bios/optionrom
mkdir -p "$dir"
[ -e "$dir/Makefile" ] || ln -s "$src/pc-bios/optionrom/Makefile" "$dir/Makefile"
printf 'TOPSRC_DIR=%s\nCC=gcc\nCCAS=gcc\nLD=ld\nOBJCOPY=objcopy\nAR=ar\nNM=nm\n' \
    "$src" > "$dir/config.mak"
make -s -C "$dir" > "$dir/build.log" 2>&1 || { cat "$dir/build.log"; exit 1; }
# Run from the build tree, QEMU searches qemu-bundle/<datadir> (-L help
# lists it): link the ROMs there, so that -kernel works with no -L.
datadir=$(sed -n 's/^#define CONFIG_QEMU_DATADIR "\(.*\)"$/\1/p' "$build/config-host.h")
[ -n "$datadir" ] || { echo "optionroms.sh: no CONFIG_QEMU_DATADIR in $build/config-host.h" >&2; exit 1; }
mkdir -p "$build/qemu-bundle$datadir"
for rom in "$dir"/*.bin; do
    ln -sfn "$rom" "$build/qemu-bundle$datadir/$(basename "$rom")"
done
