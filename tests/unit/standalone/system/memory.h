/*
 * Standalone stand-in for the parts of QEMU's system/memory.h that the
 * section table and the interleave regions use: regions carry a name and
 * a reference count, so tests can check that every reference taken is
 * dropped, and the fields memory-interleave-region.c reads, which tests
 * set by hand.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef STANDALONE_SYSTEM_MEMORY_H
#define STANDALONE_SYSTEM_MEMORY_H

typedef uint64_t hwaddr;
#define HWADDR_PRIx PRIx64

#include "qemu/int128.h"
#include "qemu/queue.h"

struct rcu_head {
    void *next, *func;
};

#define RAM_SHARED     (1 << 1)
#define RAM_READONLY   (1 << 10)

struct MemoryRegion {
    const char *name;
    long refs;
    bool readonly;
    bool nonvolatile;
    /* as in QEMU's MemoryRegion */
    bool ram;
    bool ram_device;
    bool enabled;
    bool unmergeable;
    uint8_t dirty_log_mask;
    RAMBlock *ram_block;
    Int128 size;
    hwaddr addr;
    MemoryRegion *alias;
    hwaddr alias_offset;
    int32_t priority;
    QTAILQ_HEAD(, MemoryRegion) subregions;
    QTAILQ_ENTRY(MemoryRegion) subregions_link;
    struct MemoryInterleave *interleave;
    struct MemoryInterleave *coalesced_interleave;
    bool coalesced_checked;
    bool interleave_aliases;
    bool write_back_copy;
};

typedef struct FlatView FlatView;

typedef struct MemoryRegionSection {
    Int128 size;
    MemoryRegion *mr;
    FlatView *fv;
    hwaddr offset_within_region;
    hwaddr offset_within_address_space;
    bool readonly;
    bool nonvolatile;
    bool unmergeable;
    struct MemoryInterleave *interleave;
} MemoryRegionSection;

static inline void memory_region_ref(MemoryRegion *mr)
{
    mr->refs++;
}

static inline void memory_region_unref(MemoryRegion *mr)
{
    mr->refs--;
}

static inline const char *memory_region_name(const MemoryRegion *mr)
{
    return mr->name ? mr->name : "";
}

static inline bool memory_region_is_ram(MemoryRegion *mr)
{
    return mr->ram;
}

static inline bool memory_region_is_ram_device(MemoryRegion *mr)
{
    return mr->ram_device;
}

static inline uint8_t memory_region_get_dirty_log_mask(MemoryRegion *mr)
{
    return mr->dirty_log_mask;
}

/* for a test to define, where it needs them */
int memory_region_get_fd(MemoryRegion *mr);
void memory_region_set_dirty(MemoryRegion *mr, hwaddr addr, hwaddr size);

#endif
