/*
 * Physical section table: the map from guest-physical pages to
 * MemoryRegionSections used by an AddressSpaceDispatch
 *
 * Copyright (c) 2003 Fabrice Bellard (the radix tree, from physmem.c)
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#ifndef EXEC_MEMORY_SECTIONS_H
#define EXEC_MEMORY_SECTIONS_H

#include "system/memory.h"
#include "qapi/error.h"
#include "system/memory-interleave.h"

/*
 * A PhysPageMap holds every MemoryRegionSection of one FlatView in an
 * array, and a radix tree from page number to section index.  A section
 * index is a uint32_t everywhere: in the tree's leaves (26 bits) and in
 * subpage maps (the TCG TLB keeps a section pointer instead).  The
 * only ceiling is the tree's 26-bit pointer, whose all-ones value means
 * "no node": at most PHYS_SECTIONS_MAX sections per dispatch.  Reaching
 * it is reported as an error naming the region; the range stays
 * unassigned.
 *
 * Page size is a property of the map (the target page size in QEMU), so
 * the table can be exercised with 1 KiB and 4 KiB pages alike.
 */

typedef struct PhysPageEntry {
    /* How many bits skip to next level (in units of L2_SIZE). 0 for a leaf. */
    uint32_t skip:6;
    /* index into sections (!skip) or nodes (skip) */
    uint32_t ptr:26;
} PhysPageEntry;

#define PHYS_MAP_NODE_NIL (((uint32_t)~0) >> 6)
#define PHYS_SECTIONS_MAX PHYS_MAP_NODE_NIL
#define PHYS_SECTION_UNASSIGNED 0

#define P_L2_BITS 9
#define P_L2_SIZE (1 << P_L2_BITS)

typedef PhysPageEntry Node[P_L2_SIZE];

typedef struct PhysPageMap {
    struct rcu_head rcu;

    unsigned page_bits;
    unsigned levels;
    uint32_t sections_max;      /* PHYS_SECTIONS_MAX unless a test lowers it */
    uint32_t sections_nb;
    uint32_t sections_nb_alloc;
    uint32_t dropped;           /* sections refused at the ceiling */
    unsigned nodes_nb;
    unsigned nodes_nb_alloc;
    Node *nodes;
    MemoryRegionSection *sections;
} PhysPageMap;

/**
 * phys_sections_init: an empty map for pages of 2^@page_bits bytes
 *
 * Section 0 is left for the caller to add: PHYS_SECTION_UNASSIGNED.
 */
void phys_sections_init(PhysPageMap *map, unsigned page_bits);

/**
 * phys_sections_reserve: make room for @nb sections at once (a dispatch
 * knows its FlatView's size: growing by doubling copies the array)
 */
void phys_sections_reserve(PhysPageMap *map, uint32_t nb);

/**
 * phys_sections_free: drop every section (calling @destroy on its
 * region, which must release the reference phys_sections_add took) and
 * the tree.
 */
void phys_sections_free(PhysPageMap *map, void (*destroy)(MemoryRegion *mr));

/**
 * phys_sections_add: append a copy of @section, taking a reference on
 * its region; for a section that carries an interleave, its entry
 * sections follow it (see "Interleave sections" below), all or none
 *
 * Returns: the new section's index, or PHYS_MAP_NODE_NIL with @errp set
 * (naming the region and its address) when the table is full.
 */
uint32_t phys_sections_add(PhysPageMap *map,
                           const MemoryRegionSection *section, Error **errp);

/**
 * phys_sections_add_or_report: phys_sections_add(), reporting a full
 * table with error_report() once per map (later failures are counted
 * in @dropped) instead of returning the error
 */
uint32_t phys_sections_add_or_report(PhysPageMap *map,
                                     const MemoryRegionSection *section);

/**
 * phys_sections_set_limit: lower the ceiling (tests only); 0 restores
 * PHYS_SECTIONS_MAX for maps initialised afterwards.
 */
void phys_sections_set_limit(uint32_t max);

/**
 * phys_sections_map_pages: point @nb pages from page number @index at
 * section @leaf
 *
 * @root: the tree's root entry
 */
void phys_sections_map_pages(PhysPageMap *map, PhysPageEntry *root,
                             uint64_t index, uint64_t nb, uint32_t leaf);

/**
 * phys_sections_compact: shortcut tree nodes that have a single child
 */
void phys_sections_compact(PhysPageMap *map, PhysPageEntry *root);

/**
 * phys_sections_find: the section mapped at @addr, or the unassigned
 * section.  Arithmetic and loads only: the dispatch hot path.
 */
static inline MemoryRegionSection *phys_sections_find(const PhysPageMap *map,
                                                      PhysPageEntry root,
                                                      hwaddr addr)
{
    PhysPageEntry lp = root;
    const PhysPageEntry *p;
    MemoryRegionSection *section;
    hwaddr index = addr >> map->page_bits;
    int i;

    for (i = map->levels; lp.skip && (i -= lp.skip) >= 0;) {
        if (lp.ptr == PHYS_MAP_NODE_NIL) {
            return &map->sections[PHYS_SECTION_UNASSIGNED];
        }
        p = map->nodes[lp.ptr];
        lp = p[(index >> (i * P_L2_BITS)) & (P_L2_SIZE - 1)];
    }

    section = &map->sections[lp.ptr];
    /*
     * Memory topology clips a memory region to [0, 2^64); size.hi > 0
     * means the section covers the entire address space.
     */
    if (int128_gethi(section->size) ||
        (addr >= section->offset_within_address_space &&
         addr - section->offset_within_address_space <=
         int128_getlo(section->size) - 1)) {
        return section;
    }
    return &map->sections[PHYS_SECTION_UNASSIGNED];
}

/*
 * Interleave sections.  A FlatRange served through an interleave is one
 * section W, followed by one section per entry: W + 1 + e covers entry
 * e's whole target, with the target's own read-only and non-volatile
 * flags.  W is mapped like any section, on whole pages or, where another
 * range shares a page with it (an overlay), in a subpage map.  A lookup
 * that lands on W is resolved arithmetically to W + 1 + e and the target
 * offset, and its length is clamped at the chunk end and at W's end.
 * O(entries) sections per window, whatever its size.  Entry sections
 * have no address in the address space: offset_within_address_space of
 * W + 1 + e means nothing, an address is only ever W's.
 */
static inline MemoryRegionSection *
phys_sections_translate_interleave(const PhysPageMap *map,
                                   MemoryRegionSection *section, hwaddr addr,
                                   hwaddr *xlat, hwaddr *plen)
{
    uint64_t in_section = addr - section->offset_within_address_space;
    uint64_t off = in_section + section->offset_within_region;
    uint64_t len = MIN(*plen, int128_get64(section->size) - in_section);
    uint64_t target_offset;
    unsigned e = memory_interleave_translate(section->interleave, off,
                                             &target_offset, &len);

    *xlat = target_offset;
    *plen = len;
    return section + 1 + e;
}

/*
 * Subpage maps: one section index per byte of a page that several
 * sections share.  Allocate phys_subpage_map_bytes() for the array.
 */
static inline size_t phys_subpage_map_bytes(const PhysPageMap *map)
{
    return ((size_t)1 << map->page_bits) * sizeof(uint32_t);
}

/* Point bytes @start..@end (page offsets, inclusive) at @section. */
void phys_subpage_map_set(const PhysPageMap *map, uint32_t *sub_section,
                          unsigned start, unsigned end, uint32_t section);

static inline MemoryRegionSection *
phys_subpage_map_find(const PhysPageMap *map, const uint32_t *sub_section,
                      hwaddr addr)
{
    hwaddr mask = ((hwaddr)1 << map->page_bits) - 1;

    return &map->sections[sub_section[addr & mask]];
}

#endif
