/*
 * CXL fixed memory windows served as RAM once their decoders commit
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * A CXL fixed memory window (CFMW) is decoded by cfmws_ops: every access
 * walks the host bridge, switch and endpoint HDM decoders to find a
 * type-3 device and a DPA.  That decode is the reference.  Whenever
 * something it depends on changes, the window is cut at every committed
 * decoder boundary, and for each piece we probe the decode over a few
 * periods, derive the interleave it implements (chunk, entries: backend
 * and DPA, stride per period), check the descriptor against the decode
 * again, and overlay the piece with a region served through that
 * interleave: RAM in each device's own backend.  Pieces that cannot be RAM
 * (granule below the target page, dynamic capacity, media disabled,
 * decoders that do not form a periodic layout) keep the MMIO decode.
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qemu/rcu.h"
#include "system/address-spaces.h"
#include "system/ramblock.h"
#include "system/physmem.h"
#include "qom/object.h"
#include "system/memory-interleave.h"
#include "exec/target_page.h"
#include "system/hostmem.h"
#include "system/memory.h"
#include "system/kvm.h"
#include "system/cpus.h"
#include "system/runstate.h"
#include "hw/cxl/cxl.h"
#include "hw/cxl/cxl_host.h"
#include "hw/cxl/cxl_interleave.h"
#include "hw/cxl/cxl_shadow.h"
#include "hw/cxl/cxl_xor.h"
#include "hw/pci/pci_bridge.h"
#include "block/block.h"
#include "hw/core/cpu.h"
#include "hw/pci/pci_host.h"
#include "trace.h"

/* Pieces of one window that may be RAM at the same time */
#define CXL_FMW_MAX_PIECES 8

/*
 * Chunks probed to find the period: two periods of the largest pattern
 * a descriptor may hold, so that every entry's stride is seen.
 */
#define CXL_FMW_PROBE_CHUNKS (2 * MEMORY_INTERLEAVE_MAX_ENTRIES)

/* Random offsets checked per piece after the first and last periods */
#define CXL_FMW_CHECK_SAMPLES 64

/* How often retired route state is looked at until nothing holds it */
#define CXL_FMW_RETIRE_POLL_MS 10

/* The window's policy: the ram-route property */
typedef enum CXLFMWRoutePolicy {
    CXL_FMW_ROUTE_AUTO,        /* sections, stitched under KVM, else shadow */
    CXL_FMW_ROUTE_SHADOW,      /* a shadow for every piece */
    CXL_FMW_ROUTE_MMIO,        /* the MMIO decode only */
} CXLFMWRoutePolicy;

static const char *const cxl_fmw_route_names[] = {
    [CXL_FMW_ROUTE_AUTO] = "auto",
    [CXL_FMW_ROUTE_SHADOW] = "shadow",
    [CXL_FMW_ROUTE_MMIO] = "mmio",
};

/*
 * A piece of a window: a range whose committed decoders form one
 * interleave, and what serves it.  A piece is what it is (range,
 * descriptor, route), not where it sits in the array: a routing pass
 * keeps every piece it finds again, in its slot, with its region and
 * its shadow, whatever happens to the others (docs/devel/cxl-interleave.rst).
 */
typedef struct CXLFMWPiece {
    hwaddr offset;             /* in the window */
    uint64_t size;
    MemoryInterleave *il;      /* reference held; NULL: the slot is free */
    MemoryInterleaveRoute route;   /* the route the policy chose */
    /* under KVM, sections: the stitched mapping KVM's slot will use */
    MemoryInterleaveHost *host;
    /*
     * What serves it: the slot's sections region, a stitched piece or a
     * shadow; none of them where the route could not be made (the MMIO
     * decode serves it, and the next pass does not try again).
     */
    bool sections;
    struct CXLFMWStitched *stitched;
    CXLShadow *shadow;
} CXLFMWPiece;

struct CXLFMWRouting {
    MemoryRegion io;           /* the MMIO decode, whole window */
    MemoryRegion ram[CXL_FMW_MAX_PIECES];  /* per slot: interleave sections */
    CXLFMWPiece piece[CXL_FMW_MAX_PIECES]; /* by slot */
    CXLFMWRoutePolicy policy;  /* ram-route property (x-ram: auto/mmio) */
    bool stitch;               /* x-stitched property */
    uint32_t shadow_period_ms; /* x-shadow-period-ms property */
    bool rebuild;              /* policy changed: the next pass starts over */
    int index;                 /* the window's, for messages */
    GHashTable *warned;        /* reasons already given (cxl_fmw_warn_once) */
};

/*
 * A stitched piece: the owner of a RAM region over an interleave's
 * stitched host mapping.  Whoever holds the region (a FlatView, until RCU
 * readers are done with it; an address_space_map() in flight) holds this
 * object, and the mapping lives until the object is finalized.
 */
#define TYPE_CXL_FMW_STITCHED "x-cxl-fmw-stitched"
OBJECT_DECLARE_SIMPLE_TYPE(CXLFMWStitched, CXL_FMW_STITCHED)

struct CXLFMWStitched {
    Object parent_obj;
    MemoryRegion mr;
    MemoryInterleaveHost *host;    /* reference held */
    MemoryInterleave *il;          /* reference held, and on its targets */
};

/* Where the decode sends one window offset */
typedef struct CXLFMWTarget {
    MemoryRegion *mr;          /* a device backend's RAM region */
    uint64_t offset;           /* in @mr */
} CXLFMWTarget;

/*
 * The MMIO decode of window offset @off, as a backend and an offset in it.
 * False where an access would not reach static, enabled RAM: unassigned,
 * dynamic capacity or media disabled.
 */
static bool cxl_fmw_probe(CXLFixedWindow *fw, hwaddr off, CXLFMWTarget *t)
{
    PCIDevice *d = cxl_cfmws_find_device(fw, off);
    CXLType3Dev *ct3d;
    AddressSpace *as;
    uint64_t dpa;

    if (!d) {
        return false;
    }
    ct3d = CXL_TYPE3(d);
    if (cxl_dev_media_disabled(&ct3d->cxl_dstate) ||
        cxl_type3_hpa_to_as_and_dpa(ct3d, fw->base + off, 1, &as, &dpa)) {
        return false;
    }
    if (ct3d->hostvmem && as == &ct3d->hostvmem_as) {
        t->mr = host_memory_backend_get_memory(ct3d->hostvmem);
    } else if (ct3d->hostpmem && as == &ct3d->hostpmem_as) {
        t->mr = host_memory_backend_get_memory(ct3d->hostpmem);
    } else {
        return false;
    }
    t->offset = dpa;
    return memory_region_is_ram(t->mr) && !memory_region_is_ram_device(t->mr)
           && dpa < memory_region_size(t->mr);
}

static bool cxl_fmw_target_eq(const CXLFMWTarget *a, const CXLFMWTarget *b,
                              uint64_t delta)
{
    return a->mr == b->mr && a->offset + delta == b->offset;
}

/* Does the descriptor agree with the decode at piece offset @off? */
static bool cxl_fmw_check_at(CXLFixedWindow *fw, hwaddr start,
                             const MemoryInterleave *il, uint64_t off)
{
    CXLFMWTarget t;
    uint64_t toff, len = 1;
    unsigned e;

    if (!cxl_fmw_probe(fw, start + off, &t)) {
        return false;
    }
    e = memory_interleave_translate(il, off, &toff, &len);
    return t.mr == il->entries[e].target && t.offset == toff;
}

/*
 * Check @il against the decode: both ends of every chunk in the first two
 * periods and in the last period, and random offsets in between.
 */
static bool cxl_fmw_check(CXLFixedWindow *fw, hwaddr start,
                          const MemoryInterleave *il)
{
    uint64_t nchunks = il->size / il->chunk;
    uint64_t head = MIN(nchunks, 2 * (uint64_t)il->nb_entries);
    uint64_t tail = MIN(nchunks, (uint64_t)il->nb_entries);
    /* xorshift64 seed: never zero, different per piece */
    uint64_t k, x = ((start ^ il->size) * 0x9e3779b97f4a7c15ULL) | 1;
    unsigned i;

    for (k = 0; k < head; k++) {
        if (!cxl_fmw_check_at(fw, start, il, k * il->chunk) ||
            !cxl_fmw_check_at(fw, start, il, (k + 1) * il->chunk - 1)) {
            return false;
        }
    }
    for (k = nchunks - tail; k < nchunks; k++) {
        if (!cxl_fmw_check_at(fw, start, il, k * il->chunk) ||
            !cxl_fmw_check_at(fw, start, il, (k + 1) * il->chunk - 1)) {
            return false;
        }
    }
    for (i = 0; i < CXL_FMW_CHECK_SAMPLES; i++) {
        /* xorshift: deterministic per piece, so a failure reproduces */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (!cxl_fmw_check_at(fw, start, il, x % il->size)) {
            return false;
        }
    }
    return true;
}

/*
 * Derive the interleave that the decode implements over the window piece
 * [@start, @start + @size), or NULL and why not.
 */
static MemoryInterleave *cxl_fmw_derive(CXLFixedWindow *fw, hwaddr start,
                                        uint64_t size, Error **errp)
{
    /* the finest decode granule: the shadow serves what sections cannot */
    const uint64_t granule = CXL_CACHE_LINE_SIZE * 4;
    g_autofree MemoryInterleaveChunk *seq = NULL;
    CXLFMWTarget t0, t;
    uint64_t chunk, nchunks, k, n;
    MemoryInterleave *il;

    if (cxl_fmw_is_xor(fw) && fw->num_targets > 1) {
        /* its order repeats far beyond a descriptor's period (rule 43) */
        error_setg(errp, "XOR interleave arithmetic is not served as RAM "
                   "yet");
        return NULL;
    }
    if (!cxl_fmw_probe(fw, start, &t0)) {
        error_setg(errp, "not decoded to static enabled RAM");
        return NULL;
    }

    /* The chunk: where the decode first stops being contiguous. */
    for (chunk = granule; chunk < size; chunk *= 2) {
        if (!cxl_fmw_probe(fw, start + chunk, &t)) {
            error_setg(errp, "not decoded to static enabled RAM");
            return NULL;
        }
        if (!cxl_fmw_target_eq(&t0, &t, chunk)) {
            break;
        }
    }
    chunk = MIN(chunk, size);
    if (size % chunk) {
        error_setg(errp, "piece is not a whole number of chunks");
        return NULL;
    }
    nchunks = size / chunk;

    /* Where each of the first chunks goes, and the period they follow. */
    n = MIN(nchunks, CXL_FMW_PROBE_CHUNKS);
    seq = g_new(MemoryInterleaveChunk, n);
    for (k = 0; k < n; k++) {
        if (!cxl_fmw_probe(fw, start + k * chunk, &t)) {
            error_setg(errp, "not decoded to static enabled RAM");
            return NULL;
        }
        seq[k] = (MemoryInterleaveChunk) {
            .target = t.mr, .target_size = memory_region_size(t.mr),
            .offset = t.offset,
        };
    }
    il = memory_interleave_find(size, chunk, seq, n, granule, errp);
    if (!il) {
        return NULL;
    }
    if (!cxl_fmw_check(fw, start, il)) {
        memory_interleave_unref(il);
        error_setg(errp, "derived interleave disagrees with the decode");
        return NULL;
    }
    return il;
}

/*
 * Say @what once per window and reason (@err, freed; its text up to its
 * details, which change from one commit to the next).
 */
static void cxl_fmw_warn_once(CXLFMWRouting *r, const char *what, Error *err)
{
    const char *why = error_get_pretty(err);
    char *key = g_strndup(why, strcspn(why, ";"));

    if (!r->warned) {
        r->warned = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                          NULL);
    }
    if (g_hash_table_add(r->warned, key)) {
        warn_report("CXL window %d: %s: %s", r->index, what, why);
    }
    error_free(err);
}

/*
 * How the ram-route policy serves a piece with interleave @il, or false
 * (and why) for the MMIO decode.  Interleave sections need every chunk
 * on whole target pages; under KVM they also need the stitched mapping
 * (KVM's slot), which the shadow replaces where it cannot be built.
 */
static bool cxl_fmw_piece_route(CXLFMWRouting *r, MemoryInterleave *il,
                                MemoryInterleaveRoute *route,
                                MemoryInterleaveHost **host, Error **errp)
{
    uint64_t page = qemu_target_page_size();
    bool paged = !(il->chunk % page);
    unsigned e;

    for (e = 0; e < il->nb_entries; e++) {
        paged = paged && !(il->entries[e].base % page) &&
                !(il->entries[e].stride % page);
    }
    if (r->policy == CXL_FMW_ROUTE_AUTO && paged &&
        memory_interleave_targets_ok(il, MEMORY_INTERLEAVE_ROUTE_SECTIONS,
                                     errp)) {
        Error *local_err = NULL;

        /* the mapping is kept with the piece, for KVM's slot */
        if (kvm_enabled() && !r->stitch) {
            *host = memory_interleave_host_get(il, &local_err);
        }
        if (!kvm_enabled() || r->stitch || *host) {
            *route = r->stitch ? MEMORY_INTERLEAVE_ROUTE_STITCHED
                               : MEMORY_INTERLEAVE_ROUTE_SECTIONS;
            return true;
        }
        /* under KVM a window without a slot exits on every access */
        trace_cxl_fmw_no_stitch(error_get_pretty(local_err));
        cxl_fmw_warn_once(r, "KVM cannot map the devices directly, a "
                          "write-back shadow serves the window", local_err);
    } else if (r->policy == CXL_FMW_ROUTE_AUTO && paged) {
        return false;   /* a target no route may serve as RAM */
    }
    /*
     * A write-back copy loses, if QEMU crashes, what persistent memory
     * promises to keep: only where the user asked for it.
     */
    if (il->entries[0].target->nonvolatile) {
        if (r->policy != CXL_FMW_ROUTE_SHADOW) {
            error_setg(errp, "persistent memory below a page granule is not "
                       "shadowed unless ram-route=shadow asks for it");
            cxl_fmw_warn_once(r, "the MMIO decode serves the piece",
                              error_copy(*errp));
            return false;
        }
        Error *loss = NULL;

        error_setg(&loss, "if QEMU crashes, the writes made since the last "
                   "write-back (20 ms by default) never reach the backends");
        cxl_fmw_warn_once(r, "persistent memory served through a write-back "
                          "shadow (ram-route=shadow)", loss);
    }
    *route = MEMORY_INTERLEAVE_ROUTE_SHADOW;
    return true;
}

/* Is @a the piece @b: same range, same descriptor, same route? */
static bool cxl_fmw_piece_same(const CXLFMWPiece *a, const CXLFMWPiece *b)
{
    return a->offset == b->offset && a->size == b->size &&
           a->route == b->route && memory_interleave_equal(a->il, b->il);
}

/*
 * With x-stitched=on, a piece is served by a plain RAM region over the
 * interleave's stitched host mapping (system/memory-interleave.h) instead of
 * the interleave's per-chunk translation: what KVM gets anyway, offered
 * to TCG so that the mapping can be exercised by a guest that runs.
 *
 * Writes through a stitched piece (vCPUs, device DMA, vhost, KVM's slot)
 * dirty the piece's own RAM block, which is not migrated (nothing
 * registers it); the bytes are the targets'.  The block logs the VGA
 * client for every writer (memory_region_set_log()), and the pages
 * written are marked dirty in the targets, page by page: at every
 * dirty-log sync (migration's, before it reads the targets' bitmaps;
 * after the accelerator's, whose bits it takes in), and when the piece
 * is retired (cxl_fmw_retire()): once out of the map, and once more when
 * the last holder of its region lets go.
 */
static void cxl_fmw_stitched_hand_dirty(CXLFMWStitched *st, uint64_t off,
                                        uint64_t end)
{
    uint64_t page = qemu_target_page_size(), span;
    const MemoryInterleave *il = memory_interleave_host_layout(st->host);
    ram_addr_t base = memory_region_get_ram_addr(&st->mr);
    DirtyBitmapSnapshot *snap;

    snap = physical_memory_snapshot_and_clear_dirty(&st->mr, off, end - off,
                                                    DIRTY_MEMORY_VGA);
    for (; off < end; off += span) {
        uint64_t p;

        /* skip clean stretches whole */
        span = MIN(end - off, 512 * page);
        if (!physical_memory_snapshot_get_dirty(snap, base + off, span)) {
            continue;
        }
        for (p = off; p < off + span; p += page) {
            uint64_t target_offset, len = page;
            unsigned e;

            if (physical_memory_snapshot_get_dirty(snap, base + p, page)) {
                e = memory_interleave_translate(il, p, &target_offset, &len);
                memory_region_set_dirty(il->entries[e].target,
                                        target_offset, len);
            }
        }
    }
    g_free(snap);
}

static void cxl_fmw_stitched_log_sync(MemoryListener *listener,
                                      MemoryRegionSection *section)
{
    CXLFMWStitched *st = (CXLFMWStitched *)
        object_dynamic_cast(section->mr->owner, TYPE_CXL_FMW_STITCHED);

    if (st && section->mr == &st->mr) {
        cxl_fmw_stitched_hand_dirty(st, section->offset_within_region,
                                    section->offset_within_region +
                                    int128_get64(section->size));
    }
}

/* Retired route state (cxl_fmw_retire()) */
typedef struct CXLFMWRetiree {
    Object *obj;                /* reference held */
    void (*flush)(Object *obj); /* hands its writes to the backends */
    bool releasing;             /* its last flush is under way */
} CXLFMWRetiree;

static GPtrArray *cxl_retirees;     /* of CXLFMWRetiree */

/*
 * A retired stitched piece is in no FlatView, so no log_sync sees it:
 * what was written through it since is handed on at every global sync,
 * before migration reads the targets' bitmaps.  (A listener of its own:
 * one with log_sync is never asked for log_sync_global.)
 */
static void cxl_fmw_stitched_sync_retired(MemoryListener *listener,
                                          bool last_stage)
{
    for (guint i = 0; cxl_retirees && i < cxl_retirees->len; i++) {
        CXLFMWRetiree *rt = g_ptr_array_index(cxl_retirees, i);
        CXLFMWStitched *st = (CXLFMWStitched *)
            object_dynamic_cast(rt->obj, TYPE_CXL_FMW_STITCHED);

        if (st) {
            cxl_fmw_stitched_hand_dirty(st, 0, memory_region_size(&st->mr));
        }
    }
}

static MemoryListener cxl_fmw_stitched_listener = {
    .name = "cxl-fmw-stitched",
    .log_sync = cxl_fmw_stitched_log_sync,
    .priority = MEMORY_LISTENER_PRIORITY_ACCEL + 1,
};

static MemoryListener cxl_fmw_stitched_retired_listener = {
    .name = "cxl-fmw-stitched-retired",
    .log_sync_global = cxl_fmw_stitched_sync_retired,
    .priority = MEMORY_LISTENER_PRIORITY_ACCEL + 1,
};

static void cxl_fmw_stitched_listen(void)
{
    static bool listening;

    if (!listening) {
        memory_listener_register(&cxl_fmw_stitched_listener,
                                 &address_space_memory);
        memory_listener_register(&cxl_fmw_stitched_retired_listener,
                                 &address_space_memory);
        listening = true;
    }
}

static CXLFMWStitched *cxl_fmw_stitched_new(CXLFixedWindow *fw, unsigned i,
                                            MemoryInterleave *il)
{
    g_autofree char *name = g_strdup_printf(
        "cxl-fixed-memory-region.stitched%u", i);
    g_autofree char *child = g_strdup_printf("stitched%u", i);
    Error *err = NULL;
    CXLFMWStitched *st;
    MemoryInterleaveHost *host;

    host = memory_interleave_host_get(il, &err);
    if (!host) {
        warn_report_err(err);
        return NULL;
    }
    cxl_fmw_stitched_listen();
    st = CXL_FMW_STITCHED(object_new(TYPE_CXL_FMW_STITCHED));
    object_property_add_child(OBJECT(fw), child, OBJECT(st));
    object_unref(OBJECT(st));           /* the window holds it now */
    st->host = host;
    /* a retired one hands its dirty bits to the targets: keep them */
    st->il = memory_interleave_ref(il);
    for (unsigned e = 0; e < il->nb_entries; e++) {
        memory_region_ref(il->entries[e].target);
    }
    memory_region_init_ram_ptr(&st->mr, OBJECT(st), name, il->size,
                               memory_interleave_host_ptr(host));
    /* every writer marks it; cxl_fmw_stitched_log_sync() hands it on */
    memory_region_set_log(&st->mr, true, DIRTY_MEMORY_VGA);
    return st;
}

static void cxl_fmw_stitched_finalize(Object *obj)
{
    CXLFMWStitched *st = CXL_FMW_STITCHED(obj);

    /* the region is gone and nobody maps it: the mapping may go */
    memory_interleave_host_unref(st->host);
    for (unsigned e = 0; e < st->il->nb_entries; e++) {
        memory_region_unref(st->il->entries[e].target);
    }
    memory_interleave_unref(st->il);
}

static const TypeInfo cxl_fmw_stitched_info = {
    .name = TYPE_CXL_FMW_STITCHED,
    .parent = TYPE_OBJECT,
    .instance_size = sizeof(CXLFMWStitched),
    .instance_finalize = cxl_fmw_stitched_finalize,
};

static void cxl_fmw_stitched_register_types(void)
{
    type_register_static(&cxl_fmw_stitched_info);
}

type_init(cxl_fmw_stitched_register_types)

/*
 * Route state a routing pass took out of a window (a shadow, a stitched
 * piece), until nothing holds its region any more.  The retire protocol
 * (docs/devel/cxl-interleave.rst, "Retiring a piece"): the region leaves
 * the map; once no vCPU can use the old map and block I/O is drained,
 * what was written through it is handed to the backends
 * (cxl_fmw_retirees_flush()); and once more when the last holder of the
 * region (a FlatView until RCU readers are done with it, an
 * address_space_map() in flight, a MemoryRegionCache) lets go.  QOM
 * tells nobody when an object is down to one reference, and its finalize
 * comes too late (its RAM block goes first), so the holders are counted
 * every CXL_FMW_RETIRE_POLL_MS: the reference held here is then the only
 * one.
 */
static QEMUTimer *cxl_retire_timer;

static void cxl_fmw_flush_shadow(Object *obj)
{
    cxl_shadow_flush(cxl_shadow_from_object(obj));
}

static void cxl_fmw_flush_stitched(Object *obj)
{
    CXLFMWStitched *st = CXL_FMW_STITCHED(obj);

    cxl_fmw_stitched_hand_dirty(st, 0, memory_region_size(&st->mr));
}

static void cxl_fmw_retirees_poll(void *opaque)
{
    guint i = 0;

    while (i < cxl_retirees->len) {
        CXLFMWRetiree *rt = g_ptr_array_index(cxl_retirees, i);

        if (rt->releasing || qatomic_read(&rt->obj->ref) > 1) {
            i++;
            continue;
        }
        /*
         * Nothing but this list holds it: nothing can write it now.  It
         * stays listed until flushed, so that a sync point meanwhile (VM
         * stop) flushes it too, and returns only once that is done.
         */
        rt->releasing = true;
        rt->flush(rt->obj);     /* may drop the BQL: look again from 0 */
        g_ptr_array_remove(cxl_retirees, rt);
        object_unref(rt->obj);
        g_free(rt);
        i = 0;
    }
    if (cxl_retirees->len) {
        timer_mod(cxl_retire_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
                                    CXL_FMW_RETIRE_POLL_MS);
    }
}

/* Take @obj, whose region just left a window, into the retirees. */
static void cxl_fmw_retire(Object *obj, void (*flush)(Object *obj))
{
    CXLFMWRetiree *rt = g_new0(CXLFMWRetiree, 1);

    if (!cxl_retirees) {
        cxl_retirees = g_ptr_array_new();
        cxl_retire_timer = timer_new_ms(QEMU_CLOCK_REALTIME,
                                        cxl_fmw_retirees_poll, NULL);
    }
    rt->obj = object_ref(obj);
    rt->flush = flush;
    object_unparent(obj);
    g_ptr_array_add(cxl_retirees, rt);
    timer_mod(cxl_retire_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
                                CXL_FMW_RETIRE_POLL_MS);
}

void cxl_fmws_retirees_flush(void)
{
    g_autoptr(GPtrArray) all = NULL;
    guint i;

    if (!cxl_retirees || !cxl_retirees->len) {
        return;
    }
    /* a flush may drop the BQL: go through references of our own */
    all = g_ptr_array_new_with_free_func((GDestroyNotify)object_unref);
    for (i = 0; i < cxl_retirees->len; i++) {
        CXLFMWRetiree *rt = g_ptr_array_index(cxl_retirees, i);

        g_ptr_array_add(all, object_ref(rt->obj));
    }
    for (i = 0; i < all->len; i++) {
        Object *obj = g_ptr_array_index(all, i);

        if (object_dynamic_cast(obj, TYPE_CXL_FMW_STITCHED)) {
            cxl_fmw_flush_stitched(obj);
        } else {
            cxl_fmw_flush_shadow(obj);
        }
    }
}

/* Drop what a piece holds: the slot is free. */
static void cxl_fmw_piece_release(CXLFMWPiece *p)
{
    memory_interleave_host_unref(p->host);
    memory_interleave_unref(p->il);
    *p = (CXLFMWPiece) {};
}

/*
 * A mapped piece holds its backends: a device may leave before the pass
 * that takes its pieces away (cxl_fmws_update_routing_later()), and its
 * backends must outlive every route into them.
 */
static void cxl_fmw_piece_hold_targets(const CXLFMWPiece *p, bool hold)
{
    for (unsigned e = 0; e < p->il->nb_entries; e++) {
        if (hold) {
            memory_region_ref(p->il->entries[e].target);
        } else {
            memory_region_unref(p->il->entries[e].target);
        }
    }
}

/*
 * Take the piece in slot @s of @fw out of it, inside a transaction.
 * Returns whether route state was retired (cxl_fmw_retire()).
 */
static bool cxl_fmw_unmap_piece(CXLFixedWindow *fw, unsigned s)
{
    CXLFMWRouting *r = fw->routing;
    CXLFMWPiece *p = &r->piece[s];
    bool retired = false;

    if (p->stitched) {
        memory_region_del_subregion(&fw->mr, &p->stitched->mr);
        cxl_fmw_retire(OBJECT(p->stitched), cxl_fmw_flush_stitched);
        retired = true;
    } else if (p->shadow) {
        memory_region_del_subregion(&fw->mr,
                                    cxl_shadow_region(p->shadow));
        cxl_shadow_retire(p->shadow);
        cxl_fmw_retire(OBJECT(p->shadow), cxl_fmw_flush_shadow);
        retired = true;
    } else if (p->sections) {
        memory_region_del_subregion(&fw->mr, &r->ram[s]);
        memory_region_set_interleave(&r->ram[s], NULL);
    }
    trace_cxl_fmw_ram_unmap(fw->index, p->offset, p->size);
    cxl_fmw_piece_hold_targets(p, false);
    cxl_fmw_piece_release(p);
    return retired;
}

/*
 * Serve piece @p of @fw from slot @s as its route says, inside a
 * transaction; @p moves into the slot.  A shadow that cannot be made
 * leaves the piece on the MMIO decode, recorded with its route, so that
 * the next pass, finding the same piece, keeps it as it is rather than
 * trying again.  A stitched piece that cannot be made is served by
 * interleave sections, and recorded so.
 */
static void cxl_fmw_map_piece(CXLFixedWindow *fw, unsigned s, CXLFMWPiece *p)
{
    CXLFMWRouting *r = fw->routing;
    CXLFMWPiece *slot = &r->piece[s];
    Error *err = NULL;

    *slot = *p;
    *p = (CXLFMWPiece) {};
    cxl_fmw_piece_hold_targets(slot, true);
    trace_cxl_fmw_ram_map(fw->index, slot->offset, slot->size,
                          slot->il->nb_entries, slot->il->chunk);
    switch (slot->route) {
    case MEMORY_INTERLEAVE_ROUTE_SHADOW:
        slot->shadow = cxl_shadow_new(OBJECT(fw), s, slot->il,
                                      r->shadow_period_ms, &err);
        if (!slot->shadow) {
            trace_cxl_fmw_mmio(fw->index, slot->offset, slot->size,
                               error_get_pretty(err));
            cxl_fmw_warn_once(r, "no write-back shadow, the MMIO decode "
                              "serves the piece", err);
            return;
        }
        memory_region_add_subregion_overlap(
            &fw->mr, slot->offset, cxl_shadow_region(slot->shadow), 1);
        return;
    case MEMORY_INTERLEAVE_ROUTE_STITCHED:
        slot->stitched = cxl_fmw_stitched_new(fw, s, slot->il);
        if (slot->stitched) {
            memory_region_add_subregion_overlap(&fw->mr, slot->offset,
                                                &slot->stitched->mr, 1);
            return;
        }
        /* warned; interleave sections then, as before */
        slot->route = MEMORY_INTERLEAVE_ROUTE_SECTIONS;
        /* fall through */
    case MEMORY_INTERLEAVE_ROUTE_SECTIONS:
        memory_region_set_size(&r->ram[s], slot->size);
        memory_region_set_interleave(&r->ram[s], slot->il);
        memory_region_add_subregion_overlap(&fw->mr, slot->offset,
                                            &r->ram[s], 1);
        slot->sections = true;
        return;
    }
}

/* What one routing pass does to one window */
typedef struct CXLFMWPlan {
    CXLFixedWindow *fw;
    CXLFMWPiece next[CXL_FMW_MAX_PIECES];   /* the pieces the decode gives */
    unsigned nb_next;
    bool found[CXL_FMW_MAX_PIECES];     /* next[i] is a piece already there */
    bool stays[CXL_FMW_MAX_PIECES];     /* slot s holds one of next[] */
} CXLFMWPlan;

/*
 * The pieces of window @fw given the sorted committed decoder boundaries
 * @cuts, into @plan; and which of them are there already.
 */
static void cxl_fmw_plan(CXLFixedWindow *fw, GArray *cuts, CXLFMWPlan *plan)
{
    CXLFMWRouting *r = fw->routing;
    hwaddr end = fw->base + fw->size, from = fw->base;
    unsigned i, s;

    plan->fw = fw;
    if (r->policy != CXL_FMW_ROUTE_MMIO && fw->num_targets &&
        fw->target_hbs[0]) {
        for (i = 0; i <= cuts->len; i++) {
            hwaddr to = i < cuts->len ? g_array_index(cuts, hwaddr, i) : end;
            const CXLFMWPiece *was = NULL;
            CXLFMWPiece n;
            Error *err = NULL;
            MemoryInterleave *il;

            if (to <= from) {
                continue;
            }
            to = MIN(to, end);
            il = cxl_fmw_derive(fw, from - fw->base, to - from, &err);
            if (il && plan->nb_next == CXL_FMW_MAX_PIECES) {
                memory_interleave_unref(il);
                il = NULL;
                error_setg(&err, "too many decoded pieces in one window");
            }
            for (s = 0; il && !r->rebuild && s < CXL_FMW_MAX_PIECES; s++) {
                const CXLFMWPiece *p = &r->piece[s];

                if (p->il && p->offset == from - fw->base &&
                    p->size == to - from && memory_interleave_equal(p->il,
                                                                     il)) {
                    was = p;
                }
            }
            n = (CXLFMWPiece) {
                .offset = from - fw->base, .size = to - from, .il = il,
            };
            if (was) {
                /*
                 * As it was: so is its route (deciding again would stitch
                 * the window anew under KVM, on every register write)
                 */
                n.route = was->route;
            } else if (il && !cxl_fmw_piece_route(r, il, &n.route, &n.host,
                                                  &err)) {
                memory_interleave_unref(il);
                il = NULL;
            }
            if (il) {
                plan->next[plan->nb_next++] = n;
            } else {
                trace_cxl_fmw_mmio(fw->index, from - fw->base, to - from,
                                   error_get_pretty(err));
                if (cxl_fmw_is_xor(fw) && fw->num_targets > 1) {
                    cxl_fmw_warn_once(r, "served by the MMIO decode", err);
                } else {
                    error_free(err);
                }
            }
            from = to;
            if (from >= end) {
                break;
            }
        }
    }
    /* a piece found again stays in its slot, whatever the others do */
    for (i = 0; !r->rebuild && i < plan->nb_next; i++) {
        for (s = 0; s < CXL_FMW_MAX_PIECES; s++) {
            if (r->piece[s].il && !plan->stays[s] &&
                cxl_fmw_piece_same(&r->piece[s], &plan->next[i])) {
                plan->found[i] = plan->stays[s] = true;
                break;
            }
        }
    }
    r->rebuild = false;     /* done with: one asked for from now is owed */
}

/*
 * Pause the vCPUs, unless something else keeps them from running (a
 * stopped VM, a reset, an incoming migration): a shadow's last
 * write-back must see every vCPU write to it, and no vCPU write through
 * the next route may land between that write-back's compare and its
 * copy.  Passes run in the main thread only (cxl_fmws_routing_run()).
 */
static bool cxl_fmw_pause_vcpus(void)
{
    CPUState *cpu;

    if (!runstate_is_running()) {
        return false;
    }
    CPU_FOREACH(cpu) {
        if (!cpu->stopped) {
            pause_all_vcpus();
            return true;
        }
    }
    return false;
}

static void cxl_fmw_resume_vcpus(void);

/* Apply the routing passes' @plans: retire what went, map what came. */
static void cxl_fmws_apply(CXLFMWPlan *plans, unsigned n)
{
    bool goes = false, comes = false, shadow_goes = false;
    bool shadow_comes = false, paused, retired = false;
    unsigned w, i, s;

    for (w = 0; w < n; w++) {
        CXLFMWRouting *r = plans[w].fw->routing;

        for (s = 0; s < CXL_FMW_MAX_PIECES; s++) {
            if (r->piece[s].il && !plans[w].stays[s]) {
                goes = true;
                shadow_goes |= !!r->piece[s].shadow;
            }
        }
        for (i = 0; i < plans[w].nb_next; i++) {
            if (!plans[w].found[i]) {
                comes = true;
                shadow_comes |= plans[w].next[i].route ==
                                MEMORY_INTERLEAVE_ROUTE_SHADOW;
            }
        }
    }
    if (!goes && !comes) {
        return;
    }

    /*
     * A new shadow must not be filled before every vCPU has left a RAM
     * route that went: a store through a stale TLB entry would land in
     * the backend behind the copy.
     */
    paused = (shadow_goes || (goes && shadow_comes)) &&
             cxl_fmw_pause_vcpus();
    memory_region_transaction_begin();
    for (w = 0; w < n; w++) {
        CXLFMWRouting *r = plans[w].fw->routing;

        for (s = 0; s < CXL_FMW_MAX_PIECES; s++) {
            if (r->piece[s].il && !plans[w].stays[s]) {
                retired |= cxl_fmw_unmap_piece(plans[w].fw, s);
            }
        }
    }
    if (retired) {
        /*
         * Out of the map first: once every vCPU has left it (the
         * write-back waits for each to pass the flush this commit queued)
         * and block requests are done, what they wrote goes to the
         * backends, before any new route over the same bytes is made
         * and filled from them.
         */
        memory_region_transaction_commit();
        bdrv_drain_all();
        cxl_fmws_retirees_flush();
        memory_region_transaction_begin();
    }
    for (w = 0; w < n; w++) {
        CXLFMWRouting *r = plans[w].fw->routing;

        for (i = 0; i < plans[w].nb_next; i++) {
            if (plans[w].found[i]) {
                continue;
            }
            /* a slot is free: at most CXL_FMW_MAX_PIECES are planned */
            for (s = 0; r->piece[s].il; s++) {
                assert(s + 1 < CXL_FMW_MAX_PIECES);
            }
            cxl_fmw_map_piece(plans[w].fw, s, &plans[w].next[i]);
        }
    }
    memory_region_transaction_commit();
    if (paused) {
        cxl_fmw_resume_vcpus();
    }
}

/* Append the boundaries of @cs's committed HDM decoders to @cuts. */
static void cxl_fmw_add_cuts(GArray *cuts, CXLComponentState *cs)
{
    int hdm_inc = R_CXL_HDM_DECODER1_BASE_LO - R_CXL_HDM_DECODER0_BASE_LO;
    uint32_t *cm = cs->crb.cache_mem_registers;
    uint32_t cap = ldl_le_p(cm + R_CXL_HDM_DECODER_CAPABILITY);
    int count = cxl_decoder_count_dec(FIELD_EX32(cap,
                                                 CXL_HDM_DECODER_CAPABILITY,
                                                 DECODER_COUNT));
    int i;

    count = MIN(count, CXL_HDM_DECODER_COUNT);
    for (i = 0; i < count; i++) {
        uint32_t ctrl = ldl_le_p(cm + R_CXL_HDM_DECODER0_CTRL + i * hdm_inc);
        CXLHDMDecoderRange r = cxl_hdm_decoder_range(cm, i);
        hwaddr base = r.base, size = r.size;

        if (!FIELD_EX32(ctrl, CXL_HDM_DECODER0_CTRL, COMMITTED)) {
            continue;
        }
        g_array_append_val(cuts, base);
        if (base + size > base) {
            base += size;
            g_array_append_val(cuts, base);
        }
    }
}

static int cxl_fmw_collect(Object *obj, void *opaque)
{
    GArray *cuts = opaque;

    if (object_dynamic_cast(obj, TYPE_CXL_TYPE3)) {
        cxl_fmw_add_cuts(cuts, &CXL_TYPE3(obj)->cxl_cstate);
    } else if (object_dynamic_cast(obj, TYPE_CXL_USP)) {
        cxl_fmw_add_cuts(cuts, cxl_usp_to_cstate(CXL_USP(obj)));
    } else if (object_dynamic_cast(obj, TYPE_PXB_CXL_DEV)) {
        PXBCXLDev *pxb = PXB_CXL_DEV(obj);

        if (pxb->cxl_host_bridge) {
            CXLComponentState *cs =
                cxl_get_hb_cstate(PCI_HOST_BRIDGE(pxb->cxl_host_bridge));

            if (cs) {
                cxl_fmw_add_cuts(cuts, cs);
            }
        }
    }
    return 0;
}

static gint cxl_fmw_cmp_hwaddr(gconstpointer a, gconstpointer b)
{
    hwaddr x = *(const hwaddr *)a, y = *(const hwaddr *)b;

    return x < y ? -1 : x > y;
}

/*
 * Routing passes run in the main thread only, one at a time, never inside
 * another.  A pass may wait with the BQL dropped (for the vCPUs to pause,
 * for a retired shadow's write-back, for block I/O to drain), and another
 * thread may then take the BQL and change the decode; a vCPU may not wait
 * for the other vCPUs at all (it could wait for one that waits for it: a
 * run_on_cpu(), an exclusive section).  So cxl_fmws_update_routing() runs
 * a pass at once only from the main thread when none is under way;
 * otherwise it asks for one, and the pass under way, or a bottom half of
 * the main loop's own iteration (never inside a nested aio_poll(), a drain
 * inside a reset), runs it: passes asked for meanwhile fold into one.
 */
typedef struct CXLFMWRouter {
    QEMUBH *bh;
    QemuThread main;            /* the thread passes run in */
    bool main_known;
    QemuThread runner;          /* while @running: the thread running it */
    bool running;               /* a pass is under way */
    QemuCond ran;               /* broadcast when one ends */
    bool ran_init;
    unsigned held;              /* cxl_fmws_routing_hold() */
    bool asked;                 /* a pass is owed */
    GPtrArray *stopped;         /* vCPUs that wait for a pass to start */
    GPtrArray *ready;           /* vCPUs whose pass ran: the BH lets them go */
} CXLFMWRouter;

static CXLFMWRouter cxl_router;

static void cxl_fmws_route_all(void);

static QemuCond *cxl_fmws_routing_ran(void)
{
    if (!cxl_router.ran_init) {
        qemu_cond_init(&cxl_router.ran);
        cxl_router.ran_init = true;
    }
    return &cxl_router.ran;
}

static GPtrArray *cxl_fmws_vcpu_list(GPtrArray **list)
{
    if (!*list) {
        *list = g_ptr_array_new_with_free_func((GDestroyNotify)object_unref);
    }
    return *list;
}

/* May a pass run in this thread now?  Not in a vCPU; in the main thread. */
static bool cxl_fmws_routing_here(void)
{
    return !qemu_in_vcpu_thread() &&
           (!cxl_router.main_known || qemu_thread_is_self(&cxl_router.main));
}

static bool cxl_fmws_vcpu_waits(CPUState *cpu)
{
    return cxl_router.stopped &&
           g_ptr_array_find(cxl_router.stopped, cpu, NULL);
}

/*
 * Resume the vCPUs cxl_fmw_pause_vcpus() paused, but for those that
 * wait for a pass not yet run (resume_all_vcpus() would let them go).
 */
static void cxl_fmw_resume_vcpus(void)
{
    CPUState *cpu;

    if (!runstate_is_running()) {
        return;
    }
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, true);
    CPU_FOREACH(cpu) {
        if (!cxl_fmws_vcpu_waits(cpu)) {
            cpu_resume(cpu);
        }
    }
}

/* Run the owed passes; the vCPUs they were owed to become ready. */
static void cxl_fmws_routing_run(void)
{
    GPtrArray *ready = cxl_fmws_vcpu_list(&cxl_router.ready);

    assert(!cxl_router.running && cxl_fmws_routing_here());
    cxl_router.running = true;
    qemu_thread_get_self(&cxl_router.runner);
    while (cxl_router.asked && !cxl_router.held) {
        cxl_router.asked = false;
        /* those that asked before the pass starts see its result */
        while (cxl_router.stopped && cxl_router.stopped->len) {
            g_ptr_array_add(ready,
                            g_ptr_array_steal_index(cxl_router.stopped, 0));
        }
        cxl_fmws_route_all();
    }
    cxl_router.running = false;
    qemu_cond_broadcast(cxl_fmws_routing_ran());
    if (ready->len) {
        qemu_bh_schedule(cxl_router.bh);    /* it lets them go */
    }
}

/*
 * From the main loop's own iteration (never inside a nested aio_poll(),
 * a reset, or a pause someone else holds): the owed passes, then the
 * vCPUs whose pass has run go on.  Only here: a pass run synchronously
 * (a reset, a QMP command) leaves them stopped, as their pausers expect.
 */
static void cxl_fmws_routing_bh(void *opaque)
{
    GPtrArray *ready;

    if (cxl_router.running || cxl_router.held) {
        return;                 /* the end of either asks again */
    }
    if (cxl_router.asked) {
        cxl_fmws_routing_run();
    }
    ready = cxl_fmws_vcpu_list(&cxl_router.ready);
    while (ready->len) {
        CPUState *cpu = g_ptr_array_index(ready, 0);

        /* a vCPU unplugged meanwhile has no thread left to kick */
        if (runstate_is_running() && cpu->created) {
            cpu_resume(cpu);
        }
        /* else the VM's start resumes it with the others */
        g_ptr_array_remove_index(ready, 0);
    }
}

/* Ask for a pass from the bottom half. */
static void cxl_fmws_routing_ask(void)
{
    cxl_router.asked = true;
    qemu_bh_schedule(cxl_router.bh);
}

/*
 * The guest's own store (an uncommit, a reprogramming, a reset, a slot
 * powered off) changed the decode: this vCPU stops at the end of its
 * translation block (as cpu_stop_current() stops it: stopped only once
 * it is out) until the pass has run, so that its next stores take the
 * new route, as if the store had done it all.
 */
static void cxl_fmws_routing_ask_from_vcpu(void)
{
    g_ptr_array_add(cxl_fmws_vcpu_list(&cxl_router.stopped),
                    object_ref(OBJECT(current_cpu)));
    qatomic_set(&current_cpu->stop, true);
    cpu_exit(current_cpu);
    cxl_fmws_routing_ask();
    trace_cxl_fmw_routing_deferred();
}

void cxl_fmws_update_routing(void)
{
    if (!cxl_router.main_known) {
        return;                         /* no window: nothing to route */
    }
    if (qemu_in_vcpu_thread()) {
        cxl_fmws_routing_ask_from_vcpu();
    } else if (!cxl_fmws_routing_here()) {
        cxl_fmws_routing_ask();         /* another thread (COLO) */
    } else if (cxl_router.running || cxl_router.held) {
        cxl_router.asked = true;        /* run after it, or when released */
    } else {
        cxl_router.asked = true;
        cxl_fmws_routing_run();
    }
}

void cxl_fmws_update_routing_later(void)
{
    if (!cxl_router.main_known) {
        return;
    }
    if (qemu_in_vcpu_thread()) {
        cxl_fmws_routing_ask_from_vcpu();
    } else {
        cxl_fmws_routing_ask();
    }
}

void cxl_fmws_routing_hold(void)
{
    /* from another thread: a pass under way, its BQL dropped, ends first */
    while (cxl_router.running &&
           !qemu_thread_is_self(&cxl_router.runner)) {
        qemu_cond_wait_bql(cxl_fmws_routing_ran());
    }
    cxl_router.held++;
}

void cxl_fmws_routing_release(void)
{
    assert(cxl_router.held);
    if (!--cxl_router.held && cxl_router.asked) {
        cxl_fmws_routing_ask();
    }
}

/*
 * On VM start, before the vCPUs resume (resume_all_vcpus() would let
 * those that wait for a pass go first): the owed passes.
 */
static void cxl_fmws_routing_vm_state(void *opaque, bool running,
                                      RunState state)
{
    if (running && cxl_router.asked && !cxl_router.running &&
        !cxl_router.held && cxl_fmws_routing_here()) {
        cxl_fmws_routing_run();
    }
}

/* Once, from the main thread (the first window's init). */
static void cxl_fmws_routing_init(void)
{
    if (cxl_router.main_known) {
        return;
    }
    qemu_thread_get_self(&cxl_router.main);
    cxl_router.main_known = true;
    cxl_router.bh = aio_bh_new(iohandler_get_aio_context(),
                               cxl_fmws_routing_bh, NULL);
    qemu_add_vm_change_state_handler(cxl_fmws_routing_vm_state, NULL);
}

/* A routing pass over every window (cxl_fmws_routing_run()). */
static void cxl_fmws_route_all(void)
{
    g_autoptr(GArray) cuts = NULL;
    g_autofree CXLFMWPlan *plans = NULL;
    GSList *windows, *it;
    unsigned n, w;

    windows = cxl_fmws_get_all_sorted();
    if (!windows) {
        return;
    }
    cuts = g_array_new(false, false, sizeof(hwaddr));
    object_child_foreach_recursive(object_get_root(), cxl_fmw_collect, cuts);
    g_array_sort(cuts, cxl_fmw_cmp_hwaddr);
    n = g_slist_length(windows);
    plans = g_new0(CXLFMWPlan, n);
    for (it = windows, w = 0; it; it = it->next, w++) {
        cxl_fmw_plan(CXL_FMW(it->data), cuts, &plans[w]);
    }
    cxl_fmws_apply(plans, n);
    for (w = 0; w < n; w++) {
        for (unsigned i = 0; i < plans[w].nb_next; i++) {
            cxl_fmw_piece_release(&plans[w].next[i]);   /* kept as it was */
        }
    }
    g_slist_free(windows);
}

/*
 * A new policy or way of serving: every piece is made anew (a shadow that
 * could not be made is tried again), through the retire protocol
 * (cxl_fmws_apply() pauses the vCPUs for it).
 */
static void cxl_fmw_reroute(CXLFixedWindow *fw)
{
    fw->routing->rebuild = true;
    cxl_fmws_update_routing();
}

static char *cxl_fmw_get_route(Object *obj, Error **errp)
{
    return g_strdup(cxl_fmw_route_names[CXL_FMW(obj)->routing->policy]);
}

static void cxl_fmw_set_route(Object *obj, const char *value, Error **errp)
{
    CXLFixedWindow *fw = CXL_FMW(obj);
    unsigned i;

    for (i = 0; i < ARRAY_SIZE(cxl_fmw_route_names); i++) {
        if (!strcmp(value, cxl_fmw_route_names[i])) {
            fw->routing->policy = i;
            cxl_fmw_reroute(fw);
            return;
        }
    }
    error_setg(errp, "ram-route: '%s' is not auto, shadow or mmio", value);
}

/* x-ram: the tests' name for auto (on) and mmio (off) */
static bool cxl_fmw_get_ram(Object *obj, Error **errp)
{
    return CXL_FMW(obj)->routing->policy != CXL_FMW_ROUTE_MMIO;
}

static void cxl_fmw_set_ram(Object *obj, bool value, Error **errp)
{
    cxl_fmw_set_route(obj, value ? "auto" : "mmio", errp);
}

static bool cxl_fmw_get_stitched(Object *obj, Error **errp)
{
    return CXL_FMW(obj)->routing->stitch;
}

static void cxl_fmw_set_stitched(Object *obj, bool value, Error **errp)
{
    CXLFixedWindow *fw = CXL_FMW(obj);

    /* the pieces stay the same, how they are served changes: start over */
    fw->routing->stitch = value;
    cxl_fmw_reroute(fw);
}

void cxl_fmw_init_memory(CXLFixedWindow *fw, const MemoryRegionOps *ops)
{
    CXLFMWRouting *r = g_new0(CXLFMWRouting, 1);
    unsigned i;

    cxl_fmws_routing_init();
    fw->routing = r;
    r->policy = CXL_FMW_ROUTE_AUTO;
    r->index = fw->index;
    memory_region_init(&fw->mr, OBJECT(fw), "cxl-fixed-memory-region",
                       fw->size);
    memory_region_init_io(&r->io, OBJECT(fw), ops, fw,
                          "cxl-fixed-memory-region.mmio", fw->size);
    memory_region_add_subregion(&fw->mr, 0, &r->io);
    for (i = 0; i < CXL_FMW_MAX_PIECES; i++) {
        g_autofree char *name =
            g_strdup_printf("cxl-fixed-memory-region.ram%u", i);

        memory_region_init(&r->ram[i], OBJECT(fw), name, fw->size);
    }
    object_property_add_str(OBJECT(fw), "ram-route", cxl_fmw_get_route,
                            cxl_fmw_set_route);
    object_property_set_description(OBJECT(fw), "ram-route",
        "How committed interleaves are served: auto (as RAM: interleave "
        "sections where the granule is at least a page, a write-back "
        "shadow where it is not or where KVM cannot map the devices), "
        "shadow (a write-back shadow for every piece) or mmio (the "
        "decode only, exact at every instant, slow)");
    object_property_add_bool(OBJECT(fw), "x-ram", cxl_fmw_get_ram,
                             cxl_fmw_set_ram);
    object_property_set_description(OBJECT(fw), "x-ram",
        "Old name: on is ram-route=auto, off is ram-route=mmio");
    object_property_add_bool(OBJECT(fw), "x-stitched", cxl_fmw_get_stitched,
                             cxl_fmw_set_stitched);
    object_property_set_description(OBJECT(fw), "x-stitched",
        "Serve committed interleaves as one RAM region over a host mapping "
        "stitched from the devices' shared backends, as KVM gets them (for "
        "tests under TCG)");
    object_property_add_uint32_ptr(OBJECT(fw), "x-shadow-period-ms",
                                   &fw->routing->shadow_period_ms,
                                   OBJ_PROP_FLAG_READWRITE);
    object_property_set_description(OBJECT(fw), "x-shadow-period-ms",
        "Background write-back period of the shadows made from now on, in "
        "milliseconds (0: the default; for benchmarks)");
}
