/*
 * Regions served through an interleave: the explicit API and the
 * detection of repeating alias patterns (coalescing)
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qapi/error.h"
#include "system/memory-interleave.h"
#include "exec/target_page.h"
#include "system/memory.h"
#include "system/ramblock.h"
#include "trace.h"

void memory_region_interleave_invalidate(MemoryRegion *container)
{
    if (container) {
        memory_interleave_unref(container->coalesced_interleave);
        container->coalesced_interleave = NULL;
        container->coalesced_checked = false;
    }
}

void memory_region_interleave_finalize(MemoryRegion *mr)
{
    memory_interleave_unref(mr->interleave);
    mr->interleave = NULL;
    memory_region_interleave_invalidate(mr);
}

bool memory_interleave_target_ok(MemoryRegion *mr,
                                 MemoryInterleaveRoute route, Error **errp)
{
    const char *name = mr ? memory_region_name(mr) : "(none)";

    if (!mr || mr->alias || !mr->enabled || !memory_region_is_ram(mr) ||
        memory_region_is_ram_device(mr) || int128_gethi(mr->size)) {
        error_setg(errp, "target %s is not enabled RAM", name);
        return false;
    }
    if (mr->readonly || (mr->ram_block &&
                         (mr->ram_block->flags & RAM_READONLY))) {
        error_setg(errp, "target %s is read-only", name);
        return false;
    }
    if (route == MEMORY_INTERLEAVE_ROUTE_STITCHED) {
        if (!mr->ram_block || memory_region_get_fd(mr) < 0) {
            error_setg(errp, "target %s has no file descriptor (use "
                       "memory-backend-memfd or memory-backend-file)", name);
            return false;
        }
        if (!qemu_ram_is_shared(mr->ram_block)) {
            error_setg(errp, "target %s is a private mapping (set share=on)",
                       name);
            return false;
        }
    }
    return true;
}

bool memory_interleave_targets_ok(const MemoryInterleave *il,
                                  MemoryInterleaveRoute route, Error **errp)
{
    unsigned i;

    for (i = 0; i < il->nb_entries; i++) {
        MemoryRegion *t = il->entries[i].target;

        if (!memory_interleave_target_ok(t, route, errp)) {
            return false;
        }
        if (t->nonvolatile != il->entries[0].target->nonvolatile) {
            error_setg(errp, "targets %s and %s mix volatile and persistent "
                       "memory", memory_region_name(il->entries[0].target),
                       memory_region_name(t));
            return false;
        }
        if (int128_getlo(t->size) < il->entries[i].target_size) {
            error_setg(errp, "target %s shrank below 0x%" PRIx64 " bytes",
                       memory_region_name(t), il->entries[i].target_size);
            return false;
        }
    }
    return true;
}

static int cmp_addr(const void *a, const void *b)
{
    const MemoryRegion *ma = *(MemoryRegion * const *)a;
    const MemoryRegion *mb = *(MemoryRegion * const *)b;

    return ma->addr < mb->addr ? -1 : ma->addr > mb->addr;
}

/*
 * Find the repeating pattern in @c's subregions: O(n log n), once per
 * change of the subregions.
 */
static MemoryInterleave *find_alias_pattern(MemoryRegion *c)
{
    uint64_t page = qemu_target_page_size(), chunk;
    g_autofree MemoryRegion **sub = NULL;
    g_autofree MemoryInterleaveChunk *seq = NULL;
    MemoryInterleave *il;
    MemoryRegion *s;
    unsigned n = 0, i;
    int32_t prio;

    QTAILQ_FOREACH(s, &c->subregions, subregions_link) {
        n++;
    }
    if (n < MEMORY_INTERLEAVE_MIN_ALIASES) {
        return NULL;
    }
    sub = g_new(MemoryRegion *, n);
    n = 0;
    QTAILQ_FOREACH(s, &c->subregions, subregions_link) {
        sub[n++] = s;
    }
    if (int128_gethi(sub[0]->size)) {
        return NULL;
    }
    chunk = int128_get64(sub[0]->size);
    prio = sub[0]->priority;
    if (!chunk || chunk % page || int128_gethi(c->size) ||
        int128_getlo(c->size) != chunk * n) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        s = sub[i];
        if (!s->alias || !s->enabled || s->readonly || s->nonvolatile ||
            s->unmergeable || s->priority != prio || s->alias_offset % page ||
            int128_gethi(s->size) || int128_getlo(s->size) != chunk ||
            !memory_interleave_target_ok(s->alias,
                                         MEMORY_INTERLEAVE_ROUTE_SECTIONS,
                                         NULL)) {
            return NULL;
        }
    }
    qsort(sub, n, sizeof(sub[0]), cmp_addr);
    for (i = 0; i < n; i++) {
        if (sub[i]->addr != (uint64_t)i * chunk) {
            return NULL;
        }
    }

    seq = g_new(MemoryInterleaveChunk, n);
    for (i = 0; i < n; i++) {
        seq[i] = (MemoryInterleaveChunk) {
            .target = sub[i]->alias,
            .target_size = int128_get64(sub[i]->alias->size),
            .offset = sub[i]->alias_offset,
        };
    }
    /*
     * No period, a failed validation (bounds, overlaps), or no repeat (n
     * aliases to n places are no pattern) just mean no coalescing.
     */
    il = memory_interleave_find((uint64_t)n * chunk, chunk, seq, n, page,
                                NULL);
    if (il && (il->nb_entries > n / 2 ||
               !memory_interleave_targets_ok(
                   il, MEMORY_INTERLEAVE_ROUTE_SECTIONS, NULL))) {
        memory_interleave_unref(il);
        il = NULL;
    }
    return il;
}

/* The targets of a cached pattern have not changed under it. */
static bool pattern_still_valid(const MemoryInterleave *il)
{
    unsigned i;

    for (i = 0; i < il->nb_entries; i++) {
        if (int128_getlo(il->entries[i].target->size) !=
            il->entries[i].target_size) {
            return false;
        }
    }
    return memory_interleave_targets_ok(il, MEMORY_INTERLEAVE_ROUTE_SECTIONS,
                                        NULL);
}

MemoryInterleave *memory_region_get_interleave(MemoryRegion *mr)
{
    if (mr->interleave) {
        return mr->interleave;
    }
    if (mr->alias || !mr->interleave_aliases ||
        QTAILQ_EMPTY(&mr->subregions)) {
        return NULL;
    }
    if (mr->coalesced_checked && mr->coalesced_interleave &&
        !pattern_still_valid(mr->coalesced_interleave)) {
        memory_region_interleave_invalidate(mr);
    }
    if (!mr->coalesced_checked) {
        mr->coalesced_interleave = find_alias_pattern(mr);
        mr->coalesced_checked = true;
        if (mr->coalesced_interleave) {
            trace_memory_region_coalesced_interleave(
                memory_region_name(mr), mr->coalesced_interleave->nb_entries,
                mr->coalesced_interleave->chunk);
        }
    }
    return mr->coalesced_interleave;
}

uint8_t memory_region_interleave_dirty_log_mask(MemoryRegion *mr)
{
    MemoryInterleave *il = mr->interleave ? mr->interleave
                                          : mr->coalesced_interleave;
    uint8_t mask = 0;
    unsigned i;

    for (i = 0; il && i < il->nb_entries; i++) {
        mask |= memory_region_get_dirty_log_mask(il->entries[i].target);
    }
    return mask;
}

bool memory_region_interleave_nonvolatile(MemoryRegion *mr)
{
    MemoryInterleave *il = memory_region_get_interleave(mr);

    /* the targets agree (memory_interleave_targets_ok()) */
    return il && il->entries[0].target->nonvolatile;
}

void memory_region_interleave_set_dirty(MemoryRegion *mr, uint64_t addr,
                                        uint64_t size)
{
    MemoryInterleave *il = memory_region_get_interleave(mr);

    while (il && size) {
        uint64_t target_offset, len = size;
        unsigned e = memory_interleave_translate(il, addr, &target_offset,
                                                 &len);

        memory_region_set_dirty(il->entries[e].target, target_offset, len);
        addr += len;
        size -= len;
    }
}

void memory_region_set_write_back_copy(MemoryRegion *mr)
{
    assert(memory_region_is_ram(mr));
    mr->write_back_copy = true;
}

bool memory_listener_skips_section(const char *who,
                                   MemoryRegionSection *section)
{
    static GMutex lock;
    static GHashTable *warned;
    g_autofree char *key = NULL;
    const char *why;
    hwaddr start = section->offset_within_address_space;

    if (section->interleave) {
        why = "it is served through an interleave of several regions";
    } else if (section->mr->write_back_copy) {
        why = "it is a write-back copy, which a device's writes would bypass";
    } else {
        return false;
    }
    /* listeners run under the BQL; a dirty-log sync might not */
    g_mutex_lock(&lock);
    if (!warned) {
        warned = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    }
    /*
     * Per range and region name: pieces of two windows share names, and a
     * recommit makes a new region for the same range
     */
    key = g_strdup_printf("%s/%s/%" HWADDR_PRIx "+%" PRIx64, who,
                          memory_region_name(section->mr), start,
                          int128_get64(section->size));
    if (!g_hash_table_contains(warned, key)) {
        g_hash_table_add(warned, g_steal_pointer(&key));
        warn_report("%s: guest memory 0x%" HWADDR_PRIx "-0x%" HWADDR_PRIx
                    " (%s) is not mapped for the device: %s", who, start,
                    start + int128_get64(section->size) - 1,
                    memory_region_name(section->mr), why);
    }
    g_mutex_unlock(&lock);
    return true;
}
