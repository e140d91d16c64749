/*
 * Range coverage (FlatView gap filling), against a brute-force bitmap
 * (cmocka, standalone)
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/range-coverage.h"

#include <setjmp.h>
#include <cmocka.h>

#define SPACE 512

typedef struct Gaps {
    uint8_t *covered;       /* the model */
    Int128 last_end;        /* gaps must come in address order */
    unsigned nb;
} Gaps;

static void check_gap(Int128 start, Int128 size, void *opaque)
{
    Gaps *g = opaque;
    uint64_t s = int128_get64(start), n = int128_get64(size), i;

    if (!n || int128_lt(start, g->last_end)) {
        fail_msg("gap [%" PRIu64 ", +%" PRIu64 ") empty or out of order",
                 s, n);
    }
    /* adjacent gaps would have been one */
    if (g->nb && int128_eq(start, g->last_end)) {
        fail_msg("gap at %" PRIu64 " continues the previous one", s);
    }
    for (i = s; i < s + n; i++) {
        if (g->covered[i]) {
            fail_msg("byte %" PRIu64 " reported free but was covered", i);
        }
        g->covered[i] = 2;      /* newly covered by this claim */
    }
    g->last_end = int128_add(start, size);
    g->nb++;
}

static unsigned runs(const uint8_t *covered)
{
    unsigned i, n = 0;

    for (i = 0; i < SPACE; i++) {
        n += covered[i] && (i == 0 || !covered[i - 1]);
    }
    return n;
}

/* Random claims: gaps are exactly the bytes not covered before. */
static void test_range_coverage_matches_bitmap(void **state)
{
    GRand *rnd = g_rand_new_with_seed(4096);
    int round;

    for (round = 0; round < 300; round++) {
        RangeCoverage *rc = range_coverage_new();
        uint8_t covered[SPACE] = { 0 };
        int claim;

        for (claim = 0; claim < 60; claim++) {
            uint64_t s = g_rand_int_range(rnd, 0, SPACE - 1);
            uint64_t n = g_rand_int_range(rnd, 1, MIN(64, SPACE - s) + 1);
            Gaps g = { .covered = covered };
            uint64_t i;

            range_coverage_claim(rc, int128_make64(s), int128_make64(n),
                                 check_gap, &g);
            for (i = s; i < s + n; i++) {
                if (covered[i] != 1 && covered[i] != 2) {
                    fail_msg("byte %" PRIu64 " of claim [%" PRIu64 ", +%"
                             PRIu64 ") neither covered nor reported",
                             i, s, n);
                }
                covered[i] = 1;
            }
            assert_int_equal(range_coverage_count(rc), runs(covered));
        }
        range_coverage_free(rc);
    }
    g_rand_free(rnd);
}

/* The render pattern: many equal ranges claimed in descending order. */
static void test_range_coverage_adjacent_claims_merge(void **state)
{
    RangeCoverage *rc = range_coverage_new();
    uint8_t covered[SPACE] = { 0 };
    int i;

    for (i = SPACE / 4 - 1; i >= 0; i--) {
        Gaps g = { .covered = covered };

        range_coverage_claim(rc, int128_make64(i * 4), int128_make64(4),
                             check_gap, &g);
        assert_int_equal(g.nb, 1);
        assert_int_equal(range_coverage_count(rc), 1);
    }
    range_coverage_free(rc);
}

/* A claim below an existing range is reported whole; 2^64 is reachable. */
static void test_range_coverage_full_address_space(void **state)
{
    RangeCoverage *rc = range_coverage_new();
    uint8_t covered[SPACE] = { 0 };
    Gaps g = { .covered = covered };

    range_coverage_claim(rc, int128_make64(16), int128_make64(16),
                         check_gap, &g);
    g = (Gaps) { .covered = covered };
    range_coverage_claim(rc, int128_zero(), int128_make64(8), check_gap, &g);
    assert_int_equal(g.nb, 1);
    assert_int_equal(range_coverage_count(rc), 2);
    /* up to the end of the 64-bit space, merging with nothing */
    range_coverage_claim(rc, int128_make64(1ULL << 63),
                         int128_make64(1ULL << 63), NULL, NULL);
    assert_int_equal(range_coverage_count(rc), 3);
    range_coverage_claim(rc, int128_zero(), int128_2_64(), NULL, NULL);
    assert_int_equal(range_coverage_count(rc), 1);
    range_coverage_free(rc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_coverage_matches_bitmap),
        cmocka_unit_test(test_range_coverage_adjacent_claims_merge),
        cmocka_unit_test(test_range_coverage_full_address_space),
    };

    return cmocka_run_group_tests_name("range-coverage", tests, NULL, NULL);
}
