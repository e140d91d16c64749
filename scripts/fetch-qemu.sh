#!/usr/bin/env bash
# Fetch and unpack the pinned QEMU source from Debian (apt-get source),
# once. Usage: fetch-qemu.sh DEST_DIR
# DEST_DIR receives the pristine, unpacked tree (never modified afterwards).
set -euo pipefail

QEMU_DEB_VERSION=${QEMU_DEB_VERSION:-1:10.2.2+ds-1}
dest=${1:?usage: fetch-qemu.sh DEST_DIR}
mkdir -p "$(dirname "$dest")"
dest=$(cd "$(dirname "$dest")" && pwd)/$(basename "$dest")

die() { echo "fetch-qemu.sh: $*" >&2; exit 1; }

stamp="$dest/.fetched-$QEMU_DEB_VERSION"
[ -f "$stamp" ] && exit 0

work="$dest.tmp"
rm -rf "$work" "$dest"
mkdir -p "$work"
# The Debian pool is readable by root only here: let apt's _apt user write.
chmod 777 "$work"
echo "fetch-qemu.sh: downloading Debian's qemu $QEMU_DEB_VERSION source (apt-get source)"
(cd "$work" && apt-get source -qq --download-only "qemu=$QEMU_DEB_VERSION" >/dev/null 2>&1) ||
    die "qemu=$QEMU_DEB_VERSION is not downloadable: run 'scripts/deps.sh' (adds the unstable deb-src entry) and 'apt-get update'; the pinned version must still be in the archive"
dsc=$(ls "$work"/qemu_*.dsc)
# apt checked the files against the signed Sources index; the .dsc's own
# inline signature cannot be checked without the uploader's key.
echo "fetch-qemu.sh: unpacking $(basename "$dsc")"
(cd "$work" && dpkg-source -x "$dsc" src >/dev/null 2>"$work/dpkg-source.log") ||
    { cat "$work/dpkg-source.log" >&2; die "dpkg-source could not unpack $dsc"; }
mv "$work/src" "$dest"
rm -rf "$work"
touch "$stamp"
echo "fetch-qemu.sh: unpacked qemu $QEMU_DEB_VERSION into $dest"
