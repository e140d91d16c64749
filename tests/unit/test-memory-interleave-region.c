/*
 * Alias coalescing of system/memory-interleave-region.c (cmocka,
 * standalone): which containers of RAM aliases are served as one
 * interleave, through memory_region_get_interleave().
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "system/memory.h"
#include "system/memory-interleave.h"

#include <setjmp.h>
#include <cmocka.h>

#define PAGE 4096ULL
#define CHUNK (4 * PAGE)        /* each alias */

/* What memory-interleave-region.c takes from the rest of QEMU. */
size_t qemu_target_page_size(void)
{
    return PAGE;
}

int memory_region_get_fd(MemoryRegion *mr)
{
    return -1;
}

void memory_region_set_dirty(MemoryRegion *mr, hwaddr addr, hwaddr size)
{
}

/* A container of @n aliases, each of CHUNK bytes, over RAM targets. */
typedef struct Layout {
    MemoryRegion container;
    MemoryRegion *targets;
    MemoryRegion *aliases;
    unsigned n;
} Layout;

static void layout_init(Layout *l, unsigned n, unsigned nb_targets,
                        uint64_t target_size)
{
    unsigned i;

    *l = (Layout) {
        .container = {
            .name = "container", .enabled = true,
            .size = int128_make64(n * CHUNK), .interleave_aliases = true,
        },
        .targets = g_new0(MemoryRegion, nb_targets),
        .aliases = g_new0(MemoryRegion, n),
        .n = n,
    };
    QTAILQ_INIT(&l->container.subregions);
    for (i = 0; i < nb_targets; i++) {
        l->targets[i] = (MemoryRegion) {
            .name = "ram", .ram = true, .enabled = true,
            .size = int128_make64(target_size),
        };
    }
}

/* Alias @i: window chunk @i, at @offset of target @t. */
static void layout_map(Layout *l, unsigned i, unsigned t, uint64_t offset)
{
    l->aliases[i] = (MemoryRegion) {
        .name = "alias", .enabled = true, .size = int128_make64(CHUNK),
        .addr = i * CHUNK, .alias = &l->targets[t], .alias_offset = offset,
    };
    QTAILQ_INSERT_HEAD(&l->container.subregions, &l->aliases[i],
                       subregions_link);
}

static void layout_free(Layout *l)
{
    memory_region_interleave_finalize(&l->container);
    g_free(l->targets);
    g_free(l->aliases);
}

/* The chunks of the aliases, as find_alias_pattern() gives them. */
static MemoryInterleave *find_whole(Layout *l)
{
    g_autofree MemoryInterleaveChunk *seq =
        g_new(MemoryInterleaveChunk, l->n);
    unsigned i;

    for (i = 0; i < l->n; i++) {
        seq[i] = (MemoryInterleaveChunk) {
            .target = l->aliases[i].alias,
            .target_size = int128_get64(l->aliases[i].alias->size),
            .offset = l->aliases[i].alias_offset,
        };
    }
    return memory_interleave_find(l->n * CHUNK, CHUNK, seq, l->n, PAGE,
                                  NULL);
}

/* @il serves every alias of @l where the alias points. */
static void check_serves(Layout *l, const MemoryInterleave *il)
{
    unsigned i;

    assert_int_equal(il->size, l->n * CHUNK);
    assert_int_equal(il->chunk, CHUNK);
    for (i = 0; i < l->n; i++) {
        uint64_t toff, len = CHUNK;
        unsigned e = memory_interleave_translate(il, i * CHUNK, &toff, &len);

        if (il->entries[e].target != l->aliases[i].alias ||
            toff != l->aliases[i].alias_offset || len != CHUNK) {
            fail_msg("%u aliases: alias %u served at 0x%" PRIx64
                     " of the wrong place", l->n, i, toff);
        }
    }
}

/* Aliases cycling over 4 targets coalesce into a 4-entry interleave. */
static void test_region_coalesces_pattern(void **state)
{
    static const unsigned sizes[] = { 64, 66, 100, 1000 };
    unsigned k, i;

    for (k = 0; k < ARRAY_SIZE(sizes); k++) {
        Layout l;
        MemoryInterleave *il;

        layout_init(&l, sizes[k], 4, sizes[k] * CHUNK);
        for (i = 0; i < sizes[k]; i++) {
            layout_map(&l, i, i % 4, (i / 4) * CHUNK);
        }
        il = memory_region_get_interleave(&l.container);
        assert_non_null(il);
        assert_int_equal(il->nb_entries, 4);
        check_serves(&l, il);
        /* cached: the same descriptor again */
        assert_ptr_equal(memory_region_get_interleave(&l.container), il);
        layout_free(&l);
    }
}

/*
 * n aliases to n places that do not repeat are no pattern: not one
 * interleave of n entries, although such a descriptor is valid (the whole
 * window as one period) and memory_interleave_find() gives it.
 */
static void test_region_no_repeat_no_coalescing(void **state)
{
    static const unsigned sizes[] = {
        MEMORY_INTERLEAVE_MIN_ALIASES, 65, 127, 200, 255,
        MEMORY_INTERLEAVE_MAX_ENTRIES,
    };
    unsigned k, i, n;

    for (k = 0; k < ARRAY_SIZE(sizes); k++) {
        Layout l;
        g_autofree MemoryInterleave *whole = NULL;

        /* each alias to a target of its own */
        n = sizes[k];
        layout_init(&l, n, n, CHUNK);
        for (i = 0; i < n; i++) {
            layout_map(&l, i, i, 0);
        }
        whole = find_whole(&l);
        assert_non_null(whole);
        assert_int_equal(whole->nb_entries, n);
        assert_true(memory_interleave_targets_ok(
                        whole, MEMORY_INTERLEAVE_ROUTE_SECTIONS, NULL));
        if (memory_region_get_interleave(&l.container)) {
            fail_msg("%u aliases to %u targets coalesced", n, n);
        }
        layout_free(&l);
    }

    for (k = 0; k < ARRAY_SIZE(sizes); k++) {
        Layout l;
        g_autofree MemoryInterleave *whole = NULL;

        /*
         * One target, alias i at chunk i * i: no two aliases a stride
         * apart.  (An even number of them would be two "periods" of n / 2
         * entries, each entry with a stride of its own: refused as such.)
         */
        n = sizes[k] | 1;
        layout_init(&l, n, 1, (uint64_t)n * n * CHUNK);
        for (i = 0; i < n; i++) {
            layout_map(&l, i, 0, (uint64_t)i * i * CHUNK);
        }
        whole = find_whole(&l);
        if (n <= MEMORY_INTERLEAVE_MAX_ENTRIES) {
            assert_non_null(whole);
            assert_int_equal(whole->nb_entries, n);
        }
        if (memory_region_get_interleave(&l.container)) {
            fail_msg("%u aliases to %u places of one target coalesced", n,
                     n);
        }
        layout_free(&l);
    }
}

/*
 * A pattern shown exactly twice (n / 2 entries, rounded down) is a repeat,
 * and coalesces.
 */
static void test_region_two_periods_coalesce(void **state)
{
    static const unsigned sizes[] = { 64, 65, 200, 201 };
    unsigned k, i;

    for (k = 0; k < ARRAY_SIZE(sizes); k++) {
        unsigned n = sizes[k], ways = n / 2;
        Layout l;
        MemoryInterleave *il;

        layout_init(&l, n, ways, 3 * CHUNK);
        for (i = 0; i < n; i++) {
            layout_map(&l, i, i % ways, (i / ways) * CHUNK);
        }
        il = memory_region_get_interleave(&l.container);
        assert_non_null(il);
        assert_int_equal(il->nb_entries, ways);
        check_serves(&l, il);
        layout_free(&l);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_region_coalesces_pattern),
        cmocka_unit_test(test_region_no_repeat_no_coalescing),
        cmocka_unit_test(test_region_two_periods_coalesce),
    };

    return cmocka_run_group_tests_name("memory-interleave-region", tests,
                                       NULL, NULL);
}
