/*
 * Range coverage: which parts of an address space are already taken
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef QEMU_RANGE_COVERAGE_H
#define QEMU_RANGE_COVERAGE_H

#include "qemu/int128.h"

/*
 * A set of disjoint [start, end) ranges, merged as they touch, with one
 * operation: claim a range and learn which parts of it were still free.
 * This is the painter's algorithm of FlatView rendering (higher priority
 * regions are rendered first; later ones only fill the gaps they left)
 * in O(log n) per claim instead of a scan of every range so far.
 */
typedef struct RangeCoverage RangeCoverage;

/* Called for each free part of a claimed range, in address order. */
typedef void (*RangeCoverageGapFn)(Int128 start, Int128 size, void *opaque);

RangeCoverage *range_coverage_new(void);
void range_coverage_free(RangeCoverage *rc);

/**
 * range_coverage_claim: mark [@start, @start + @size) as covered
 *
 * Calls @gap (unless NULL) for every sub-range that was not covered
 * before.
 */
void range_coverage_claim(RangeCoverage *rc, Int128 start, Int128 size,
                          RangeCoverageGapFn gap, void *opaque);

/* Number of disjoint ranges held (adjacent claims merge into one). */
unsigned range_coverage_count(const RangeCoverage *rc);

#endif
