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
#include "qemu/cutils.h"
#include "qobject/qdict.h"

#define GRANULE     (16 * 1024)
#define TARGETS     4
#define WINDOW      0x40000000000ULL    /* 4 TiB, above every board map */
#define TARGETS_AT  0x80000000000ULL    /* 8 TiB */

typedef struct AliasCase {
    const char *machine;
    uint32_t count;
    bool edges;
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
                           (uint64_t)(target_addr(c->count, i) - TARGETS_AT),
                           got, pattern(i));
            g_assert_cmphex(got, ==, pattern(i));
        }
    }
    /* chunk edges: first and last 8 bytes of every granule */
    if (c->edges) {
        for (i = 0; i < c->count; i++) {
            uint64_t w = WINDOW + (uint64_t)i * GRANULE;

            qtest_writeq(qts, w, ~pattern(i));
            qtest_writeq(qts, w + GRANULE - 8, pattern(i) ^ 0xff);
        }
        for (i = 0; i < c->count; i++) {
            uint64_t t = target_addr(c->count, i);

            g_assert_cmphex(qtest_readq(qts, t), ==, ~pattern(i));
            g_assert_cmphex(qtest_readq(qts, t + GRANULE - 8), ==,
                            pattern(i) ^ 0xff);
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

/*
 * The aliases repeat one pattern over RAM: the window must be a single
 * FlatRange served through a 4-entry interleave, not 32768 ranges, and
 * cost a handful of sections.  Fails if rendering silently falls back to
 * one range (and one section) per alias.
 */
static void test_aliases_coalesce_into_one_interleave(const void *data)
{
    const char *machine = data;
    const uint32_t count = 32768;
    QTestState *qts;
    g_autofree char *flat = NULL, *disp = NULL;
    g_autofree char *range = NULL;
    g_auto(GStrv) lines = NULL;
    unsigned in_window = 0, target_sections = 0, window_sections = 0;
    unsigned mapped_targets = 0, i;
    const char *p;

    qts = qtest_initf("-machine %s -accel qtest "
                      "-device x-alias-interleave-testdev,id=il,count=%u,"
                      "granule=%u,targets=%u,addr=0x%" PRIx64
                      ",targets-addr=0x%" PRIx64,
                      machine, count, GRANULE, TARGETS,
                      (uint64_t)WINDOW, (uint64_t)TARGETS_AT);
    flat = qtest_hmp(qts, "info mtree -f");
    range = g_strdup_printf("%016" PRIx64 "-%016" PRIx64 " ",
                            (uint64_t)WINDOW,
                            (uint64_t)WINDOW + (uint64_t)count * GRANULE - 1);
    p = strstr(flat, range);
    g_assert_nonnull(p);
    g_assert(g_str_has_prefix(strchr(p, ':'),
                              ": alias-il-container [interleave 4 x 0x4000:"));

    /*
     * No per-alias range anywhere inside the window: exactly one range,
     * in the one view (under qtest) that renders system memory.
     */
    lines = g_strsplit(flat, "\n", -1);
    for (i = 0; lines[i]; i++) {
        uint64_t start;

        if (sscanf(lines[i], " %" SCNx64 "-", &start) == 1 &&
            start >= WINDOW && start < WINDOW + (uint64_t)count * GRANULE) {
            in_window++;
        }
    }
    g_test_message("%s: %u ranges in the window", machine, in_window);
    g_assert_cmpuint(in_window, ==, 1);

    /*
     * The dispatch: one window section, then one entry section per target
     * (entry e names target e), and the targets' own mappings; nothing
     * else names a target.
     */
    disp = qtest_hmp(qts, "info mtree -f -d");
    g_strfreev(lines);
    lines = g_strsplit(disp, "\n", -1);
    for (i = 0; lines[i]; i++) {
        unsigned e, w, j;
        char name[32];

        if (strstr(lines[i], " alias-il-container [interleave]")) {
            window_sections++;
        } else if (sscanf(lines[i], " #%u entry %u of #%u: %31s", &j, &e,
                          &w, name) == 4) {
            g_autofree char *want = g_strdup_printf("alias-il-target%u", e);

            g_assert_cmpstr(name, ==, want);
            target_sections++;
        } else if (strstr(lines[i], " @") &&
                   strstr(lines[i], " alias-il-target")) {
            mapped_targets++;
        }
    }
    g_test_message("%s: %u window, %u entry and %u target sections", machine,
                   window_sections, target_sections, mapped_targets);
    g_assert_cmpuint(window_sections, ==, 1);
    g_assert_cmpuint(target_sections, ==, TARGETS);
    g_assert_cmpuint(mapped_targets, ==, TARGETS);
    qtest_quit(qts);
}

/*
 * A container that does not opt in (interleave=off) is rendered alias by
 * alias, as before interleave sections existed: one range per alias in
 * the window, none of them an interleave, so that every memory listener
 * sees RAM where it saw RAM before.
 */
static void test_aliases_not_opted_in(const void *data)
{
    const char *machine = data;
    const uint32_t count = 256;
    QTestState *qts;
    g_autofree char *flat = NULL;
    g_auto(GStrv) lines = NULL;
    unsigned in_window = 0, i;

    qts = qtest_initf("-machine %s -accel qtest "
                      "-device x-alias-interleave-testdev,id=il,count=%u,"
                      "granule=%u,targets=%u,addr=0x%" PRIx64
                      ",targets-addr=0x%" PRIx64 ",interleave=off",
                      machine, count, GRANULE, TARGETS,
                      (uint64_t)WINDOW, (uint64_t)TARGETS_AT);
    flat = qtest_hmp(qts, "info mtree -f");
    g_assert_null(strstr(flat, "[interleave"));
    lines = g_strsplit(flat, "\n", -1);
    for (i = 0; lines[i]; i++) {
        uint64_t start;

        if (sscanf(lines[i], " %" SCNx64 "-", &start) == 1 &&
            start >= WINDOW && start < WINDOW + (uint64_t)count * GRANULE) {
            g_assert_nonnull(strstr(lines[i], ": alias-il-target"));
            in_window++;
        }
    }
    g_test_message("%s: %u ranges in the window", machine, in_window);
    g_assert_cmpuint(in_window, ==, count);
    qtest_quit(qts);
}

/*
 * A second container of aliases over part of the first, 0x800 bytes in
 * (itself not page aligned, so rendered alias by alias): the first is
 * left with a piece that is not page aligned before the overlay and one
 * that starts inside a page after it.  Both render as pieces of its
 * interleave (an assertion aborted QEMU before), and every byte goes to
 * the container on top at its address, including an access straddling
 * the edge between the two.
 */
#define OVL_COUNT1      256                 /* 4 MiB at WINDOW */
#define OVL_COUNT2      128                 /* 2 MiB at WINDOW + 0x800 */
#define OVL_SHIFT       0x800
#define OVL_TARGETS2    0xa0000000000ULL    /* 10 TiB */

/* The target address of window offset @o: container 2 over its range. */
static uint64_t overlay_target(uint64_t o)
{
    uint64_t base = TARGETS_AT, per = OVL_COUNT1 / TARGETS * GRANULE;
    uint64_t rel = o, i;

    if (o >= OVL_SHIFT && o < OVL_SHIFT + (uint64_t)OVL_COUNT2 * GRANULE) {
        base = OVL_TARGETS2;
        per = OVL_COUNT2 / TARGETS * GRANULE;
        rel = o - OVL_SHIFT;
    }
    i = rel / GRANULE;
    return base + (i % TARGETS) * per + (i / TARGETS) * GRANULE +
           rel % GRANULE;
}

static void test_overlay_leaves_partial_interleave(const void *data)
{
    const char *machine = data;
    const uint64_t size1 = (uint64_t)OVL_COUNT1 * GRANULE;
    const uint64_t end2 = OVL_SHIFT + (uint64_t)OVL_COUNT2 * GRANULE;
    g_autofree char *flat = NULL, *head = NULL, *tail = NULL;
    g_autofree char *tail_desc = NULL;
    QTestState *qts;
    uint64_t o;

    qts = qtest_initf("-machine %s -accel qtest "
                      "-device x-alias-interleave-testdev,id=il1,count=%u,"
                      "granule=%u,targets=%u,addr=0x%" PRIx64
                      ",targets-addr=0x%" PRIx64 " "
                      "-device x-alias-interleave-testdev,id=il2,count=%u,"
                      "granule=%u,targets=%u,addr=0x%" PRIx64
                      ",targets-addr=0x%" PRIx64 ",names=none",
                      machine, OVL_COUNT1, GRANULE, TARGETS,
                      (uint64_t)WINDOW, (uint64_t)TARGETS_AT,
                      OVL_COUNT2, GRANULE, TARGETS,
                      (uint64_t)WINDOW + OVL_SHIFT, (uint64_t)OVL_TARGETS2);

    /* the first container's two pieces, each one interleave range */
    flat = qtest_hmp(qts, "info mtree -f");
    head = g_strdup_printf("%016" PRIx64 "-%016" PRIx64 " ", (uint64_t)WINDOW,
                           (uint64_t)WINDOW + OVL_SHIFT - 1);
    tail = g_strdup_printf("%016" PRIx64 "-%016" PRIx64 " ",
                           (uint64_t)WINDOW + end2,
                           (uint64_t)WINDOW + size1 - 1);
    g_assert_nonnull(strstr(flat, head));
    g_assert_nonnull(strstr(flat, tail));
    g_assert(g_str_has_prefix(strchr(strstr(flat, head), ':'),
                              ": alias-il-container [interleave 4 x 0x4000:"));
    tail_desc = g_strdup_printf(": alias-il-container @%016" PRIx64
                                " [interleave 4 x 0x4000:", end2);
    g_assert(g_str_has_prefix(strchr(strstr(flat, tail), ':'), tail_desc));

    /* around both edges, then across the whole first container */
    for (o = 0; o < size1; o += o < 0x3000 ||
         (o > end2 - 0x3000 && o < end2 + 0x3000) ? 8 : 0x1f08) {
        qtest_writeq(qts, WINDOW + o, 0x5a00000000000000ULL | o);
    }
    for (o = 0; o < size1; o += o < 0x3000 ||
         (o > end2 - 0x3000 && o < end2 + 0x3000) ? 8 : 0x1f08) {
        uint64_t got = qtest_readq(qts, overlay_target(o));

        if (got != (0x5a00000000000000ULL | o)) {
            g_test_message("window +0x%" PRIx64 ": target 0x%" PRIx64
                           " holds 0x%" PRIx64, o, overlay_target(o), got);
            g_assert_cmphex(got, ==, 0x5a00000000000000ULL | o);
        }
    }
    /* 8 bytes straddling each edge: 4 in one container, 4 in the other */
    qtest_writeq(qts, WINDOW + OVL_SHIFT - 4, 0x1122334455667788ULL);
    g_assert_cmphex(qtest_readl(qts, overlay_target(OVL_SHIFT - 4)), ==,
                    0x55667788);
    g_assert_cmphex(qtest_readl(qts, overlay_target(OVL_SHIFT)), ==,
                    0x11223344);
    qtest_writeq(qts, WINDOW + end2 - 4, 0x99aabbccddeeff00ULL);
    g_assert_cmphex(qtest_readl(qts, overlay_target(end2 - 4)), ==,
                    0xddeeff00);
    g_assert_cmphex(qtest_readl(qts, overlay_target(end2)), ==, 0x99aabbcc);
    qtest_quit(qts);
}

/*
 * TCG: an aarch64 guest loads through aliases whose sections are numbered
 * past the page size (4096): the I/O TLB entries must keep the section
 * they were filled from, not a number in the page-offset bits of the old
 * encoding.  The same loads through RAM aliases go through one interleave
 * section and the RAM fast path.
 *
 * The payload (A64, MMU off, run from flash at 0 with -bios):
 *     ldr  x0, base ; ldr x2, result ; ldr x3, stride ; ldr x4, count
 * 1:  ldr  x1, [x0] ; str x1, [x2], #8 ; add x0, x0, x3
 *     subs x4, x4, #1 ; b.ne 1b ; b .
 */
#define TCG_ALIASES     8192
#define TCG_FIRST       5000        /* section numbers well past 4096 */
#define TCG_STEP        401
#define TCG_PROBES      8
#define TCG_RESULT      0x44000000ULL   /* virt RAM, clear of the DTB */
#define TCG_OFFSET      0x28            /* inside each probed granule */

static const uint32_t tcg_payload[] = {
    0x58000140, 0x58000162, 0x58000183, 0x580001a4,
    0xf9400001, 0xf8008441, 0x8b030000, 0xf1000484,
    0x54ffff81, 0x14000000,
};

static uint64_t mmio_value(uint32_t alias)
{
    /* alias k shows granule k / 4 of I/O target k % 4 */
    return (uint64_t)(0xa0 + alias % TARGETS) << 56 |
           ((uint64_t)(alias / TARGETS) * GRANULE + TCG_OFFSET);
}

/* The dispatch section number serving @addr, from info mtree -d. */
static long section_number(QTestState *qts, uint64_t addr)
{
    g_autofree char *out = qtest_hmp(qts, "info mtree -f -d");
    g_autofree char *at = g_strdup_printf(" @%016" PRIx64 "..", addr);
    const char *p = strstr(out, at), *end;
    long n = -1;

    while (p && p > out && p[-1] != '#') {
        p--;
    }
    if (!p || p == out || qemu_strtol(p, &end, 10, &n)) {
        return -1;
    }
    return n;
}

static void tcg_loads_through_window(bool mmio)
{
    g_autofree char *bios = NULL;
    uint8_t image[0x48] = { 0 };
    uint64_t lit[4] = {
        WINDOW + (uint64_t)TCG_FIRST * GRANULE + TCG_OFFSET,
        TCG_RESULT, (uint64_t)TCG_STEP * GRANULE, TCG_PROBES,
    };
    QTestState *qts;
    long sect;
    int fd, i;
    gint64 deadline;

    memcpy(image, tcg_payload, sizeof(tcg_payload));
    memcpy(image + 0x28, lit, sizeof(lit));     /* little-endian host */
    fd = g_file_open_tmp("alias-il-XXXXXX.bin", &bios, NULL);
    g_assert(fd >= 0);
    g_assert_cmpint(write(fd, image, sizeof(image)), ==, sizeof(image));
    close(fd);

    qts = qtest_initf("-machine virt -cpu max -accel tcg -m 128M -S "
                      "-bios %s -device x-alias-interleave-testdev,id=il,"
                      "count=%u,granule=%u,targets=%u,addr=0x%" PRIx64
                      ",targets-addr=0x%" PRIx64 ",mmio=%s",
                      bios, TCG_ALIASES, GRANULE, TARGETS,
                      (uint64_t)WINDOW, (uint64_t)TARGETS_AT,
                      mmio ? "on" : "off");

    /* the firmware's DTB sits at the start of RAM: use a clear spot */
    qtest_memset(qts, TCG_RESULT, 0, TCG_PROBES * 8);

    sect = section_number(qts, WINDOW + (mmio ? (uint64_t)TCG_FIRST * GRANULE
                                              : 0));
    g_test_message("alias %u is section #%ld", TCG_FIRST, sect);
    if (mmio) {
        /* I/O aliases: one section each, numbered past the page size */
        g_assert_cmpint(sect, >, 4096);
    } else {
        /* RAM aliases: one interleave section; put the values in RAM */
        g_assert_cmpint(sect, >, 0);
        g_assert_cmpint(sect, <, 4096);
        for (i = 0; i < TCG_PROBES; i++) {
            uint32_t alias = TCG_FIRST + i * TCG_STEP;

            qtest_writeq(qts, target_addr(TCG_ALIASES, alias) + TCG_OFFSET,
                         mmio_value(alias));
        }
    }

    qtest_qmp_assert_success(qts, "{'execute': 'cont'}");
    deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
    while (!qtest_readq(qts, TCG_RESULT + (TCG_PROBES - 1) * 8)) {
        g_assert(g_get_monotonic_time() < deadline);
        g_usleep(10 * 1000);
    }
    for (i = 0; i < TCG_PROBES; i++) {
        uint32_t alias = TCG_FIRST + i * TCG_STEP;

        g_assert_cmphex(qtest_readq(qts, TCG_RESULT + i * 8), ==,
                        mmio_value(alias));
    }
    qtest_quit(qts);
    unlink(bios);
}

static void test_tcg_io_tlb_past_page_size_sections(void)
{
    tcg_loads_through_window(true);
}

/* The same loads through RAM aliases coalesced into an interleave. */
static void test_tcg_loads_through_interleave(void)
{
    tcg_loads_through_window(false);
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

        cases[i] = (AliasCase) {
            .machine = machine, .count = counts[i], .edges = i == 0,
        };
        qtest_add_data_func(path, &cases[i],
                            test_aliases_route_to_their_target);
    }
    {
        g_autofree char *path = g_strdup_printf(
            "/alias-interleave/%s/coalesced", machine);

        qtest_add_data_func(path, machine,
                            test_aliases_coalesce_into_one_interleave);
    }
    {
        g_autofree char *path = g_strdup_printf(
            "/alias-interleave/%s/not-opted-in", machine);

        qtest_add_data_func(path, machine, test_aliases_not_opted_in);
    }
    {
        g_autofree char *path = g_strdup_printf(
            "/alias-interleave/%s/overlay-leaves-partial-interleave",
            machine);

        qtest_add_data_func(path, machine,
                            test_overlay_leaves_partial_interleave);
    }
    if (g_str_equal(arch, "aarch64") && qtest_has_accel("tcg")) {
        qtest_add_func("/alias-interleave/virt/tcg-io-tlb-past-page-size",
                       test_tcg_io_tlb_past_page_size_sections);
        qtest_add_func("/alias-interleave/virt/tcg-loads-through-interleave",
                       test_tcg_loads_through_interleave);
    }
    return g_test_run();
}
