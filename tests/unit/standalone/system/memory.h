/*
 * Standalone stand-in for the parts of QEMU's system/memory.h that the
 * section table uses: regions only carry a name and a reference count,
 * so tests can check that every reference taken is dropped.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef STANDALONE_SYSTEM_MEMORY_H
#define STANDALONE_SYSTEM_MEMORY_H

typedef uint64_t hwaddr;
#define HWADDR_PRIx PRIx64

#include "qemu/int128.h"

struct rcu_head {
    void *next, *func;
};

typedef struct MemoryRegion {
    const char *name;
    long refs;
    bool readonly;
    bool nonvolatile;
} MemoryRegion;

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

#endif
