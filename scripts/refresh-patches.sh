#!/usr/bin/env bash
# Refresh every patch of patches/series against the pinned source, as
# quilt refresh would: each patch is applied (fuzz allowed) on top of the
# ones before it and rewritten as exact diffs with its DEP-3 header kept,
# so that an edit to one patch does not leave later ones with offsets.
# Usage: refresh-patches.sh   (needs build/src-pristine: make fetch)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
pristine=$top/build/src-pristine
[ -d "$pristine" ] || { echo "refresh-patches.sh: no $pristine (make fetch)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tree" "$work/before"

series=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$top/patches/series")
for p in $series; do
    sed -n 's@^+++ [^/]*/\([^[:space:]]*\).*@\1@p' "$top/patches/$p"
done | sort -u | while read -r f; do
    if [ -e "$pristine/$f" ]; then
        mkdir -p "$work/tree/$(dirname "$f")"
        cp "$pristine/$f" "$work/tree/$f"
    fi
done

for p in $series; do
    file=$top/patches/$p
    mapfile -t files < <(sed -n 's@^+++ [^/]*/\([^[:space:]]*\).*@\1@p' "$file")
    rm -rf "$work/before" && cp -a "$work/tree" "$work/before"
    patch -s -p1 -F3 --no-backup-if-mismatch -d "$work/tree" < "$file" ||
        { echo "refresh-patches.sh: $p does not apply" >&2; exit 1; }
    # the header: everything before the first file diff
    awk '/^--- (a\/|\/dev\/null)/ { exit } { print }' "$file" > "$work/new"
    for f in "${files[@]}"; do
        if [ -e "$work/before/$f" ]; then
            diff -u --label "a/$f" --label "b/$f" "$work/before/$f" \
                "$work/tree/$f" >> "$work/new" || true
        else
            diff -u --label /dev/null --label "b/$f" /dev/null \
                "$work/tree/$f" >> "$work/new" || true
        fi
    done
    if ! cmp -s "$work/new" "$file"; then
        cp "$work/new" "$file"
        echo "refresh-patches.sh: refreshed $p"
    fi
done
