/*
 * Interleave descriptors: pure address arithmetic for interleaved memory
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef SYSTEM_MEMORY_INTERLEAVE_H
#define SYSTEM_MEMORY_INTERLEAVE_H

/*
 * An interleave maps a window of @size bytes onto the entries of a
 * repeating pattern.  The window is cut into chunks of @chunk bytes;
 * chunk k belongs to entry (k % nb_entries).  A period is one chunk of
 * every entry (@period = @chunk * nb_entries).  Entry e maps the chunks
 * it owns into its target at
 *
 *     target offset = e.base + (offset / period) * e.stride + offset % chunk
 *
 * so a CXL host bridge that interleaves N ways at granule G over devices
 * that each hold a contiguous slice is { chunk = G, N entries,
 * base = DPA start, stride = G }.  Power-of-two and 3/6/12-way layouts
 * are both plain divisions here.
 *
 * Descriptors are immutable once created: they may be read under RCU by
 * the memory dispatch while a newer one replaces them.
 *
 * Only this header and system/memory-interleave.c compute with that
 * formula; other files call them.  An XOR interleave, which does not
 * repeat within MEMORY_INTERLEAVE_MAX_ENTRIES entries, would be a second
 * kind of descriptor with its own versions of these functions.
 *
 * This file has no target or accelerator dependency.
 */

#include "qapi/error.h"

typedef struct MemoryInterleaveEntry {
    MemoryRegion *target; /* opaque to the arithmetic */
    uint64_t target_size;        /* bytes of @target that may be reached */
    uint64_t base;               /* target offset of the entry's first chunk */
    uint64_t stride;             /* target advance per period */
} MemoryInterleaveEntry;

typedef struct MemoryInterleave {
    int refcnt;                  /* memory_interleave_ref()/_unref() */
    uint64_t size;               /* window size, a multiple of @chunk */
    uint64_t chunk;              /* bytes; see memory_interleave_new() */
    uint64_t period;             /* @chunk * @nb_entries */
    unsigned nb_entries;
    MemoryInterleaveEntry entries[];
} MemoryInterleave;

/* Upper bound on entries: CXL allows 16 ways at each of two levels. */
#define MEMORY_INTERLEAVE_MAX_ENTRIES 256

/**
 * memory_interleave_new: validate and build an immutable descriptor
 *
 * @size: window size in bytes
 * @chunk: chunk (granule) size in bytes
 * @nb_entries: number of entries in one period
 * @entries: the entries, copied
 * @page_size: @chunk and every entry's base and stride must be multiples
 *             of this power of two (the target page size)
 * @errp: error object
 *
 * Rejects empty windows, chunks that are not page multiples, targets
 * reached beyond @target_size, and entries whose target bytes overlap
 * (with each other or, across periods, with themselves).
 *
 * Returns: a descriptor holding one reference (memory_interleave_unref()
 * drops it), or NULL.
 */
MemoryInterleave *memory_interleave_new(uint64_t size, uint64_t chunk,
                                        unsigned nb_entries,
                                        const MemoryInterleaveEntry *entries,
                                        uint64_t page_size, Error **errp);

/* Where one chunk of a window goes: the input of memory_interleave_find() */
typedef struct MemoryInterleaveChunk {
    MemoryRegion *target;
    uint64_t target_size;        /* as in MemoryInterleaveEntry */
    uint64_t offset;             /* target offset of the chunk's first byte */
} MemoryInterleaveChunk;

/**
 * memory_interleave_find: the interleave a run of chunks follows
 *
 * @size: window size in bytes, a multiple of @chunk
 * @chunk: chunk size in bytes
 * @seq: where each of the window's first @n chunks goes
 * @n: chunks in @seq, from 1 to @size / @chunk
 * @page_size: as for memory_interleave_new()
 * @errp: error object
 *
 * Finds the fewest entries p for which every chunk k >= p of @seq is in
 * the target of chunk k - p, one stride further (entry e's stride is the
 * distance from chunk e to chunk e + p), and builds that descriptor.  A
 * period counts only where @seq shows it twice (2p <= @n) or where it is
 * the whole window (p = @n = @size / @chunk): the caller checks the rest
 * of the window against the result.
 *
 * Returns: a descriptor as memory_interleave_new() returns it, or NULL.
 */
MemoryInterleave *memory_interleave_find(uint64_t size, uint64_t chunk,
                                         const MemoryInterleaveChunk *seq,
                                         uint64_t n, uint64_t page_size,
                                         Error **errp);

void memory_interleave_free(MemoryInterleave *il);

/* References: FlatViews and regions share descriptors (NULL is a no-op). */
MemoryInterleave *memory_interleave_ref(MemoryInterleave *il);
void memory_interleave_unref(MemoryInterleave *il);

/**
 * memory_interleave_describe: one line for info mtree, e.g.
 * "interleave 4 x 0x4000: target0 +0x0/0x4000, ..."
 *
 * @target_name: names an entry's target
 */
char *memory_interleave_describe(const MemoryInterleave *il,
                                 const char *(*target_name)(
                                     const MemoryRegion *mr));

/**
 * memory_interleave_equal: same geometry and same targets
 */
bool memory_interleave_equal(const MemoryInterleave *a,
                             const MemoryInterleave *b);

/**
 * memory_interleave_translate: map a window offset to its target
 *
 * @il: the descriptor
 * @offset: offset in the window, below @il->size
 * @target_offset: where @offset lands in the entry's target
 * @len: in: bytes wanted; out: clamped so the range stays in one chunk
 *
 * Arithmetic only: safe on the hot path.
 *
 * Returns: the index of the entry that owns @offset.
 */
static inline unsigned memory_interleave_translate(const MemoryInterleave *il,
                                                   uint64_t offset,
                                                   uint64_t *target_offset,
                                                   uint64_t *len)
{
    uint64_t in_period = offset % il->period;
    unsigned e = in_period / il->chunk;
    uint64_t in_chunk = in_period % il->chunk;
    const MemoryInterleaveEntry *ent = &il->entries[e];

    *target_offset = ent->base + (offset / il->period) * ent->stride +
                     in_chunk;
    if (*len > il->chunk - in_chunk) {
        *len = il->chunk - in_chunk;
    }
    return e;
}

/**
 * memory_interleave_entry_extent: bytes of the target an entry reaches
 *
 * Returns: one past the highest target offset entry @e maps to.
 */
uint64_t memory_interleave_entry_extent(const MemoryInterleave *il,
                                        unsigned e);

/**
 * memory_interleave_for_each_target_range: where target bytes are seen
 *
 * @il: the descriptor
 * @e: an entry
 * @lo: first target offset of entry @e's target
 * @hi: one past the last
 * @fn: called, in window order, once per chunk of entry @e that holds
 *      some of [@lo, @hi): with the window offset and the target offset
 *      of the first such byte, and how many follow in the chunk
 *
 * The inverse of memory_interleave_translate(): used to copy bytes that
 * changed in a target (a device operation) to where the window has them.
 */
typedef void MemoryInterleaveTargetRangeFn(const MemoryInterleave *il,
                                           unsigned e, uint64_t offset,
                                           uint64_t target_offset,
                                           uint64_t len, void *opaque);
void memory_interleave_for_each_target_range(const MemoryInterleave *il,
                                             unsigned e, uint64_t lo,
                                             uint64_t hi,
                                             MemoryInterleaveTargetRangeFn *fn,
                                             void *opaque);

/**
 * memory_interleave_for_each_run: walk a page bitmap of the window
 *
 * @il: the descriptor
 * @offset: window offset of bit 0, a multiple of @page_size
 * @bitmap: one bit per page of @page_size bytes
 * @nb_pages: bits in @bitmap
 * @page_size: divides @il->chunk
 * @fn: called once per run of set bits that stays in one chunk, with the
 *      entry, the target offset of the run's first page, the bitmap
 *      index of that page and the run's length in pages
 *
 * Used to move dirty bits logged over the window (by KVM, say) to the
 * targets that own the pages.
 */
typedef void MemoryInterleaveRunFn(const MemoryInterleave *il, unsigned e,
                                   uint64_t target_offset, uint64_t first,
                                   uint64_t nb_pages, void *opaque);
void memory_interleave_for_each_run(const MemoryInterleave *il,
                                    uint64_t offset,
                                    const unsigned long *bitmap,
                                    uint64_t nb_pages, uint64_t page_size,
                                    MemoryInterleaveRunFn *fn, void *opaque);

/**
 * memory_interleave_for_each_dirty_piece: the runs of
 * memory_interleave_for_each_run(), cut into pieces of at most one word
 * of pages
 *
 * @fn gets the entry, the target offset of the piece's first page, a word
 * whose low @nb_pages bits (and no others) are set, and @nb_pages: what
 * physical_memory_set_dirty_lebitmap() takes.  That function consumes
 * whole words, so a bitmap with more bits set than the run would mark
 * pages the run does not have (past the window, or past the target).
 */
typedef void MemoryInterleaveDirtyFn(const MemoryInterleave *il, unsigned e,
                                     uint64_t target_offset,
                                     unsigned long word, uint64_t nb_pages,
                                     void *opaque);
void memory_interleave_for_each_dirty_piece(const MemoryInterleave *il,
                                            uint64_t offset,
                                            const unsigned long *bitmap,
                                            uint64_t nb_pages,
                                            uint64_t page_size,
                                            MemoryInterleaveDirtyFn *fn,
                                            void *opaque);

/*
 * Copying between a window and its targets' bytes, for a copy of the
 * window that is not mapped onto the targets (hw/cxl's write-back shadow
 * of a sub-page interleave).  @target_host[e] is entry e's target memory.
 * Any chunk size: a page of the window may span several entries.
 */

/**
 * memory_interleave_gather: copy window bytes from the targets
 * @offset: window offset of the first byte
 * @len: bytes; [@offset, @offset + @len) inside the window
 * @dst: receives the window's bytes
 */
void memory_interleave_gather(const MemoryInterleave *il, uint64_t offset,
                              uint64_t len, uint8_t *dst,
                              uint8_t *const *target_host);

/**
 * memory_interleave_scatter: copy the pages a bitmap names to the targets
 * @offset: window offset of bit 0, and of @src[0]
 * @src: the window's bytes from @offset on
 * @bitmap: one bit per page of @page_size bytes; set: copy the page
 * @zero: NULL, or one bit per page as @bitmap; set: the targets are known
 *        to hold zeros where the page goes.  Cleared for each such page
 *        of which a chunk was written; a page of zeros keeps its bit.
 * @nb_pages: bits in @bitmap, all inside the window
 * @fn: called once per run of target bytes written that is contiguous in
 *      one target, with its entry, target offset and length, so that the
 *      caller marks each target's written bytes dirty once per run rather
 *      than once per chunk; every byte written is in exactly one run
 *
 * A chunk whose target bytes equal the window's already is not written,
 * and is in no run: a page the guest zeroed over zeroed media dirties no
 * page of the targets' files.  Where @zero says the targets hold zeros,
 * a chunk of zeros is not even compared, so that a target's page that
 * was never read (a hole in its file) is not read now.
 *
 * Returns: the pages copied.
 */
typedef void MemoryInterleaveWrittenFn(const MemoryInterleave *il,
                                       unsigned e, uint64_t target_offset,
                                       uint64_t len, void *opaque);
uint64_t memory_interleave_scatter(const MemoryInterleave *il,
                                   uint64_t offset, const uint8_t *src,
                                   const unsigned long *bitmap,
                                   unsigned long *zero,
                                   uint64_t nb_pages, uint64_t page_size,
                                   uint8_t *const *target_host,
                                   MemoryInterleaveWrittenFn *fn,
                                   void *opaque);

/*
 * Stitching a window into one host mapping (memory-interleave-host.c) maps
 * each run of chunks that is contiguous both in the window and in one
 * target file.  @file identifies each entry's file, @file_offset is where
 * the entry's target starts in it.
 */

/**
 * memory_interleave_count_runs: how many mappings a stitched window takes
 *
 * Arithmetic over one period, O(entries) whatever the window size, so a
 * limit (vm.max_map_count) can be checked before anything is built.
 */
uint64_t memory_interleave_count_runs(const MemoryInterleave *il,
                                      const int *file,
                                      const uint64_t *file_offset);

/**
 * memory_interleave_for_each_file_run: call @fn once per run, in window
 * order, with the entry of its first chunk, its window offset and length,
 * and its offset in the file; memory_interleave_count_runs() calls in all.
 */
typedef void MemoryInterleaveFileRunFn(const MemoryInterleave *il,
                                       unsigned e, uint64_t offset,
                                       uint64_t len, uint64_t file_offset,
                                       void *opaque);
void memory_interleave_for_each_file_run(const MemoryInterleave *il,
                                         const int *file,
                                         const uint64_t *file_offset,
                                         MemoryInterleaveFileRunFn *fn,
                                         void *opaque);

/*
 * Regions served through an interleave (system/memory-interleave-region.c)
 *
 * A region is rendered as one FlatRange carrying an interleave, and the
 * dispatch resolves each access to the entry's target (O(ways) sections
 * whatever the window size), when either
 *  - memory_region_set_interleave() gave it one, or
 *  - it opted in with memory_region_set_interleave_aliases(), and its
 *    subregions are at least MEMORY_INTERLEAVE_MIN_ALIASES aliases of RAM
 *    that form a repeating pattern: equal sizes (a page multiple) tiling
 *    the container from 0, targets cycling with a period, each entry's
 *    alias offset advancing by a fixed stride per period.  The pattern
 *    found is cached on the container until its subregions change.
 * The window must sit page-aligned in its address space; where it does
 * not, the subregions are rendered one by one as before.
 *
 * Finding patterns is an opt-in because an interleave section is not RAM
 * to the listeners that map guest RAM for a device outside QEMU (vhost,
 * vhost-vdpa, vfio, the remote proxy): they skip it, with a warning
 * (memory_listener_skips_section()), where they mapped each alias before.
 * The container's owner knows whether its range must reach those devices.
 */
#define MEMORY_INTERLEAVE_MIN_ALIASES 64

/*
 * Which regions an interleave may serve as RAM: one rule for the
 * coalescer, hw/cxl and the stitched mapping.
 *
 * Every route needs writable, volatile-or-persistent RAM that is not a
 * device's BAR: a read-only or ROM target (memory-backend-file,readonly=on)
 * would hand a writable host pointer to a read-only mapping, so it stays
 * on whatever served it before (the MMIO decode for CXL, the aliases one
 * by one for a container).  The targets of one interleave must agree on
 * persistence, so that the range can say which it is.  Persistent targets
 * are fine on the sections and stitched routes, which write the target's
 * own pages.  On the shadow route a copy written back later loses what a
 * crash catches in between, which persistent memory promises not to: the
 * route's user decides (hw/cxl: only when asked for explicitly).  The
 * stitched route also needs each target in a file mapped shared.
 */
typedef enum MemoryInterleaveRoute {
    MEMORY_INTERLEAVE_ROUTE_SECTIONS,   /* per-chunk translation (dispatch) */
    MEMORY_INTERLEAVE_ROUTE_STITCHED,   /* one host mapping (KVM, x-stitched) */
    MEMORY_INTERLEAVE_ROUTE_SHADOW,     /* a copy, written back (hw/cxl) */
} MemoryInterleaveRoute;

/* May @mr be the target of an interleave served by @route?  Else why not. */
bool memory_interleave_target_ok(MemoryRegion *mr,
                                 MemoryInterleaveRoute route, Error **errp);

/* memory_interleave_target_ok() for every entry, and agreement between them */
bool memory_interleave_targets_ok(const MemoryInterleave *il,
                                  MemoryInterleaveRoute route, Error **errp);

/* Give @mr an interleave (a reference is taken), or none with NULL. */
void memory_region_set_interleave(MemoryRegion *mr,
                                  MemoryInterleave *il);

/*
 * Let @container's subregions be rendered as one interleave when they
 * form a repeating pattern of RAM aliases (above), or not (the default).
 */
void memory_region_set_interleave_aliases(MemoryRegion *container,
                                          bool on);

/*
 * Mark @mr, RAM, as a write-back copy of memory that lives elsewhere (the
 * CXL write-back shadow): only writes QEMU's dirty log sees reach where
 * the bytes belong.
 */
void memory_region_set_write_back_copy(MemoryRegion *mr);

/*
 * The rule for memory listeners that map guest RAM for a device outside
 * QEMU (vhost, vhost-vdpa, vfio, the remote proxy): such a device cannot
 * be given an interleave section (not RAM, one range over many targets),
 * nor a write-back copy (its writes there would bypass the dirty log and
 * never be written back).  Returns true if @section is either; the first
 * time for each listener @who and region, warns that the device cannot
 * reach that range of guest memory.
 */
bool memory_listener_skips_section(const char *who,
                                   MemoryRegionSection *section);

/* The interleave that serves @mr, explicit or found in its subregions. */
MemoryInterleave *memory_region_get_interleave(MemoryRegion *mr);

/* @container's subregions changed: forget the pattern found in them. */
void memory_region_interleave_invalidate(MemoryRegion *container);

/* @mr is being finalized. */
void memory_region_interleave_finalize(MemoryRegion *mr);

/*
 * Whether the range a region served through an interleave renders is
 * non-volatile: its targets' (they agree), for dump and the listeners.
 */
bool memory_region_interleave_nonvolatile(MemoryRegion *mr);

/*
 * memory_region_set_dirty() on a region served through an interleave (a
 * listener that logs the window's range, vhost say): the bytes are the
 * targets', so the targets' pages become dirty, chunk by chunk.
 */
void memory_region_interleave_set_dirty(MemoryRegion *mr,
                                        uint64_t addr, uint64_t size);

/*
 * Dirty logging a region served through an interleave needs: what its
 * targets need (the pages written are theirs).  0 for other regions.
 */
uint8_t memory_region_interleave_dirty_log_mask(MemoryRegion *mr);

/*
 * One host mapping per window (system/memory-interleave-host.c)
 *
 * An accelerator that maps guest memory itself (KVM: one memslot per
 * range) cannot use the per-chunk translation.  For it the window is
 * stitched into one contiguous host mapping: each chunk is mapped
 * MAP_SHARED | MAP_FIXED from its target's file at the target offset, so
 * every byte still lives in the target's own backend, and accesses
 * through either mapping see the same memory.  Possible when every
 * target is a shared, file-backed RAM region (memory-backend-memfd, or
 * memory-backend-file with share=on), the chunk is a multiple of the
 * host page and of each target's page size, and vm.max_map_count leaves
 * room for one mapping per run of chunks.
 */

typedef struct MemoryInterleaveHost MemoryInterleaveHost;

/**
 * memory_interleave_host_get: the window's stitched host mapping
 *
 * @il: the descriptor
 * @errp: error object
 *
 * One mapping per descriptor: built by the first get, shared by the
 * later ones.  Each holder (a KVM slot over it, the RAM region of a
 * stitched piece, a routing pass that found the mapping possible) holds
 * a reference; the last memory_interleave_host_unref() unmaps it at
 * once, so that the mapping of a layout that is gone does not linger.
 * (Under KVM, a reprogrammed window's new mapping is built before the
 * old slot goes, so both briefly count against vm.max_map_count.)  The
 * mapping holds a reference to @il.  Called with the BQL held.
 *
 * Returns: a new reference, or NULL with @errp set saying why the
 * mapping cannot be built (and what to change, for vm.max_map_count).
 */
MemoryInterleaveHost *memory_interleave_host_get(MemoryInterleave *il,
                                                 Error **errp);

/*
 * One more reference, and drop one; NULL is a no-op.  Any thread: the
 * last reference may go when an I/O thread unmaps a DMA buffer in a
 * region over the mapping.
 */
MemoryInterleaveHost *memory_interleave_host_ref(MemoryInterleaveHost *h);
void memory_interleave_host_unref(MemoryInterleaveHost *h);

/* The mapping's first byte: window offset 0.  @il->size bytes follow. */
void *memory_interleave_host_ptr(const MemoryInterleaveHost *h);

/* The descriptor the mapping follows. */
const MemoryInterleave *memory_interleave_host_layout(
    const MemoryInterleaveHost *h);

/**
 * memory_interleave_host_set_dirty: dirty the target pages of a range of
 * the mapping
 *
 * @h: the mapping
 * @start: where in the mapping bit 0 is, host page aligned
 * @bitmap: one bit per host page, as KVM logs them
 * @nb_pages: bits in @bitmap
 */
void memory_interleave_host_set_dirty(const MemoryInterleaveHost *h,
                                      const void *start,
                                      const unsigned long *bitmap,
                                      uint64_t nb_pages);

#endif
