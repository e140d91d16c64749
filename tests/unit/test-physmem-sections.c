/*
 * Physical section table limits (cmocka, standalone)
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "exec/memory-sections.h"

#include <setjmp.h>
#include <cmocka.h>

static MemoryRegion unassigned = { .name = "unassigned" };

static void destroy(MemoryRegion *mr)
{
    memory_region_unref(mr);
}

static uint32_t add(PhysPageMap *map, MemoryRegion *mr, hwaddr addr,
                    uint64_t size)
{
    MemoryRegionSection s = {
        .mr = mr, .size = int128_make64(size),
        .offset_within_address_space = addr,
    };
    Error *err = NULL;
    uint32_t idx = phys_sections_add(map, &s, &err);

    if (err) {
        fail_msg("unexpected: %s", error_get_pretty(err));
    }
    return idx;
}

static void map_init(PhysPageMap *map, PhysPageEntry *root, unsigned bits)
{
    phys_sections_init(map, bits);
    *root = (PhysPageEntry) { .ptr = PHYS_MAP_NODE_NIL, .skip = 1 };
    assert_int_equal(add(map, &unassigned, 0, 0), PHYS_SECTION_UNASSIGNED);
    map->sections[0].size = int128_2_64();
}

/*
 * One section per page, 2^20 + 3 of them (the old limit was the page
 * size, 1024 or 4096; 16-bit indices wrapped at 65536): every page must
 * find its own section, and the holes between them none.
 */
static void sections_beyond_page_size(unsigned bits)
{
    const uint32_t n = (1u << 20) + 3;
    const uint64_t page = 1ULL << bits;
    MemoryRegion mr = { .name = "ram" };
    PhysPageMap map;
    PhysPageEntry root;
    uint32_t i;

    map_init(&map, &root, bits);
    for (i = 0; i < n; i++) {
        /* page 2i holds section i + 1; page 2i + 1 is a hole */
        uint32_t idx = add(&map, &mr, 2 * i * page, page);

        assert_int_equal(idx, i + 1);
        phys_sections_map_pages(&map, &root, 2 * i, 1, idx);
    }
    phys_sections_compact(&map, &root);
    for (i = 0; i < n; i++) {
        MemoryRegionSection *s = phys_sections_find(&map, root,
                                                    2 * i * page + page - 1);
        MemoryRegionSection *hole = phys_sections_find(&map, root,
                                                       (2 * i + 1) * page);

        if (s - map.sections != i + 1) {
            fail_msg("%" PRIu64 "-byte pages: page %u found section %td,"
                     " not %u", page, 2 * i, s - map.sections, i + 1);
        }
        assert_ptr_equal(hole, &map.sections[PHYS_SECTION_UNASSIGNED]);
    }
    assert_int_equal(mr.refs, n);
    phys_sections_free(&map, destroy);
    assert_int_equal(mr.refs, 0);
    assert_int_equal(unassigned.refs, 0);
}

static void test_sections_beyond_page_size_4k(void **state)
{
    sections_beyond_page_size(12);
}

static void test_sections_beyond_page_size_1k(void **state)
{
    sections_beyond_page_size(10);
}

/*
 * Pages shared by several sections resolve through a subpage map: its
 * entries must hold indices past 65535 without truncation.
 */
static void subpages_beyond_65536(unsigned bits)
{
    const unsigned page = 1u << bits, parts = 4, pages = 64;
    MemoryRegion filler = { .name = "filler" }, dev = { .name = "dev" };
    MemoryRegion sub = { .name = "subpage" };
    g_autofree uint32_t *maps[64];
    PhysPageMap map;
    PhysPageEntry root;
    unsigned i, p, b;

    map_init(&map, &root, bits);
    for (i = 0; i < 70000; i++) {
        add(&map, &filler, 0x100000000ULL + i * (uint64_t)page, page);
    }
    for (p = 0; p < pages; p++) {
        uint32_t sp = add(&map, &sub, (uint64_t)p * page, page);

        maps[p] = g_malloc0(phys_subpage_map_bytes(&map));
        phys_sections_map_pages(&map, &root, p, 1, sp);
        for (i = 0; i < parts; i++) {
            unsigned start = i * page / parts, end = start + page / parts - 1;
            uint32_t idx = add(&map, &dev, (uint64_t)p * page + start,
                               page / parts);

            assert_true(idx > 65535);
            phys_subpage_map_set(&map, maps[p], start, end, idx);
        }
    }
    for (p = 0; p < pages; p++) {
        for (b = 0; b < page; b++) {
            hwaddr addr = (hwaddr)p * page + b;
            MemoryRegionSection *s = phys_sections_find(&map, root, addr);

            assert_ptr_equal(s->mr, &sub);
            s = phys_subpage_map_find(&map, maps[p], addr);
            if (s->mr != &dev || s->offset_within_address_space >
                addr || addr - s->offset_within_address_space >=
                page / parts) {
                fail_msg("%u-byte pages: byte 0x%" PRIx64 " resolved to"
                         " section %td at 0x%" PRIx64, page, addr,
                         s - map.sections, s->offset_within_address_space);
            }
        }
        g_free(maps[p]);
        maps[p] = NULL;
    }
    phys_sections_free(&map, destroy);
    assert_int_equal(filler.refs + dev.refs + sub.refs, 0);
}

static void test_subpages_beyond_65536_sections_4k(void **state)
{
    subpages_beyond_65536(12);
}

static void test_subpages_beyond_65536_sections_1k(void **state)
{
    subpages_beyond_65536(10);
}

/* The ceiling is an error naming the region, and leaves the map intact. */
static void test_sections_ceiling_is_an_error(void **state)
{
    MemoryRegion mr = { .name = "alias-at-the-limit" };
    MemoryRegionSection s = {
        .mr = &mr, .size = int128_make64(4096),
        .offset_within_address_space = 0x12345000,
    };
    PhysPageMap map;
    PhysPageEntry root;
    Error *err = NULL;
    uint32_t i;

    phys_sections_set_limit(1000);
    map_init(&map, &root, 12);
    phys_sections_set_limit(0);
    for (i = 1; i < 1000; i++) {
        assert_int_equal(add(&map, &mr, i * 4096ULL, 4096), i);
    }
    assert_int_equal(phys_sections_add(&map, &s, &err), PHYS_MAP_NODE_NIL);
    assert_non_null(err);
    if (!strstr(error_get_pretty(err), "section table full") ||
        !strstr(error_get_pretty(err), "alias-at-the-limit") ||
        !strstr(error_get_pretty(err), "0x12345000")) {
        fail_msg("ceiling error does not name the table, region and"
                 " address: %s", error_get_pretty(err));
    }
    error_free(err);
    assert_int_equal(map.sections_nb, 1000);
    assert_int_equal(mr.refs, 999);
    phys_sections_free(&map, destroy);
    assert_int_equal(mr.refs, 0);

    /* the limit applies to maps created while it is set, and resets */
    phys_sections_init(&map, 12);
    assert_int_equal(map.sections_max, PHYS_SECTIONS_MAX);
    phys_sections_free(&map, destroy);
}

/* At the ceiling, the dispatch reports once per map, not per section. */
static void test_sections_ceiling_reported_once(void **state)
{
    MemoryRegion mr = { .name = "many" };
    MemoryRegionSection s = { .mr = &mr, .size = int128_make64(4096) };
    unsigned before = error_report_count;
    PhysPageMap map;
    PhysPageEntry root;
    int i;

    phys_sections_set_limit(10);
    map_init(&map, &root, 12);
    phys_sections_set_limit(0);
    for (i = 1; i < 10; i++) {
        assert_int_equal(phys_sections_add_or_report(&map, &s), i);
    }
    for (i = 0; i < 5; i++) {
        assert_int_equal(phys_sections_add_or_report(&map, &s),
                         PHYS_MAP_NODE_NIL);
    }
    assert_int_equal(error_report_count - before, 1);
    assert_int_equal(map.dropped, 5);
    phys_sections_free(&map, destroy);
    assert_int_equal(mr.refs, 0);
}

/* The real ceiling is what the tree's node pointer can hold. */
static void test_sections_real_ceiling_is_26_bits(void **state)
{
    PhysPageEntry e = { .ptr = 0 };

    e.ptr--;    /* wraps to the widest value the field holds */
    assert_int_equal(PHYS_SECTIONS_MAX, e.ptr);
    assert_int_equal(PHYS_SECTIONS_MAX, (1u << 26) - 1);
}

/* Large mappings split across tree levels still find their section. */
static void test_sections_large_ranges(void **state)
{
    MemoryRegion a = { .name = "a" }, b = { .name = "b" };
    PhysPageMap map;
    PhysPageEntry root;
    uint32_t ia, ib;

    map_init(&map, &root, 12);
    ia = add(&map, &a, 0x1000, (1ULL << 40) - 0x1000);
    ib = add(&map, &b, 1ULL << 40, 1ULL << 30);
    phys_sections_map_pages(&map, &root, 1, (1ULL << 28) - 1, ia);
    phys_sections_map_pages(&map, &root, 1ULL << 28, 1ULL << 18, ib);
    phys_sections_compact(&map, &root);
    assert_ptr_equal(phys_sections_find(&map, root, 0)->mr, &unassigned);
    assert_ptr_equal(phys_sections_find(&map, root, 0x1000)->mr, &a);
    assert_ptr_equal(phys_sections_find(&map, root, (1ULL << 40) - 1)->mr, &a);
    assert_ptr_equal(phys_sections_find(&map, root, 1ULL << 40)->mr, &b);
    assert_ptr_equal(phys_sections_find(&map, root,
                                        (1ULL << 40) + (1ULL << 30) - 1)->mr,
                     &b);
    assert_ptr_equal(phys_sections_find(&map, root,
                                        (1ULL << 40) + (1ULL << 30))->mr,
                     &unassigned);
    phys_sections_free(&map, destroy);
    assert_int_equal(a.refs + b.refs, 0);
}

/*
 * An interleave window is O(entries) sections, and every page of it
 * resolves to the right entry's target section and offset.
 */
static void test_interleave_window_costs_entries_not_pages(void **state)
{
    MemoryRegion t[4] = { { .name = "t0" }, { .name = "t1" },
                          { .name = "t2" }, { .name = "t3" } };
    MemoryRegion win = { .name = "window" };
    const uint64_t chunk = 16384, size = 512ULL << 20, base = 1ULL << 32;
    MemoryInterleaveEntry e[4];
    MemoryInterleave *il;
    MemoryRegionSection s;
    PhysPageMap map;
    PhysPageEntry root;
    uint32_t before, i;
    uint64_t off;

    for (i = 0; i < 4; i++) {
        e[i] = (MemoryInterleaveEntry) { &t[i], size / 4, 0, chunk };
    }
    il = memory_interleave_new(size, chunk, 4, e, 4096, &error_abort);
    s = (MemoryRegionSection) {
        .mr = &win, .size = int128_make64(size),
        .offset_within_address_space = base, .interleave = il,
    };
    map_init(&map, &root, 12);
    before = map.sections_nb;
    i = phys_sections_add(&map, &s, &error_abort);
    phys_sections_map_pages(&map, &root, base >> 12, size >> 12, i);
    phys_sections_compact(&map, &root);
    assert_int_equal(map.sections_nb - before, 1 + 4);

    for (off = 0; off < size; off += 4096 * 7 + 8) {
        MemoryRegionSection *w = phys_sections_find(&map, root, base + off);
        hwaddr xlat, len = 1 << 20;
        MemoryRegionSection *t_s;
        uint64_t chunk_nr = off / chunk;

        assert_ptr_equal(w->mr, &win);
        t_s = phys_sections_translate_interleave(&map, w, base + off, &xlat,
                                                 &len);
        if (t_s->mr != &t[chunk_nr % 4] ||
            xlat != (chunk_nr / 4) * chunk + off % chunk ||
            len != chunk - off % chunk) {
            fail_msg("window offset 0x%" PRIx64 ": %s +0x%" PRIx64
                     " len 0x%" PRIx64, off, t_s->mr->name, xlat, len);
        }
    }
    assert_ptr_equal(phys_sections_find(&map, root, base - 1)->mr,
                     &unassigned);
    assert_ptr_equal(phys_sections_find(&map, root, base + size)->mr,
                     &unassigned);
    phys_sections_free(&map, destroy);
    for (i = 0; i < 4; i++) {
        assert_int_equal(t[i].refs, 0);
    }
    memory_interleave_unref(il);
}

/*
 * An overlay over part of an interleave leaves pieces that are not page
 * aligned: each piece is a section of its own (in a subpage map where it
 * shares a page), and translation through it stops at its end, not only
 * at the chunk end, so that the overlay keeps the bytes it covers.
 */
static void test_interleave_partial_section_stops_at_its_end(void **state)
{
    MemoryRegion t[2] = { { .name = "t0" }, { .name = "t1" } };
    MemoryRegion win = { .name = "window" };
    const uint64_t chunk = 16384, size = 1 << 20, base = 1ULL << 32;
    MemoryInterleaveEntry e[2];
    MemoryInterleave *il;
    PhysPageMap map;
    PhysPageEntry root;
    uint32_t i;

    for (i = 0; i < 2; i++) {
        e[i] = (MemoryInterleaveEntry) { &t[i], size / 2, 0, chunk };
    }
    il = memory_interleave_new(size, chunk, 2, e, 4096, &error_abort);
    map_init(&map, &root, 12);
    /* pieces of the window around an overlay at [0x800, 0x5800) */
    {
        static const struct { uint64_t off, len; } piece[] = {
            { 0, 0x800 }, { 0x5800, 0x800 }, { 0x6000, 0x2000 },
        };
        MemoryRegionSection *sec[3];

        for (i = 0; i < 3; i++) {
            MemoryRegionSection s = {
                .mr = &win, .size = int128_make64(piece[i].len),
                .offset_within_address_space = base + piece[i].off,
                .offset_within_region = piece[i].off, .interleave = il,
            };
            uint32_t w = phys_sections_add(&map, &s, &error_abort);

            assert_int_not_equal(w, PHYS_MAP_NODE_NIL);
            sec[i] = &map.sections[w];
        }
        for (i = 0; i < 3; i++) {
            uint64_t off;

            for (off = piece[i].off; off < piece[i].off + piece[i].len;
                 off += 0x100) {
                hwaddr xlat, len = 1 << 20;
                uint64_t c = off / chunk;
                MemoryRegionSection *ts =
                    phys_sections_translate_interleave(&map, sec[i],
                                                       base + off, &xlat,
                                                       &len);
                uint64_t want_len = MIN(chunk - off % chunk,
                                        piece[i].off + piece[i].len - off);

                if (ts->mr != &t[c % 2] ||
                    xlat != (c / 2) * chunk + off % chunk ||
                    len != want_len) {
                    fail_msg("piece %u offset 0x%" PRIx64 ": %s +0x%"
                             PRIx64 " len 0x%" PRIx64 ", expected %s +0x%"
                             PRIx64 " len 0x%" PRIx64, i, off, ts->mr->name,
                             xlat, len, t[c % 2].name,
                             (c / 2) * chunk + off % chunk, want_len);
                }
            }
        }
    }
    /* 3 pieces, each the window section and its 2 entry sections */
    assert_int_equal(map.sections_nb, 1 + 3 * 3);
    phys_sections_free(&map, destroy);
    memory_interleave_unref(il);
}

/*
 * An entry section has its target's read-only and non-volatile flags and
 * the window's: a read-only target stays read-only whatever the window.
 */
static void test_interleave_entry_takes_target_flags(void **state)
{
    MemoryRegion t[2] = { { .name = "ro", .readonly = true },
                          { .name = "pmem", .nonvolatile = true } };
    MemoryRegion win = { .name = "window" };
    MemoryInterleaveEntry e[2];
    MemoryInterleave *il;
    MemoryRegionSection s;
    PhysPageMap map;
    PhysPageEntry root;
    uint32_t w, i;

    for (i = 0; i < 2; i++) {
        e[i] = (MemoryInterleaveEntry) { &t[i], 1 << 20, 0, 4096 };
    }
    il = memory_interleave_new(2 << 20, 4096, 2, e, 4096, &error_abort);
    s = (MemoryRegionSection) {
        .mr = &win, .size = int128_make64(2 << 20), .interleave = il,
    };
    map_init(&map, &root, 12);
    w = phys_sections_add(&map, &s, &error_abort);
    assert_true(map.sections[w + 1].readonly);
    assert_false(map.sections[w + 1].nonvolatile);
    assert_false(map.sections[w + 2].readonly);
    assert_true(map.sections[w + 2].nonvolatile);
    phys_sections_free(&map, destroy);
    memory_interleave_unref(il);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sections_beyond_page_size_4k),
        cmocka_unit_test(test_sections_beyond_page_size_1k),
        cmocka_unit_test(test_subpages_beyond_65536_sections_4k),
        cmocka_unit_test(test_subpages_beyond_65536_sections_1k),
        cmocka_unit_test(test_sections_ceiling_is_an_error),
        cmocka_unit_test(test_sections_ceiling_reported_once),
        cmocka_unit_test(test_sections_real_ceiling_is_26_bits),
        cmocka_unit_test(test_sections_large_ranges),
        cmocka_unit_test(test_interleave_window_costs_entries_not_pages),
        cmocka_unit_test(test_interleave_partial_section_stops_at_its_end),
        cmocka_unit_test(test_interleave_entry_takes_target_flags),
    };

    return cmocka_run_group_tests_name("physmem-sections", tests, NULL, NULL);
}
