#!/usr/bin/env bash
# Test runner behind `make check` / `make check-fast`.
# Runs every tier, keeps going after failures, and ends with one line
# "N passed, N failed" summed over all runners; exits non-zero on failure.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build
qemu_build=$build/qemu
mode=${1:-all}
passed=0
failed=0
log_dir=$build/check-logs
mkdir -p "$log_dir"
# The Python runners: the interpreter, and the test harness package
# (tests/cxl/cxltest) on PYTHONPATH, as the Makefile names them.
eval "$(make -s --no-print-directory -C "$top" python-env)"
: "${PYTHON:?make python-env named no PYTHON}"
export PYTHON PYTHONPATH

count() {   # count TIER PASSED FAILED
    printf '%-28s %4d passed, %d failed\n' "$1:" "$2" "$3"
    passed=$((passed + $2))
    failed=$((failed + $3))
}

# A Python runner (tests/cxl/*.py, tests/e2e/run.py): its output in LOG,
# and the counts of its final "N passed, N failed" line as JSON in
# LOG.json (cxltest.report(), through $CXLTEST_RESULTS).
run_py() {   # run_py LOG SCRIPT ARGS...
    local log=$1
    shift
    rm -f "$log.json"
    CXLTEST_RESULTS=$log.json "$PYTHON" "$@" > "$log" 2>&1
}

# Count a runner by its results file LOG.json (none: a failure, and its
# whole log is shown).
count_log() {   # count_log TIER LOG
    local p='' f=''
    read -r p f < <("$PYTHON" -c 'import json, sys
r = json.load(open(sys.argv[1]))
print(r["passed"], r["failed"])' "$2.json" 2>/dev/null)
    if [ -z "$p" ]; then
        cat "$2"
        p=0 f=1
    elif [ "$f" != 0 ]; then
        grep -A3 '^FAIL' "$2" | cut -c1-400 | head -40
    fi
    count "$1" "$p" "$f"
}

# Tier 1: standalone cmocka tests under valgrind.
tier_standalone() {
    local out=$build/unit bin p f log
    if ! make -s -C "$top/tests/unit/standalone" OUT="$out" > "$log_dir/unit-build.log" 2>&1; then
        cat "$log_dir/unit-build.log"
        count "unit (cmocka, build)" 0 1
        return
    fi
    for bin in "$out"/test-*; do
        log=$log_dir/$(basename "$bin").log
        valgrind -q --error-exitcode=99 --leak-check=full \
                 --errors-for-leak-kinds=definite,indirect \
                 "$bin" > "$log" 2>&1
        local rc=$?
        p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
        f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
        p=${p:-0}; f=${f:-0}
        if [ "$rc" = 99 ]; then
            echo "valgrind found errors in $(basename "$bin"):"; cat "$log"
            f=$((f + 1))
        elif [ "$rc" != 0 ] && [ "$f" = 0 ]; then
            echo "$(basename "$bin") exited $rc:"; cat "$log"
            f=1
        elif [ "$f" != 0 ]; then
            grep -E '^\[  (FAILED|  ERROR)|ERROR:|error:' "$log" | head -20
        fi
        count "unit/$(basename "$bin") (valgrind)" "$p" "$f"
    done
}

# Tier 2: meson tests of the patched build (upstream suites we must keep
# green, and our in-tree tests).  meson test builds what they need.
meson_tier() {   # meson_tier LABEL LOG ARGS...
    local label=$1 log=$log_dir/$2 ok fail rc
    shift 2
    (cd "$qemu_build" && meson test -q --print-errorlogs --num-processes 2 "$@") \
        > "$log" 2>&1
    rc=$?
    ok=$(awk '/^Ok:/ {a += $2} /^Expected Fail:/ {a += $3} END {print a + 0}' "$log")
    fail=$(awk '/^Fail:/ {a += $2} /^Unexpected Pass:/ {a += $3} /^Timeout:/ {a += $2}
               END {print a + 0}' "$log")
    if [ "$rc" != 0 ]; then
        grep -E 'FAIL|ERROR|TIMEOUT' "$log" | head -40
        [ "$fail" = 0 ] && { tail -30 "$log"; fail=1; }
    fi
    count "$label" "$ok" "$fail"
}

tier_meson() {
    meson_tier "meson unit suite" meson-unit.log --suite unit
    meson_tier "meson qtests (x86_64, aarch64)" meson-qtest.log \
        qtest-x86_64/cxl-test qtest-aarch64/cxl-test \
        qtest-x86_64/alias-interleave-test qtest-aarch64/alias-interleave-test
}

# Tier 3: the README demo, which checks where every byte landed.
tier_demo() {
    local log=$log_dir/demo.log
    if "$PYTHON" "$top/scripts/demo.py" -q \
            --qemu "$qemu_build/qemu-system-x86_64" > "$log" 2>&1; then
        count "demo (q35, 4-way window)" 1 0
    else
        cat "$log"
        count "demo (q35, 4-way window)" 0 1
    fi
}

# Tier 3b: make install into a temporary DESTDIR (the build reused, only the
# emulators and their data), then the user guide's command lines
# (docs/system/cxl-interleave.rst) run with the installed binaries, no -L:
# x86_64 -kernel through the installed option ROMs, arm64 through the
# installed edk2, found by name.  And the build-tree binary finds its
# option ROMs in qemu-bundle/ (-kernel, no -L).
tier_install() {
    local log=$log_dir/install.log dest prefix=/opt/qemu-cxl bin extra block
    if ! make -s -C "$top" e2e-image > "$log_dir/e2e-image.log" 2>&1; then
        tail -20 "$log_dir/e2e-image.log"
        count "install (e2e image)" 0 1
        return
    fi
    dest=$(mktemp -d /tmp/cxl-install-XXXXXX)
    bin=$dest$prefix/bin
    if ! make -s -C "$top" install DESTDIR="$dest" PREFIX=$prefix > "$log" 2>&1; then
        cat "$log"
        count "install (DESTDIR)" 0 1
        rm -rf "$dest"
        return
    fi
    # nothing but the two emulators: Debian's qemu-img & co. stay on PATH
    extra=$(cd "$dest" && find . -type f -path "*/bin/*" |
            grep -vxE '\./opt/qemu-cxl/bin/qemu-system-(x86_64|aarch64)' || true)
    if [ -n "$extra" ] || [ ! -x "$bin/qemu-system-x86_64" ]; then
        cat "$log"
        echo "install: expected only the two emulators in $prefix/bin, got: $extra"
        count "install (DESTDIR)" 0 1
    else
        count "install (DESTDIR)" 1 0
    fi
    for block in q35 virt; do
        run_py "$log_dir/install-guide-$block.log" \
            "$top/tests/e2e/run.py" --qemu-dir "$bin" \
            --image "$build/e2e/$([ $block = q35 ] && echo amd64 || echo arm64)" \
            --brief --guide $block --no-firmware-path
        count_log "user guide $block, installed" "$log_dir/install-guide-$block.log"
    done
    rm -rf "$dest"
    log=$log_dir/build-tree-no-L.log
    if printf '%s\n' '{"execute": "qmp_capabilities"}' '{"execute": "quit"}' |
        LC_ALL=C timeout 60 "$qemu_build/qemu-system-x86_64" -M q35 -display none \
            -nodefaults -S -kernel "$build/e2e/amd64/vmlinuz" -qmp stdio \
            > "$log" 2>&1 && ! grep -q "Failed to open" "$log"; then
        count "build tree: -kernel, no -L" 1 0
    else
        cat "$log"
        count "build tree: -kernel, no -L" 0 1
    fi
}

# The guest payloads (tests/cxl/guest/) into $build/guest; a failure is
# counted against TIER.
build_guests() {   # build_guests TIER
    if ! make -s -C "$top/tests/cxl/guest" OUT="$build/guest" \
            > "$log_dir/guest-build.log" 2>&1; then
        cat "$log_dir/guest-build.log"
        count "$1 (guest payloads)" 0 1
        return 1
    fi
}

# Tier 4: CXL routing qtests (python, both machines): decoders committed
# over MMIO, bytes checked in every backend file, RAM route against the
# MMIO decode.  The full matrix is `make check-cxl-full`.
tier_routing() {
    local log=$log_dir/routing.log
    build_guests "cxl routing qtests" || return
    # savevm needs qemu-img; the vhost-user scenarios qemu-storage-daemon
    if ! ninja -C "$qemu_build" qemu-img storage-daemon/qemu-storage-daemon \
            > "$log_dir/routing-build.log" 2>&1; then
        cat "$log_dir/routing-build.log"
        count "cxl routing qtests (tools)" 0 1
        return
    fi
    run_py "$log" "$top/tests/cxl/routing-test.py" --qemu-dir "$qemu_build" \
        --guest-dir "$build/guest" --tier "${1:-ci}"
    count_log "cxl routing qtests (${1:-ci})" "$log"
}

# Tier 4a: no write lost (python, both machines): route changes while a
# TCG guest writes and a device holds a DMA mapping; every byte checked in
# the backend files.  ci: 24 changes of churn; full: 200.
tier_retire() {
    local log=$log_dir/retire.log
    build_guests "no write lost" || return
    run_py "$log" "$top/tests/cxl/retire-test.py" --qemu-dir "$qemu_build" \
        --guest-dir "$build/guest" --tier "${1:-ci}"
    count_log "no write lost (${1:-ci})" "$log"
}

# Tier 4b: KVM memory slots over interleave windows (-accel kvm -S: no
# vCPU runs, so any /dev/kvm will do); skipped without /dev/kvm.
tier_kvm() {
    local log=$log_dir/kvm-memslot.log
    run_py "$log" "$top/tests/cxl/kvm-memslot-test.py" \
        --qemu-dir "$qemu_build"
    grep '^skip' "$log"
    count_log "KVM memslots (kvm -S)" "$log"
}

# Tier 5: TCG guests (freestanding payloads, tests/cxl/guest/) running
# atomics and page-table walks in a CXL window on both machines, with the
# window as RAM and forced to MMIO.
tier_guest() {
    local log=$log_dir/guest.log
    build_guests "cxl guests" || return
    run_py "$log" "$top/tests/cxl/guest-test.py" --qemu-dir "$qemu_build" \
        --guest-dir "$build/guest"
    count_log "cxl TCG guests (atomics)" "$log"
}

# Tier 6: a short, fixed-seed run of the decoder fuzzer (make fuzz runs
# 1M writes per machine with fresh seeds).
tier_fuzz() {
    local m
    for m in q35 virt; do
        run_py "$log_dir/fuzz-$m.log" \
            "$top/tests/cxl/fuzz-decoders.py" --qemu-dir "$qemu_build" \
            --machine $m --ops 10000 --seed 20261125
        count_log "cxl decoder fuzz ($m, 10k)" "$log_dir/fuzz-$m.log"
    done
    run_py "$log_dir/fuzz-xor.log" \
        "$top/tests/cxl/fuzz-decoders.py" --qemu-dir "$qemu_build" \
        --machine q35 --ops 10000 --seed 20261208 --xor
    count_log "cxl decoder fuzz (q35, XOR window, 10k)" "$log_dir/fuzz-xor.log"
}

# Tier 7: memory hotplug cycles next to a committed CXL window (make
# stress runs 10k).
tier_hotplug() {
    run_py "$log_dir/hotplug.log" \
        "$top/tests/cxl/hotplug-stress.py" --qemu-dir "$qemu_build" \
        --cycles 200 --check-every 100
    count_log "hotplug stress (200 cycles)" "$log_dir/hotplug.log"
}

# Tier 8: one Linux guest scenario per architecture (x86_64 q35 and arm64
# virt, TCG, 4 host bridges, 4 KiB): regions onlined as System RAM,
# workloads on the CXL node, checked from the host (make e2e runs every
# scenario at full length).
tier_e2e() {
    local log=$log_dir/e2e.log
    if ! make -s -C "$top" e2e-image > "$log_dir/e2e-image.log" 2>&1; then
        tail -20 "$log_dir/e2e-image.log"
        count "e2e Linux guest (image)" 0 1
        return
    fi
    run_py "$log" "$top/tests/e2e/run.py" --qemu-dir "$qemu_build" \
        --image "$build/e2e/amd64" --scenario 4hb-4k --quick
    count_log "e2e Linux guest (4hb-4k)" "$log"
    run_py "$log_dir/e2e-arm64.log" \
        "$top/tests/e2e/run.py" --qemu-dir "$qemu_build" \
        --image "$build/e2e/arm64" --arch aarch64 --scenario 4hb-4k --quick
    count_log "e2e Linux guest (arm64, 4hb-4k)" "$log_dir/e2e-arm64.log"
    # the same with the window served by its stitched host mapping, as a
    # KVM guest would have it
    run_py "$log_dir/e2e-stitched.log" \
        "$top/tests/e2e/run.py" --qemu-dir "$qemu_build" \
        --image "$build/e2e/amd64" --scenario 4hb-4k --quick --stitched
    grep "^skip" "$log_dir/e2e-stitched.log"
    count_log "e2e Linux guest (4hb-4k, stitched)" "$log_dir/e2e-stitched.log"
    # XOR interleave arithmetic: Linux reads the maps from the CEDT
    run_py "$log_dir/e2e-xor.log" \
        "$top/tests/e2e/run.py" --qemu-dir "$qemu_build" \
        --image "$build/e2e/amd64" --xor
    count_log "e2e Linux guest (XOR windows)" "$log_dir/e2e-xor.log"
    run_py "$log_dir/e2e-hotplug.log" \
        "$top/tests/e2e/run.py" --qemu-dir "$qemu_build" \
        --image "$build/e2e/amd64" --hotplug 5
    count_log "e2e guest memory hotplug (5)" "$log_dir/e2e-hotplug.log"
    run_py "$log_dir/e2e-hotplug-arm64.log" \
        "$top/tests/e2e/run.py" --qemu-dir "$qemu_build" \
        --image "$build/e2e/arm64" --arch aarch64 --hotplug 5
    count_log "e2e guest memory hotplug (arm64, 5)" \
        "$log_dir/e2e-hotplug-arm64.log"
    # KVM: runs where a stock guest kernel can, skips (with the reason)
    # where it cannot, as on PVM-flavoured KVM
    run_py "$log_dir/e2e-kvm.log" \
        "$top/tests/e2e/run.py" --qemu-dir "$qemu_build" \
        --image "$build/e2e/amd64" --scenario 4hb-4k --quick --kvm
    grep '^skip' "$log_dir/e2e-kvm.log"
    count_log "e2e Linux guest (KVM)" "$log_dir/e2e-kvm.log"
}

# make e2e: every Linux guest scenario at full length on both
# architectures, the KVM probe, 100 memory-hotplug cycles in each guest;
# progress on the terminal, the runs' counts summed.
tier_e2e_full() {
    local arch image log name
    for arch in x86_64 aarch64; do
        image=$build/e2e/amd64
        [ $arch = aarch64 ] && image=$build/e2e/arm64
        for run in "" --kvm "--hotplug 100"; do
            name=${run#--}
            log=$log_dir/e2e-full-$arch${run:+-${name// /-}}.log
            rm -f "$log.json"
            # shellcheck disable=SC2086
            CXLTEST_RESULTS=$log.json "$PYTHON" "$top/tests/e2e/run.py" \
                --qemu-dir "$qemu_build" --image "$image" --arch $arch $run \
                2>&1 | tee "$log"
            count_log "e2e $arch ${run:-scenarios}" "$log"
        done
    done
}

case $mode in
install)
    tier_install ;;
e2e-full)
    tier_e2e_full ;;
fast)
    tier_standalone ;;
cxl-full)
    tier_routing full
    tier_retire full ;;
asan)
    # the same tiers against make asan's build: a report aborts QEMU,
    # which fails the scenario that ran it
    qemu_build=$build/asan
    log_dir=$build/check-logs/asan
    mkdir -p "$log_dir"
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0
    export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
    # upstream's own leaks (savevm, migration), not ours
    export LSAN_OPTIONS=suppressions=$top/tests/cxl/lsan-upstream.supp
    tier_routing ci
    tier_retire full
    tier_kvm
    tier_guest
    tier_fuzz ;;
all)
    tier_standalone
    tier_meson
    tier_demo
    tier_install
    tier_routing ci
    tier_retire ci
    tier_kvm
    tier_guest
    tier_fuzz
    tier_hotplug
    tier_e2e ;;
*)
    echo "usage: check.sh [fast|all|install|cxl-full|e2e-full|asan]" >&2
    exit 2 ;;
esac

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
