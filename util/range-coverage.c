/*
 * Range coverage: which parts of an address space are already taken
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/range-coverage.h"

typedef struct CoveredRange {
    Int128 start;
    Int128 end;
} CoveredRange;

struct RangeCoverage {
    GSequence *ranges;          /* CoveredRange, sorted, disjoint */
};

RangeCoverage *range_coverage_new(void)
{
    RangeCoverage *rc = g_new(RangeCoverage, 1);

    rc->ranges = g_sequence_new(g_free);
    return rc;
}

void range_coverage_free(RangeCoverage *rc)
{
    if (rc) {
        g_sequence_free(rc->ranges);
        g_free(rc);
    }
}

unsigned range_coverage_count(const RangeCoverage *rc)
{
    return g_sequence_get_length(rc->ranges);
}

/* Order by end: ranges are disjoint, so ends sort like starts. */
static int cmp_end(gconstpointer a, gconstpointer b, gpointer unused)
{
    const CoveredRange *ra = a, *rb = b;

    return int128_lt(ra->end, rb->end) ? -1 :
           int128_gt(ra->end, rb->end) ? 1 : 0;
}

void range_coverage_claim(RangeCoverage *rc, Int128 start, Int128 size,
                          RangeCoverageGapFn gap, void *opaque)
{
    Int128 end = int128_add(start, size);
    CoveredRange probe = { .end = start };
    CoveredRange *merged;
    GSequenceIter *it, *prev;
    Int128 pos = start;

    if (!int128_nz(size)) {
        return;
    }

    /* First range ending after @start (ends equal to @start sort before). */
    it = g_sequence_search(rc->ranges, &probe, cmp_end, NULL);

    /* Report the gaps, in order. */
    for (GSequenceIter *i = it;
         int128_lt(pos, end) && !g_sequence_iter_is_end(i);
         i = g_sequence_iter_next(i)) {
        CoveredRange *r = g_sequence_get(i);

        if (int128_ge(r->start, end)) {
            break;
        }
        if (gap && int128_lt(pos, r->start)) {
            gap(pos, int128_sub(r->start, pos), opaque);
        }
        pos = int128_max(pos, r->end);
    }
    if (gap && int128_lt(pos, end)) {
        gap(pos, int128_sub(end, pos), opaque);
    }

    /*
     * Replace every range that overlaps or touches [start, end) by their
     * union: a range ending exactly at @start is the one before @it.
     */
    if (!g_sequence_iter_is_begin(it)) {
        prev = g_sequence_iter_prev(it);
        if (int128_eq(((CoveredRange *)g_sequence_get(prev))->end, start)) {
            it = prev;
        }
    }

    /* Common case (regions rendered side by side): grow one in place. */
    if (!g_sequence_iter_is_end(it)) {
        CoveredRange *r = g_sequence_get(it);
        GSequenceIter *next = g_sequence_iter_next(it);

        if (int128_le(r->start, end) &&
            (g_sequence_iter_is_end(next) ||
             int128_gt(((CoveredRange *)g_sequence_get(next))->start, end))) {
            r->start = int128_min(r->start, start);
            r->end = int128_max(r->end, end);
            return;
        }
    }

    merged = g_new(CoveredRange, 1);
    merged->start = start;
    merged->end = end;
    while (!g_sequence_iter_is_end(it)) {
        CoveredRange *r = g_sequence_get(it);
        GSequenceIter *next;

        if (int128_gt(r->start, end)) {
            break;
        }
        merged->start = int128_min(merged->start, r->start);
        merged->end = int128_max(merged->end, r->end);
        next = g_sequence_iter_next(it);
        g_sequence_remove(it);
        it = next;
    }
    g_sequence_insert_before(it, merged);
}
