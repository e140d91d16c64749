/*
 * Physical section table: sections, page radix tree, subpage maps
 *
 * Moved out of system/physmem.c and widened: section indices are 32 bits
 * wide everywhere, bounded only by the tree's 26-bit pointer.
 *
 * Copyright (c) 2003 Fabrice Bellard (the radix tree, from physmem.c)
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "exec/memory-sections.h"

/* Size of the address space the tree covers. */
#define ADDR_SPACE_BITS 64

static uint32_t sections_limit = PHYS_SECTIONS_MAX;

void phys_sections_set_limit(uint32_t max)
{
    sections_limit = max && max < PHYS_SECTIONS_MAX ? max : PHYS_SECTIONS_MAX;
}

void phys_sections_init(PhysPageMap *map, unsigned page_bits)
{
    memset(map, 0, sizeof(*map));
    map->page_bits = page_bits;
    map->levels = ((ADDR_SPACE_BITS - page_bits - 1) / P_L2_BITS) + 1;
    map->sections_max = sections_limit;
}

void phys_sections_reserve(PhysPageMap *map, uint32_t nb)
{
    nb = MIN(nb, map->sections_max);
    if (nb > map->sections_nb_alloc) {
        map->sections_nb_alloc = nb;
        map->sections = g_renew(MemoryRegionSection, map->sections, nb);
    }
}

static void phys_sections_append(PhysPageMap *map,
                                 const MemoryRegionSection *section)
{
    if (map->sections_nb == map->sections_nb_alloc) {
        map->sections_nb_alloc = MAX(map->sections_nb_alloc * 2, 16);
        map->sections = g_renew(MemoryRegionSection, map->sections,
                                map->sections_nb_alloc);
    }
    map->sections[map->sections_nb++] = *section;
    memory_region_ref(section->mr);
}

uint32_t phys_sections_add(PhysPageMap *map,
                           const MemoryRegionSection *section, Error **errp)
{
    const MemoryInterleave *il = section->interleave;
    uint32_t need = 1 + (il ? il->nb_entries : 0), w, i;

    if (map->sections_max - map->sections_nb < need) {
        error_setg(errp, "memory: section table full (%" PRIu32 " sections):"
                   " %s '%s' at 0x%" HWADDR_PRIx " left unmapped",
                   map->sections_nb, il ? "interleave" : "region",
                   memory_region_name(section->mr),
                   section->offset_within_address_space);
        return PHYS_MAP_NODE_NIL;
    }
    w = map->sections_nb;
    phys_sections_append(map, section);
    for (i = 0; il && i < il->nb_entries; i++) {
        MemoryRegion *t = il->entries[i].target;
        /* the target's own flags: a read-only target stays read-only */
        MemoryRegionSection target = {
            .mr = t,
            .fv = section->fv,
            .size = int128_make64(il->entries[i].target_size),
            .readonly = section->readonly || t->readonly,
            .nonvolatile = section->nonvolatile || t->nonvolatile,
        };

        phys_sections_append(map, &target);
    }
    return w;
}

uint32_t phys_sections_add_or_report(PhysPageMap *map,
                                     const MemoryRegionSection *section)
{
    Error *err = NULL;
    uint32_t index = phys_sections_add(map, section, &err);

    if (err) {
        if (!map->dropped++) {
            error_report_err(err);
        } else {
            error_free(err);
        }
    }
    return index;
}

void phys_sections_free(PhysPageMap *map, void (*destroy)(MemoryRegion *mr))
{
    while (map->sections_nb > 0) {
        MemoryRegionSection *section = &map->sections[--map->sections_nb];
        destroy(section->mr);
    }
    g_free(map->sections);
    g_free(map->nodes);
    map->sections = NULL;
    map->nodes = NULL;
    map->nodes_nb = map->nodes_nb_alloc = map->sections_nb_alloc = 0;
}

static void phys_map_node_reserve(PhysPageMap *map, unsigned nodes)
{
    static unsigned alloc_hint = 16;

    if (map->nodes_nb + nodes > map->nodes_nb_alloc) {
        /* grow geometrically: maps of millions of sections stay linear */
        map->nodes_nb_alloc = MAX(MAX(alloc_hint, map->nodes_nb + nodes),
                                  map->nodes_nb_alloc * 2);
        map->nodes = g_renew(Node, map->nodes, map->nodes_nb_alloc);
        alloc_hint = map->nodes_nb_alloc;
    }
}

static uint32_t phys_map_node_alloc(PhysPageMap *map, bool leaf)
{
    unsigned i;
    uint32_t ret;
    PhysPageEntry e;
    PhysPageEntry *p;

    ret = map->nodes_nb++;
    p = map->nodes[ret];
    assert(ret != PHYS_MAP_NODE_NIL);
    assert(ret != map->nodes_nb_alloc);

    e.skip = leaf ? 0 : 1;
    e.ptr = leaf ? PHYS_SECTION_UNASSIGNED : PHYS_MAP_NODE_NIL;
    for (i = 0; i < P_L2_SIZE; ++i) {
        memcpy(&p[i], &e, sizeof(e));
    }
    return ret;
}

static void phys_page_set_level(PhysPageMap *map, PhysPageEntry *lp,
                                uint64_t *index, uint64_t *nb, uint32_t leaf,
                                int level)
{
    PhysPageEntry *p;
    uint64_t step = (uint64_t)1 << (level * P_L2_BITS);

    if (lp->skip && lp->ptr == PHYS_MAP_NODE_NIL) {
        lp->ptr = phys_map_node_alloc(map, level == 0);
    }
    p = map->nodes[lp->ptr];
    lp = &p[(*index >> (level * P_L2_BITS)) & (P_L2_SIZE - 1)];

    while (*nb && lp < &p[P_L2_SIZE]) {
        if ((*index & (step - 1)) == 0 && *nb >= step) {
            lp->skip = 0;
            lp->ptr = leaf;
            *index += step;
            *nb -= step;
        } else {
            phys_page_set_level(map, lp, index, nb, leaf, level - 1);
        }
        ++lp;
    }
}

void phys_sections_map_pages(PhysPageMap *map, PhysPageEntry *root,
                             uint64_t index, uint64_t nb, uint32_t leaf)
{
    assert(leaf < map->sections_nb);
    /* Wildly overreserve - it doesn't matter much. */
    phys_map_node_reserve(map, 3 * map->levels);

    phys_page_set_level(map, root, &index, &nb, leaf, map->levels - 1);
}

/*
 * Compact a non leaf page entry. Simply detect that the entry has a single
 * child, and update our entry so we can skip it and go directly to the
 * destination.
 */
static void phys_page_compact(const PhysPageMap *map, PhysPageEntry *lp)
{
    unsigned valid_ptr = P_L2_SIZE;
    int valid = 0;
    PhysPageEntry *p;
    int i;

    if (lp->ptr == PHYS_MAP_NODE_NIL) {
        return;
    }

    p = map->nodes[lp->ptr];
    for (i = 0; i < P_L2_SIZE; i++) {
        if (p[i].ptr == PHYS_MAP_NODE_NIL) {
            continue;
        }

        valid_ptr = i;
        valid++;
        if (p[i].skip) {
            phys_page_compact(map, &p[i]);
        }
    }

    /* We can only compress if there's only one child. */
    if (valid != 1) {
        return;
    }

    assert(valid_ptr < P_L2_SIZE);

    /* Don't compress if it won't fit in the # of bits we have. */
    if (map->levels >= (1 << 6) &&
        lp->skip + p[valid_ptr].skip >= (1 << 6)) {
        return;
    }

    lp->ptr = p[valid_ptr].ptr;
    if (!p[valid_ptr].skip) {
        /*
         * If our only child is a leaf, make this a leaf.  By design we
         * should have made this node a leaf to begin with, but it is
         * simple to handle.
         */
        lp->skip = 0;
    } else {
        lp->skip += p[valid_ptr].skip;
    }
}

void phys_sections_compact(PhysPageMap *map, PhysPageEntry *root)
{
    if (root->skip) {
        phys_page_compact(map, root);
    }
}

void phys_subpage_map_set(const PhysPageMap *map, uint32_t *sub_section,
                          unsigned start, unsigned end, uint32_t section)
{
    unsigned page_size = 1u << map->page_bits;

    assert(start <= end && end < page_size);
    assert(section < map->sections_nb);
    for (; start <= end; start++) {
        sub_section[start] = section;
    }
}
