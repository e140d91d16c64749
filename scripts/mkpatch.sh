#!/usr/bin/env bash
# Write a patch of the edits made to upstream files in the applied tree.
# Usage: mkpatch.sh OUT.patch HEADER FILE...
#
# HEADER holds the DEP-3 header.  Each FILE (a QEMU-tree path) is diffed
# between pristine + the current patches/series and build/src, so the new
# patch applies on top of the series.  Add it to patches/series before the
# next `make`: apply.sh resets build/src files the series does not explain.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: mkpatch.sh OUT.patch HEADER FILE...}
header=${2:?usage: mkpatch.sh OUT.patch HEADER FILE...}
shift 2
pristine=$top/build/src-pristine
src=$top/build/src
ref=$(mktemp -d)
trap 'rm -rf "$ref"' EXIT

series=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$top/patches/series")
files=$(for p in $series; do
            sed -n 's@^+++ [^/]*/\([^[:space:]]*\).*@\1@p' "$top/patches/$p"
        done; printf '%s\n' "$@")
for f in $(printf '%s\n' $files | sort -u); do
    if [ -e "$pristine/$f" ]; then
        mkdir -p "$ref/$(dirname "$f")"
        cp "$pristine/$f" "$ref/$f"
    fi
done
for p in $series; do
    patch -s -p1 -d "$ref" --no-backup-if-mismatch < "$top/patches/$p"
done

cat "$header" > "$out"
echo "---" >> "$out"
for f in "$@"; do
    if [ -e "$ref/$f" ]; then
        diff -u --label "a/$f" --label "b/$f" "$ref/$f" "$src/$f" >> "$out" || true
    else
        diff -u --label /dev/null --label "b/$f" /dev/null "$src/$f" >> "$out" || true
    fi
done
echo "mkpatch.sh: $out: $(grep -c '^@@' "$out") hunks in $# files"
