/*
 * KVM memslots over interleave windows
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * A window served through an interleave (system/memory-interleave.h) has no
 * RAMBlock of its own: its pages belong to the targets.  KVM gets one slot
 * over the window's stitched host mapping, and what KVM logs as dirty in
 * that slot is moved to the targets' dirty bitmaps, where migration and
 * the other dirty-memory clients look for it.
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qapi/error.h"
#include "system/memory-interleave.h"
#include "system/kvm.h"
#include "system/kvm_int.h"
#include "system/memory.h"
#include <linux/kvm.h>

MemoryInterleaveHost *kvm_interleave_map(MemoryRegionSection *section)
{
    /* what was said already: once per window and reason */
    static GHashTable *warned;
    MemoryInterleaveHost *host;
    Error *err = NULL;
    char *msg;

    host = memory_interleave_host_get(section->interleave, &err);
    if (host) {
        return host;
    }
    error_prepend(&err, "%s at 0x%" HWADDR_PRIx ": no KVM memory slot, "
                  "guest accesses will exit to QEMU: ",
                  memory_region_name(section->mr),
                  section->offset_within_address_space);
    if (!warned) {
        warned = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    }
    /* the reason up to its details (how many mappings are in use now) */
    msg = g_strndup(error_get_pretty(err),
                    strcspn(error_get_pretty(err), ";"));
    if (g_hash_table_add(warned, msg)) {
        warn_report_err(err);
    } else {
        error_free(err);
    }
    return NULL;
}

void kvm_interleave_slot_sync_dirty_pages(KVMSlot *slot)
{
    uint64_t pages = slot->memory_size / qemu_real_host_page_size();

    memory_interleave_host_set_dirty(slot->interleave, slot->ram,
                                     slot->dirty_bmap, pages);

    /*
     * With manual protection, KVM re-protects a page only when QEMU clears
     * it, which QEMU does per RAM range of the address space as migration
     * sends it; this slot is no such range (its pages are the targets'), so
     * clear what was just collected now: a write from here on is logged
     * again.
     */
    if (kvm_state->manual_dirty_log_protect &&
        !kvm_state->kvm_dirty_ring_size) {
        struct kvm_clear_dirty_log d = {
            .slot = slot->slot | (slot->as_id << 16),
            .first_page = 0,
            .num_pages = pages,
            .dirty_bitmap = slot->dirty_bmap,
        };
        int ret = kvm_vm_ioctl(kvm_state, KVM_CLEAR_DIRTY_LOG, &d);

        if (ret < 0) {
            error_report("%s: KVM_CLEAR_DIRTY_LOG failed: %s", __func__,
                         strerror(-ret));
        }
    }
}
