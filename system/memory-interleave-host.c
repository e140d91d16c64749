/*
 * One host mapping per interleave window, stitched from its targets' files
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * KVM maps guest memory through memslots, one per RAM range: a window
 * served through an interleave would need one per chunk.  Instead the
 * window gets one contiguous host mapping in which every chunk is the
 * target's own file, mapped shared at the target offset; the memslot
 * covers that mapping, and the bytes stay in each target's backend.
 */

#include "qemu/osdep.h"
#include "qemu/bitmap.h"
#include "qemu/bswap.h"
#include "qemu/cutils.h"
#include "qemu/units.h"
#include "qemu/error-report.h"
#include "qemu/lockable.h"
#include "qemu/main-loop.h"
#include "qapi/error.h"
#include "system/memory-interleave.h"
#include "system/memory.h"
#include "system/physmem.h"
#include "system/ramblock.h"
#include "trace.h"

#define MAX_MAP_COUNT_PATH "/proc/sys/vm/max_map_count"

struct MemoryInterleaveHost {
    MemoryInterleave *il;       /* reference held */
    uint8_t *ptr;
    unsigned refcnt;            /* host_lock */
};

/*
 * The live mappings, by descriptor.  The last reference may go without
 * the BQL (address_space_unmap() of a stitched region in an I/O thread
 * finalizes its owner), so the table and the counts have their own lock.
 */
static QemuMutex host_lock;
static GHashTable *host_mappings;

static void __attribute__((__constructor__)) host_lock_init(void)
{
    qemu_mutex_init(&host_lock);
    host_mappings = g_hash_table_new(NULL, NULL);
}

/* Mappings left for the rest of the process after a window is stitched */
#define MAP_COUNT_HEADROOM 1024

/* Where entry @e's target lives: its file and the offset of its byte 0. */
static bool target_file(const MemoryInterleave *il, unsigned e,
                        int *fd, uint64_t *fd_offset, Error **errp)
{
    MemoryRegion *mr = il->entries[e].target;
    RAMBlock *rb = mr->ram_block;
    uint64_t psize;

    psize = MAX(qemu_ram_pagesize(rb), qemu_real_host_page_size());
    if (il->chunk % psize || il->entries[e].base % psize ||
        il->entries[e].stride % psize) {
        error_setg(errp, "interleave granule 0x%" PRIx64 " is not a "
                   "multiple of the page size 0x%" PRIx64 " of target %s",
                   il->chunk, psize, memory_region_name(mr));
        return false;
    }
    *fd = memory_region_get_fd(mr);
    *fd_offset = qemu_ram_get_fd_offset(rb) +
                 (memory_region_get_ram_addr(mr) - rb->offset);
    return true;
}

/*
 * Mappings this process has now (counted from /proc/self/maps in a
 * fixed buffer: with stitched windows it has hundreds of thousands of
 * lines), and the most it may have.
 */
static bool map_count(uint64_t *in_use, uint64_t *max, Error **errp)
{
    g_autofree char *limit = NULL;
    char buf[16 * KiB];
    ssize_t n;
    int fd;

    if (!g_file_get_contents(MAX_MAP_COUNT_PATH, &limit, NULL, NULL) ||
        qemu_strtou64(g_strchomp(limit), NULL, 10, max) < 0) {
        error_setg(errp, "cannot read the mapping limit %s",
                   MAX_MAP_COUNT_PATH);
        return false;
    }
    fd = open("/proc/self/maps", O_RDONLY);
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot count this process's mappings");
        return false;
    }
    *in_use = 0;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        const char *p = buf;

        while ((p = memchr(p, '\n', buf + n - p))) {
            (*in_use)++;
            p++;
        }
    }
    close(fd);
    if (n < 0) {
        error_setg_errno(errp, errno, "cannot count this process's mappings");
        return false;
    }
    return true;
}

typedef struct StitchMap {
    uint8_t *host;
    const int *fds;
    Error **errp;
    bool failed;
} StitchMap;

static void stitch_run(const MemoryInterleave *il, unsigned e,
                       uint64_t offset, uint64_t len, uint64_t file_offset,
                       void *opaque)
{
    StitchMap *m = opaque;

    if (m->failed) {
        return;
    }
    if (mmap(m->host + offset, len, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_FIXED, m->fds[e], file_offset) == MAP_FAILED) {
        error_setg_errno(m->errp, errno, "cannot map 0x%" PRIx64 " bytes "
                         "of a target file at window offset 0x%" PRIx64,
                         len, offset);
        m->failed = true;
    }
}

/* Build the mapping of @il, or NULL and why not. */
static uint8_t *map_host(MemoryInterleave *il, Error **errp)
{
    g_autofree int *fds = g_new(int, il->nb_entries);
    g_autofree uint64_t *fd_offsets = g_new(uint64_t, il->nb_entries);
    uint64_t in_use, max, align, need, runs;
    uint8_t *reserved, *host;
    StitchMap m = { .errp = errp };
    unsigned e;

    /*
     * Everything is checked before anything is built, in memory and time
     * that do not grow with the window: the targets, then the number of
     * mappings against vm.max_map_count (arithmetic over one period).
     */
    if (!memory_interleave_targets_ok(il, MEMORY_INTERLEAVE_ROUTE_STITCHED,
                                      errp)) {
        return NULL;
    }
    for (e = 0; e < il->nb_entries; e++) {
        if (!target_file(il, e, &fds[e], &fd_offsets[e], errp)) {
            return NULL;
        }
    }
    runs = memory_interleave_count_runs(il, fds, fd_offsets);
    if (!map_count(&in_use, &max, errp)) {
        return NULL;
    }
    /*
     * The value named leaves MAP_COUNT_HEADROOM for the rest of the
     * process; the check, half of it, so that the process may grow a
     * little between the warning and a retry at that value.
     */
    need = in_use + runs + MAP_COUNT_HEADROOM;
    if (need - MAP_COUNT_HEADROOM / 2 > max) {
        error_setg(errp, "stitching a window of 0x%" PRIx64 " bytes at "
                   "granule 0x%" PRIx64 " takes %" PRIu64 " mappings; with %"
                   PRIu64 " in use, vm.max_map_count must be at least %"
                   PRIu64 " (it is %" PRIu64 ")", il->size, il->chunk, runs,
                   in_use, need, max);
        return NULL;
    }

    /*
     * Reserve the whole window first so that no other mapping can land in
     * it, aligned to the chunk (up to 2 MiB) so that the host may back
     * whole chunks with large pages.
     */
    align = MIN(il->chunk, 2 * MiB);
    reserved = mmap(NULL, il->size + align, PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (reserved == MAP_FAILED) {
        error_setg_errno(errp, errno, "cannot reserve 0x%" PRIx64
                         " bytes of address space for the window", il->size);
        return NULL;
    }
    host = QEMU_ALIGN_PTR_UP(reserved, align);
    if (host > reserved) {
        munmap(reserved, host - reserved);
    }
    if (reserved + align > host) {
        munmap(host + il->size, reserved + align - host);
    }

    m.host = host;
    m.fds = fds;
    memory_interleave_for_each_file_run(il, fds, fd_offsets, stitch_run, &m);
    if (m.failed) {
        munmap(host, il->size);
        return NULL;
    }
    trace_memory_interleave_map_host(il, host, il->size, il->chunk, runs);
    return host;
}

MemoryInterleaveHost *memory_interleave_host_get(MemoryInterleave *il,
                                                 Error **errp)
{
    MemoryInterleaveHost *h;
    uint8_t *ptr;

    /* the BQL: no other get builds a mapping of @il meanwhile */
    assert(bql_locked());
    WITH_QEMU_LOCK_GUARD(&host_lock) {
        h = g_hash_table_lookup(host_mappings, il);
        if (h) {
            h->refcnt++;
            return h;
        }
    }
    ptr = map_host(il, errp);
    if (!ptr) {
        return NULL;
    }
    h = g_new(MemoryInterleaveHost, 1);
    *h = (MemoryInterleaveHost) {
        .il = memory_interleave_ref(il), .ptr = ptr, .refcnt = 1,
    };
    WITH_QEMU_LOCK_GUARD(&host_lock) {
        g_hash_table_insert(host_mappings, il, h);
    }
    return h;
}

MemoryInterleaveHost *memory_interleave_host_ref(MemoryInterleaveHost *h)
{
    if (h) {
        QEMU_LOCK_GUARD(&host_lock);
        assert(h->refcnt);
        h->refcnt++;
    }
    return h;
}

void memory_interleave_host_unref(MemoryInterleaveHost *h)
{
    if (!h) {
        return;
    }
    WITH_QEMU_LOCK_GUARD(&host_lock) {
        assert(h->refcnt);
        if (--h->refcnt) {
            return;
        }
        g_hash_table_remove(host_mappings, h->il);
    }
    munmap(h->ptr, h->il->size);
    trace_memory_interleave_unmap_host(h->il);
    memory_interleave_unref(h->il);
    g_free(h);
}

void *memory_interleave_host_ptr(const MemoryInterleaveHost *h)
{
    return h->ptr;
}

const MemoryInterleave *memory_interleave_host_layout(
    const MemoryInterleaveHost *h)
{
    return h->il;
}

static void set_dirty_piece(const MemoryInterleave *il, unsigned e,
                            uint64_t target_offset, unsigned long word,
                            uint64_t nb_pages, void *opaque)
{
    /* the bitmap is little-endian, as KVM's; a swap is its own inverse */
    unsigned long le = leul_to_cpu(word);

    physical_memory_set_dirty_lebitmap(
        &le, memory_region_get_ram_addr(il->entries[e].target) +
             target_offset, nb_pages);
}

void memory_interleave_host_set_dirty(const MemoryInterleaveHost *h,
                                      const void *start,
                                      const unsigned long *bitmap,
                                      uint64_t nb_pages)
{
    uint64_t offset = (const uint8_t *)start - h->ptr;

    assert(offset + nb_pages * qemu_real_host_page_size() <= h->il->size);
    memory_interleave_for_each_dirty_piece(h->il, offset, bitmap, nb_pages,
                                           qemu_real_host_page_size(),
                                           set_dirty_piece, NULL);
}
