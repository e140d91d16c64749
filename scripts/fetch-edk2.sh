#!/usr/bin/env bash
# Trixie's edk2 for arm64 virt (bookworm's reports RAM that SRAT does not
# cover, and Linux never sees the CXL node): download only the
# qemu-efi-aarch64 .deb, as the e2e image does, and take QEMU_EFI.fd out.
# Usage: fetch-edk2.sh DEB_DIR OUT_FD
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:?usage: fetch-edk2.sh DEB_DIR OUT_FD}
out=${2:?usage: fetch-edk2.sh DEB_DIR OUT_FD}
[ -s "$out" ] && exit 0
"$top/tests/e2e/fetch-debs.sh" arm64 "$dir" qemu-efi-aarch64
deb=$(ls "$dir"/debs/qemu-efi-aarch64_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || { echo "fetch-edk2.sh: trixie's qemu-efi-aarch64 could not be downloaded" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
dpkg-deb --fsys-tarfile "$deb" |
    tar -xO ./usr/share/qemu-efi-aarch64/QEMU_EFI.fd > "$out.tmp"
[ -s "$out.tmp" ] || { echo "fetch-edk2.sh: no QEMU_EFI.fd in $deb" >&2; exit 1; }
mv "$out.tmp" "$out"
echo "fetch-edk2.sh: $out from $(basename "$deb")"
