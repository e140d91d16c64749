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
#include "system/memory-interleave.h"

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

/*
 * What physical_memory_set_dirty_lebitmap() marks for one piece: every set
 * bit of every word it reads, whole words (it ignores @nb_pages inside the
 * last word), like the real one.  Each mark is checked against the pages
 * the window's bitmap has dirty, through the spec's decode.
 */
typedef struct DirtyMarks {
    uint64_t offset;            /* window offset of bit 0 */
    uint64_t nb_pages;
    unsigned eig, eiw;
    const unsigned long *dirty; /* the window's bitmap */
    unsigned long *marked;      /* window pages seen marked */
    uint64_t extent[16];        /* per entry: target bytes it owns */
    unsigned bad;
} DirtyMarks;

static void mark_piece(const MemoryInterleave *il, unsigned e,
                       uint64_t target_offset, unsigned long word,
                       uint64_t nb_pages, void *opaque)
{
    const unsigned bits = sizeof(unsigned long) * 8;
    DirtyMarks *m = opaque;
    unsigned j;

    if (nb_pages == 0 || nb_pages > bits) {
        fail_msg("a piece of %" PRIu64 " pages", nb_pages);
    }
    for (j = 0; j < bits; j++) {
        uint64_t t = target_offset + j * PAGE, w, i;
        bool found = false;

        if (!(word >> j & 1)) {
            continue;
        }
        if (t >= m->extent[e]) {
            fail_msg("entry %u: marked target offset 0x%" PRIx64 " past "
                     "what it owns (0x%" PRIx64 ")", e, t, m->extent[e]);
        }
        /* the window page that maps to (e, t): it must be dirty */
        for (i = 0; i < m->nb_pages && !found; i++) {
            w = m->offset + i * PAGE;
            if (ref_position(w, m->eig, m->eiw) == e &&
                ref_dpa(w, m->eig, m->eiw) == t) {
                found = true;
                if (!(m->dirty[i / bits] >> (i % bits) & 1)) {
                    fail_msg("entry %u offset 0x%" PRIx64 " marked dirty, "
                             "window page %" PRIu64 " is clean", e, t, i);
                }
                m->marked[i / bits] |= 1UL << (i % bits);
            }
        }
        if (!found) {
            fail_msg("entry %u offset 0x%" PRIx64 " marked dirty: no page "
                     "of the logged range maps there", e, t);
        }
    }
}

/*
 * A dirty bitmap logged over a window (KVM's, one bit per page) moves to
 * the targets exactly: every dirty page once and nothing else, with 4 KiB
 * and 16 KiB chunks, runs that end inside a chunk, and a logged range
 * whose end is the window's end on a word boundary (a bit set past a run
 * would land past what the entry owns).
 */
static void test_interleave_dirty_pieces_exact(void **state)
{
    static const struct {
        unsigned eig, eiw;
        uint64_t start_page, nb_pages;
    } cases[] = {
        { 4, 2, 0, 256 },       /* 4 KiB chunks, 4-way, ends on a word */
        { 6, 2, 0, 256 },       /* 16 KiB chunks, ends on a word */
        { 6, 2, 3, 253 },       /* starts mid-chunk, same end */
        { 6, 0, 0, 128 },       /* 1-way, whole window */
        { 6, 8, 0, 192 },       /* 3-way */
        { 7, 1, 2, 190 },       /* 32 KiB chunks (8 pages), 2-way */
    };
    const unsigned bits = sizeof(unsigned long) * 8;
    unsigned c, density;

    for (c = 0; c < G_N_ELEMENTS(cases); c++) {
        for (density = 0; density < 4; density++) {
            unsigned eig = cases[c].eig, eiw = cases[c].eiw;
            unsigned ways = eiw_ways(eiw), e;
            uint64_t nb = cases[c].nb_pages, i;
            /* the window ends where the logged range ends */
            uint64_t size = (cases[c].start_page + nb) * PAGE;
            g_autofree MemoryInterleave *il =
                cxl_like(size, eig, eiw, size / ways);
            g_autofree unsigned long *bm = g_new0(unsigned long,
                                                  nb / bits + 1);
            g_autofree unsigned long *marked = g_new0(unsigned long,
                                                      nb / bits + 1);
            DirtyMarks m = {
                .offset = cases[c].start_page * PAGE, .nb_pages = nb,
                .eig = eig, .eiw = eiw, .dirty = bm, .marked = marked,
            };
            GRand *r = g_rand_new_with_seed(c * 4 + density);

            for (e = 0; e < ways; e++) {
                m.extent[e] = memory_interleave_entry_extent(il, e);
            }
            for (i = 0; i < nb; i++) {
                /* runs ending everywhere, including inside a chunk */
                bool set = density == 3 ? true : density == 0 ? false :
                           density == 1 ? g_rand_int_range(r, 0, 3) != 0 :
                           i == nb - 1 || g_rand_int_range(r, 0, 5) == 0;

                if (set) {
                    bm[i / bits] |= 1UL << (i % bits);
                }
            }
            g_rand_free(r);
            memory_interleave_for_each_dirty_piece(il, m.offset, bm, nb,
                                                   PAGE, mark_piece, &m);
            for (i = 0; i < nb / bits + 1; i++) {
                if (bm[i] != marked[i]) {
                    fail_msg("case %u: dirty word %" PRIu64 " 0x%lx, marked "
                             "0x%lx", c, i, bm[i], marked[i]);
                }
            }
        }
    }
}

/*
 * The write-back shadow's copy (hw/cxl/cxl-shadow.c), on synthetic dirty
 * bitmaps: sub-page granules, where one page spans several devices.
 */
typedef struct WrittenRuns {
    uint8_t *seen[16];          /* per entry: bytes a run covered */
    uint64_t dev_size;
    unsigned calls[16];
} WrittenRuns;

static void note_written(const MemoryInterleave *il, unsigned e,
                         uint64_t target_offset, uint64_t len, void *opaque)
{
    WrittenRuns *w = opaque;
    uint64_t i;

    if (!len || target_offset + len > w->dev_size) {
        fail_msg("entry %u: run 0x%" PRIx64 "+0x%" PRIx64 " outside the "
                 "device (0x%" PRIx64 ")", e, target_offset, len, w->dev_size);
    }
    for (i = target_offset; i < target_offset + len; i++) {
        if (w->seen[e][i]) {
            fail_msg("entry %u: byte 0x%" PRIx64 " in two runs", e, i);
        }
        w->seen[e][i] = 1;
    }
    w->calls[e]++;
}

/*
 * Dirty pages, and only those, land in each device at the offset the
 * spec's decode gives; every byte written is reported in exactly one run,
 * and no byte that was not written is; gathering reads back what the
 * devices hold.  Granules 256 B to 2 KiB, 1 to 12 ways, sparse and full
 * bitmaps, a bitmap that starts past the window's start.
 */
static void test_interleave_shadow_scatter_gather(void **state)
{
    static const struct {
        unsigned eig, eiw;
    } cases[] = {
        { 0, 0 }, { 0, 1 }, { 0, 2 }, { 0, 3 }, { 1, 2 }, { 2, 2 },
        { 3, 1 }, { 0, 8 }, { 0, 9 }, { 1, 10 }, { 2, 8 }, { 3, 4 },
    };
    const unsigned bits = sizeof(unsigned long) * 8;
    unsigned c, density;

    for (c = 0; c < G_N_ELEMENTS(cases); c++) {
        for (density = 0; density < 3; density++) {
            unsigned eig = cases[c].eig, eiw = cases[c].eiw;
            unsigned ways = eiw_ways(eiw), e;
            uint64_t gran = 256ULL << eig, nb = 96, first = 5;
            uint64_t size = (first + nb + 3) * PAGE * ways, dev = size / ways;
            uint64_t i, b, copied, want = 0;
            g_autofree uint8_t *win = g_malloc(size);
            g_autofree uint8_t *back = g_malloc(size);
            g_autofree unsigned long *bm = g_new0(unsigned long,
                                                  nb / bits + 1);
            uint8_t *tgt[16];
            WrittenRuns w = { .dev_size = dev };
            MemoryInterleaveEntry ent[16];
            g_autofree MemoryInterleave *il = NULL;
            Error *err = NULL;
            GRand *r = g_rand_new_with_seed(100 + c * 3 + density);

            for (e = 0; e < ways; e++) {
                ent[e] = (MemoryInterleaveEntry) {
                    .target = TARGET(e), .target_size = dev,
                    .base = 0, .stride = gran,
                };
                tgt[e] = g_malloc(dev);
                memset(tgt[e], 0xee, dev);
                w.seen[e] = g_malloc0(dev);
            }
            il = memory_interleave_new(size, gran, ways, ent, gran, &err);
            if (!il) {
                fail_msg("%u-way %" PRIu64 " B: %s", ways, gran,
                         error_get_pretty(err));
            }
            for (i = 0; i < size; i++) {
                win[i] = g_rand_int(r);
            }
            for (i = 0; i < nb; i++) {
                if (density == 2 || (density == 1 &&
                                     g_rand_int_range(r, 0, 3) == 0)) {
                    bm[i / bits] |= 1UL << (i % bits);
                    want++;
                }
            }
            copied = memory_interleave_scatter(il, first * PAGE,
                                               win + first * PAGE, bm, NULL,
                                               nb, PAGE, tgt, note_written,
                                               &w);
            if (copied != want) {
                fail_msg("case %u: %" PRIu64 " pages copied, %" PRIu64
                         " dirty", c, copied, want);
            }
            /* the model: every byte of the window, decoded by the spec */
            for (b = 0; b < size; b++) {
                uint64_t pg = b / PAGE;
                bool dirty = pg >= first && pg < first + nb &&
                             (bm[(pg - first) / bits] >>
                              ((pg - first) % bits) & 1);
                unsigned pe = ref_position(b, eig, eiw);
                uint64_t dpa = ref_dpa(b, eig, eiw);
                uint8_t expect = dirty ? win[b] : 0xee;

                if (tgt[pe][dpa] != expect) {
                    fail_msg("%u-way %" PRIu64 " B: window byte 0x%" PRIx64
                             " (page %s): device %u DPA 0x%" PRIx64 " holds "
                             "0x%02x, expected 0x%02x", ways, gran, b,
                             dirty ? "dirty" : "clean", pe, dpa,
                             tgt[pe][dpa], expect);
                }
                if (w.seen[pe][dpa] != dirty) {
                    fail_msg("%u-way %" PRIu64 " B: device %u DPA 0x%" PRIx64
                             " %s a run, its page is %s", ways, gran, pe,
                             dpa, w.seen[pe][dpa] ? "in" : "not in",
                             dirty ? "dirty" : "clean");
                }
            }
            /* a full bitmap: each device's bytes are one run */
            for (e = 0; density == 2 && e < ways; e++) {
                if (w.calls[e] != 1) {
                    fail_msg("%u-way %" PRIu64 " B: device %u marked in %u "
                             "runs, its bytes are contiguous", ways, gran, e,
                             w.calls[e]);
                }
            }
            memory_interleave_gather(il, 0, size, back, tgt);
            for (b = 0; b < size; b++) {
                uint8_t expect = tgt[ref_position(b, eig, eiw)]
                                    [ref_dpa(b, eig, eiw)];

                if (back[b] != expect) {
                    fail_msg("%u-way %" PRIu64 " B: gathered byte 0x%"
                             PRIx64 " is 0x%02x, the device holds 0x%02x",
                             ways, gran, b, back[b], expect);
                }
            }
            for (e = 0; e < ways; e++) {
                g_free(tgt[e]);
                g_free(w.seen[e]);
            }
            g_rand_free(r);
        }
    }
}

/*
 * What the targets hold already is not written: a chunk equal to its
 * target bytes is in no run.  Where the caller says the targets hold
 * zeros, a chunk of zeros is neither compared nor written (the targets
 * here hold 0xee, which only a read would see), and the page keeps its
 * bit only if none of its chunks was written.  2-way, 256 B, 4 pages.
 */
static void test_interleave_scatter_skips_known(void **state)
{
    const uint64_t gran = 256, size = 8 * PAGE, dev = size / 2;
    MemoryInterleaveEntry ent[2];
    g_autofree MemoryInterleave *il = NULL;
    uint8_t win[8 * PAGE], t0[4 * PAGE], t1[4 * PAGE];
    uint8_t *tgt[2] = { t0, t1 };
    unsigned long bm = 0xf, zero = 0xc;     /* pages 0-3; 2, 3 zero */
    WrittenRuns w = { .dev_size = dev };
    uint64_t b;
    unsigned e;

    for (e = 0; e < 2; e++) {
        ent[e] = (MemoryInterleaveEntry) {
            .target = TARGET(e), .target_size = dev, .base = 0,
            .stride = gran,
        };
        w.seen[e] = g_malloc0(dev);
    }
    il = memory_interleave_new(size, gran, 2, ent, gran, NULL);
    assert_non_null(il);
    memset(t0, 0xee, sizeof(t0));
    memset(t1, 0xee, sizeof(t1));
    memset(win, 0, sizeof(win));
    /* page 0: random; its first chunk equals what device 0 holds */
    for (b = 0; b < PAGE; b++) {
        win[b] = b < gran ? 0xee : b * 7 + 1;
    }
    /* page 1: all 0xee, as the targets hold: nothing to write */
    memset(win + PAGE, 0xee, PAGE);
    /* page 2: zeros (known zero: skipped); page 3: one byte set */
    win[3 * PAGE + 5 * gran + 3] = 1;

    memory_interleave_scatter(il, 0, win, &bm, &zero, 4, PAGE, tgt,
                              note_written, &w);
    for (b = 0; b < 4 * PAGE; b++) {
        unsigned pe = ref_position(b, 0, 1);
        uint64_t dpa = ref_dpa(b, 0, 1), chunk = b / gran;
        bool written = (b >= gran && b < PAGE) || chunk == 3 * 16 + 5;
        uint8_t expect = written ? win[b] : 0xee;

        if (tgt[pe][dpa] != expect || w.seen[pe][dpa] != written) {
            fail_msg("window byte 0x%" PRIx64 ": device %u holds 0x%02x "
                     "(expected 0x%02x), %s a run", b, pe, tgt[pe][dpa],
                     expect, w.seen[pe][dpa] ? "in" : "not in");
        }
    }
    if (zero != 0x4) {
        fail_msg("zero bits 0x%lx after the scatter: page 2 (all zeros) "
                 "keeps its bit, page 3 (written) loses it", zero);
    }
    for (e = 0; e < 2; e++) {
        g_free(w.seen[e]);
    }
}

/* Runs counted arithmetically = runs walked chunk by chunk = runs built. */
typedef struct RunWalk {
    uint64_t runs, next_offset;
    const int *file;
    const uint64_t *file_offset;
} RunWalk;

static void walk_run(const MemoryInterleave *il, unsigned e, uint64_t offset,
                     uint64_t len, uint64_t file_offset, void *opaque)
{
    RunWalk *w = opaque;
    uint64_t k;

    if (offset != w->next_offset || !len || len % il->chunk) {
        fail_msg("run at 0x%" PRIx64 "+0x%" PRIx64 ", expected one at 0x%"
                 PRIx64, offset, len, w->next_offset);
    }
    /* every chunk of the run is where the run says, in one file */
    for (k = 0; k < len / il->chunk; k++) {
        uint64_t t, l = il->chunk;
        unsigned f = memory_interleave_translate(il, offset + k * il->chunk,
                                                 &t, &l);

        if (w->file[f] != w->file[e] ||
            w->file_offset[f] + t != file_offset + k * il->chunk) {
            fail_msg("run at 0x%" PRIx64 ": chunk %" PRIu64 " is elsewhere",
                     offset, k);
        }
    }
    w->next_offset = offset + len;
    w->runs++;
}

static uint64_t bruteforce_runs(const MemoryInterleave *il, const int *file,
                                const uint64_t *file_offset)
{
    uint64_t k, runs = 0, prev_end = 0;
    int prev_file = -1;

    for (k = 0; k < il->size / il->chunk; k++) {
        uint64_t t, l = il->chunk;
        unsigned e = memory_interleave_translate(il, k * il->chunk, &t, &l);

        if (file[e] != prev_file || file_offset[e] + t != prev_end) {
            runs++;
        }
        prev_file = file[e];
        prev_end = file_offset[e] + t + il->chunk;
    }
    return runs;
}

static void test_interleave_count_runs_matches_walk(void **state)
{
    GRand *r = g_rand_new_with_seed(7);
    unsigned iter;

    for (iter = 0; iter < 3000; iter++) {
        unsigned n = g_rand_int_range(r, 1, 7), i;
        uint64_t chunk = PAGE << g_rand_int_range(r, 0, 3);
        uint64_t nchunks = g_rand_int_range(r, 1, 40);
        MemoryInterleaveEntry ent[8];
        int file[8];
        uint64_t file_offset[8], expect;
        g_autofree MemoryInterleave *il = NULL;
        RunWalk w = { .file = file, .file_offset = file_offset };

        for (i = 0; i < n; i++) {
            /* few files, strides and bases that sometimes line up */
            file[i] = g_rand_int_range(r, 0, 3);
            file_offset[i] = chunk * g_rand_int_range(r, 0, 4);
            ent[i] = (MemoryInterleaveEntry) {
                .target = TARGET(i), .target_size = 1ULL << 40,
                .base = chunk * g_rand_int_range(r, 0, 6) * 64 +
                        chunk * g_rand_int_range(r, 0, 3),
                .stride = chunk * g_rand_int_range(r, 1, 5),
            };
        }
        il = memory_interleave_new(nchunks * chunk, chunk, n, ent, PAGE,
                                   NULL);
        if (!il) {
            continue;       /* self-overlapping: not a descriptor */
        }
        expect = bruteforce_runs(il, file, file_offset);
        if (memory_interleave_count_runs(il, file, file_offset) != expect) {
            fail_msg("iteration %u: %" PRIu64 " runs counted, %" PRIu64
                     " by brute force", iter,
                     memory_interleave_count_runs(il, file, file_offset),
                     expect);
        }
        memory_interleave_for_each_file_run(il, file, file_offset, walk_run,
                                            &w);
        if (w.runs != expect || w.next_offset != il->size) {
            fail_msg("iteration %u: %" PRIu64 " runs walked up to 0x%" PRIx64
                     ", %" PRIu64 " expected", iter, w.runs, w.next_offset,
                     expect);
        }
    }
    g_rand_free(r);
}

/* The cases that matter, by name: a 1-way window is one mapping. */
static void test_interleave_count_runs_cxl(void **state)
{
    int file[16];
    uint64_t file_offset[16] = { 0 };
    unsigned i;
    g_autofree MemoryInterleave *one = cxl_like(1ULL << 30, 4, 0, 1ULL << 30);
    g_autofree MemoryInterleave *four = cxl_like(1ULL << 30, 4, 2, 1ULL << 28);

    for (i = 0; i < 16; i++) {
        file[i] = i;
    }
    assert_int_equal(memory_interleave_count_runs(one, file, file_offset), 1);
    /* 4-way 4 KiB: one mapping per chunk */
    assert_int_equal(memory_interleave_count_runs(four, file, file_offset),
                     (1ULL << 30) / 4096);
}

/* Where chunk k of @il goes, for chunks [0, @n). */
static MemoryInterleaveChunk *chunks_of(const MemoryInterleave *il,
                                        uint64_t n)
{
    MemoryInterleaveChunk *seq = g_new(MemoryInterleaveChunk, n);
    uint64_t k, len;

    for (k = 0; k < n; k++) {
        unsigned e;

        len = il->chunk;
        e = memory_interleave_translate(il, k * il->chunk, &seq[k].offset,
                                        &len);
        seq[k].target = il->entries[e].target;
        seq[k].target_size = il->entries[e].target_size;
    }
    return seq;
}

/*
 * memory_interleave_find() gives back every CXL layout from its chunks:
 * from two periods of them, from the whole window when it is one period,
 * and not from less.
 */
static void test_interleave_find(void **state)
{
    static const unsigned eiws[] = { 0, 1, 2, 3, 4, 8, 9, 10 };
    unsigned i, eig;

    for (i = 0; i < ARRAY_SIZE(eiws); i++) {
        for (eig = 4; eig <= 6; eig++) {
            unsigned ways = eiw_ways(eiws[i]);
            uint64_t gran = 256ULL << eig, size = 64 * ways * gran;
            g_autofree MemoryInterleave *il =
                cxl_like(size, eig, eiws[i], 64 * gran);
            g_autofree MemoryInterleaveChunk *seq = chunks_of(il, 64 * ways);
            g_autofree MemoryInterleave *all = NULL, *two = NULL;
            g_autofree MemoryInterleave *one = NULL, *whole = NULL;

            all = memory_interleave_find(size, gran, seq, 64 * ways, PAGE,
                                         &error_abort);
            two = memory_interleave_find(size, gran, seq, 2 * ways, PAGE,
                                         &error_abort);
            assert_true(memory_interleave_equal(all, il));
            assert_true(memory_interleave_equal(two, il));
            if (ways > 1) {
                /* less than two periods of a larger window: no answer */
                one = memory_interleave_find(size, gran, seq, 2 * ways - 1,
                                             PAGE, NULL);
                assert_null(one);
            }
            /* a window of one period: one chunk per entry */
            whole = memory_interleave_find(ways * gran, gran, seq, ways,
                                           PAGE, &error_abort);
            assert_int_equal(whole->nb_entries, ways);
        }
    }
}

/*
 * Reference for memory_interleave_find(): the fewest entries p such that
 * every chunk of @seq is one of p entries advanced by whole periods
 * (chunk e + j * p is in chunk e's target, at chunk e's offset plus j
 * times the entry's stride, the distance from chunk e to chunk e + p),
 * counted only where @seq shows the period twice (2p <= @n) or where it
 * is the whole window (p = @n = @nb_chunks).  0: no such p.
 */
static uint64_t ref_shortest_period(const MemoryInterleaveChunk *seq,
                                    uint64_t n, uint64_t nb_chunks)
{
    uint64_t p, e, j;

    for (p = 1; p <= MIN(n, MEMORY_INTERLEAVE_MAX_ENTRIES); p++) {
        bool ok = 2 * p <= n || (p == n && n == nb_chunks);

        for (e = 0; ok && e < p; e++) {
            uint64_t stride = e + p < n ? seq[e + p].offset - seq[e].offset
                                        : 0;

            for (j = 1; ok && e + j * p < n; j++) {
                const MemoryInterleaveChunk *c = &seq[e + j * p];

                ok = c->target == seq[e].target &&
                     c->target_size == seq[e].target_size &&
                     c->offset == seq[e].offset + j * stride;
            }
        }
        if (ok) {
            return p;
        }
    }
    return 0;
}

/*
 * A found descriptor reproduces its chunks, whatever they are, with the
 * fewest entries the reference finds; where the reference finds entries
 * but memory_interleave_find() does not, they make no valid descriptor.
 * Half the windows are the chunks given, half are several periods more,
 * so that both the two-period rule and the whole-window rule are met.
 * Only the chunks given are read: the same chunks followed by more of
 * the window give the same answer.
 */
static void test_interleave_find_random(void **state)
{
    GRand *r = g_rand_new_with_seed(11);
    unsigned iter, found_whole = 0, found_larger = 0, found_shorter = 0;
    unsigned invalid = 0;

    for (iter = 0; iter < 4000; iter++) {
        uint64_t n = g_rand_int_range(r, 1, 40), nb_chunks = n, k, p;
        unsigned period = g_rand_int_range(r, 1, 6), e;
        /* one target, chunks in order: period 1 whatever @period is */
        bool linear = g_rand_int_range(r, 0, 8) == 0;
        bool larger = g_rand_boolean(r);
        unsigned tgt[6];
        uint64_t base[6], stride[6];
        g_autofree MemoryInterleaveChunk *seq = NULL, *more = NULL;
        g_autofree MemoryInterleaveChunk *back = NULL;
        g_autofree MemoryInterleave *il = NULL, *il_more = NULL;

        if (larger) {
            /* a whole number of periods, at least one past the chunks */
            nb_chunks = period * ((n + period - 1) / period +
                                  g_rand_int_range(r, 1, 4));
        }
        for (e = 0; e < period; e++) {
            if (linear) {
                tgt[e] = 0;
                base[e] = PAGE * e;
                stride[e] = PAGE * period;
            } else {
                /* now and then a target shared, or a stride of its own */
                tgt[e] = g_rand_int_range(r, 0, 4) ?
                         e : (unsigned)g_rand_int_range(r, 0, 6);
                base[e] = PAGE * e * 1000;
                stride[e] = PAGE * (g_rand_int_range(r, 0, 4) ? 3
                                    : g_rand_int_range(r, 1, 5));
            }
        }
        /* the window's chunks and as many again; @n of them are given */
        more = g_new(MemoryInterleaveChunk, 2 * nb_chunks);
        for (k = 0; k < 2 * nb_chunks; k++) {
            /* mostly periodic, sometimes broken */
            bool odd = g_rand_int_range(r, 0, 30) == 0;

            e = k % period;
            more[k] = (MemoryInterleaveChunk) {
                .target = TARGET(odd ? (unsigned)g_rand_int_range(r, 0, 8)
                                     : tgt[e]),
                .target_size = 1ULL << 40,
                .offset = base[e] + (k / period) * stride[e] +
                          (odd ? PAGE * g_rand_int_range(r, 0, 3) : 0),
            };
        }
        seq = g_new(MemoryInterleaveChunk, n);
        memcpy(seq, more, n * sizeof(seq[0]));
        p = ref_shortest_period(seq, n, nb_chunks);
        il = memory_interleave_find(nb_chunks * PAGE, PAGE, seq, n, PAGE,
                                    NULL);
        il_more = memory_interleave_find(nb_chunks * PAGE, PAGE, more, n,
                                         PAGE, NULL);
        if (!memory_interleave_equal(il, il_more)) {
            fail_msg("iteration %u: %" PRIu64 " of %" PRIu64 " chunks: the "
                     "chunks after them changed the answer", iter, n,
                     nb_chunks);
        }
        if (!il) {
            MemoryInterleaveEntry ent[40];
            MemoryInterleave *other;

            if (!p) {
                continue;
            }
            /* the reference's entries: refused by the validation too */
            for (k = 0; k < p; k++) {
                ent[k] = (MemoryInterleaveEntry) {
                    .target = seq[k].target,
                    .target_size = seq[k].target_size,
                    .base = seq[k].offset,
                    .stride = k + p < n ? seq[k + p].offset - seq[k].offset
                                        : PAGE,
                };
            }
            other = memory_interleave_new(nb_chunks * PAGE, PAGE, p, ent,
                                          PAGE, NULL);
            if (other) {
                memory_interleave_free(other);
                fail_msg("iteration %u: %" PRIu64 " of %" PRIu64 " chunks "
                         "follow %" PRIu64 " valid entries, none found",
                         iter, n, nb_chunks, p);
            }
            invalid++;
            continue;
        }
        if (il->nb_entries != p) {
            fail_msg("iteration %u: %" PRIu64 " of %" PRIu64 " chunks found "
                     "as %u entries, the shortest period is %" PRIu64,
                     iter, n, nb_chunks, il->nb_entries, p);
        }
        if (larger) {
            found_larger++;
        } else {
            found_whole++;
        }
        found_shorter += il->nb_entries < period;
        back = chunks_of(il, n);
        for (k = 0; k < n; k++) {
            if (back[k].target != seq[k].target ||
                back[k].offset != seq[k].offset) {
                fail_msg("iteration %u: chunk %" PRIu64 " of %" PRIu64
                         " not reproduced by %u entries", iter, k, n,
                         il->nb_entries);
            }
        }
    }
    /* the test saw answers of every kind, not only refusals */
    assert_true(found_whole > 1000);
    assert_true(found_larger > 500);
    assert_true(found_shorter > 100);
    assert_true(invalid > 50);
    g_rand_free(r);
}

typedef struct TargetRanges {
    uint64_t got[64][3];        /* window offset, target offset, length */
    unsigned n;
} TargetRanges;

static void collect_target_range(const MemoryInterleave *il, unsigned e,
                                 uint64_t offset, uint64_t target_offset,
                                 uint64_t len, void *opaque)
{
    TargetRanges *t = opaque;

    assert_true(t->n < ARRAY_SIZE(t->got));
    t->got[t->n][0] = offset;
    t->got[t->n][1] = target_offset;
    t->got[t->n][2] = len;
    t->n++;
}

/*
 * memory_interleave_for_each_target_range() finds what a walk of every
 * chunk through memory_interleave_translate() finds, in the same order.
 */
static void test_interleave_target_ranges(void **state)
{
    GRand *r = g_rand_new_with_seed(13);
    unsigned iter, nonempty = 0;

    for (iter = 0; iter < 3000; iter++) {
        unsigned n = g_rand_int_range(r, 1, 5), i, e;
        uint64_t chunk = PAGE << g_rand_int_range(r, 0, 2);
        uint64_t nchunks = g_rand_int_range(r, 1, 30), k, lo, hi;
        MemoryInterleaveEntry ent[4];
        g_autofree MemoryInterleave *il = NULL;
        TargetRanges t = { .n = 0 };
        unsigned want = 0;

        for (i = 0; i < n; i++) {
            ent[i] = (MemoryInterleaveEntry) {
                .target = TARGET(g_rand_int_range(r, 0, 2)),
                .target_size = 1ULL << 40,
                .base = PAGE * g_rand_int_range(r, 0, 64),
                .stride = chunk * g_rand_int_range(r, 1, 4),
            };
        }
        il = memory_interleave_new(nchunks * chunk, chunk, n, ent, PAGE,
                                   NULL);
        if (!il) {
            continue;
        }
        e = g_rand_int_range(r, 0, n);
        lo = g_rand_int_range(r, 0, 200 * PAGE);
        hi = lo + g_rand_int_range(r, 0, 40 * PAGE);
        memory_interleave_for_each_target_range(il, e, lo, hi,
                                                collect_target_range, &t);
        for (k = 0; k < nchunks; k++) {
            uint64_t toff, len = chunk, from, to;

            if (memory_interleave_translate(il, k * chunk, &toff, &len) != e) {
                continue;
            }
            from = MAX(toff, lo);
            to = MIN(toff + chunk, hi);
            if (from >= to) {
                continue;
            }
            if (want >= t.n || t.got[want][0] != k * chunk + from - toff ||
                t.got[want][1] != from || t.got[want][2] != to - from) {
                fail_msg("iteration %u: range %u of entry %u should be "
                         "window 0x%" PRIx64 " target 0x%" PRIx64 " +0x%"
                         PRIx64, iter, want, e, k * chunk + from - toff,
                         from, to - from);
            }
            want++;
        }
        if (want != t.n) {
            fail_msg("iteration %u: %u ranges found, %u expected", iter,
                     t.n, want);
        }
        nonempty += !!want;
    }
    assert_true(nonempty > 300);
    g_rand_free(r);
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
        cmocka_unit_test(test_interleave_dirty_pieces_exact),
        cmocka_unit_test(test_interleave_count_runs_matches_walk),
        cmocka_unit_test(test_interleave_count_runs_cxl),
        cmocka_unit_test(test_interleave_shadow_scatter_gather),
        cmocka_unit_test(test_interleave_scatter_skips_known),
        cmocka_unit_test(test_interleave_find),
        cmocka_unit_test(test_interleave_find_random),
        cmocka_unit_test(test_interleave_target_ranges),
    };

    return cmocka_run_group_tests_name("memory-interleave", tests, NULL, NULL);
}
