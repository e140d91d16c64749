/*
 * QTest: thousands of 16 KiB alias MemoryRegions interleaving 4 RAM
 * regions (-device x-alias-interleave-testdev) build, and every alias routes
 * to the right offset of the right RAM region.
 *
 * Before the wide section table, phys_section_add() asserted past
 * TARGET_PAGE_SIZE sections (4096 here): QEMU aborted at start-up.
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "qobject/qdict.h"

#define GRANULE     (16 * 1024)
#define TARGETS     4
#define WINDOW      0x40000000000ULL    /* 4 TiB, above every board map */
#define TARGETS_AT  0x80000000000ULL    /* 8 TiB */

typedef struct AliasCase {
    const char *machine;
    uint32_t count;
} AliasCase;

static uint64_t pattern(uint32_t i)
{
    return 0x5a00000000000000ULL | ((uint64_t)i << 16) | (i & 0xffff);
}

/* Where alias i's bytes live: target i % 4, granule i / 4 of it. */
static uint64_t target_addr(uint32_t count, uint32_t i)
{
    uint64_t per_target = (uint64_t)count / TARGETS * GRANULE;

    return TARGETS_AT + (i % TARGETS) * per_target +
           (uint64_t)(i / TARGETS) * GRANULE;
}

static void test_aliases_route_to_their_target(const void *data)
{
    const AliasCase *c = data;
    QTestState *qts;
    QDict *rsp;
    uint32_t i;

    qts = qtest_initf("-machine %s -accel qtest "
                      "-device x-alias-interleave-testdev,id=il,count=%u,"
                      "granule=%u,targets=%u,addr=0x%" PRIx64
                      ",targets-addr=0x%" PRIx64,
                      c->machine, c->count, GRANULE, TARGETS,
                      (uint64_t)WINDOW, (uint64_t)TARGETS_AT);

    /* distinct data through the container, at a different spot per alias */
    for (i = 0; i < c->count; i++) {
        uint64_t off = (i * 8ULL) % GRANULE;

        qtest_writeq(qts, WINDOW + (uint64_t)i * GRANULE + off, pattern(i));
    }
    /* ... read back from each RAM region directly */
    for (i = 0; i < c->count; i++) {
        uint64_t off = (i * 8ULL) % GRANULE;
        uint64_t got = qtest_readq(qts, target_addr(c->count, i) + off);

        if (got != pattern(i)) {
            g_test_message("alias %u: target %u offset 0x%" PRIx64
                           " holds 0x%" PRIx64 ", expected 0x%" PRIx64,
                           i, i % TARGETS,
                           target_addr(c->count, i) - TARGETS_AT, got,
                           pattern(i));
            g_assert_cmphex(got, ==, pattern(i));
        }
    }
    /* and the last byte of the window reaches the last target's end */
    qtest_writeb(qts, WINDOW + (uint64_t)c->count * GRANULE - 1, 0xa5);
    g_assert_cmphex(qtest_readb(qts, target_addr(c->count, c->count - 1) +
                                GRANULE - 1), ==, 0xa5);

    rsp = qtest_qmp(qts, "{'execute': 'qom-get', 'arguments':"
                    " {'path': '/machine/peripheral/il',"
                    "  'property': 'build-ns'}}");
    g_assert(qdict_haskey(rsp, "return"));
    g_test_message("%s: %u aliases built and committed in %.1f ms",
                   c->machine, c->count,
                   qdict_get_int(rsp, "return") / 1e6);
    qobject_unref(rsp);
    qtest_quit(qts);
}

int main(int argc, char **argv)
{
    const char *arch = qtest_get_arch();
    const char *machine;
    static AliasCase cases[2];
    static const uint32_t counts[] = { 32768, 131072 };
    int i;

    g_test_init(&argc, &argv, NULL);

    if (g_str_equal(arch, "x86_64") || g_str_equal(arch, "i386")) {
        machine = "q35";
    } else if (g_str_equal(arch, "aarch64")) {
        machine = "virt";
    } else {
        return g_test_run();
    }
    for (i = 0; i < ARRAY_SIZE(counts); i++) {
        g_autofree char *path = g_strdup_printf("/alias-interleave/%s/%u",
                                                machine, counts[i]);

        cases[i] = (AliasCase) { .machine = machine, .count = counts[i] };
        qtest_add_data_func(path, &cases[i],
                            test_aliases_route_to_their_target);
    }
    return g_test_run();
}
