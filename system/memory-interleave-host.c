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
#include "qemu/cutils.h"
#include "qemu/units.h"
#include "qemu/error-report.h"
#include "qapi/error.h"
#include "exec/memory-interleave.h"
#include "system/memory.h"
#include "system/physmem.h"
#include "system/ramblock.h"
#include "trace.h"

#define MAX_MAP_COUNT_PATH "/proc/sys/vm/max_map_count"

/* Mappings left for the rest of the process after a window is stitched */
#define MAP_COUNT_HEADROOM 1024

/* A run of chunks contiguous in the window and in one target file */
typedef struct StitchRun {
    uint64_t offset;            /* in the window */
    uint64_t len;
    int fd;
    uint64_t fd_offset;
} StitchRun;

/* Where entry @e's target lives: its file and the offset of its byte 0. */
static bool target_file(const MemoryInterleave *il, unsigned e,
                        int *fd, uint64_t *fd_offset, Error **errp)
{
    MemoryRegion *mr = il->entries[e].target;
    RAMBlock *rb = mr->ram_block;
    uint64_t psize;

    if (!rb || memory_region_get_fd(mr) < 0) {
        error_setg(errp, "target %s has no file descriptor (use "
                   "memory-backend-memfd or memory-backend-file)",
                   memory_region_name(mr));
        return false;
    }
    if (!qemu_ram_is_shared(rb)) {
        error_setg(errp, "target %s is a private mapping (set share=on)",
                   memory_region_name(mr));
        return false;
    }
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

/* The window's runs, merged where one chunk continues the previous one. */
static GArray *stitch_runs(const MemoryInterleave *il, Error **errp)
{
    g_autofree int *fds = g_new(int, il->nb_entries);
    g_autofree uint64_t *fd_offsets = g_new(uint64_t, il->nb_entries);
    g_autoptr(GArray) runs = g_array_new(false, false, sizeof(StitchRun));
    uint64_t off;
    unsigned e;

    for (e = 0; e < il->nb_entries; e++) {
        if (!target_file(il, e, &fds[e], &fd_offsets[e], errp)) {
            return NULL;
        }
    }
    for (off = 0; off < il->size; off += il->chunk) {
        uint64_t target_offset, len = il->chunk;
        StitchRun *last = runs->len ?
            &g_array_index(runs, StitchRun, runs->len - 1) : NULL;
        StitchRun run;

        e = memory_interleave_translate(il, off, &target_offset, &len);
        run = (StitchRun) {
            .offset = off, .len = len, .fd = fds[e],
            .fd_offset = fd_offsets[e] + target_offset,
        };
        if (last && last->fd == run.fd &&
            last->fd_offset + last->len == run.fd_offset) {
            last->len += len;
        } else {
            g_array_append_val(runs, run);
        }
    }
    return g_steal_pointer(&runs);
}

/* Mappings this process has now, and the most it may have. */
static bool map_count(uint64_t *in_use, uint64_t *max, Error **errp)
{
    g_autofree char *maps = NULL, *limit = NULL;
    gsize len;
    const char *p;

    if (!g_file_get_contents(MAX_MAP_COUNT_PATH, &limit, NULL, NULL) ||
        qemu_strtou64(g_strchomp(limit), NULL, 10, max) < 0) {
        error_setg(errp, "cannot read the mapping limit %s",
                   MAX_MAP_COUNT_PATH);
        return false;
    }
    if (!g_file_get_contents("/proc/self/maps", &maps, &len, NULL)) {
        error_setg(errp, "cannot count this process's mappings");
        return false;
    }
    *in_use = 0;
    for (p = maps; (p = memchr(p, '\n', maps + len - p)); p++) {
        (*in_use)++;
    }
    return true;
}

void *memory_interleave_map_host(MemoryInterleave *il, Error **errp)
{
    g_autoptr(GArray) runs = NULL;
    uint64_t in_use, max, align, need;
    uint8_t *reserved, *host;
    unsigned i;

    if (il->host) {
        return il->host;
    }
    runs = stitch_runs(il, errp);
    if (!runs || !map_count(&in_use, &max, errp)) {
        return NULL;
    }
    need = in_use + runs->len + MAP_COUNT_HEADROOM;
    if (need > max) {
        error_setg(errp, "stitching a window of 0x%" PRIx64 " bytes at "
                   "granule 0x%" PRIx64 " takes %u mappings; with %" PRIu64
                   " in use, vm.max_map_count must be at least %" PRIu64
                   " (it is %" PRIu64 ")", il->size, il->chunk, runs->len,
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

    for (i = 0; i < runs->len; i++) {
        StitchRun *r = &g_array_index(runs, StitchRun, i);

        if (mmap(host + r->offset, r->len, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_FIXED, r->fd, r->fd_offset) == MAP_FAILED) {
            error_setg_errno(errp, errno, "cannot map 0x%" PRIx64 " bytes "
                             "of a target file at window offset 0x%" PRIx64,
                             r->len, r->offset);
            munmap(host, il->size);
            return NULL;
        }
    }
    il->host = host;
    trace_memory_interleave_map_host(il, host, il->size, il->chunk,
                                     runs->len);
    return host;
}

MemoryInterleave *memory_interleave_host_ref(MemoryInterleave *il)
{
    if (il) {
        assert(il->host);
        qatomic_inc(&il->host_users);
        memory_interleave_ref(il);
    }
    return il;
}

void memory_interleave_host_unref(MemoryInterleave *il)
{
    if (!il) {
        return;
    }
    assert(qatomic_read(&il->host_users));
    if (qatomic_fetch_dec(&il->host_users) == 1) {
        munmap(il->host, il->size);
        il->host = NULL;
        trace_memory_interleave_unmap_host(il);
    }
    memory_interleave_unref(il);
}

static void set_dirty_run(const MemoryInterleave *il, unsigned e,
                          uint64_t target_offset, uint64_t first,
                          uint64_t nb_pages, void *opaque)
{
    unsigned long *ones = opaque;   /* a chunk's worth of set bits */

    physical_memory_set_dirty_lebitmap(
        ones, memory_region_get_ram_addr(il->entries[e].target) +
              target_offset, nb_pages);
}

void memory_interleave_set_dirty(const MemoryInterleave *il, uint64_t offset,
                                 const unsigned long *bitmap,
                                 uint64_t nb_pages)
{
    uint64_t psize = qemu_real_host_page_size();
    g_autofree unsigned long *ones = bitmap_new(il->chunk / psize);

    bitmap_set(ones, 0, il->chunk / psize);
    memory_interleave_for_each_run(il, offset, bitmap, nb_pages, psize,
                                   set_dirty_run, ones);
}
