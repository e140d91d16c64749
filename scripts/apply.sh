#!/usr/bin/env bash
# Build the patched QEMU tree: pristine source + our overlay files + patches/series.
# Usage: apply.sh PRISTINE_DIR PATCHED_DIR [SERIES_FILE]
#
# SERIES_FILE defaults to patches/series; the benchmark baseline uses
# patches/series.baseline (test objects only, none of the fixes).
#
# Incremental: the desired content of every file we manage (overlay files, and
# upstream files touched by the series) is first assembled in a staging tree;
# only files whose content differs are copied into PATCHED_DIR, so the build
# rebuilds only what depends on them. Files we stop managing are restored
# from (or, if new, removed as in) the pristine tree.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
# -P: a symlink to the pristine tree must not be copied as a symlink
pristine=$(cd "${1:?usage: apply.sh PRISTINE PATCHED}" && pwd -P)
patched=${2:?usage: apply.sh PRISTINE PATCHED}
series=${3:-$top/patches/series}

die() { echo "apply.sh: $*" >&2; exit 1; }

# Overlay: tracked (or, outside git, present) files under QEMU-tree top-level dirs.
overlay_dirs=(accel hw include system tests docs util)

if [ ! -d "$patched" ]; then
    echo "apply.sh: copying pristine tree to $patched"
    cp -a "$pristine" "$patched.tmp"
    rm -f "$patched.tmp"/.fetched-*
    mv "$patched.tmp" "$patched"
fi
patched=$(cd "$patched" && pwd)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

overlay_files() {
    (cd "$top" && for d in "${overlay_dirs[@]}"; do
        [ -d "$d" ] || continue
        if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
            git ls-files --cached --others --exclude-standard -- "$d"
        else
            find "$d" -type f
        fi
    done) | sort -u
}

series_patches() {
    [ -f "$series" ] || return 0
    sed -e 's/#.*//' -e 's/[[:space:]]*$//' "$series" | grep -v '^$' || true
}

patch_files() {   # files a patch touches (new side)
    sed -n 's@^+++ [^/]*/\([^[:space:]]*\).*@\1@p' "$1"
}

# 1. overlay files
mapfile -t ovl < <(overlay_files)
for f in "${ovl[@]}"; do
    [ -f "$top/$f" ] || continue
    if [ -e "$pristine/$f" ]; then
        die "overlay file $f exists upstream: change upstream files through patches/"
    fi
    mkdir -p "$stage/$(dirname "$f")"
    cp "$top/$f" "$stage/$f"
done

# 2. upstream files touched by the series, from pristine, then patched in order
mapfile -t pl < <(series_patches)
touched=()
for p in "${pl[@]}"; do
    [ -f "$top/patches/$p" ] || die "patch $p listed in $(basename "$series") is missing"
    while read -r f; do
        [ -n "$f" ] && touched+=("$f")
    done < <(patch_files "$top/patches/$p")
done
for f in "${touched[@]}"; do
    [ -e "$stage/$f" ] && continue
    if [ -e "$pristine/$f" ]; then
        mkdir -p "$stage/$(dirname "$f")"
        cp "$pristine/$f" "$stage/$f"
    fi
done
for p in "${pl[@]}"; do
    out=$(patch -p1 -N -s --no-backup-if-mismatch -F0 -d "$stage" < "$top/patches/$p" 2>&1) ||
        die "patch $p does not apply cleanly to qemu $(cat "$pristine/VERSION"): $out"
    case "$out" in
        *offset*|*fuzz*) die "patch $p applies only with offset/fuzz, refresh it: $out" ;;
    esac
done

# 3. sync changed files into the patched tree
manifest="$patched/.overlay-manifest"
(cd "$stage" && find . -type f | sed 's@^\./@@' | sort) > "$stage.list"
changed=0
while read -r f; do
    if ! cmp -s "$stage/$f" "$patched/$f"; then
        mkdir -p "$patched/$(dirname "$f")"
        cp "$stage/$f" "$patched/$f"
        changed=$((changed + 1))
    fi
done < "$stage.list"

# 4. files managed last time but not now: back to pristine
if [ -f "$manifest" ]; then
    while read -r f; do
        grep -qxF "$f" "$stage.list" && continue
        if [ -e "$pristine/$f" ]; then
            cp "$pristine/$f" "$patched/$f"
        else
            rm -f "$patched/$f"
        fi
        changed=$((changed + 1))
    done < "$manifest"
fi
mv "$stage.list" "$manifest"
echo "apply.sh: ${#ovl[@]} overlay files, ${#pl[@]} patches, $changed files updated"
