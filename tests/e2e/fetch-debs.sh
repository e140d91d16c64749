#!/usr/bin/env bash
# Download (never install) trixie .debs for the e2e guest image, with a
# private apt state: the kernel with CXL region support, busybox, ndctl's
# cxl/daxctl, memtester, stress-ng, numactl and every library they need.
# Usage: fetch-debs.sh ARCH OUT_DIR [PACKAGE...]   (ARCH: amd64 or arm64)
# With PACKAGEs, only those (make install takes trixie's edk2 this way).
# Prints a line per package it downloads, with its size.
set -euo pipefail

arch=${1:?usage: fetch-debs.sh ARCH OUT [PACKAGE...]}
out=$(realpath -m "${2:?usage: fetch-debs.sh ARCH OUT [PACKAGE...]}")
shift 2
top=$(cd "$(dirname "$0")/../.." && pwd)
state=$out/apt-state
debs=$out/debs
mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/etc/parts" \
         "$state/etc/prefs" "$debs"

# The archive URI comes from this machine's own apt sources (deps.sh).
uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$uri" ] || uri=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$uri" ] || { echo "fetch-debs.sh: no Debian archive in /etc/apt" >&2; exit 1; }

cat > "$state/etc/sources.list" <<SRC
deb [arch=$arch signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main
SRC
cat > "$state/apt.conf" <<CONF
Dir::State "$state";
Dir::State::status "$state/status";
Dir::Cache "$state/cache";
Dir::Etc::SourceList "$state/etc/sources.list";
Dir::Etc::SourceParts "$state/etc/parts";
Dir::Etc::Preferences "$state/etc/preferences";
Dir::Etc::PreferencesParts "$state/etc/prefs";
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
APT::Install-Recommends "false";
CONF
: > "$state/status"
export APT_CONFIG=$state/apt.conf

# The index is kept between runs, and read again when it is a day old or
# when a download fails: a point release removes the .debs an older index
# names.
update_index() {
    echo "fetch-debs.sh: reading trixie's package index for $arch"
    apt-get -qq update
    date > "$state/updated"
}
refreshed=
if [ ! -s "$state/updated" ] ||
   [ -n "$(find "$state/updated" -mmin +1440)" ]; then
    update_index
    refreshed=1
fi
download() {
    apt-get -qq download "$1" 2>/dev/null && return 0
    # a stale index names versions the archive no longer has: once per run
    [ -z "$refreshed" ] || return 1
    refreshed=1
    update_index
    apt-get -qq download "$1" 2>/dev/null
}

# The kernel (the metapackage names the versioned image), and the
# packages whose files the initramfs takes: the tools and the libraries
# they need (build-image.py fails, naming it, if one is missing).
kmeta=linux-image-$arch
kernel=$(apt-cache depends "$kmeta" | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$kernel" ] || { echo "fetch-debs.sh: no kernel behind $kmeta" >&2; exit 1; }
pkgs="$kernel busybox-static cxl daxctl libcxl1 libdaxctl1 libndctl6 memtester
      numactl libnuma1 stress-ng libc6 libgcc-s1 libstdc++6 libacl1 libapparmor1
      libbsd0 libmd0 libcap2 libcrypt1 libdrm2 libegl1 libexpat1 libgbm1 libgles2
      libglvnd0 libgmp10 libmpfr6 libiniparser4 libjpeg62-turbo libjson-c5
      libjudydebian1 libkmod2 libsctp1 libssl3t64 libtraceevent1 libtracefs1
      libudev1 libuuid1 libxxhash0 libzstd1 zlib1g liblzma5 libipsec-mb2"
# libipsec-mb2 exists for x86 only; arm64 boots trixie's edk2 (unpacked,
# run.py takes QEMU_EFI.fd from the image tree)
[ "$arch" = amd64 ] || pkgs="${pkgs/libipsec-mb2/} qemu-efi-aarch64"
[ $# = 0 ] || pkgs="$*"
cd "$debs"
n=0
total=$(echo $pkgs | wc -w)
for p in $pkgs; do
    n=$((n + 1))
    if ! ls "${p}"_*.deb > /dev/null 2>&1; then
        size=$(apt-cache show --no-all-versions "$p" 2>/dev/null |
               awk '/^Size:/ { printf "%.1f MB", $2 / 1e6; exit }')
        echo "fetch-debs.sh: [$n/$total] $arch $p ${size:+($size)}"
        download "$p" || echo "fetch-debs.sh: no $p for $arch" >&2
    fi
done
echo "fetch-debs.sh: $n packages for $arch in $debs"
