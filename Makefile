# Driver for the qemu-cxl-interleave overlay on Debian's QEMU 10.2.2.
# Everything generated lives under build/ (ignored by git).

QEMU_DEB_VERSION ?= 1:10.2.2+ds-1
TARGETS          ?= x86_64-softmmu,aarch64-softmmu
BUILD            := $(CURDIR)/build
PRISTINE         := $(BUILD)/src-pristine
SRC              := $(BUILD)/src
QEMU_BUILD       := $(BUILD)/qemu
BASELINE_BUILD   := $(BUILD)/baseline
PYTHON           := /usr/bin/python3

CONFIGURE_FLAGS  := --python=$(PYTHON) --target-list=$(TARGETS) \
                    --disable-download --disable-install-blobs \
                    --disable-rust --disable-docs

SHELL            := /bin/bash
.SHELLFLAGS      := -o pipefail -ec

# ninja's [n/m] lines, thinned to a progress line every 250 steps
NINJA_PROGRESS   := awk -F'[][/]' '!/^\[/ || $$2 % 250 == 0 || $$2 == $$3 { print; fflush() }'

export QEMU_DEB_VERSION

.PHONY: all deps fetch apply qemu run check check-fast check-upstream \
        baseline clean distclean

all: qemu

deps:
	@scripts/deps.sh

fetch: deps
	@scripts/fetch-qemu.sh $(PRISTINE)

apply: fetch
	@scripts/apply.sh $(PRISTINE) $(SRC)

$(QEMU_BUILD)/build.ninja: | apply
	@mkdir -p $(QEMU_BUILD)
	@echo "configure: patched tree -> $(QEMU_BUILD)"
	@cd $(QEMU_BUILD) && $(SRC)/configure $(CONFIGURE_FLAGS) > configure.log 2>&1 || \
	    { tail -20 configure.log; echo "configure failed: $(QEMU_BUILD)/configure.log"; exit 1; }

# The emulators; test binaries are built by the runners that need them.
qemu: apply $(QEMU_BUILD)/build.ninja
	@ninja -C $(QEMU_BUILD) qemu-system-x86_64 qemu-system-aarch64 | $(NINJA_PROGRESS)
	@test -x $(QEMU_BUILD)/qemu-system-x86_64 -a -x $(QEMU_BUILD)/qemu-system-aarch64

# The demo: a q35 machine with a 4-way interleaved CXL fixed memory window.
run: qemu
	@$(PYTHON) scripts/demo.py --qemu $(QEMU_BUILD)/qemu-system-x86_64

check-fast: deps
	@scripts/check.sh fast

check: qemu
	@scripts/check.sh all

# Every upstream qtest of both targets (slow; reported in issue notes, not CI).
check-upstream: qemu
	@cd $(QEMU_BUILD) && meson test -q --print-errorlogs --num-processes 2 \
	    --suite qtest-x86_64 --suite qtest-aarch64

# Unpatched build of the same source, for side-by-side benchmarks only.
$(BASELINE_BUILD)/build.ninja: | fetch
	@mkdir -p $(BASELINE_BUILD)
	@cd $(BASELINE_BUILD) && $(PRISTINE)/configure $(CONFIGURE_FLAGS) > configure.log 2>&1 || \
	    { tail -20 configure.log; echo "configure failed: $(BASELINE_BUILD)/configure.log"; exit 1; }

baseline: fetch $(BASELINE_BUILD)/build.ninja
	@ninja -C $(BASELINE_BUILD) qemu-system-x86_64 qemu-system-aarch64 | $(NINJA_PROGRESS)

clean:
	rm -rf $(QEMU_BUILD) $(BUILD)/unit

distclean:
	rm -rf $(BUILD)
