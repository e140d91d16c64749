/*
 * CXL fixed memory windows: the write-back shadow of a sub-page interleave
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * A piece of a window whose decode switches device inside a target page
 * cannot be mapped page by page onto the devices' backends.  It is served
 * from a shadow instead: one plain RAM region over the piece, filled from
 * the backends on first touch and written back to them in the background
 * and at every sync point.  The design, and the rules this file follows,
 * are stated once in docs/devel/cxl-interleave.rst ("The write-back
 * shadow", "Shadow threads", rules 21 to 31 and 36 to 42); comments here
 * name the rule they implement.
 */

#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <poll.h>
#include "qemu/bitops.h"
#include "qemu/bitmap.h"
#include "qemu/error-report.h"
#include "qemu/madvise.h"
#include "qemu/main-loop.h"
#include "qemu/memalign.h"
#include "qemu/rcu.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "qemu/units.h"
#include "qemu/userfaultfd.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qapi/qapi-commands-cxl.h"
#include "qom/object.h"
#include "block/block.h"
#include "system/memory-interleave.h"
#include "exec/target_page.h"
#include "exec/translation-block.h"
#include "system/memory.h"
#include "system/ramblock.h"
#include "system/runstate.h"
#include "system/cpus.h"
#include "migration/misc.h"
#include "system/tcg.h"
#include "system/kvm.h"
#include "system/physmem.h"
#include "hw/cxl/cxl.h"
#include "hw/cxl/cxl_interleave.h"
#include "hw/cxl/cxl_shadow.h"
#include "hw/cxl/cxl_device.h"
#include "trace.h"

/*
 * Period of the background write-back, unless x-writeback-period-ms says
 * otherwise: a guest write reaches the backends at most a period plus a
 * copy after it is made.
 */
#define CXL_SHADOW_WRITEBACK_MS 20

/*
 * A background copy of this many bytes or more doubles the period that
 * follows it (rule 26): a guest that rewrites that much every period pays
 * for each snapshot (every vCPU leaves its translation block, every page
 * is logged again) with its bandwidth.
 */
#define CXL_SHADOW_HEAVY_BYTES (16 * MiB)

/* Pages looked at together when skipping clean parts of the bitmap */
#define CXL_SHADOW_SCAN_PAGES 512

/*
 * Pages filled by one userfaultfd answer at most: the faulting page and
 * the unfilled pages after it.  A guest that touches fresh memory does so
 * in address order (the page allocator hands out split blocks), so one
 * fault in 16 instead of every one reaches the fill thread; resident
 * memory stays within 16 pages of each page touched.
 */
#define CXL_SHADOW_FILL_PAGES 16

/*
 * Pages filled ahead of a guest that touches the shadow in address order,
 * by default.  A fault right after a filled page (the guest zeroing fresh
 * memory, a sequential copy) is answered first; then, while no other
 * fault waits, the fill thread goes on filling the next pages, so that the
 * guest's next touches find them present and the gathering runs next to
 * the guest instead of between its stores.  A guest that touches pages
 * here and there gets no read-ahead, and resident memory stays within this
 * many pages of each run of pages touched in order.
 */
#define CXL_SHADOW_FILL_AHEAD 512

#define TYPE_CXL_SHADOW "x-cxl-shadow"
OBJECT_DECLARE_SIMPLE_TYPE(CXLShadow, CXL_SHADOW)

struct CXLShadow {
    Object parent_obj;
    MemoryRegion mr;
    MemoryInterleave *il;       /* reference held; chunk may be sub-page */
    uint8_t *host;              /* the shadow's memory */
    uint8_t **target_host;      /* per entry: the target's memory */
    uint64_t page;              /* host page: unit of fill and dirty log */
    QLIST_ENTRY(CXLShadow) link;
    bool live;                  /* mapped; in cxl_shadow_list */

    /*
     * Pages that hold the backends' bytes: filled means present under
     * @fill_lock (rule 22), and only filled pages are written back (rule
     * 24).  Lock order: BQL, then @fill_lock (rule 23).
     */
    unsigned long *filled;
    QemuMutex fill_lock;

    /*
     * Filled pages whose backend bytes are file holes, of which nothing
     * but zeros was written back since ("Holes" in the docs): set by the
     * fill with @filled, cleared by a write-back of other bytes, by a
     * reload, and with @filled.
     */
    unsigned long *zero;
    int *target_fd;             /* per entry: fd whose holes are trusted */
    uint64_t *target_fd_offset; /* per entry: file offset of target byte 0 */

    /* Background write-back (rule 26) */
    QEMUBH *tick_bh;
    QLIST_ENTRY(CXLShadow) wb_link;     /* in cxl_shadow_writer.shadows */
    bool wb_registered;         /* once live (cxl_shadow_new()) */
    /* under cxl_shadow_writer.lock: */
    bool wb_live;               /* the writer looks */
    bool wb_rearm;              /* a new period, from now */
    bool wb_heavy;              /* the last copy was heavy: twice the period */
    int64_t wb_next;            /* when it looks next (realtime ms) */
    DirtyBitmapSnapshot *wb_snap;   /* for the writer to copy */
    uint32_t period_ms;         /* x-writeback-period-ms */
    uint64_t filled_lo, filled_hi;  /* pages ever filled: [lo, hi) */
    uint64_t snapshots;         /* taken by @tick_bh: x-background-snapshots */
    QemuEvent wb_idle;          /* set: the writer holds no snapshot */

    /* one write-back of this shadow at a time (rule 27) */
    bool sync_busy;
    QemuCond sync_cond;

    /*
     * Retired: what its late write-back copies (rule 37).  @wp: the
     * userfaultfd takes write-protect faults too; @armed: write-protected,
     * first writes keep pages in @pristine (page index -> bytes, under
     * @fill_lock); @flushed: the first flush is done.
     */
    bool wp;
    bool armed;
    bool flushed;
    GHashTable *pristine;

    /* lazy fill */
    int uffd;                   /* -1: filled eagerly */
    QLIST_ENTRY(CXLShadow) fill_link;   /* in cxl_shadow_filler.shadows */
    uint8_t *bounce;            /* the fill thread's CXL_SHADOW_FILL_PAGES */
    uint32_t fill_delay_ms;     /* x-fill-delay-ms: tests widen races */
    uint32_t fill_fail;         /* x-fill-fail: placements to fail (tests) */
    uint64_t fill_errors;       /* placements that failed */
    uint32_t fill_ahead;        /* x-fill-ahead-pages */
    uint32_t fill_epoch;        /* under @fill_lock: invalidations so far */
    /* fill thread only: pages to fill ahead, for invalidation @ahead_epoch */
    uint64_t ahead, ahead_end;
    uint32_t ahead_epoch;
};

static QLIST_HEAD(, CXLShadow) cxl_shadow_list =
    QLIST_HEAD_INITIALIZER(cxl_shadow_list);

/*
 * The process's two shadow threads, each serving every shadow (rules 23
 * and 26): one writer, one fill thread.  Each
 * runs while a shadow it serves exists.  Neither takes the BQL, so the
 * main thread may join them while it holds the BQL.
 */
static struct {
    QemuMutex lock;     /* the list, and each shadow's wb_* fields */
    QemuCond cond;      /* a snapshot to copy, a new period, or quit */
    QLIST_HEAD(, CXLShadow) shadows;
    QemuThread thread;
    bool quit;
} cxl_shadow_writer;

static struct {
    /* the list, @gen and @busy; how a shadow leaves it: rule 23 */
    QemuMutex lock;
    QemuCond cond;      /* @seen or @busy changed */
    QLIST_HEAD(, CXLShadow) shadows;
    unsigned gen, seen;
    CXLShadow *busy;
    int wake[2];        /* pipe: look at the list again */
    QemuThread thread;
    bool quit;
} cxl_shadow_filler;

static void cxl_shadow_gather(CXLShadow *sh, uint8_t *buf, uint64_t off,
                              uint64_t len)
{
    memory_interleave_gather(sh->il, off, len, buf, sh->target_host);
}

/* What a write-back wrote: bytes, and the runs if asked for */
typedef struct CXLShadowWritten {
    uint64_t bytes;
    GArray *runs;               /* NULL, or of CXLShadowRun */
} CXLShadowWritten;

typedef struct CXLShadowRun {
    MemoryRegion *target;
    uint64_t offset, len;
} CXLShadowRun;

static void cxl_shadow_written(const MemoryInterleave *il, unsigned e,
                               uint64_t target_offset, uint64_t len,
                               void *opaque)
{
    CXLShadowWritten *w = opaque;

    memory_region_set_dirty(il->entries[e].target, target_offset, len);
    w->bytes += len;
    if (w->runs) {
        CXLShadowRun run = {
            .target = il->entries[e].target, .offset = target_offset,
            .len = len,
        };

        g_array_append_val(w->runs, run);
    }
}

/*
 * Copy the pages @snap has dirty, among those filled, into the backends,
 * and mark the bytes written dirty there; returns the bytes of the pages
 * copied.  Needs no BQL: the targets are
 * referenced and their dirty bitmaps are set atomically.  @filled is read
 * only now, after the snapshot was taken (rule 25).
 */
static uint64_t cxl_shadow_copy_dirty(CXLShadow *sh,
                                      DirtyBitmapSnapshot *snap, GArray *runs)
{
    uint64_t size = sh->il->size, span = sh->page * CXL_SHADOW_SCAN_PAGES;
    DECLARE_BITMAP(pages, CXL_SHADOW_SCAN_PAGES);
    CXLShadowWritten written = { .runs = runs };
    uint64_t off, copied = 0;

    for (off = 0; off < size; off += span) {
        uint64_t n = MIN(span, size - off) / sh->page, i;
        DECLARE_BITMAP(zero, CXL_SHADOW_SCAN_PAGES);
        bool any = false;

        if (!memory_region_snapshot_get_dirty(&sh->mr, snap, off,
                                              n * sh->page)) {
            continue;
        }
        bitmap_zero(pages, CXL_SHADOW_SCAN_PAGES);
        bitmap_zero(zero, CXL_SHADOW_SCAN_PAGES);
        for (i = 0; i < n; i++) {
            uint64_t p = off + i * sh->page;

            if (test_bit(p / sh->page, sh->filled) &&
                memory_region_snapshot_get_dirty(&sh->mr, snap, p,
                                                 sh->page) &&
                !(sh->armed && sh->flushed &&
                  g_hash_table_contains(sh->pristine,
                                        GSIZE_TO_POINTER(p / sh->page)))) {
                set_bit(i, pages);
                if (test_bit(p / sh->page, sh->zero)) {
                    set_bit(i, zero);
                }
                any = true;
            }
        }
        if (any) {
            copied += memory_interleave_scatter(sh->il, off, sh->host + off,
                                                pages, zero, n, sh->page,
                                                sh->target_host,
                                                cxl_shadow_written, &written);
            /* pages of which bytes other than zeros went to the backends */
            for (i = find_first_bit(pages, n); i < n;
                 i = find_next_bit(pages, n, i + 1)) {
                if (!test_bit(i, zero)) {
                    clear_bit_atomic(off / sh->page + i, sh->zero);
                }
            }
        }
    }
    if (copied) {
        trace_cxl_shadow_writeback(memory_region_name(&sh->mr), copied,
                                   written.bytes);
    }
    return copied;
}

/*
 * Take @sh's write-back, waiting (BQL dropped) for one under way to
 * finish.  Write-backs run in the main thread only: a vCPU could not wait
 * for one that waits for it (a snapshot waits for every vCPU to leave its
 * translation block).
 */
static void cxl_shadow_sync_lock(CXLShadow *sh)
{
    assert(!qemu_in_vcpu_thread());
    while (sh->sync_busy) {
        qemu_cond_wait_bql(&sh->sync_cond);
    }
    sh->sync_busy = true;
}

static void cxl_shadow_sync_unlock(CXLShadow *sh)
{
    sh->sync_busy = false;
    qemu_cond_broadcast(&sh->sync_cond);
}

/*
 * Write every page dirtied since the last write-back into the backends,
 * before returning: a sync point.  Called with the BQL held.  The guest
 * may go on writing meanwhile: a page written after its bit was cleared
 * is dirty again, and copied at the next write-back.
 */
static void cxl_shadow_writeback(CXLShadow *sh)
{
    DirtyBitmapSnapshot *snap;

    cxl_shadow_sync_lock(sh);
    /* the writer's copy of older bytes must not land after ours */
    qemu_event_wait(&sh->wb_idle);
    snap = memory_region_snapshot_and_clear_dirty(&sh->mr, 0, sh->il->size,
                                                  DIRTY_MEMORY_VGA);
    cxl_shadow_copy_dirty(sh, snap, NULL);
    g_free(snap);
    cxl_shadow_sync_unlock(sh);
}

/*
 * Whether a page the shadow filled may be dirty: a hint, without the BQL.
 * Under KVM the dirty log needs a sync first (the BQL): assume so.
 */
static bool cxl_shadow_maybe_dirty(CXLShadow *sh)
{
    uint64_t lo = qatomic_read(&sh->filled_lo);
    uint64_t hi = qatomic_read(&sh->filled_hi);

    if (kvm_enabled()) {
        return true;
    }
    return lo < hi &&
           physical_memory_get_dirty(memory_region_get_ram_addr(&sh->mr) +
                                     lo * sh->page, (hi - lo) * sh->page,
                                     DIRTY_MEMORY_VGA);
}

/*
 * The writer thread, no BQL: every period of each live shadow, asks the
 * main loop for a snapshot if a page it filled may be dirty; copies the
 * snapshots it is handed, one shadow after the other.
 */
static void *cxl_shadow_writer_thread(void *opaque)
{
    CXLShadow *sh;

    rcu_register_thread();
    qemu_mutex_lock(&cxl_shadow_writer.lock);
    for (;;) {
        int64_t now = qemu_clock_get_ms(QEMU_CLOCK_REALTIME), wait = -1;
        CXLShadow *copy = NULL;

        QLIST_FOREACH(sh, &cxl_shadow_writer.shadows, wb_link) {
            if (sh->wb_snap) {
                copy = sh;
                break;
            }
        }
        if (copy) {
            DirtyBitmapSnapshot *snap = copy->wb_snap;
            uint64_t copied;

            qemu_mutex_unlock(&cxl_shadow_writer.lock);
            copied = cxl_shadow_copy_dirty(copy, snap, NULL);
            g_free(snap);
            qemu_mutex_lock(&cxl_shadow_writer.lock);
            copy->wb_heavy = copied >= CXL_SHADOW_HEAVY_BYTES;
            copy->wb_snap = NULL;
            qemu_event_set(&copy->wb_idle);
            continue;
        }
        if (cxl_shadow_writer.quit) {
            break;
        }
        QLIST_FOREACH(sh, &cxl_shadow_writer.shadows, wb_link) {
            if (!sh->wb_live) {
                continue;
            }
            if (sh->wb_rearm || !sh->wb_next) {
                sh->wb_rearm = false;
                sh->wb_next = now + MAX(sh->period_ms, 1);
            }
            if (now >= sh->wb_next) {
                /* 64 bits: a period may be 49 days, doubled */
                sh->wb_next = now + ((int64_t)MAX(sh->period_ms, 1) <<
                                     sh->wb_heavy);
                if (cxl_shadow_maybe_dirty(sh)) {
                    qemu_bh_schedule(sh->tick_bh);
                } else {
                    sh->wb_heavy = false;   /* nothing written: 20 ms again */
                }
            }
            wait = wait < 0 ? sh->wb_next - now
                            : MIN(wait, sh->wb_next - now);
        }
        if (wait < 0) {
            qemu_cond_wait(&cxl_shadow_writer.cond, &cxl_shadow_writer.lock);
        } else {
            /* in slices: a period may be 49 days, beyond an int of ms */
            qemu_cond_timedwait(&cxl_shadow_writer.cond,
                                &cxl_shadow_writer.lock, MIN(wait, 1000));
        }
    }
    qemu_mutex_unlock(&cxl_shadow_writer.lock);
    rcu_unregister_thread();
    return NULL;
}

/*
 * Serve @sh from the writer thread, which starts with the first shadow.
 * Shadows come and go under the BQL (cxl_shadow_new(), and the retire
 * poll's last reference): the thread's start and end do not race.
 */
static void cxl_shadow_writer_add(CXLShadow *sh)
{
    assert(bql_locked());
    qemu_mutex_lock(&cxl_shadow_writer.lock);
    if (QLIST_EMPTY(&cxl_shadow_writer.shadows)) {
        cxl_shadow_writer.quit = false;
        qemu_thread_create(&cxl_shadow_writer.thread, "cxl-shadow-wb",
                           cxl_shadow_writer_thread, NULL,
                           QEMU_THREAD_JOINABLE);
    }
    QLIST_INSERT_HEAD(&cxl_shadow_writer.shadows, sh, wb_link);
    sh->wb_live = true;
    sh->wb_registered = true;
    qemu_cond_signal(&cxl_shadow_writer.cond);
    qemu_mutex_unlock(&cxl_shadow_writer.lock);
}

/*
 * Take @sh, no longer live, from the writer once it copied the last
 * snapshot it was handed (none comes after: @sh is not live); the thread
 * ends with the last shadow.
 */
static void cxl_shadow_writer_remove(CXLShadow *sh)
{
    bool last;

    if (!sh->wb_registered) {
        return;
    }
    assert(bql_locked());
    qemu_event_wait(&sh->wb_idle);
    qemu_mutex_lock(&cxl_shadow_writer.lock);
    QLIST_REMOVE(sh, wb_link);
    sh->wb_registered = false;
    last = QLIST_EMPTY(&cxl_shadow_writer.shadows);
    if (last) {
        cxl_shadow_writer.quit = true;
        qemu_cond_signal(&cxl_shadow_writer.cond);
    }
    qemu_mutex_unlock(&cxl_shadow_writer.lock);
    if (last) {
        qemu_thread_join(&cxl_shadow_writer.thread);
    }
}

/*
 * Gather every filled page from the backends again, in place, where its
 * pages cannot be dropped.  Under @fill_lock, with no vCPU running.
 */
static void cxl_shadow_regather_filled(CXLShadow *sh)
{
    uint64_t pages = sh->il->size / sh->page, p;

    for (p = find_first_bit(sh->filled, pages); p < pages;
         p = find_next_bit(sh->filled, pages, p + 1)) {
        cxl_shadow_gather(sh, sh->host + p * sh->page, p * sh->page,
                          sh->page);
        clear_bit_atomic(p, sh->zero);
    }
}

/*
 * Write back, then forget what the shadow holds: the backends may have
 * changed under it (written while the VM was stopped, or by a device
 * operation).  The next access gathers each page anew.
 */
static void cxl_shadow_invalidate(CXLShadow *sh)
{
    ram_addr_t base = memory_region_get_ram_addr(&sh->mr);

    cxl_shadow_writeback(sh);
    if (sh->uffd >= 0) {
        /* anonymous memory: the pages are gone, the next touch faults */
        qemu_mutex_lock(&sh->fill_lock);
        if (!qemu_madvise(sh->host, sh->il->size, QEMU_MADV_DONTNEED)) {
            bitmap_zero(sh->filled, sh->il->size / sh->page);
            bitmap_zero(sh->zero, sh->il->size / sh->page);
        } else {
            /* the pages stay: what they hold is gathered again in place */
            cxl_shadow_regather_filled(sh);
        }
        /* and a read-ahead under way stops: its pages were dropped */
        qatomic_set(&sh->fill_epoch, sh->fill_epoch + 1);
        qemu_mutex_unlock(&sh->fill_lock);
    } else {
        cxl_shadow_gather(sh, sh->host, 0, sh->il->size);
    }
    /* translated code from the old bytes, and the copy's dirty bits */
    if (tcg_enabled()) {
        tb_invalidate_phys_range(NULL, base, base + sh->il->size - 1);
    }
    g_free(memory_region_snapshot_and_clear_dirty(&sh->mr, 0, sh->il->size,
                                                  DIRTY_MEMORY_VGA));
    trace_cxl_shadow_invalidate(memory_region_name(&sh->mr));
}

/* Background write-back: the snapshot here, the copy in the writer. */
static void cxl_shadow_tick_bh(void *opaque)
{
    CXLShadow *sh = opaque;
    DirtyBitmapSnapshot *snap;
    bool idle;

    /*
     * Routing passes and sync points run in the main thread too, but for
     * the VM state handler in the migration thread, whose write-back
     * holds sync_busy meanwhile: then the writer looks again later.
     */
    if (!sh->live) {
        return;                 /* retired since the writer asked */
    }
    qemu_mutex_lock(&cxl_shadow_writer.lock);
    idle = !sh->wb_snap && !sh->sync_busy;
    qemu_mutex_unlock(&cxl_shadow_writer.lock);
    if (idle) {
        /* waits for the vCPUs with the BQL dropped: sh stays routed */
        sh->sync_busy = true;
        snap = memory_region_snapshot_and_clear_dirty(&sh->mr, 0, sh->il->size,
                                                      DIRTY_MEMORY_VGA);
        sh->snapshots++;
        qemu_mutex_lock(&cxl_shadow_writer.lock);
        sh->wb_snap = snap;
        qemu_event_reset(&sh->wb_idle);
        qemu_cond_signal(&cxl_shadow_writer.cond);
        qemu_mutex_unlock(&cxl_shadow_writer.lock);
        cxl_shadow_sync_unlock(sh);
    }
    /* else a write-back is under way: the writer looks again */
}

/*
 * The live shadows, each referenced: a write-back drops the BQL, and a
 * routing pass already under way may retire a shadow meanwhile.
 */
static GPtrArray *cxl_shadows_live(void)
{
    GPtrArray *all = g_ptr_array_new_with_free_func(
        (GDestroyNotify)object_unref);
    CXLShadow *sh;

    QLIST_FOREACH(sh, &cxl_shadow_list, link) {
        g_ptr_array_add(all, object_ref(OBJECT(sh)));
    }
    return all;
}

/*
 * Sync points of the VM's run state.  Registered at the lowest priority:
 * on stop this runs after every device has stopped, on start before any
 * restarts.
 */
static void cxl_shadow_vm_state(void *opaque, bool running, RunState state)
{
    g_autoptr(GPtrArray) live = NULL;
    guint i;

    /* the list holds still: no pass retires a shadow until the end */
    cxl_fmws_routing_hold();
    live = cxl_shadows_live();
    if (!running) {
        /* DMA still in flight may land in a shadow: let it, then copy */
        bdrv_drain_all();
    }
    for (i = 0; i < live->len; i++) {
        CXLShadow *sh = g_ptr_array_index(live, i);

        if (!sh->live) {
            continue;       /* retired meanwhile: flushed as such */
        }
        if (running) {
            /* on start, before the vCPUs and devices run again */
            cxl_shadow_invalidate(sh);
        } else {
            cxl_shadow_writeback(sh);
        }
    }
    if (!running) {
        /* and what devices wrote through mappings of retired shadows */
        cxl_fmws_retirees_flush();
    }
    cxl_fmws_routing_release();
}

void cxl_shadows_sync(void)
{
    g_autoptr(GPtrArray) live = NULL;
    guint i;

    live = cxl_shadows_live();
    for (i = 0; i < live->len; i++) {
        CXLShadow *sh = g_ptr_array_index(live, i);

        if (sh->live) {
            cxl_shadow_writeback(sh);
        }
    }
}

/*
 * QMP cxl-sync-windows: a sync point that leaves the VM running and the
 * shadows in place (rule 28 of docs/devel/cxl-interleave.rst).
 */
void qmp_cxl_sync_windows(Error **errp)
{
    cxl_shadows_sync();
    cxl_fmws_retirees_flush();
}

void cxl_shadows_quiesce(void)
{
    CXLShadow *sh;

    /*
     * The writer never takes the BQL, and is handed a new snapshot only
     * under it: once idle, it copies nothing until the caller lets go.
     */
    QLIST_FOREACH(sh, &cxl_shadow_list, link) {
        qemu_event_wait(&sh->wb_idle);
    }
}

/* Copy the target bytes of one chunk back, page by page (fill_lock) */
static void cxl_shadow_reload_range(const MemoryInterleave *il, unsigned e,
                                    uint64_t offset, uint64_t target_offset,
                                    uint64_t len, void *opaque)
{
    CXLShadow *sh = opaque;

    /* a chunk may span pages, filled or not */
    while (len) {
        uint64_t cnt = MIN(len, QEMU_ALIGN_UP(offset + 1, sh->page) - offset);

        if (test_bit(offset / sh->page, sh->filled)) {
            memcpy(sh->host + offset, sh->target_host[e] + target_offset,
                   cnt);
            /*
             * The write-back thread may have copied the page's older
             * bytes over the operation's: the next write-back copies
             * these again (rule 42).
             */
            memory_region_set_dirty(&sh->mr, offset, cnt);
        }
        clear_bit_atomic(offset / sh->page, sh->zero);
        offset += cnt;
        target_offset += cnt;
        len -= cnt;
    }
}

/*
 * Copy the bytes at target offsets [@lo, @hi) of entry @e's target into
 * the shadow again, where the shadow has them (pages never touched are
 * gathered on first touch anyway).  Only those bytes change: the guest
 * may go on writing the rest of the same pages meanwhile.
 */
static void cxl_shadow_reload_entry(CXLShadow *sh, unsigned e,
                                    uint64_t lo, uint64_t hi)
{
    ram_addr_t base = memory_region_get_ram_addr(&sh->mr);

    qemu_mutex_lock(&sh->fill_lock);
    memory_interleave_for_each_target_range(sh->il, e, lo, hi,
                                            cxl_shadow_reload_range, sh);
    qemu_mutex_unlock(&sh->fill_lock);
    if (tcg_enabled()) {
        tb_invalidate_phys_range(NULL, base, base + sh->il->size - 1);
    }
}

void cxl_shadows_reload(MemoryRegion *target, uint64_t offset,
                        uint64_t len)
{
    CXLShadow *sh;
    unsigned e;

    QLIST_FOREACH(sh, &cxl_shadow_list, link) {
        for (e = 0; e < sh->il->nb_entries; e++) {
            if (sh->il->entries[e].target == target) {
                cxl_shadow_reload_entry(sh, e, offset, offset + len);
                trace_cxl_shadow_reload(memory_region_name(&sh->mr), e,
                                        offset, len);
            }
        }
    }
}

void cxl_shadows_reload_dpa(CXLType3Dev *ct3d, uint64_t dpa, uint64_t len)
{
    HostMemoryBackend *backends[] = { ct3d->hostvmem, ct3d->hostpmem };
    uint64_t base = 0, end = len > UINT64_MAX - dpa ? UINT64_MAX : dpa + len;

    /* the DPA space: volatile capacity first, then persistent */
    for (unsigned i = 0; i < ARRAY_SIZE(backends); i++) {
        MemoryRegion *mr;
        uint64_t size, lo, hi;

        if (!backends[i]) {
            continue;
        }
        mr = host_memory_backend_get_memory(backends[i]);
        size = memory_region_size(mr);
        lo = MAX(dpa, base);
        hi = MIN(end, base + size);
        if (lo < hi) {
            cxl_shadows_reload(mr, lo - base, hi - lo);
        }
        base += size;
    }
}

/*
 * Place @len bytes of the bounce buffer at shadow offset @off and wake the
 * threads waiting there.  A page that is there already (EEXIST: a fault
 * answered twice, or a page filled while the shadow was being dropped) is
 * skipped.  Returns 0, or the negative errno of a failure that left pages
 * out.
 */
static int cxl_shadow_place(CXLShadow *sh, uint64_t off, uint64_t len,
                            uint64_t *placed)
{
    uint64_t done = 0;

    if (qatomic_read(&sh->fill_fail)) {
        qatomic_dec(&sh->fill_fail);
        *placed = 0;
        return -ENOMEM;
    }
    while (done < len) {
        *placed = done;
        struct uffdio_copy copy = {
            .dst = (uintptr_t)sh->host + off + done,
            .src = (uintptr_t)sh->bounce + done,
            .len = len - done,
        };

        if (!ioctl(sh->uffd, UFFDIO_COPY, &copy)) {
            *placed = len;
            return 0;
        }
        if (errno != EEXIST && errno != EAGAIN) {
            return -errno;
        }
        /* copy.copy: bytes placed before the page that stopped it */
        done += (copy.copy > 0 ? copy.copy : 0) +
                (errno == EEXIST ? sh->page : 0);
    }
    *placed = len;
    return 0;
}

/*
 * @fd, if lseek(SEEK_DATA) on it may be trusted to call a range without
 * data a hole: file systems known to count dirty page-cache pages as
 * data (FUSE asks its server without writing back first, and would call
 * bytes QEMU wrote a hole), else -1.
 */
static int cxl_shadow_holes_fd(int fd)
{
    struct statfs st;

    if (fd < 0 || fstatfs(fd, &st) < 0) {
        return -1;
    }
    switch (st.f_type) {
    case TMPFS_MAGIC:
    case EXT4_SUPER_MAGIC:
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC:
        return fd;
    default:
        return -1;
    }
}

/*
 * Whether the backends hold only file holes under window bytes [@off,
 * @off + @len).  Then nothing need be read: reading a hole through the
 * mapping allocates and zeroes a page of page cache, which costs about
 * what the guest's own first touch of the page does.  Only a shared
 * mapping of a file can tell (a private one's written pages are not the
 * file's), on a file system whose lseek(SEEK_DATA) counts data still in
 * the page cache (cxl_shadow_holes_fd()).  Not while an incoming postcopy
 * runs: a page not received yet is a hole there.
 */
static bool cxl_shadow_backends_hole(CXLShadow *sh, uint64_t off,
                                     uint64_t len)
{
    const MemoryInterleave *il = sh->il;
    g_autofree uint64_t *lo = g_new(uint64_t, il->nb_entries);
    g_autofree uint64_t *hi = g_new0(uint64_t, il->nb_entries);
    unsigned e;

    if (migration_incoming_postcopy_advised()) {
        return false;
    }
    for (e = 0; e < il->nb_entries; e++) {
        lo[e] = UINT64_MAX;
    }
    while (len) {
        uint64_t toff, l = len;

        e = memory_interleave_translate(il, off, &toff, &l);
        lo[e] = MIN(lo[e], toff);
        hi[e] = MAX(hi[e], toff + l);
        off += l;
        len -= l;
    }
    for (e = 0; e < il->nb_entries; e++) {
        off_t data;

        if (lo[e] == UINT64_MAX) {
            continue;
        }
        if (sh->target_fd[e] < 0) {
            return false;
        }
        data = lseek(sh->target_fd[e], sh->target_fd_offset[e] + lo[e],
                     SEEK_DATA);
        if (data < 0 ? errno != ENXIO
                     : data < sh->target_fd_offset[e] + hi[e]) {
            return false;
        }
    }
    return true;
}

/* Keep @bytes as page @p's pristine bytes, unless kept already; fill lock */
static void cxl_shadow_keep_pristine(CXLShadow *sh, uint64_t p,
                                     const uint8_t *bytes)
{
    if (!g_hash_table_contains(sh->pristine, GSIZE_TO_POINTER(p))) {
        g_hash_table_insert(sh->pristine, GSIZE_TO_POINTER(p),
                            g_memdup2(bytes, sh->page));
    }
}

/*
 * A write to page @p of a retired, write-protected shadow: keep what it
 * holds, then let the write go on (and any other waiting there).
 */
static void cxl_shadow_wp_fault(CXLShadow *sh, uint64_t p)
{
    qemu_mutex_lock(&sh->fill_lock);
    cxl_shadow_keep_pristine(sh, p, sh->host + p * sh->page);
    qemu_mutex_unlock(&sh->fill_lock);
    /* the writer waits: try again while the kernel says so (reported) */
    while (uffd_change_protection(sh->uffd, sh->host + p * sh->page,
                                  sh->page, false, false) &&
           errno == EAGAIN) {
        g_usleep(1000);
    }
}

/*
 * Fill page @first: gather it, and the unfilled pages after it up to
 * CXL_SHADOW_FILL_PAGES and below page @limit, from the backends and
 * place them; where the backends hold only holes, place zeros and gather
 * nothing.  (Zeros, not UFFDIO_ZEROPAGE: the guest's first write to a
 * shared zero page would replace it, and the TLB flush that takes on
 * every CPU costs more than copying a page of zeros.)  Their filled bits
 * are set before the pages appear: a write the guest makes as soon as
 * they do must not be skipped by the write-back.  A page already filled
 * is there (the fault was answered twice), and is placed again for
 * nothing (EEXIST).
 */
static uint64_t cxl_shadow_fill(CXLShadow *sh, uint64_t first,
                                uint64_t limit)
{
    uint64_t off = first * sh->page, n = 1, placed;
    bool hole = false, present;
    int err;

    /* tests: the faulting thread waits longer; no lock is held meanwhile */
    if (qatomic_read(&sh->fill_delay_ms)) {
        g_usleep(qatomic_read(&sh->fill_delay_ms) * 1000);
    }
    qemu_mutex_lock(&sh->fill_lock);
    /* answered twice: the page is there, and may hold writes since */
    present = test_bit(first, sh->filled);
    if (!present) {
        while (n < CXL_SHADOW_FILL_PAGES && first + n < limit &&
               !test_bit(first + n, sh->filled)) {
            n++;
        }
        hole = cxl_shadow_backends_hole(sh, off, n * sh->page);
    }
    if (hole) {
        memset(sh->bounce, 0, n * sh->page);
    } else {
        cxl_shadow_gather(sh, sh->bounce, off, n * sh->page);
    }
    for (uint64_t i = 0; i < n; i++) {
        if (hole) {
            set_bit_atomic(first + i, sh->zero);
        }
        set_bit_atomic(first + i, sh->filled);
    }
    /* the writer looks for dirty pages among these (fill_lock: one writer) */
    if (first < sh->filled_lo) {
        qatomic_set(&sh->filled_lo, first);
    }
    if (first + n > sh->filled_hi) {
        qatomic_set(&sh->filled_hi, first + n);
    }
    err = cxl_shadow_place(sh, off, n * sh->page, &placed);
    for (uint64_t i = 0; sh->armed && !present &&
                         i < (err ? placed : n * sh->page) / sh->page; i++) {
        cxl_shadow_keep_pristine(sh, first + i, sh->bounce + i * sh->page);
    }
    if (err) {
        /* filled means present: take back the bits of what is not */
        for (uint64_t i = placed / sh->page; i < n; i++) {
            clear_bit_atomic(first + i, sh->filled);
            clear_bit_atomic(first + i, sh->zero);
        }
        if (!sh->fill_errors++) {
            error_report("CXL shadow %s: cannot fill 0x%" PRIx64 " bytes at "
                         "0x%" PRIx64 ": %s; retrying",
                         memory_region_name(&sh->mr), n * sh->page, off,
                         strerror(-err));
        }
    }
    qemu_mutex_unlock(&sh->fill_lock);
    if (err) {
        /*
         * Whoever waits there (a vCPU, a DMA) touches the pages again and
         * faults anew: the fill is tried again, a little later.
         */
        g_usleep(1000);
        uffd_wakeup(sh->uffd, sh->host + off + placed, n * sh->page - placed);
    }
    trace_cxl_shadow_fill(memory_region_name(&sh->mr), off, n, hole);
    return first + n;
}

/*
 * Answer a fault at page @p.  If the page before it is filled, the guest
 * goes through the shadow in address order: fill ahead of it from where
 * this fill ends (cxl_shadow_fill_ahead()).
 */
static void cxl_shadow_fault(CXLShadow *sh, uint64_t p)
{
    uint64_t pages = sh->il->size / sh->page;
    bool in_order = p && test_bit(p - 1, sh->filled);
    uint64_t next = cxl_shadow_fill(sh, p, pages);
    uint32_t ahead = qatomic_read(&sh->fill_ahead);

    if (in_order && ahead) {
        sh->ahead = next;
        sh->ahead_end = MIN(pages, next + ahead);
        sh->ahead_epoch = qatomic_read(&sh->fill_epoch);
    }
}

/*
 * Fill the next pages of the read-ahead that are not filled yet, up to
 * CXL_SHADOW_FILL_PAGES of them.  Returns false once nothing is left, or
 * once the shadow was invalidated since the read-ahead began.  The pages
 * come from the backends as they are now, under the fill lock, as a
 * fault's do: an invalidation that drops them after this is seen by the
 * next touch, which faults again.
 */
static bool cxl_shadow_fill_ahead(CXLShadow *sh)
{
    uint64_t p = find_next_zero_bit(sh->filled, sh->ahead_end, sh->ahead);

    /*
     * A retired shadow fills what its holders touch, no more: its region
     * may be on its way out (finalized before the shadow leaves the fill
     * thread).
     */
    if (p >= sh->ahead_end || qatomic_read(&sh->armed) ||
        !qatomic_read(&sh->live) ||
        qatomic_read(&sh->fill_epoch) != sh->ahead_epoch) {
        sh->ahead = sh->ahead_end;
        return false;
    }
    sh->ahead = cxl_shadow_fill(sh, p, sh->ahead_end);
    return sh->ahead < sh->ahead_end;
}

/* Answer the faults that wait on @sh's userfaultfd. */
static void cxl_shadow_answer(CXLShadow *sh)
{
    struct uffd_msg msg[16];
    int n, i;

    n = uffd_read_events(sh->uffd, msg, ARRAY_SIZE(msg));
    for (i = 0; i < n; i++) {
        uint64_t p = (msg[i].arg.pagefault.address - (uintptr_t)sh->host) /
                     sh->page;

        if (msg[i].event != UFFD_EVENT_PAGEFAULT) {
            continue;
        }
        if (msg[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) {
            cxl_shadow_wp_fault(sh, p);
        } else {
            cxl_shadow_fault(sh, p);
        }
    }
}

/*
 * The fill thread: answers page faults on every shadow, and fills ahead
 * while none waits.  Never takes the BQL.  Works on a shadow only as
 * @busy: the list's lock is not held meanwhile.
 */
static void *cxl_shadow_fill_thread(void *opaque)
{
    g_autofree struct pollfd *pfd = NULL;
    g_autofree CXLShadow **polled = NULL;
    unsigned n = 0, i;
    char buf[16];

    qemu_mutex_lock(&cxl_shadow_filler.lock);
    for (;;) {
        CXLShadow *sh, *ahead = NULL;
        int ret;

        if (cxl_shadow_filler.seen != cxl_shadow_filler.gen || !pfd) {
            while (read(cxl_shadow_filler.wake[0], buf, sizeof(buf)) > 0) {
                /* drained: the list is read below */
            }
            n = 0;
            QLIST_FOREACH(sh, &cxl_shadow_filler.shadows, fill_link) {
                n++;
            }
            pfd = g_renew(struct pollfd, pfd, n + 1);
            polled = g_renew(CXLShadow *, polled, n + 1);
            pfd[0] = (struct pollfd) {
                .fd = cxl_shadow_filler.wake[0], .events = POLLIN
            };
            polled[0] = NULL;
            i = 1;
            QLIST_FOREACH(sh, &cxl_shadow_filler.shadows, fill_link) {
                polled[i] = sh;
                pfd[i++] = (struct pollfd) { .fd = sh->uffd, .events = POLLIN };
            }
            cxl_shadow_filler.seen = cxl_shadow_filler.gen;
            qemu_cond_broadcast(&cxl_shadow_filler.cond);
        }
        if (cxl_shadow_filler.quit) {
            break;
        }
        for (i = 1; i <= n; i++) {
            if (polled[i]->ahead < polled[i]->ahead_end) {
                ahead = polled[i];
                break;
            }
        }
        qemu_mutex_unlock(&cxl_shadow_filler.lock);
        /* faults first: read-ahead only while none waits */
        ret = poll(pfd, n + 1, ahead ? 0 : -1);
        if (ret < 0 && errno != EINTR) {
            error_report_once("CXL shadow fill thread: poll: %s",
                              strerror(errno));
            g_usleep(1000);
        }
        qemu_mutex_lock(&cxl_shadow_filler.lock);
        if (ret < 0 || cxl_shadow_filler.seen != cxl_shadow_filler.gen) {
            continue;       /* the list changed: its shadows only */
        }
        if (ret > 0 && pfd[0].revents) {
            while (read(cxl_shadow_filler.wake[0], buf, sizeof(buf)) > 0) {
                /* a wake-up for a change taken in already */
            }
        }
        for (i = 1; i <= n && cxl_shadow_filler.seen == cxl_shadow_filler.gen;
             i++) {
            if (ret && !pfd[i].revents) {
                continue;
            }
            if (!ret && polled[i] != ahead) {
                continue;
            }
            cxl_shadow_filler.busy = polled[i];
            qemu_mutex_unlock(&cxl_shadow_filler.lock);
            if (ret) {
                cxl_shadow_answer(polled[i]);
            } else {
                cxl_shadow_fill_ahead(polled[i]);
            }
            qemu_mutex_lock(&cxl_shadow_filler.lock);
            cxl_shadow_filler.busy = NULL;
            qemu_cond_broadcast(&cxl_shadow_filler.cond);
        }
    }
    qemu_mutex_unlock(&cxl_shadow_filler.lock);
    return NULL;
}

/* Wake the fill thread: the list changed.  Under the list's lock. */
static void cxl_shadow_filler_changed(void)
{
    cxl_shadow_filler.gen++;
    if (write(cxl_shadow_filler.wake[1], "w", 1) != 1 && errno != EAGAIN) {
        error_report("CXL shadow: cannot wake the fill thread: %s",
                     strerror(errno));
    }
}

/*
 * Have the fill thread answer @sh's faults; it starts with the first.
 * Under the BQL, as cxl_shadow_writer_add().
 */
static bool cxl_shadow_filler_add(CXLShadow *sh, Error **errp)
{
    assert(bql_locked());
    qemu_mutex_lock(&cxl_shadow_filler.lock);
    if (QLIST_EMPTY(&cxl_shadow_filler.shadows)) {
        if (pipe2(cxl_shadow_filler.wake, O_CLOEXEC | O_NONBLOCK) < 0) {
            error_setg_errno(errp, errno,
                             "cannot make the fill thread's pipe");
            qemu_mutex_unlock(&cxl_shadow_filler.lock);
            return false;
        }
        cxl_shadow_filler.quit = false;
        qemu_thread_create(&cxl_shadow_filler.thread, "cxl-shadow-fill",
                           cxl_shadow_fill_thread, NULL,
                           QEMU_THREAD_JOINABLE);
    }
    QLIST_INSERT_HEAD(&cxl_shadow_filler.shadows, sh, fill_link);
    cxl_shadow_filler_changed();
    qemu_mutex_unlock(&cxl_shadow_filler.lock);
    return true;
}

/*
 * Take @sh from the fill thread, once it polls @sh's userfaultfd no more
 * and is done with @sh; the thread ends with the last shadow.
 */
static void cxl_shadow_filler_remove(CXLShadow *sh)
{
    bool last;

    assert(bql_locked());
    qemu_mutex_lock(&cxl_shadow_filler.lock);
    QLIST_REMOVE(sh, fill_link);
    last = QLIST_EMPTY(&cxl_shadow_filler.shadows);
    cxl_shadow_filler.quit = last;
    cxl_shadow_filler_changed();
    while (!last && (cxl_shadow_filler.seen != cxl_shadow_filler.gen ||
                     cxl_shadow_filler.busy == sh)) {
        qemu_cond_wait(&cxl_shadow_filler.cond, &cxl_shadow_filler.lock);
    }
    qemu_mutex_unlock(&cxl_shadow_filler.lock);
    if (last) {
        qemu_thread_join(&cxl_shadow_filler.thread);
        close(cxl_shadow_filler.wake[0]);
        close(cxl_shadow_filler.wake[1]);
    }
}

/* Fill lazily through userfaultfd, or say why not. */
static bool cxl_shadow_start_lazy(CXLShadow *sh, Error **errp)
{
    uint64_t features = 0;

    sh->wp = !uffd_query_features(&features) &&
             (features & UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    sh->uffd = uffd_create_fd(sh->wp ? UFFD_FEATURE_PAGEFAULT_FLAG_WP : 0,
                              true);
    if (sh->uffd < 0 && sh->wp) {
        sh->wp = false;
        sh->uffd = uffd_create_fd(0, true);
    }
    if (sh->uffd < 0) {
        error_setg(errp, "userfaultfd is not available");
        return false;
    }
    if (sh->wp && uffd_register_memory(sh->uffd, sh->host, sh->il->size,
                                       UFFDIO_REGISTER_MODE_MISSING |
                                       UFFDIO_REGISTER_MODE_WP, NULL)) {
        sh->wp = false;
    }
    if (!sh->wp && uffd_register_memory(sh->uffd, sh->host, sh->il->size,
                                        UFFDIO_REGISTER_MODE_MISSING, NULL)) {
        error_setg(errp, "cannot register the shadow with userfaultfd");
        uffd_close_fd(sh->uffd);
        sh->uffd = -1;
        return false;
    }
    sh->bounce = qemu_memalign(sh->page, sh->page * CXL_SHADOW_FILL_PAGES);
    if (!cxl_shadow_filler_add(sh, errp)) {
        uffd_close_fd(sh->uffd);
        qemu_vfree(sh->bounce);
        sh->uffd = -1;
        sh->wp = false;
        return false;
    }
    return true;
}

static void cxl_shadow_stop_lazy(CXLShadow *sh)
{
    if (sh->uffd < 0) {
        return;
    }
    cxl_shadow_filler_remove(sh);
    uffd_close_fd(sh->uffd);
    qemu_vfree(sh->bounce);
    sh->uffd = -1;
}

CXLShadow *cxl_shadow_new(Object *owner, unsigned index,
                          MemoryInterleave *il, uint32_t period_ms,
                          Error **errp)
{
    static bool registered;
    g_autoptr(CXLShadow) sh = NULL;
    g_autofree char *name = g_strdup_printf(
        "cxl-fixed-memory-region.shadow%u", index);
    g_autofree char *child = g_strdup_printf("shadow%u", index);
    Error *lazy_err = NULL;
    unsigned e;

    if (!memory_interleave_targets_ok(il, MEMORY_INTERLEAVE_ROUTE_SHADOW,
                                      errp)) {
        return NULL;
    }
    sh = CXL_SHADOW(object_new(TYPE_CXL_SHADOW));
    sh->page = qemu_real_host_page_size();
    if (il->size % sh->page) {
        error_setg(errp, "piece of 0x%" PRIx64 " bytes is not a whole number "
                   "of pages", il->size);
        return NULL;
    }
    /*
     * Address space only: the pages come on first touch.  Private even
     * under -machine aux-ram-share=on: MADV_DONTNEED must drop the pages
     * of anonymous memory (a shared memfd would keep them, unseen by the
     * fill, and the shadow would go on showing bytes it was told to drop).
     */
    if (!memory_region_init_ram_flags_nomigrate(&sh->mr, OBJECT(sh), name,
                                                il->size,
                                                RAM_NORESERVE | RAM_PRIVATE,
                                                errp)) {
        return NULL;
    }
    /* devices outside QEMU must not write it behind the dirty log */
    memory_region_set_write_back_copy(&sh->mr);
    sh->il = memory_interleave_ref(il);
    sh->host = memory_region_get_ram_ptr(&sh->mr);
    sh->target_host = g_new(uint8_t *, il->nb_entries);
    sh->target_fd = g_new(int, il->nb_entries);
    sh->target_fd_offset = g_new0(uint64_t, il->nb_entries);
    for (e = 0; e < il->nb_entries; e++) {
        RAMBlock *rb;
        ram_addr_t rb_offset;

        memory_region_ref(il->entries[e].target);
        sh->target_host[e] = memory_region_get_ram_ptr(il->entries[e].target);
        rb = qemu_ram_block_from_host(sh->target_host[e], false, &rb_offset);
        sh->target_fd[e] = rb && qemu_ram_is_shared(rb) ?
                           cxl_shadow_holes_fd(qemu_ram_get_fd(rb)) : -1;
        if (sh->target_fd[e] >= 0) {
            sh->target_fd_offset[e] = qemu_ram_get_fd_offset(rb) + rb_offset;
        }
    }
    /* huge pages would turn each fault into a 2 MiB gather */
    qemu_madvise(sh->host, il->size, QEMU_MADV_NOHUGEPAGE);
    sh->filled = bitmap_new(il->size / sh->page);
    sh->zero = bitmap_new(il->size / sh->page);
    /*
     * Locked memory (-overcommit mem-lock) is populated when it is mapped
     * (or on first touch, with on-fault), and its pages cannot be dropped:
     * no first touch would reach the fill, and no invalidation could drop
     * what the shadow holds.  Such a shadow is filled when made.
     */
    if (qemu_madvise(sh->host, il->size, QEMU_MADV_DONTNEED)) {
        error_setg(&lazy_err, "its pages cannot be dropped (locked memory, "
                   "-overcommit mem-lock?)");
    }
    if (lazy_err || !cxl_shadow_start_lazy(sh, &lazy_err)) {
        warn_report_once("CXL shadows are filled when made, not on first "
                         "touch: %s", error_get_pretty(lazy_err));
        error_free(lazy_err);
        cxl_shadow_gather(sh, sh->host, 0, il->size);
        bitmap_fill(sh->filled, il->size / sh->page);
        sh->filled_lo = 0;
        sh->filled_hi = il->size / sh->page;
    }
    /* a new block is all dirty: nothing is to be written back yet */
    memory_region_set_log(&sh->mr, true, DIRTY_MEMORY_VGA);
    g_free(memory_region_snapshot_and_clear_dirty(&sh->mr, 0, il->size,
                                                  DIRTY_MEMORY_VGA));

    object_property_add_child(owner, child, OBJECT(sh));
    object_unref(OBJECT(sh));           /* the owner holds it now */
    if (!registered) {
        qemu_add_vm_change_state_handler_prio(cxl_shadow_vm_state, NULL,
                                              INT_MIN / 2);
        registered = true;
    }
    QLIST_INSERT_HEAD(&cxl_shadow_list, sh, link);
    sh->live = true;
    if (period_ms) {
        sh->period_ms = period_ms;
    }
    /* the main loop's own iteration: never inside a nested aio_poll() */
    sh->tick_bh = aio_bh_new(iohandler_get_aio_context(), cxl_shadow_tick_bh,
                             sh);
    cxl_shadow_writer_add(sh);
    trace_cxl_shadow_new(name, il->size, il->chunk, sh->uffd >= 0);
    return g_steal_pointer(&sh);
}

MemoryRegion *cxl_shadow_region(CXLShadow *sh)
{
    return &sh->mr;
}

CXLShadow *cxl_shadow_from_object(Object *obj)
{
    return CXL_SHADOW(obj);
}

void cxl_shadow_retire(CXLShadow *sh)
{
    /* out of the window: cxl_shadow_flush() writes it back from now */
    qemu_mutex_lock(&cxl_shadow_writer.lock);
    sh->wb_live = false;
    qemu_mutex_unlock(&cxl_shadow_writer.lock);
    QLIST_REMOVE(sh, link);
    qatomic_set(&sh->live, false);     /* the fill thread reads it */
    /* the next route may write the backends: holes are holes no more */
    bitmap_zero(sh->zero, sh->il->size / sh->page);
    if (sh->wp) {
        qemu_mutex_lock(&sh->fill_lock);
        sh->pristine = g_hash_table_new_full(NULL, NULL, NULL, g_free);
        qatomic_set(&sh->armed, true);
        qemu_mutex_unlock(&sh->fill_lock);
        if (uffd_change_protection(sh->uffd, sh->host, sh->il->size, true,
                                   false)) {
            /* reported: whole pages then */
            qemu_mutex_lock(&sh->fill_lock);
            qatomic_set(&sh->armed, false);
            qemu_mutex_unlock(&sh->fill_lock);
        }
    }
}

/*
 * Write back what differs in the pages @sh kept pristine since it was
 * retired, byte for byte, and keep what was written as the pages' new
 * pristine bytes.  A page is copied first: a device may write it
 * meanwhile, and what it writes after the copy differs at the next
 * flush.  With @whole (the first flush, before anything else could
 * write the backends), whole pages, as differing from the backends: a
 * device that mapped a page before the retirement may have written it
 * before the page was kept.  Under @fill_lock.
 */
static void cxl_shadow_copy_pristine(CXLShadow *sh, bool whole,
                                     CXLShadowWritten *w)
{
    g_autofree uint8_t *now = qemu_memalign(sh->page, sh->page);
    GHashTableIter it;
    gpointer key, value;

    g_hash_table_iter_init(&it, sh->pristine);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        uint64_t base = GPOINTER_TO_SIZE(key) * sh->page, i = 0, j;
        uint8_t *was = value;

        memcpy(now, sh->host + base, sh->page);
        if (whole) {
            unsigned long one = 1;

            memory_interleave_scatter(sh->il, base, now, &one, NULL, 1,
                                      sh->page, sh->target_host,
                                      cxl_shadow_written, w);
            memcpy(was, now, sh->page);
            continue;
        }
        while (i < sh->page) {
            if (now[i] == was[i]) {
                i++;
                continue;
            }
            for (j = i; j < sh->page && now[j] != was[j]; j++) {
                /* the run of bytes that changed */
            }
            for (uint64_t off = base + i, len = j - i; len; ) {
                uint64_t toff, l = len;
                unsigned e = memory_interleave_translate(sh->il, off, &toff,
                                                         &l);

                memcpy(sh->target_host[e] + toff, now + (off - base), l);
                cxl_shadow_written(sh->il, e, toff, l, w);
                off += l;
                len -= l;
            }
            i = j;
        }
        memcpy(was, now, sh->page);
    }
}

/* Does live shadow @sh write to a target of @il? */
static bool cxl_shadow_shares_target(CXLShadow *sh,
                                     const MemoryInterleave *il)
{
    for (unsigned e = 0; e < sh->il->nb_entries; e++) {
        for (unsigned f = 0; f < il->nb_entries; f++) {
            if (sh->il->entries[e].target == il->entries[f].target) {
                return true;
            }
        }
    }
    return false;
}

static gint cxl_shadow_run_cmp(gconstpointer a, gconstpointer b)
{
    const CXLShadowRun *x = a, *y = b;

    if (x->target != y->target) {
        return (uintptr_t)x->target < (uintptr_t)y->target ? -1 : 1;
    }
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/*
 * Write back what was written to retired shadow @sh since its last
 * write-back: by vCPUs before they left the old map, by devices through
 * a mapping or region cache they still held.  A live shadow that writes
 * to the same backends writes back first and takes the bytes written
 * here afterwards, as a media operation's reload does, so that neither lands
 * an older copy over the other's newer bytes.  Called with the BQL held;
 * waits for the vCPUs with it dropped.
 */
void cxl_shadow_flush(CXLShadow *sh)
{
    g_autoptr(GArray) runs = g_array_new(false, false, sizeof(CXLShadowRun));
    g_autoptr(GPtrArray) live = NULL;
    DirtyBitmapSnapshot *snap;
    CXLShadow *other;
    guint i, n = 0;
    bool kept;

    assert(!sh->live);
    cxl_shadow_sync_lock(sh);
    qemu_event_wait(&sh->wb_idle);
    snap = memory_region_snapshot_and_clear_dirty(&sh->mr, 0, sh->il->size,
                                                  DIRTY_MEMORY_VGA);
    qemu_mutex_lock(&sh->fill_lock);
    kept = sh->armed && g_hash_table_size(sh->pristine);
    qemu_mutex_unlock(&sh->fill_lock);
    if (memory_region_snapshot_get_dirty(&sh->mr, snap, 0, sh->il->size) ||
        kept) {
        live = g_ptr_array_new_with_free_func((GDestroyNotify)object_unref);
        QLIST_FOREACH(other, &cxl_shadow_list, link) {
            if (cxl_shadow_shares_target(other, sh->il)) {
                g_ptr_array_add(live, object_ref(OBJECT(other)));
            }
        }
        for (i = 0; i < live->len; i++) {
            other = g_ptr_array_index(live, i);
            if (other->live) {
                cxl_shadow_writeback(other);
            }
        }
        if (sh->armed) {
            CXLShadowWritten w = { .runs = live->len ? runs : NULL };

            qemu_mutex_lock(&sh->fill_lock);
            cxl_shadow_copy_dirty(sh, snap, w.runs);
            cxl_shadow_copy_pristine(sh, !sh->flushed, &w);
            qemu_mutex_unlock(&sh->fill_lock);
        } else {
            cxl_shadow_copy_dirty(sh, snap, live->len ? runs : NULL);
        }
    }
    g_free(snap);
    sh->flushed = true;
    cxl_shadow_sync_unlock(sh);

    /* into the live shadows: each run once, adjacent runs together */
    g_array_sort(runs, cxl_shadow_run_cmp);
    for (i = 0; i < runs->len; i++) {
        CXLShadowRun *run = &g_array_index(runs, CXLShadowRun, i);
        CXLShadowRun *last = n ? &g_array_index(runs, CXLShadowRun, n - 1)
                               : NULL;

        if (last && last->target == run->target &&
            last->offset + last->len >= run->offset) {
            last->len = MAX(last->len, run->offset + run->len - last->offset);
        } else {
            g_array_index(runs, CXLShadowRun, n++) = *run;
        }
    }
    for (i = 0; i < n; i++) {
        CXLShadowRun *run = &g_array_index(runs, CXLShadowRun, i);

        cxl_shadows_reload(run->target, run->offset, run->len);
    }
}

static bool cxl_shadow_get_lazy(Object *obj, Error **errp)
{
    return CXL_SHADOW(obj)->uffd >= 0;
}

static void cxl_shadow_get_filled(Object *obj, Visitor *v,
                                  const char *name, void *opaque,
                                  Error **errp)
{
    CXLShadow *sh = CXL_SHADOW(obj);
    uint64_t n = sh->il ? bitmap_count_one(sh->filled,
                                           sh->il->size / sh->page) : 0;

    visit_type_uint64(v, name, &n, errp);
}

static void cxl_shadow_get_period(Object *obj, Visitor *v,
                                  const char *name, void *opaque,
                                  Error **errp)
{
    visit_type_uint32(v, name, &CXL_SHADOW(obj)->period_ms, errp);
}

/* A new period counts from now, not from the tick already scheduled. */
static void cxl_shadow_set_period(Object *obj, Visitor *v,
                                  const char *name, void *opaque,
                                  Error **errp)
{
    CXLShadow *sh = CXL_SHADOW(obj);
    uint32_t value;

    if (!visit_type_uint32(v, name, &value, errp)) {
        return;
    }
    if (!sh->wb_registered) {
        sh->period_ms = value;
        return;
    }
    qemu_mutex_lock(&cxl_shadow_writer.lock);
    sh->period_ms = value;
    sh->wb_rearm = true;
    qemu_cond_signal(&cxl_shadow_writer.cond);
    qemu_mutex_unlock(&cxl_shadow_writer.lock);
}

static void cxl_shadow_init(Object *obj)
{
    CXLShadow *sh = CXL_SHADOW(obj);

    sh->uffd = -1;
    qemu_mutex_init(&sh->fill_lock);
    qemu_cond_init(&sh->sync_cond);
    qemu_event_init(&sh->wb_idle, true);
    sh->filled_lo = UINT64_MAX;
    object_property_add_bool(obj, "x-lazy", cxl_shadow_get_lazy, NULL);
    object_property_set_description(obj, "x-lazy",
        "Filled on first touch through userfaultfd (else when made)");
    object_property_add(obj, "x-filled-pages", "uint64",
                        cxl_shadow_get_filled, NULL, NULL, NULL);
    object_property_set_description(obj, "x-filled-pages",
        "Pages of the shadow that hold the backends' bytes (resident)");
    sh->fill_ahead = CXL_SHADOW_FILL_AHEAD;
    object_property_add_uint32_ptr(obj, "x-fill-ahead-pages", &sh->fill_ahead,
                                   OBJ_PROP_FLAG_READWRITE);
    object_property_set_description(obj, "x-fill-ahead-pages",
        "Pages filled ahead of a guest that touches the shadow in address "
        "order (0: only the pages around each fault)");
    sh->period_ms = CXL_SHADOW_WRITEBACK_MS;
    object_property_add(obj, "x-writeback-period-ms", "uint32",
                        cxl_shadow_get_period, cxl_shadow_set_period,
                        NULL, NULL);
    object_property_set_description(obj, "x-writeback-period-ms",
        "Period of the background write-back in milliseconds (at least 1), "
        "doubled after a copy of 16 MiB or more: longer periods cost the "
        "guest less and delay the backends more");
    object_property_add_uint64_ptr(obj, "x-background-snapshots",
                                   &sh->snapshots, OBJ_PROP_FLAG_READ);
    object_property_set_description(obj, "x-background-snapshots",
        "Snapshots of the dirty log the background write-back took (each "
        "takes the BQL and waits for every vCPU): none while nothing is "
        "written");
    object_property_add_uint32_ptr(obj, "x-fill-fail", &sh->fill_fail,
                                   OBJ_PROP_FLAG_READWRITE);
    object_property_set_description(obj, "x-fill-fail",
        "Fail this many first-touch fills as if out of memory (tests: the "
        "faulting thread must be woken and the fill tried again)");
    object_property_add_uint32_ptr(obj, "x-fill-delay-ms", &sh->fill_delay_ms,
                                   OBJ_PROP_FLAG_READWRITE);
    object_property_set_description(obj, "x-fill-delay-ms",
        "Delay each first-touch fill by this many milliseconds before it "
        "starts, holding no lock (tests widen the races of a fill with the "
        "write-back this way: the faulting thread waits meanwhile)");
}

static void cxl_shadow_finalize(Object *obj)
{
    CXLShadow *sh = CXL_SHADOW(obj);
    unsigned e;

    assert(!sh->live);
    cxl_shadow_writer_remove(sh);
    if (sh->tick_bh) {
        qemu_bh_delete(sh->tick_bh);    /* the writer asks no more */
    }
    qemu_event_destroy(&sh->wb_idle);
    qemu_cond_destroy(&sh->sync_cond);
    cxl_shadow_stop_lazy(sh);
    qemu_mutex_destroy(&sh->fill_lock);
    for (e = 0; sh->il && e < sh->il->nb_entries; e++) {
        memory_region_unref(sh->il->entries[e].target);
    }
    g_free(sh->target_host);
    g_free(sh->target_fd);
    g_free(sh->target_fd_offset);
    g_free(sh->filled);
    g_free(sh->zero);
    if (sh->pristine) {
        g_hash_table_unref(sh->pristine);
    }
    memory_interleave_unref(sh->il);
}

static const TypeInfo cxl_shadow_info = {
    .name = TYPE_CXL_SHADOW,
    .parent = TYPE_OBJECT,
    .instance_size = sizeof(CXLShadow),
    .instance_init = cxl_shadow_init,
    .instance_finalize = cxl_shadow_finalize,
};

static void cxl_shadow_register_types(void)
{
    /* the two threads' state, before any shadow can be made */
    qemu_mutex_init(&cxl_shadow_writer.lock);
    qemu_cond_init(&cxl_shadow_writer.cond);
    QLIST_INIT(&cxl_shadow_writer.shadows);
    qemu_mutex_init(&cxl_shadow_filler.lock);
    qemu_cond_init(&cxl_shadow_filler.cond);
    QLIST_INIT(&cxl_shadow_filler.shadows);
    type_register_static(&cxl_shadow_info);
}

type_init(cxl_shadow_register_types)
