#!/usr/bin/env bash
# The upstream series: a git format-patch series generated from the overlay
# and patches/, grouped by patches/upstream/steps (see patches/upstream/README.rst).
#
# Usage: series.sh generate    make series: build/series/NNNN-*.patch
#        series.sh check       make series-check: build every step
#        series.sh refresh     rewrite patches/upstream/*.diff exactly
#        series.sh compare DIR check a checkout of the series against apply.sh
#
# generate checks the manifest against patches/series and the overlay (every
# patch and every overlay file in exactly one step, patches in series
# order), builds one commit per step in a git repository on top of the
# pristine tree (build/series.git), checks that the last commit's tree is
# what scripts/apply.sh produces, and writes the series with git
# format-patch.  An overlay file that grows over several steps is kept in
# its final form; each later step's hunks of it are a diff in
# patches/upstream/STEP.diff, reverse-applied (no fuzz) to get the earlier
# versions: a diff that no longer applies stops generate.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build
pristine=$build/src-pristine
manifest_dir=$top/patches/upstream
repo=$build/series.git
out=$build/series

die() { echo "series.sh: $*" >&2; exit 1; }
tmp=''
trap 'rm -rf "$tmp"' EXIT
note() { echo "series.sh: $*"; }

overlay_dirs=(accel hw include system tests docs util)

# The overlay files, as scripts/apply.sh finds them.
overlay_files() {
    (cd "$top" && for d in "${overlay_dirs[@]}"; do
        [ -d "$d" ] || continue
        git ls-files --cached --others --exclude-standard -- "$d"
    done) | sort -u
}

series_patches() {
    sed -e 's/#.*//' -e 's/[[:space:]]*$//' "$top/patches/series" | grep -v '^$'
}

diff_files() {   # files a diff touches (new side)
    sed -n 's@^+++ [^/]*/\([^[:space:]]*\).*@\1@p' "$1"
}

# --- the manifest -----------------------------------------------------------
# steps[i]: name; step_patches[i], step_files[i]: newline-separated lists.
steps=()
step_patches=()
step_files=()

read_manifest() {
    local kw arg rest n=-1 line=0
    [ -f "$manifest_dir/steps" ] || die "no $manifest_dir/steps"
    while read -r kw arg rest; do
        line=$((line + 1))
        case "$kw" in
            ''|'#'*) continue ;;
        esac
        [ -z "$rest" ] || die "steps:$line: one word after '$kw', got '$arg $rest'"
        case "$kw" in
            step)
                [[ "$arg" =~ ^[a-z0-9][a-z0-9-]*$ ]] ||
                    die "steps:$line: step names are [a-z0-9-]: '$arg'"
                n=$((n + 1))
                steps[n]=$arg
                step_patches[n]=''
                step_files[n]=''
                [ -f "$manifest_dir/$arg.msg" ] ||
                    die "steps:$line: step $arg has no commit message $arg.msg"
                ;;
            patch|file)
                [ "$n" -ge 0 ] || die "steps:$line: '$kw' before the first step"
                [ -n "$arg" ] || die "steps:$line: '$kw' needs an argument"
                if [ "$kw" = patch ]; then
                    step_patches[n]+="$arg"$'\n'
                else
                    step_files[n]+="$arg"$'\n'
                fi
                ;;
            *) die "steps:$line: unknown keyword '$kw'" ;;
        esac
    done < "$manifest_dir/steps"
    [ "$n" -ge 0 ] || die "steps: no step"
}

# Every patch of patches/series in exactly one step, in series order.
check_patches() {
    local want got
    want=$(series_patches)
    got=$(for i in "${!steps[@]}"; do printf '%s' "${step_patches[i]}"; done)
    if [ "$want" != "$got" ]; then
        diff <(echo "$want") <(echo "$got") | sed 's/^/    /' >&2 || true
        die "the steps' patches (>) are not patches/series (<), in its order"
    fi
}

# file_step[path]: the step that adds an overlay file.  A 'file DIR/' line
# claims every overlay file under DIR.
declare -A file_step
claim_files() {
    local -a ovl
    local i f spec matched
    mapfile -t ovl < <(overlay_files)
    for i in "${!steps[@]}"; do
        while read -r spec; do
            [ -n "$spec" ] || continue
            matched=0
            for f in "${ovl[@]}"; do
                if [ "$f" = "$spec" ] || { [ "${spec%/}" != "$spec" ] &&
                                           [ "${f#"$spec"}" != "$f" ]; }; then
                    [ -z "${file_step[$f]:-}" ] ||
                        die "$f is in step ${steps[file_step[$f]]} and in step ${steps[i]}"
                    file_step[$f]=$i
                    matched=1
                fi
            done
            [ "$matched" = 1 ] || die "step ${steps[i]}: no overlay file '$spec'"
        done <<< "${step_files[i]}"
    done
    for f in "${ovl[@]}"; do
        [ -n "${file_step[$f]:-}" ] || die "overlay file $f is in no step"
    done
}

# A step's diff may only change overlay files that an earlier step added.
check_diffs() {
    local i f d
    for i in "${!steps[@]}"; do
        d=$manifest_dir/${steps[i]}.diff
        [ -f "$d" ] || continue
        while read -r f; do
            [ -n "${file_step[$f]:-}" ] ||
                die "${steps[i]}.diff: $f is not an overlay file"
            [ "${file_step[$f]}" -lt "$i" ] ||
                die "${steps[i]}.diff: $f is added by step ${steps[file_step[$f]]}, not before ${steps[i]}"
        done < <(diff_files "$d")
    done
    for d in "$manifest_dir"/*.diff; do
        [ -e "$d" ] || continue
        d=$(basename "$d" .diff)
        printf '%s\n' "${steps[@]}" | grep -qxF "$d" ||
            die "patches/upstream/$d.diff belongs to no step"
    done
}

# versions/I/: the overlay files as step I leaves them.  From the final
# files, each step's diff is reverse-applied in turn, last step first.
build_versions() {
    local vdir=$1 i f d msg
    rm -rf "$vdir"
    mkdir -p "$vdir/cur"
    (cd "$top" && overlay_files | while read -r f; do
        mkdir -p "$vdir/cur/$(dirname "$f")"
        cp "$f" "$vdir/cur/$f"
    done)
    for ((i = ${#steps[@]} - 1; i >= 0; i--)); do
        mkdir -p "$vdir/$i"
        for f in "${!file_step[@]}"; do
            [ "${file_step[$f]}" -le "$i" ] || continue
            mkdir -p "$vdir/$i/$(dirname "$f")"
            cp "$vdir/cur/$f" "$vdir/$i/$f"
        done
        d=$manifest_dir/${steps[i]}.diff
        [ -f "$d" ] || continue
        if ! msg=$(patch -R -p1 -F0 --no-backup-if-mismatch -d "$vdir/cur" \
                   < "$d" 2>&1); then
            echo "$msg" >&2
            die "patches/upstream/${steps[i]}.diff no longer applies to the overlay files (reversed): edit it to match them"
        fi
        case "$msg" in
            *offset*) note "${steps[i]}.diff applies with offsets: scripts/series.sh refresh rewrites it" ;;
        esac
    done
}

read_all() {
    [ -d "$pristine" ] || die "no $pristine (make fetch)"
    read_manifest
    check_patches
    claim_files
    check_diffs
}

# --- generate ---------------------------------------------------------------
git_q() { git -C "$repo" "$@"; }

generate() {
    local i p f msg n author email date
    read_all
    tmp=$(mktemp -d)
    build_versions "$tmp/v"

    author="qemu-cxl-interleave authors"
    email=$(git -C "$top" log -1 --format=%ae)
    date=$(git -C "$top" log -1 --format=%cI)
    export GIT_AUTHOR_NAME=$author GIT_AUTHOR_EMAIL=$email GIT_AUTHOR_DATE=$date
    export GIT_COMMITTER_NAME=$author GIT_COMMITTER_EMAIL=$email GIT_COMMITTER_DATE=$date

    note "pristine tree -> $repo"
    rm -rf "$repo"
    mkdir -p "$repo"
    (cd "$pristine" && tar cf - --exclude='./.fetched-*' .) | tar xf - -C "$repo"
    git_q init -q
    git_q config core.autocrlf false
    # no background gc packing objects away while check clones the repo
    git_q config gc.auto 0
    git_q config maintenance.auto false
    # -f: QEMU's .gitignore files ignore parts of its own tarball
    # (subprojects/*), which the build needs
    git_q add -A -f
    git_q commit -q -m "QEMU $(cat "$pristine/VERSION") (Debian source, pristine)"
    git_q tag base

    n=${#steps[@]}
    for i in "${!steps[@]}"; do
        while read -r p; do
            [ -n "$p" ] || continue
            msg=$(patch -p1 -N -F0 --no-backup-if-mismatch -d "$repo" \
                  < "$top/patches/$p" 2>&1) ||
                { echo "$msg" >&2; die "step ${steps[i]}: $p does not apply"; }
            case "$msg" in
                *offset*|*fuzz*) die "step ${steps[i]}: $p applies only with offset/fuzz: $msg" ;;
            esac
        done <<< "${step_patches[i]}"
        (cd "$tmp/v/$i" && find . -type f) | while read -r f; do
            mkdir -p "$repo/$(dirname "$f")"
            cp "$tmp/v/$i/$f" "$repo/$f"
        done
        git_q add -A -f
        git_q diff --cached --quiet && die "step ${steps[i]} changes nothing"
        git_q commit -q -F "$manifest_dir/${steps[i]}.msg"
        printf 'series.sh: [%2d/%d] %s\n' $((i + 1)) "$n" \
            "$(git_q log -1 --format=%s)"
    done
    compare_with_apply "$repo"

    rm -rf "$out.tmp"
    git_q format-patch -q --no-signature -o "$out.tmp" base..HEAD > /dev/null
    rm -rf "$out"
    mv "$out.tmp" "$out"
    note "$n patches in $out (git repository: $repo)"
}

# The tree of the last step is what apply.sh makes of pristine + overlay +
# patches/series, file for file.  Directories without files do not count:
# git keeps none (the pristine tree has an empty python/wheels), and the
# build makes some in the source tree (tests/qemu-iotests/scratch).
compare_with_apply() {
    local tree=$1 applied=$build/series-applied msg line d n bad=''
    note "comparing the series' final tree with scripts/apply.sh's"
    "$top/scripts/apply.sh" "$pristine" "$applied" > /dev/null
    msg=$(diff -r -q -x .git -x .overlay-manifest "$applied" "$tree") || true
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        if [[ "$line" =~ ^Only\ in\ (.*):\ (.*)$ ]]; then
            d=${BASH_REMATCH[1]}/${BASH_REMATCH[2]}
            if [ -d "$d" ] && [ ! -L "$d" ]; then
                n=$(find "$d" \( -type f -o -type l \) -print -quit)
                [ -z "$n" ] && continue
            fi
        fi
        bad+="    $line"$'\n'
    done <<< "$msg"
    if [ -n "$bad" ]; then
        printf '%s' "$bad" >&2
        die "the series' final tree differs from scripts/apply.sh's (above)"
    fi
    note "the series' final tree is scripts/apply.sh's, file for file"
}

# --- refresh ----------------------------------------------------------------
# Rewrite each step's diff as the exact difference between the versions
# before and after it (as when quilt refreshes a patch).
refresh() {
    local i d f new
    read_all
    tmp=$(mktemp -d)
    build_versions "$tmp/v"
    for i in "${!steps[@]}"; do
        d=$manifest_dir/${steps[i]}.diff
        [ -f "$d" ] || continue
        new=$tmp/new.diff
        : > "$new"
        while read -r f; do
            diff -u --label "a/$f" --label "b/$f" "$tmp/v/$((i - 1))/$f" \
                "$tmp/v/$i/$f" >> "$new" || true
        done < <(diff_files "$d")
        if ! cmp -s "$new" "$d"; then
            cp "$new" "$d"
            note "refreshed patches/upstream/${steps[i]}.diff"
        fi
    done
}

# --- check ------------------------------------------------------------------
# Build every step in one build directory, configured once: a checkout of
# the generated repository moves from step to step, so that only what a
# step changes is rebuilt.
check() {
    local src=$build/series-check/src bdir=$build/series-check/qemu
    local logs=$build/series-check/logs t0 t1 start i n name log status
    local -a commits names times
    generate
    mkdir -p "$logs"
    if [ ! -d "$src/.git" ]; then
        git clone -q "$repo" "$src"
    fi
    git -C "$src" fetch -q --tags --force "$repo" HEAD
    mapfile -t commits < <(git -C "$repo" rev-list --reverse base..HEAD)
    n=${#commits[@]}
    git -C "$src" checkout -q --detach "${commits[0]}"
    "$top/scripts/configure.sh" "$src" "$bdir" \
        --python="${PYTHON:?the Makefile names the interpreter: make series-check}" \
        --target-list=x86_64-softmmu --disable-download \
        --disable-install-blobs --disable-rust --disable-docs
    start=$(date +%s)
    for i in "${!commits[@]}"; do
        name=$(git -C "$src" log -1 --format=%f "${commits[i]}" | cut -c1-52)
        log=$logs/$(printf '%02d' $((i + 1)))-$name.log
        git -C "$src" checkout -q --detach "${commits[i]}"
        names[i]=$(git -C "$src" log -1 --format=%s "${commits[i]}")
        printf 'series-check: [%2d/%d] %s ... ' $((i + 1)) "$n" "${names[i]}"
        t0=$(date +%s)
        status=0
        nice -n 19 ninja -C "$bdir" -j2 qemu-system-x86_64 > "$log" 2>&1 ||
            status=$?
        t1=$(date +%s)
        times[i]=$((t1 - t0))
        if [ "$status" != 0 ]; then
            echo "FAILED (${times[i]} s)"
            grep -E 'error|FAILED' "$log" | head -20 >&2 || true
            echo "series-check: step $((i + 1))/$n does not build:" \
                 "${names[i]} (log: $log)" >&2
            exit 1
        fi
        echo "ok ($(grep -c '^\[' "$log" || true) build steps, ${times[i]} s)"
    done
    compare_with_apply "$src"
    echo "series-check: summary"
    for i in "${!commits[@]}"; do
        printf '  %2d/%d  ok  %5d s  %s\n' $((i + 1)) "$n" "${times[i]}" \
            "${names[i]}"
    done
    echo "series-check: $n of $n steps build; final tree = scripts/apply.sh's;" \
         "$(( $(date +%s) - start )) s"
}

case "${1:-}" in
    generate) generate ;;
    check) check ;;
    refresh) refresh ;;
    compare) compare_with_apply "$(cd "${2:?usage: series.sh compare DIR}" && pwd)" ;;
    *) die "usage: series.sh generate|check|refresh|compare DIR" ;;
esac
