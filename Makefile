# Driver for the qemu-cxl-interleave overlay on Debian's QEMU 10.2.2.
# Everything generated lives under build/ (ignored by git).

QEMU_DEB_VERSION ?= 1:10.2.2+ds-1
TARGETS          ?= x86_64-softmmu,aarch64-softmmu
BUILD            := $(CURDIR)/build
PRISTINE         := $(BUILD)/src-pristine
SRC              := $(BUILD)/src
QEMU_BUILD       := $(BUILD)/qemu
BASELINE_BUILD   := $(BUILD)/baseline
PYTHON           ?= /usr/bin/python3
# The Python runners import the test harness package (tests/cxl/cxltest)
# through PYTHONPATH, set here only: PY runs a script with it, and
# scripts/check.sh reads both from `make -s python-env`.
HARNESS_PATH     := $(CURDIR)/tests/cxl
PY               := env PYTHONPATH=$(HARNESS_PATH) $(PYTHON)

# Firmware comes from Debian's seabios, ipxe-qemu and qemu-efi-aarch64
# (the +ds source has no blobs).
FIRMWARE_PATH    := /usr/share/seabios:/usr/lib/ipxe/qemu:/usr/share/qemu-efi-aarch64
CONFIGURE_FLAGS  := --python=$(PYTHON) --target-list=$(TARGETS) \
                    --disable-download --disable-install-blobs \
                    --disable-rust --disable-docs \
                    --firmwarepath=$(FIRMWARE_PATH)

SHELL            := /bin/bash
.SHELLFLAGS      := -o pipefail -ec

# ninja's [n/m] lines, thinned to a percentage every 2% of the steps
# (other lines, such as compiler errors, pass through)
NINJA_PROGRESS   := awk 'BEGIN { last = -2 } \
    /^\[[0-9]+\/[0-9]+\] / { \
        s = $$1; gsub(/[][]/, "", s); split(s, n, "/"); p = int(100 * n[1] / n[2]); \
        if (p >= last + 2 || n[1] == n[2]) { \
            last = p; d = $$0; sub(/^[^ ]* /, "", d); \
            printf "build: %3d%% [%s] %s\n", p, s, substr(d, 1, 90); fflush() } \
        next } \
    { print; fflush() }'

export QEMU_DEB_VERSION

.PHONY: all deps fetch apply qemu run demo-qtest install edk2 check check-fast check-install \
        check-upstream check-cxl-full \
        fuzz asan fuzz-asan check-asan stress e2e e2e-image e2e-image-amd64 \
        e2e-image-arm64 \
        configure baseline baseline-apply baseline-configure bench \
        python-env series series-check clean distclean

all: qemu

deps:
	@scripts/deps.sh

fetch: deps
	@scripts/fetch-qemu.sh $(PRISTINE)

apply: fetch
	@scripts/apply.sh $(PRISTINE) $(SRC)

configure: apply
	@scripts/configure.sh $(SRC) $(QEMU_BUILD) $(CONFIGURE_FLAGS)

# The emulators; test binaries are built by the runners that need them.
# Run from the build directory, QEMU relocates the firmware path into
# qemu-bundle/: point it at Debian's firmware there.
qemu: configure
	@ninja -C $(QEMU_BUILD) qemu-system-x86_64 qemu-system-aarch64 | $(NINJA_PROGRESS)
	@test -x $(QEMU_BUILD)/qemu-system-x86_64 -a -x $(QEMU_BUILD)/qemu-system-aarch64
	@scripts/firmware-links.sh $(QEMU_BUILD) $(FIRMWARE_PATH)
	@scripts/optionroms.sh $(SRC) $(QEMU_BUILD)

# The demo: a Linux guest (trixie, TCG) on q35 creates a 4-way interleaved
# region with cxl create-region at the default granularity and onlines it;
# bandwidth on the CXL and DRAM nodes with the window as RAM and as the
# MMIO decode; where the guest's pattern landed in each backend file.
run: qemu e2e-image-amd64
	@$(PY) tests/e2e/run.py --qemu-dir $(QEMU_BUILD) --image $(E2E_DIR)/amd64 --demo

# The qtest demo: the HDM decoders committed over the qtest protocol,
# chunks found in the backend files.
demo-qtest: qemu
	@$(PY) scripts/demo.py --qemu $(QEMU_BUILD)/qemu-system-x86_64

# The two emulators and the data they load (option ROMs, keymaps, trixie's
# edk2 for arm64), under PREFIX (DESTDIR for staging); no other tool, so
# Debian's qemu-img & co. stay what PATH finds.  The build is relocatable:
# any PREFIX works without reconfiguring.
PREFIX           ?= /usr/local
DESTDIR          ?=
EDK2_FD          := $(BUILD)/edk2/QEMU_EFI.fd

edk2: deps
	@scripts/fetch-edk2.sh $(BUILD)/e2e/arm64 $(EDK2_FD)

install: qemu edk2
	@scripts/install.sh $(QEMU_BUILD) "$(PREFIX)" "$(DESTDIR)" $(EDK2_FD)

# PYTHON and PYTHONPATH for scripts/check.sh, as shell assignments
python-env:
	@echo "PYTHON='$(PYTHON)' PYTHONPATH='$(HARNESS_PATH)'"

check-fast: deps
	@scripts/check.sh fast

check: qemu
	@scripts/check.sh all

# make install into a temporary DESTDIR, guests booted from it with no -L
check-install: qemu
	@scripts/check.sh install

# Every CXL routing scenario (topologies x granules x machines); the
# check target runs a representative subset.
check-cxl-full: qemu
	@scripts/check.sh cxl-full

# The decoder fuzzer: 1M register writes per machine (about 10 minutes
# each), a random seed each run (printed; --seed replays it), then a tenth
# of that on an XOR window.  fuzz-asan runs it against an ASan/UBSan build
# of the x86_64 emulator.
FUZZ_OPS         ?= 1000000
ASAN_BUILD       := $(BUILD)/asan

fuzz: qemu
	@$(PY) tests/cxl/fuzz-decoders.py --qemu-dir $(QEMU_BUILD) \
	    --machine q35 --ops $(FUZZ_OPS)
	@$(PY) tests/cxl/fuzz-decoders.py --qemu-dir $(QEMU_BUILD) \
	    --machine virt --ops $(FUZZ_OPS)
	@$(PY) tests/cxl/fuzz-decoders.py --qemu-dir $(QEMU_BUILD) \
	    --machine q35 --ops $$(($(FUZZ_OPS) / 10)) --xor

# Linux guest e2e (x86_64 q35 and arm64 virt, TCG): trixie kernels and
# tools unpacked from .debs into an initramfs (tests/e2e/), CXL regions
# onlined as System RAM.
E2E_DIR          := $(BUILD)/e2e
E2E_HELPER       := tests/e2e/guest/cxl-e2e.c tests/e2e/guest/cxl-fwcommit.c

e2e-image: e2e-image-amd64 e2e-image-arm64

e2e-image-amd64 e2e-image-arm64: e2e-image-%: deps
	@tests/e2e/fetch-debs.sh $* $(E2E_DIR)/$*
	@$(if $(filter arm64,$*),aarch64-linux-gnu-gcc,gcc) -O2 -static -Wall \
	    -o $(E2E_DIR)/cxl-e2e-$* $(E2E_HELPER)
	@$(PYTHON) tests/e2e/build-image.py --debs $(E2E_DIR)/$*/debs \
	    --out $(E2E_DIR)/$* --helper $(E2E_DIR)/cxl-e2e-$* \
	    --init tests/e2e/guest/init

E2E_RUN          := $(PY) tests/e2e/run.py --qemu-dir $(QEMU_BUILD)
E2E_X86          := $(E2E_RUN) --image $(E2E_DIR)/amd64
E2E_ARM          := $(E2E_RUN) --image $(E2E_DIR)/arm64 --arch aarch64

e2e: qemu e2e-image
	@scripts/check.sh e2e-full

# 10k pc-dimm and virtio-mem plug/unplug cycles next to a committed window.
stress: qemu
	@$(PY) tests/cxl/hotplug-stress.py --qemu-dir $(QEMU_BUILD) --cycles 10000

asan: apply
	@scripts/configure.sh $(SRC) $(ASAN_BUILD) $(CONFIGURE_FLAGS) \
	    --enable-asan --enable-ubsan
	@ninja -C $(ASAN_BUILD) qemu-system-x86_64 qemu-system-aarch64 qemu-img \
	    | $(NINJA_PROGRESS)
	@scripts/firmware-links.sh $(ASAN_BUILD) $(FIRMWARE_PATH)

# The routing, KVM-slot (stitched mappings included), TCG guest (route
# flips under atomics) and fuzz tiers against the ASan/UBSan build; a
# second build, so not part of make check.
check-asan: asan
	@scripts/check.sh asan

fuzz-asan: asan
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    $(PY) tests/cxl/fuzz-decoders.py --qemu-dir $(ASAN_BUILD) \
	    --machine q35 --ops $(FUZZ_OPS)

# Every upstream qtest of both targets (slow; reported in issue notes, not CI).
check-upstream: qemu
	@cd $(QEMU_BUILD) && meson test -q --print-errorlogs --num-processes 2 \
	    --suite qtest-x86_64 --suite qtest-aarch64

# Unpatched build of the same source, for side-by-side benchmarks only:
# upstream code plus the test objects the benchmarks drive
# (patches/series.baseline), none of the fixes.
BASELINE_SRC     := $(BUILD)/src-baseline

baseline-apply: fetch
	@scripts/apply.sh $(PRISTINE) $(BASELINE_SRC) patches/series.baseline

baseline-configure: baseline-apply
	@scripts/configure.sh $(BASELINE_SRC) $(BASELINE_BUILD) $(CONFIGURE_FLAGS)

baseline: baseline-configure
	@ninja -C $(BASELINE_BUILD) qemu-system-x86_64 qemu-system-aarch64 | $(NINJA_PROGRESS)
	@scripts/firmware-links.sh $(BASELINE_BUILD) $(FIRMWARE_PATH)
	@scripts/optionroms.sh $(BASELINE_SRC) $(BASELINE_BUILD)

# Benchmarks: patched vs baseline in the same run (builds both).
bench: qemu baseline
	@$(PY) bench/alias-commit.py --patched $(QEMU_BUILD)/qemu-system-x86_64 \
	    --baseline $(BASELINE_BUILD)/qemu-system-x86_64
	@$(MAKE) -s -C tests/cxl/guest OUT=$(BUILD)/guest
	@$(PY) bench/tcg-bandwidth.py --patched $(QEMU_BUILD) \
	    --baseline $(BASELINE_BUILD) --guest-dir $(BUILD)/guest
	@$(PY) bench/cxl-commit.py --qemu-dir $(QEMU_BUILD)
	@$(PY) bench/kvm-stitch.py --qemu-dir $(QEMU_BUILD)
	@$(MAKE) -s e2e-image
	@for run in "$(E2E_X86)" "$(E2E_ARM)"; do \
	    $$run --scenario 4hb-4k --bench patched=$(QEMU_BUILD) \
	        stitched=$(QEMU_BUILD):stitched unmodified=$(BASELINE_BUILD); \
	    $$run --scenario 4hb-256 --bench patched=$(QEMU_BUILD) \
	        unmodified=$(BASELINE_BUILD); \
	done
	@# the default granule through the shadow on three kinds of backends,
	@# and the same files at 4 KiB (interleave sections) for first touch
	@$(E2E_X86) --scenario 1hb4rp-default --bench ram=$(QEMU_BUILD):ram \
	    file-shm=$(QEMU_BUILD):shm file-tmp=$(QEMU_BUILD) \
	    4k-file-tmp=$(QEMU_BUILD):layout=1hb4rp-4k
	@$(E2E_ARM) --scenario 4hb-256 --bench ram=$(QEMU_BUILD):ram \
	    file-shm=$(QEMU_BUILD):shm file-tmp=$(QEMU_BUILD) \
	    4k-file-tmp=$(QEMU_BUILD):layout=4hb-4k
	@$(PY) bench/cxl-shadow.py --qemu-dir $(QEMU_BUILD)
	@$(PY) bench/dump-window.py --qemu-dir $(QEMU_BUILD)

# The upstream series (patches/upstream/README.rst): git format-patch files
# in build/series/, generated from the overlay and patches/series.
series: fetch
	@scripts/series.sh generate

# Build every step of the series, x86_64 only, in one build directory
# (build/series-check/); not part of make check.
series-check: fetch
	@PYTHON=$(PYTHON) scripts/series.sh check

clean:
	rm -rf $(QEMU_BUILD) $(BUILD)/unit

distclean:
	rm -rf $(BUILD)
