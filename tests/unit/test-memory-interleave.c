/*
 * Interleave descriptor arithmetic and validation (cmocka, standalone)
 *
 * The reference for every translation is the CXL HDM decode arithmetic
 * (CXL r3.1 8.2.4.20.13: bit extraction for power-of-two ways, division
 * by three for 3/6/12 ways), written here independently of the
 * descriptor's division-based arithmetic.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "exec/memory-interleave.h"

#include <setjmp.h>
#include <cmocka.h>

#define PAGE 4096ULL

/* Fake, never dereferenced targets. */
static char fake_targets[MEMORY_INTERLEAVE_MAX_ENTRIES];
#define TARGET(i) ((struct MemoryRegion *)&fake_targets[i])

/* CXL encodings: ways 1..16 (eiw 0..4) and 3/6/12 (eiw 8..10). */
static unsigned eiw_ways(unsigned eiw)
{
    return eiw < 8 ? 1u << eiw : 3u << (eiw - 8);
}

/* Reference: which position a host offset targets (spec bit selection). */
static unsigned ref_position(uint64_t hpa, unsigned eig, unsigned eiw)
{
    if (eiw < 8) {
        return (hpa >> (8 + eig)) & ((1u << eiw) - 1);
    }
    return (hpa >> (8 + eig)) % eiw_ways(eiw);
}

/* Reference: the device offset (spec formula, as decoders compute it). */
static uint64_t ref_dpa(uint64_t hpa, unsigned eig, unsigned eiw)
{
    uint64_t low = hpa & ((1ULL << (8 + eig)) - 1);

    if (eiw < 8) {
        return low | ((hpa >> (8 + eig + eiw)) << (8 + eig));
    }
    return low | (((hpa >> (eig + eiw)) / 3) << (eig + 8));
}

static MemoryInterleave *cxl_like(uint64_t size, unsigned eig, unsigned eiw,
                                  uint64_t dev_size)
{
    unsigned ways = eiw_ways(eiw), i;
    uint64_t gran = 256ULL << eig;
    MemoryInterleaveEntry e[16];
    MemoryInterleave *il;
    Error *err = NULL;

    for (i = 0; i < ways; i++) {
        e[i] = (MemoryInterleaveEntry) {
            .target = TARGET(i), .target_size = dev_size,
            .base = 0, .stride = gran,
        };
    }
    il = memory_interleave_new(size, gran, ways, e, PAGE, &err);
    if (!il) {
        fail_msg("cxl-like %u-way %" PRIu64 "B: %s", ways, gran,
                 error_get_pretty(err));
    }
    return il;
}

static void check_offset(const MemoryInterleave *il, uint64_t off,
                         unsigned eig, unsigned eiw)
{
    uint64_t gran = 256ULL << eig, t, len = ~0ULL;
    unsigned e = memory_interleave_translate(il, off, &t, &len);

    if (e != ref_position(off, eig, eiw) || t != ref_dpa(off, eig, eiw)) {
        fail_msg("%u-way gran %" PRIu64 " offset 0x%" PRIx64
                 ": got entry %u dpa 0x%" PRIx64 ", spec says %u 0x%" PRIx64,
                 eiw_ways(eiw), gran, off, e, t,
                 ref_position(off, eig, eiw), ref_dpa(off, eig, eiw));
    }
    if (len != gran - off % gran) {
        fail_msg("offset 0x%" PRIx64 ": length %" PRIu64
                 " not clamped at the chunk end", off, len);
    }
}

/* Every chunk's first and last byte, all ways, page-sized granules. */
static void test_interleave_chunk_edges(void **state)
{
    static const unsigned eiws[] = { 0, 1, 2, 3, 4, 8, 9, 10 };
    unsigned eig, k;

    for (eig = 4; eig <= 8; eig++) {           /* 4 KiB .. 64 KiB */
        for (k = 0; k < G_N_ELEMENTS(eiws); k++) {
            unsigned ways = eiw_ways(eiws[k]);
            uint64_t gran = 256ULL << eig;
            uint64_t size = gran * ways * 37;
            g_autofree MemoryInterleave *il =
                cxl_like(size, eig, eiws[k], size / ways);
            uint64_t off;

            for (off = 0; off < size; off += gran) {
                check_offset(il, off, eig, eiws[k]);
                check_offset(il, off + gran - 1, eig, eiws[k]);
                check_offset(il, off + gran / 2 + 8, eig, eiws[k]);
            }
        }
    }
}

/* Every byte of every target is reached exactly once (a bijection). */
static void test_interleave_every_entry_bijective(void **state)
{
    static const unsigned eiws[] = { 1, 2, 8, 9, 10 };
    unsigned k;

    for (k = 0; k < G_N_ELEMENTS(eiws); k++) {
        unsigned ways = eiw_ways(eiws[k]), i;
        uint64_t gran = PAGE, size = gran * ways * 64, per = size / ways;
        g_autofree MemoryInterleave *il = cxl_like(size, 4, eiws[k], per);
        g_autofree uint8_t *hits = g_malloc0(ways * (per / gran));
        uint64_t off;

        for (off = 0; off < size; off += gran) {
            uint64_t t, len = gran;
            unsigned e = memory_interleave_translate(il, off, &t, &len);

            assert_true(e < ways);
            assert_int_equal(t % gran, 0);
            assert_true(t < per);
            hits[e * (per / gran) + t / gran]++;
        }
        for (i = 0; i < ways * (per / gran); i++) {
            if (hits[i] != 1) {
                fail_msg("%u-way: target %u chunk %u reached %u times",
                         ways, (unsigned)(i / (per / gran)),
                         (unsigned)(i % (per / gran)), hits[i]);
            }
        }
        for (i = 0; i < ways; i++) {
            assert_int_equal(memory_interleave_entry_extent(il, i), per);
        }
    }
}

/* Entries with their own base and stride (devices with a DPA skip). */
static void test_interleave_base_and_stride(void **state)
{
    MemoryInterleaveEntry e[3] = {
        { TARGET(0), 1 << 20, 0x10000, 2 * PAGE },
        { TARGET(1), 1 << 20, 0, PAGE },
        { TARGET(0), 1 << 20, 0x10000 + PAGE, 2 * PAGE },
    };
    Error *err = NULL;
    g_autofree MemoryInterleave *il =
        memory_interleave_new(30 * PAGE, PAGE, 3, e, PAGE, &err);
    uint64_t t, len = 1;

    assert_non_null(il);
    assert_int_equal(memory_interleave_translate(il, 0, &t, &len), 0);
    assert_int_equal(t, 0x10000);
    assert_int_equal(memory_interleave_translate(il, 2 * PAGE + 5, &t, &len),
                     2);
    assert_int_equal(t, 0x10000 + PAGE + 5);
    /* period 3: offset 4 pages is entry 1's second chunk */
    assert_int_equal(memory_interleave_translate(il, 4 * PAGE, &t, &len), 1);
    assert_int_equal(t, PAGE);
    assert_int_equal(memory_interleave_translate(il, 29 * PAGE, &t, &len), 2);
    assert_int_equal(t, 0x10000 + PAGE + 9 * 2 * PAGE);
}

static void expect_error(uint64_t size, uint64_t chunk, unsigned n,
                         const MemoryInterleaveEntry *e, uint64_t page,
                         const char *needle)
{
    Error *err = NULL;
    MemoryInterleave *il = memory_interleave_new(size, chunk, n, e, page,
                                                 &err);

    if (il) {
        memory_interleave_free(il);
        fail_msg("accepted a descriptor that should fail with '%s'", needle);
    }
    assert_non_null(err);
    if (!strstr(error_get_pretty(err), needle)) {
        fail_msg("error '%s' does not say '%s'", error_get_pretty(err),
                 needle);
    }
    error_free(err);
}

static void test_interleave_bad_descriptors(void **state)
{
    MemoryInterleaveEntry two[2] = {
        { TARGET(0), 1 << 20, 0, PAGE },
        { TARGET(1), 1 << 20, 0, PAGE },
    };
    MemoryInterleaveEntry same[2] = {
        { TARGET(0), 1 << 20, 0, 2 * PAGE },
        { TARGET(0), 1 << 20, PAGE, 2 * PAGE },
    };

    expect_error(8 * PAGE, 2048, 2, two, PAGE, "not a multiple of the page");
    expect_error(8 * PAGE, PAGE, 2, two, 3000, "not a power of two");
    expect_error(0, PAGE, 2, two, PAGE, "non-zero multiple of the chunk");
    expect_error(8 * PAGE + 512, PAGE, 2, two, PAGE, "multiple of the chunk");
    expect_error(8 * PAGE, PAGE, 0, two, PAGE, "0 entries");
    expect_error(8 * PAGE, PAGE, MEMORY_INTERLEAVE_MAX_ENTRIES + 1, two, PAGE,
                 "entries");
    /* 2 entries of 1 page stride cover 4 chunks each: fine in 1 MiB ... */
    two[1].target_size = 3 * PAGE;     /* ... but not in 3 pages */
    expect_error(8 * PAGE, PAGE, 2, two, PAGE, "entry 1 reaches beyond");
    two[1].target_size = 1 << 20;
    two[0].base = 512;
    expect_error(8 * PAGE, PAGE, 2, two, PAGE, "not page aligned");
    two[0].base = 0;
    two[0].stride = 0;
    expect_error(8 * PAGE, PAGE, 2, two, PAGE, "own chunks overlap");
    two[0].stride = PAGE;
    two[0].target = NULL;
    expect_error(8 * PAGE, PAGE, 2, two, PAGE, "entry 0 has no target");
    two[0].target = TARGET(0);
    two[1].target = TARGET(0);          /* both map target 0 from 0 */
    expect_error(8 * PAGE, PAGE, 2, two, PAGE, "overlapping bytes");
    two[1].base = 4 * PAGE;             /* 0..3 vs 4..7: disjoint */
    g_free(memory_interleave_new(8 * PAGE, PAGE, 2, two, PAGE, &error_abort));
    two[1].base = 3 * PAGE;             /* 0..3 vs 3..6: page 3 twice */
    expect_error(8 * PAGE, PAGE, 2, two, PAGE, "overlapping bytes");
    same[1].stride = 3 * PAGE;
    expect_error(8 * PAGE, PAGE, 2, same, PAGE, "different strides");
    same[1].stride = 2 * PAGE;          /* odd/even pages: disjoint */
    g_free(memory_interleave_new(8 * PAGE, PAGE, 2, same, PAGE, &error_abort));
}

/*
 * The overlap check is arithmetic; compare it with a brute-force bitmap
 * of target pages on many random two-entry layouts over one target.
 */
static void test_interleave_overlap_matches_bruteforce(void **state)
{
    GRand *rnd = g_rand_new_with_seed(20261125);
    unsigned iter, rejected = 0, accepted = 0;

    for (iter = 0; iter < 20000; iter++) {
        unsigned chunk_pages = g_rand_int_range(rnd, 1, 4);
        unsigned stride_pages = g_rand_int_range(rnd, chunk_pages, 12);
        unsigned periods = g_rand_int_range(rnd, 1, 6);
        MemoryInterleaveEntry e[2];
        uint8_t map[128] = { 0 };
        bool clash = false;
        unsigned i, k, p;
        Error *err = NULL;
        MemoryInterleave *il;

        for (i = 0; i < 2; i++) {
            e[i] = (MemoryInterleaveEntry) {
                .target = TARGET(0), .target_size = 128 * PAGE,
                .base = g_rand_int_range(rnd, 0, 40) * PAGE,
                .stride = stride_pages * PAGE,
            };
            for (k = 0; k < periods; k++) {
                for (p = 0; p < chunk_pages; p++) {
                    unsigned pg = e[i].base / PAGE + k * stride_pages + p;

                    clash |= map[pg] & ~(1u << i);
                    map[pg] |= 1u << i;
                }
            }
        }
        il = memory_interleave_new(2 * periods * chunk_pages * PAGE,
                                   chunk_pages * PAGE, 2, e, PAGE, &err);
        if (clash != !il) {
            fail_msg("bases %" PRIu64 "/%" PRIu64 " stride %u chunk %u"
                     " periods %u: brute force says %s, check says %s",
                     e[0].base / PAGE, e[1].base / PAGE, stride_pages,
                     chunk_pages, periods, clash ? "overlap" : "disjoint",
                     il ? "disjoint" : error_get_pretty(err));
        }
        clash ? rejected++ : accepted++;
        memory_interleave_free(il);
        error_free(err);
    }
    g_rand_free(rnd);
    /* the random layouts must exercise both outcomes */
    assert_true(rejected > 1000 && accepted > 1000);
}

/* References and the one-line description info mtree prints. */
static const char *fake_name(const struct MemoryRegion *mr)
{
    return mr == TARGET(0) ? "ram0" : "ram1";
}

static void test_interleave_refs_and_describe(void **state)
{
    MemoryInterleaveEntry two[2] = {
        { TARGET(0), 1 << 20, 0, PAGE },
        { TARGET(1), 1 << 20, PAGE, PAGE },
    };
    MemoryInterleave *il = memory_interleave_new(8 * PAGE, PAGE, 2, two,
                                                 PAGE, &error_abort);
    g_autofree char *d = memory_interleave_describe(il, fake_name);

    assert_string_equal(d, "interleave 2 x 0x1000: ram0 +0x0/0x1000,"
                        " ram1 +0x1000/0x1000");
    assert_ptr_equal(memory_interleave_ref(il), il);
    assert_int_equal(il->refcnt, 2);
    memory_interleave_unref(il);
    assert_int_equal(il->refcnt, 1);
    memory_interleave_unref(il);       /* freed: valgrind checks */
    memory_interleave_unref(NULL);
}

/* What memory_interleave_for_each_run() reported, page by page. */
typedef struct RunLog {
    uint64_t offset;            /* window offset of bitmap bit 0 */
    unsigned eig, eiw;
    unsigned long *seen;        /* bits the runs covered */
    unsigned runs;
} RunLog;

static void log_run(const MemoryInterleave *il, unsigned e,
                    uint64_t target_offset, uint64_t first, uint64_t n,
                    void *opaque)
{
    RunLog *log = opaque;
    const unsigned bits = sizeof(unsigned long) * 8;
    uint64_t i;

    log->runs++;
    for (i = first; i < first + n; i++) {
        uint64_t hpa = log->offset + i * PAGE;

        if (e != ref_position(hpa, log->eig, log->eiw) ||
            target_offset + (i - first) * PAGE !=
            ref_dpa(hpa, log->eig, log->eiw)) {
            fail_msg("page %" PRIu64 " of a run from %" PRIu64 ": entry %u "
                     "offset 0x%" PRIx64 ", spec says %u 0x%" PRIx64, i,
                     first, e, target_offset + (i - first) * PAGE,
                     ref_position(hpa, log->eig, log->eiw),
                     ref_dpa(hpa, log->eig, log->eiw));
        }
        if (log->seen[i / bits] & (1UL << (i % bits))) {
            fail_msg("page %" PRIu64 " reported twice", i);
        }
        log->seen[i / bits] |= 1UL << (i % bits);
    }
}

/*
 * Dirty bits logged over a window (one per page) reach each entry's target
 * at the spec's device offset: every set bit once, no clear bit, each run
 * inside one chunk; from a start that is not a chunk edge, with dense,
 * sparse and empty words.
 */
static void test_interleave_dirty_runs(void **state)
{
    static const unsigned eiws[] = { 0, 2, 8, 9 };
    const unsigned bits = sizeof(unsigned long) * 8;
    unsigned k, density;

    for (k = 0; k < G_N_ELEMENTS(eiws); k++) {
        for (density = 0; density < 4; density++) {
            unsigned eig = 6, ways = eiw_ways(eiws[k]);  /* 16 KiB chunks */
            uint64_t size = (256ULL << eig) * ways * 64, nb = 1000, i;
            g_autofree MemoryInterleave *il =
                cxl_like(size, eig, eiws[k], size / ways);
            g_autofree unsigned long *bm = g_new0(unsigned long,
                                                  nb / bits + 1);
            g_autofree unsigned long *seen = g_new0(unsigned long,
                                                    nb / bits + 1);
            RunLog log = { 3 * PAGE, eig, eiws[k], seen, 0 };
            GRand *r = g_rand_new_with_seed(k * 4 + density);

            for (i = 0; i < nb; i++) {
                bool set = density == 3 ? true : density == 0 ? false :
                           (i / 200) % 2 ? g_rand_int_range(r, 0, 8) == 0
                                         : g_rand_int_range(r, 0, 8) != 0;

                if (set) {
                    bm[i / bits] |= 1UL << (i % bits);
                }
            }
            g_rand_free(r);
            memory_interleave_for_each_run(il, log.offset, bm, nb, PAGE,
                                           log_run, &log);
            for (i = 0; i < nb / bits + 1; i++) {
                if (bm[i] != seen[i]) {
                    fail_msg("%u-way: bitmap word %" PRIu64 " is 0x%lx, the "
                             "runs covered 0x%lx", ways, i, bm[i], seen[i]);
                }
            }
            if (density == 3 && log.runs != (nb + 3 + 3) / 4) {
                /* all set: one run per chunk touched (4 pages each) */
                fail_msg("%u-way: %u runs for %" PRIu64 " dirty pages from "
                         "page 3", ways, log.runs, nb);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interleave_chunk_edges),
        cmocka_unit_test(test_interleave_every_entry_bijective),
        cmocka_unit_test(test_interleave_base_and_stride),
        cmocka_unit_test(test_interleave_bad_descriptors),
        cmocka_unit_test(test_interleave_overlap_matches_bruteforce),
        cmocka_unit_test(test_interleave_refs_and_describe),
        cmocka_unit_test(test_interleave_dirty_runs),
    };

    return cmocka_run_group_tests_name("memory-interleave", tests, NULL, NULL);
}
