#!/usr/bin/env bash
# Install everything the project needs on a Debian 12 machine (run as root).
# Adds deb-src (unstable, for the pinned QEMU source) and bookworm-backports
# (meson >= 1.5) entries derived from the machine's own apt sources.
set -euo pipefail

stamp=/var/lib/qemu-cxl-interleave.deps
want_version=5   # bump when the package list below changes

die() { echo "deps.sh: $*" >&2; exit 1; }

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
list=/etc/apt/sources.list.d/qemu-cxl-interleave.sources

# Set up already: nothing to do, and no need for root
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_version" ] &&
   [ -f "$list" ]; then
    exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root (apt-get install)"

# Derive the Debian archive URI (and keyring) from the machine's own sources.
archive_uri() {
    local f uri=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        uri=$(awk '
            /^URIs:/ { u = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++)
                           if ($i !~ /-security$/ && $i !~ /-updates$/ && u != "") { print u; exit } }
        ' "$f")
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        uri=$(awk '$1 == "deb" && $0 !~ /-security/ {
                     for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
}

if [ ! -f "$list" ]; then
    uri=$(archive_uri)
    [ -n "$uri" ] || die "cannot derive the Debian archive URI from /etc/apt/sources*; add a 'deb' entry for bookworm first"
    cat > "$list" <<SRC
# Added by qemu-cxl-interleave scripts/deps.sh (derived from this machine's apt sources)
Types: deb-src
URIs: $uri
Suites: unstable
Components: main
Signed-By: $keyring

Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: $keyring
SRC
    rm -f "$stamp"
fi

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_version" ]; then
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "deps.sh: apt-get update"
apt-get update -qq || die "apt-get update failed"

# apt-get install, its output thinned to a progress line every 10
# packages downloaded and set up (about 7 minutes for all of them on a
# fresh machine)
apt_install() {
    apt-get install -y -q --no-install-recommends -o Dpkg::Progress-Fancy=0 "$@" 2>&1 |
        awk '/newly installed/ { n = $1 + $3; printf "deps.sh: %d packages to install or upgrade\n", n; fflush() }
             /^Need to get/ { printf "deps.sh: downloading %s %s\n", $4, $5; fflush() }
             /^Get:/ { g++; if (g % 10 == 0) { printf "deps.sh: downloaded %d/%d\n", g, n; fflush() } }
             /^Setting up / { u++; if (u % 10 == 0 || u == n) {
                 printf "deps.sh: set up %d/%d (%s)\n", u, n, $3; fflush() } }
             /^E: / { print; fflush() }'
}

pkgs=(
    build-essential pkg-config git python3 python3-venv dpkg-dev
    ninja-build flex bison
    libglib2.0-dev libpixman-1-dev libfdt-dev zlib1g-dev libslirp-dev
    libcmocka-dev valgrind
    clang llvm gcc-aarch64-linux-gnu libc6-dev-arm64-cross
    seabios ipxe-qemu qemu-efi-aarch64
)
echo "deps.sh: installing ${pkgs[*]}"
apt_install "${pkgs[@]}" || die "apt-get install failed: ${pkgs[*]}"
echo "deps.sh: installing meson from bookworm-backports"
apt_install -t bookworm-backports meson ||
    die "meson >= 1.5 from bookworm-backports could not be installed"
echo "$want_version" > "$stamp"
