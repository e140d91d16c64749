/*
 * Interleave descriptors: validation and helpers
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/bitops.h"
#include "qemu/cutils.h"
#include "qemu/host-utils.h"
#include "system/memory-interleave.h"

/* Number of chunks of the window that entry @e owns. */
static uint64_t entry_chunks(const MemoryInterleave *il, unsigned e)
{
    uint64_t nb_chunks = il->size / il->chunk;

    if (nb_chunks <= e) {
        return 0;
    }
    return (nb_chunks - e + il->nb_entries - 1) / il->nb_entries;
}

/* One past the last target byte of entry @e; false on 64-bit overflow. */
static bool entry_extent(const MemoryInterleave *il, unsigned e,
                         uint64_t *extent)
{
    const MemoryInterleaveEntry *ent = &il->entries[e];
    uint64_t n = entry_chunks(il, e), last;

    if (!n) {
        *extent = 0;
        return true;
    }
    return !umul64_overflow(n - 1, ent->stride, &last) &&
           !uadd64_overflow(last, ent->base, &last) &&
           !uadd64_overflow(last, il->chunk, extent);
}

uint64_t memory_interleave_entry_extent(const MemoryInterleave *il,
                                        unsigned e)
{
    uint64_t extent = 0;

    entry_extent(il, e, &extent);   /* validated at creation */
    return extent;
}

/*
 * Do entries @a and @b (same target, and same stride unless one of them
 * owns a single chunk) map a common byte?
 * Their chunks start at base_a + k * s and base_b + l * s; they meet when
 * |m * s - d| < chunk for m = k - l and d = base_b - base_a.  That distance
 * is convex in m, so testing the two m nearest d / s (clamped to the
 * reachable range) is exact.
 */
static bool entries_overlap(const MemoryInterleave *il, unsigned a, unsigned b)
{
    const MemoryInterleaveEntry *ea = &il->entries[a], *eb = &il->entries[b];
    int64_t na = entry_chunks(il, a), nb = entry_chunks(il, b);
    /* an entry with one chunk has no stride that matters */
    int64_t s = na > 1 ? ea->stride : eb->stride, c = il->chunk;
    int64_t d = (int64_t)(eb->base - ea->base);
    int64_t lo = -(nb - 1), hi = na - 1, m[2];
    int i;

    if (!na || !nb) {
        return false;
    }
    if (s == 0 || lo == hi) {
        m[0] = m[1] = lo;
    } else {
        m[0] = d >= 0 ? d / s : -((-d + s - 1) / s);   /* floor(d / s) */
        m[1] = m[0] + 1;
    }
    for (i = 0; i < 2; i++) {
        int64_t mm = MAX(lo, MIN(hi, m[i]));
        int64_t dist = mm * s - d;

        if (dist < c && -dist < c) {
            return true;
        }
    }
    return false;
}

MemoryInterleave *memory_interleave_new(uint64_t size, uint64_t chunk,
                                        unsigned nb_entries,
                                        const MemoryInterleaveEntry *entries,
                                        uint64_t page_size, Error **errp)
{
    g_autofree MemoryInterleave *il = NULL;
    unsigned i, j;

    if (!page_size || (page_size & (page_size - 1))) {
        error_setg(errp, "interleave: page size 0x%" PRIx64
                   " is not a power of two", page_size);
        return NULL;
    }
    if (!nb_entries || nb_entries > MEMORY_INTERLEAVE_MAX_ENTRIES) {
        error_setg(errp, "interleave: %u entries (1 to %u supported)",
                   nb_entries, MEMORY_INTERLEAVE_MAX_ENTRIES);
        return NULL;
    }
    if (!chunk || chunk % page_size) {
        error_setg(errp, "interleave: chunk 0x%" PRIx64
                   " is not a multiple of the page size 0x%" PRIx64,
                   chunk, page_size);
        return NULL;
    }
    if (!size || size % chunk) {
        error_setg(errp, "interleave: window size 0x%" PRIx64
                   " is not a non-zero multiple of the chunk 0x%" PRIx64,
                   size, chunk);
        return NULL;
    }

    il = g_malloc0(sizeof(*il) + nb_entries * sizeof(il->entries[0]));
    il->refcnt = 1;
    il->size = size;
    il->chunk = chunk;
    il->period = chunk * nb_entries;
    il->nb_entries = nb_entries;
    memcpy(il->entries, entries, nb_entries * sizeof(il->entries[0]));

    for (i = 0; i < nb_entries; i++) {
        const MemoryInterleaveEntry *e = &il->entries[i];
        uint64_t extent;

        if (!e->target) {
            error_setg(errp, "interleave: entry %u has no target", i);
            return NULL;
        }
        if (e->base % page_size || e->stride % page_size) {
            error_setg(errp, "interleave: entry %u base 0x%" PRIx64
                       " or stride 0x%" PRIx64 " is not page aligned",
                       i, e->base, e->stride);
            return NULL;
        }
        if (!entry_extent(il, i, &extent) || extent > e->target_size) {
            error_setg(errp, "interleave: entry %u reaches beyond its target"
                       " (needs 0x%" PRIx64 " bytes, target has 0x%" PRIx64 ")",
                       i, extent, e->target_size);
            return NULL;
        }
        if (entry_chunks(il, i) > 1 && e->stride < chunk) {
            error_setg(errp, "interleave: entry %u stride 0x%" PRIx64
                       " is smaller than the chunk 0x%" PRIx64
                       ": its own chunks overlap", i, e->stride, chunk);
            return NULL;
        }
        for (j = 0; j < i; j++) {
            const MemoryInterleaveEntry *f = &il->entries[j];

            if (f->target != e->target) {
                continue;
            }
            if (f->stride != e->stride &&
                entry_chunks(il, i) > 1 && entry_chunks(il, j) > 1) {
                error_setg(errp, "interleave: entries %u and %u share a"
                           " target with different strides", j, i);
                return NULL;
            }
            if (entries_overlap(il, j, i)) {
                error_setg(errp, "interleave: entries %u and %u map"
                           " overlapping bytes of their target", j, i);
                return NULL;
            }
        }
    }
    return g_steal_pointer(&il);
}

/* Does @seq repeat with period @p over its @n chunks? */
static bool is_period(const MemoryInterleaveChunk *seq, uint64_t n,
                      uint64_t p)
{
    uint64_t k;

    for (k = p; k < n; k++) {
        uint64_t e = k % p;

        if (seq[k].target != seq[e].target ||
            seq[k].offset - seq[k - p].offset !=
            seq[e + p].offset - seq[e].offset) {
            return false;
        }
    }
    return true;
}

MemoryInterleave *memory_interleave_find(uint64_t size, uint64_t chunk,
                                         const MemoryInterleaveChunk *seq,
                                         uint64_t n, uint64_t page_size,
                                         Error **errp)
{
    g_autofree MemoryInterleaveEntry *ent = NULL;
    uint64_t nb_chunks = chunk ? size / chunk : 0, p, k;

    assert(n >= 1 && n <= nb_chunks);
    for (p = 1; p <= MIN(n, MEMORY_INTERLEAVE_MAX_ENTRIES); p++) {
        if ((2 * p <= n || p == nb_chunks) && is_period(seq, n, p)) {
            break;
        }
    }
    if (p > MIN(n, MEMORY_INTERLEAVE_MAX_ENTRIES)) {
        error_setg(errp, "interleave: the chunks follow no period of at "
                   "most %u entries", MEMORY_INTERLEAVE_MAX_ENTRIES);
        return NULL;
    }
    ent = g_new(MemoryInterleaveEntry, p);
    for (k = 0; k < p; k++) {
        ent[k] = (MemoryInterleaveEntry) {
            .target = seq[k].target,
            .target_size = seq[k].target_size,
            .base = seq[k].offset,
            /* one period only: each entry has one chunk, no stride */
            .stride = p < nb_chunks ? seq[k + p].offset - seq[k].offset
                                    : chunk,
        };
    }
    return memory_interleave_new(size, chunk, p, ent, page_size, errp);
}

void memory_interleave_free(MemoryInterleave *il)
{
    g_free(il);
}

void memory_interleave_for_each_target_range(const MemoryInterleave *il,
                                             unsigned e, uint64_t lo,
                                             uint64_t hi,
                                             MemoryInterleaveTargetRangeFn *fn,
                                             void *opaque)
{
    const MemoryInterleaveEntry *ent = &il->entries[e];
    uint64_t n = 0, n_end = entry_chunks(il, e);

    /* the chunks of entry @e that can reach [lo, hi) */
    hi = MIN(hi, memory_interleave_entry_extent(il, e));
    if (hi <= lo || hi <= ent->base) {
        return;
    }
    if (ent->stride) {
        n = lo > ent->base ? (lo - ent->base) / ent->stride : 0;
        n_end = MIN(n_end, (hi - ent->base) / ent->stride + 1);
    }
    for (; n < n_end; n++) {
        uint64_t off = n * il->period + e * il->chunk;
        uint64_t toff = ent->base + n * ent->stride;
        uint64_t from = MAX(toff, lo), to = MIN(toff + il->chunk, hi);

        if (from < to) {
            fn(il, e, off + from - toff, from, to - from, opaque);
        }
    }
}

void memory_interleave_for_each_run(const MemoryInterleave *il,
                                    uint64_t offset,
                                    const unsigned long *bitmap,
                                    uint64_t nb_pages, uint64_t page_size,
                                    MemoryInterleaveRunFn *fn, void *opaque)
{
    uint64_t i, n;

    /* else a run could be 0 pages long, and the walk would not advance */
    assert(il->chunk % page_size == 0);
    assert(offset % page_size == 0);
    for (i = find_first_bit(bitmap, nb_pages); i < nb_pages;
         i = find_next_bit(bitmap, nb_pages, i + n)) {
        uint64_t target_offset, len = UINT64_MAX;
        unsigned e = memory_interleave_translate(il, offset + i * page_size,
                                                 &target_offset, &len);

        /* the set bits from @i up to the chunk's end */
        n = find_next_zero_bit(bitmap, MIN(nb_pages, i + len / page_size),
                               i + 1) - i;
        fn(il, e, target_offset, i, n, opaque);
    }
}

void memory_interleave_gather(const MemoryInterleave *il, uint64_t offset,
                              uint64_t len, uint8_t *dst,
                              uint8_t *const *target_host)
{
    while (len) {
        uint64_t toff, l = len;
        unsigned e = memory_interleave_translate(il, offset, &toff, &l);

        memcpy(dst, target_host[e] + toff, l);
        dst += l;
        offset += l;
        len -= l;
    }
}

uint64_t memory_interleave_scatter(const MemoryInterleave *il,
                                   uint64_t offset, const uint8_t *src,
                                   const unsigned long *bitmap,
                                   unsigned long *zero,
                                   uint64_t nb_pages, uint64_t page_size,
                                   uint8_t *const *target_host,
                                   MemoryInterleaveWrittenFn *fn,
                                   void *opaque)
{
    /* per entry: the run of target bytes written so far, [start, end) */
    g_autofree uint64_t *start = g_new0(uint64_t, il->nb_entries);
    g_autofree uint64_t *end = g_new0(uint64_t, il->nb_entries);
    uint64_t i, copied = 0;
    unsigned e;

    for (i = find_first_bit(bitmap, nb_pages); i < nb_pages;
         i = find_next_bit(bitmap, nb_pages, i + 1)) {
        uint64_t off = offset + i * page_size, len = page_size;
        const uint8_t *from = src + i * page_size;
        bool known_zero = zero && test_bit(i, zero), wrote = false;

        while (len) {
            uint64_t toff, l = len;

            e = memory_interleave_translate(il, off, &toff, &l);
            /*
             * Bytes the target holds already are not written again; where
             * the target is known to hold zeros, zeros are not even read
             * there (reading a file's hole may allocate its page).
             */
            if (known_zero ? !buffer_is_zero(from, l)
                           : memcmp(target_host[e] + toff, from, l)) {
                memcpy(target_host[e] + toff, from, l);
                wrote = true;
                if (end[e] != toff || end[e] == start[e]) {
                    if (end[e] != start[e]) {
                        fn(il, e, start[e], end[e] - start[e], opaque);
                    }
                    start[e] = toff;
                }
                end[e] = toff + l;
            }
            from += l;
            off += l;
            len -= l;
        }
        if (known_zero && wrote) {
            clear_bit(i, zero);
        }
        copied++;
    }
    for (e = 0; e < il->nb_entries; e++) {
        if (end[e] != start[e]) {
            fn(il, e, start[e], end[e] - start[e], opaque);
        }
    }
    return copied;
}

/* Target offset of the first byte of chunk @k (arithmetic only). */
static uint64_t chunk_target_offset(const MemoryInterleave *il, uint64_t k,
                                    unsigned *e)
{
    const MemoryInterleaveEntry *ent;

    *e = k % il->nb_entries;
    ent = &il->entries[*e];
    return ent->base + (k / il->nb_entries) * ent->stride;
}

/*
 * The number of periods p in [0, @nb_p) for which chunk p * n + e is
 * followed, in the same file, by the next chunk at the next file offset.
 * The gap between the two file offsets is linear in p (a + p * b), so
 * it is zero for all p, for one p, or for none.
 */
static uint64_t count_joins(const MemoryInterleave *il, unsigned e,
                            uint64_t nb_p, const int *file,
                            const uint64_t *file_offset)
{
    unsigned f = (e + 1) % il->nb_entries;
    uint64_t d = e + 1 == il->nb_entries;     /* f is in the next period */
    const MemoryInterleaveEntry *ee = &il->entries[e], *ef = &il->entries[f];
    uint64_t end0, next0;
    int64_t a, b, p;

    if (!nb_p || file[e] != file[f]) {
        return 0;
    }
    /* p = 0: where chunk e ends, and where the next chunk starts */
    end0 = file_offset[e] + ee->base + il->chunk;
    next0 = file_offset[f] + ef->base + d * ef->stride;
    if (ef->stride == ee->stride) {
        return next0 == end0 ? nb_p : 0;
    }
    /* next0 - end0 + p * (stride_f - stride_e) == 0 */
    if (ssub64_overflow(next0, end0, &a) ||
        ssub64_overflow(ef->stride, ee->stride, &b) ||
        a % b) {
        return 0;
    }
    p = -(a / b);
    return p >= 0 && (uint64_t)p < nb_p ? 1 : 0;
}

uint64_t memory_interleave_count_runs(const MemoryInterleave *il,
                                      const int *file,
                                      const uint64_t *file_offset)
{
    uint64_t nchunks = il->size / il->chunk, joins = 0;
    unsigned e;

    for (e = 0; e < il->nb_entries; e++) {
        /* pairs (k, k + 1) with k = p * n + e and k + 1 < nchunks */
        uint64_t nb_p = nchunks >= e + 2 ?
                        (nchunks - 2 - e) / il->nb_entries + 1 : 0;

        joins += count_joins(il, e, nb_p, file, file_offset);
    }
    return nchunks - joins;
}

void memory_interleave_for_each_file_run(const MemoryInterleave *il,
                                         const int *file,
                                         const uint64_t *file_offset,
                                         MemoryInterleaveFileRunFn *fn,
                                         void *opaque)
{
    uint64_t nchunks = il->size / il->chunk, k, start = 0, run_off = 0;
    unsigned run_e = 0;

    for (k = 0; k <= nchunks; k++) {
        uint64_t off = 0;
        unsigned e = 0;

        if (k < nchunks) {
            off = chunk_target_offset(il, k, &e) + file_offset[e];
            if (k > start && file[e] == file[run_e] &&
                off == run_off + (k - start) * il->chunk) {
                continue;           /* the run goes on */
            }
        }
        if (k > start) {
            fn(il, run_e, start * il->chunk, (k - start) * il->chunk,
               run_off, opaque);
        }
        start = k;
        run_off = off;
        run_e = e;
    }
}

typedef struct DirtyPieces {
    MemoryInterleaveDirtyFn *fn;
    uint64_t page_size;
    void *opaque;
} DirtyPieces;

static void dirty_run_pieces(const MemoryInterleave *il, unsigned e,
                             uint64_t target_offset, uint64_t first,
                             uint64_t nb_pages, void *opaque)
{
    const unsigned bits = sizeof(unsigned long) * 8;
    DirtyPieces *d = opaque;
    uint64_t done;

    for (done = 0; done < nb_pages; done += bits) {
        uint64_t n = MIN(nb_pages - done, bits);
        /* exactly the n pages of this piece: no bit past the run */
        unsigned long word = n == bits ? ~0UL : (1UL << n) - 1;

        d->fn(il, e, target_offset + done * d->page_size, word, n,
              d->opaque);
    }
}

void memory_interleave_for_each_dirty_piece(const MemoryInterleave *il,
                                            uint64_t offset,
                                            const unsigned long *bitmap,
                                            uint64_t nb_pages,
                                            uint64_t page_size,
                                            MemoryInterleaveDirtyFn *fn,
                                            void *opaque)
{
    DirtyPieces d = { .fn = fn, .page_size = page_size, .opaque = opaque };

    memory_interleave_for_each_run(il, offset, bitmap, nb_pages, page_size,
                                   dirty_run_pieces, &d);
}

MemoryInterleave *memory_interleave_ref(MemoryInterleave *il)
{
    if (il) {
        qatomic_inc(&il->refcnt);
    }
    return il;
}

void memory_interleave_unref(MemoryInterleave *il)
{
    if (il && qatomic_dec_fetch(&il->refcnt) == 0) {
        memory_interleave_free(il);
    }
}

char *memory_interleave_describe(const MemoryInterleave *il,
                                 const char *(*target_name)(
                                     const MemoryRegion *mr))
{
    GString *s = g_string_new(NULL);
    unsigned i;

    g_string_append_printf(s, "interleave %u x 0x%" PRIx64 ":",
                           il->nb_entries, il->chunk);
    for (i = 0; i < il->nb_entries; i++) {
        const MemoryInterleaveEntry *e = &il->entries[i];

        g_string_append_printf(s, "%s %s +0x%" PRIx64 "/0x%" PRIx64,
                               i ? "," : "", target_name(e->target),
                               e->base, e->stride);
    }
    return g_string_free(s, false);
}

bool memory_interleave_equal(const MemoryInterleave *a,
                             const MemoryInterleave *b)
{
    /* geometry and targets; not the reference count */
    if (a == b) {
        return true;
    }
    if (!a || !b || a->size != b->size || a->chunk != b->chunk ||
        a->nb_entries != b->nb_entries) {
        return false;
    }
    return !memcmp(a->entries, b->entries,
                   a->nb_entries * sizeof(a->entries[0]));
}
