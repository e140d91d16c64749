#!/usr/bin/env bash
# Download (never install) trixie .debs for the e2e guest image, with a
# private apt state: the kernel with CXL region support, busybox, ndctl's
# cxl/daxctl, memtester, stress-ng, numactl and every library they need.
# Usage: fetch-debs.sh ARCH OUT_DIR      (ARCH: amd64 or arm64)
set -euo pipefail

arch=${1:?usage: fetch-debs.sh ARCH OUT}
out=$(realpath -m "${2:?usage: fetch-debs.sh ARCH OUT}")
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

if [ ! -s "$state/updated" ]; then
    apt-get -qq update
    date > "$state/updated"
fi

want=(linux-image-$( [ "$arch" = amd64 ] && echo amd64 || echo arm64)
      busybox-static ndctl daxctl memtester stress-ng numactl)
# Dependency closure (Depends and Pre-Depends), one version each.
pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests \
           --no-conflicts --no-breaks --no-replaces --no-enhances \
           "${want[@]}" 2>/dev/null |
       awk '/^[a-z0-9]/ { print $1 } /Depends: [a-z0-9]/ { print $2 }' |
       grep -v '^<' | sort -u)
# not needed in an initramfs that never runs maintainer scripts
skip='^(debconf|perl-base|dpkg|initramfs-tools.*|linux-base|kmod|udev|systemd.*|libsystemd.*|coreutils|util-linux|mount|bash|base-files|debianutils|sensible-utils|install-info|tar|gzip|zstd|dracut.*|apparmor|adduser|passwd|login.*|libpam.*|libaudit.*|libselinux1|libsemanage.*)$'
cd "$debs"
n=0
for p in $pkgs; do
    if echo "$p" | grep -Eq "$skip"; then
        continue
    fi
    if ! ls "${p}"_*.deb > /dev/null 2>&1; then
        apt-get -qq download "$p" 2>/dev/null || echo "fetch-debs.sh: no $p for $arch" >&2
    fi
    n=$((n + 1))
done
echo "fetch-debs.sh: $n packages for $arch in $debs"
