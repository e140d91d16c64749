#!/usr/bin/env bash
# Install the two patched emulators and the data they load, nothing else.
# Usage: install.sh BUILD_DIR PREFIX [DESTDIR] [EDK2_FD]
#
#   PREFIX/bin/qemu-system-x86_64, PREFIX/bin/qemu-system-aarch64
#   PREFIX/share/qemu/*.bin          x86 option ROMs (linuxboot_dma.bin for
#                                    -kernel, kvmvapic, multiboot, pvh)
#   PREFIX/share/qemu/keymaps/       for -k
#   PREFIX/share/qemu/edk2-aarch64-code.fd   trixie's edk2 (EDK2_FD), for
#                                    -bios on arm64 virt
#
# The build is configured with CONFIG_RELOCATABLE: an installed binary
# looks for its data directory relative to itself (bin/../share/qemu),
# whatever PREFIX is, so the build is reused as it is (no reconfigure).
# SeaBIOS and iPXE come from Debian's packages, by the absolute firmware
# path compiled in (/usr/share/seabios, /usr/lib/ipxe/qemu).  No other
# tool is installed: qemu-img, qemu-nbd, ... stay Debian's.
set -euo pipefail

die() { echo "install.sh: $*" >&2; exit 1; }

build=${1:?usage: install.sh BUILD_DIR PREFIX [DESTDIR] [EDK2_FD]}
prefix=${2:?usage: install.sh BUILD_DIR PREFIX [DESTDIR] [EDK2_FD]}
destdir=${3:-}
edk2=${4:-}

case $prefix in
/*) ;;
*) die "PREFIX must be an absolute path, not '$prefix'" ;;
esac
prefix=$(realpath -ms "$prefix")
case $prefix in
/ | /usr)
    die "PREFIX=$prefix would write into $prefix/share/qemu, which Debian's" \
        "qemu-system-data owns; use /usr/local, /opt/qemu-cxl or a directory" \
        "of yours" ;;
esac
[ -z "$destdir" ] || destdir=$(realpath -ms "$destdir")

conf=$build/config-host.h
[ -f "$conf" ] || die "$conf missing: build first (make qemu)"
config() {
    sed -n "s/^#define $1 \"\(.*\)\"$/\1/p" "$conf"
}
grep -q '^#define CONFIG_RELOCATABLE' "$conf" ||
    die "$build is not configured relocatable: an installed binary would" \
        "not find its data"
# the layout the binary expects relative to its own directory
c_prefix=$(config CONFIG_PREFIX)
bindir=$(realpath -m --relative-to="$c_prefix" "$(config CONFIG_BINDIR)")
datadir=$(realpath -m --relative-to="$c_prefix" "$(config CONFIG_QEMU_DATADIR)")
case $bindir$datadir in
*..*) die "bindir or datadir outside the configured prefix $c_prefix" ;;
esac

bins=("$build/qemu-system-x86_64" "$build/qemu-system-aarch64")
for b in "${bins[@]}"; do
    [ -x "$b" ] || die "$b missing: build first (make qemu)"
done
roms=("$build"/pc-bios/optionrom/*.bin)
[ -e "${roms[0]}" ] ||
    die "no option ROMs in $build/pc-bios/optionrom (scripts/optionroms.sh)"

bin_to=$destdir$prefix/$bindir
data_to=$destdir$prefix/$datadir
mkdir -p "$bin_to" "$data_to/keymaps"
for b in "${bins[@]}"; do
    install -m 0755 "$b" "$bin_to/"
    echo "install.sh: $prefix/$bindir/$(basename "$b")"
done
install -m 0644 "${roms[@]}" "$data_to/"
echo "install.sh: $prefix/$datadir/ ($(cd "$build/pc-bios/optionrom" &&
                                       echo *.bin))"
# keymaps: what meson would install, read from the bundle it made
for k in "$build"/qemu-bundle"$c_prefix/$datadir"/keymaps/*; do
    [ -e "$k" ] && install -m 0644 "$(readlink -f "$k")" \
        "$data_to/keymaps/$(basename "$k")"
done
if [ -n "$edk2" ]; then
    [ -f "$edk2" ] || die "$edk2 missing"
    install -m 0644 "$edk2" "$data_to/edk2-aarch64-code.fd"
    echo "install.sh: $prefix/$datadir/edk2-aarch64-code.fd (trixie's edk2)"
fi

# say so if the emulators now come before other ones on PATH
if [ -z "$destdir" ]; then
    for b in "${bins[@]}"; do
        n=$(basename "$b")
        first=$(command -v "$n" || true)
        others=$(which -a "$n" 2>/dev/null | grep -vx "$prefix/$bindir/$n" || true)
        if [ "$first" = "$prefix/$bindir/$n" ] && [ -n "$others" ]; then
            echo "install.sh: note: $n on PATH is now this one, before" \
                 "$(echo $others)"
        fi
    done
fi
