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
#include "hw/pci/pci_bridge.h"
#include "hw/pci/pci_host.h"
#include "trace.h"

/* Pieces of one window that may be RAM at the same time */
#define CXL_FMW_MAX_RAM_RANGES 8

/*
 * Chunks probed to find the period: two periods of the largest pattern
 * a descriptor may hold, so that every entry's stride is seen.
 */
#define CXL_FMW_PROBE_CHUNKS (2 * MEMORY_INTERLEAVE_MAX_ENTRIES)

/* Random offsets checked per piece after the first and last periods */
#define CXL_FMW_CHECK_SAMPLES 64

/* How a piece of a window is served */
typedef enum CXLFMWPieceKind {
    CXL_FMW_PIECE_SECTIONS,    /* interleave sections, per-chunk translation */
    CXL_FMW_PIECE_STITCHED,    /* one RAM region over the stitched mapping */
    CXL_FMW_PIECE_SHADOW,      /* a write-back shadow (sub-page granules) */
} CXLFMWPieceKind;

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

typedef struct CXLFMWRamRange {
    hwaddr offset;             /* in the window */
    uint64_t size;
    MemoryInterleave *il;      /* reference held */
    CXLFMWPieceKind kind;
    /* under KVM, sections: the stitched mapping KVM's slot will use */
    MemoryInterleaveHost *host;
} CXLFMWRamRange;

struct CXLFMWRouting {
    MemoryRegion io;           /* the MMIO decode, whole window */
    MemoryRegion ram[CXL_FMW_MAX_RAM_RANGES];
    /* set: cur[i] is served by this RAM region over its stitched mapping */
    struct CXLFMWStitched *stitched[CXL_FMW_MAX_RAM_RANGES];
    /* set: cur[i] is served by this shadow */
    CXLFMWShadow *shadow[CXL_FMW_MAX_RAM_RANGES];
    CXLFMWRamRange cur[CXL_FMW_MAX_RAM_RANGES];
    unsigned nb_cur;
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
};

/* Where the decode sends one window offset */
typedef struct CXLFMWTarget {
    MemoryRegion *mr;          /* a device backend's RAM region */
    uint64_t offset;           /* in @mr */
} CXLFMWTarget;

/*
 * The MMIO decode of window offset @off, as a backend and an offset in it.
 * False where an access would not reach static, enabled RAM: unassigned,
 * dynamic capacity, media disabled, or the device @gone being removed.
 */
static bool cxl_fmw_probe(CXLFixedWindow *fw, hwaddr off, PCIDevice *gone,
                          CXLFMWTarget *t)
{
    PCIDevice *d = cxl_cfmws_find_device(fw, off);
    CXLType3Dev *ct3d;
    AddressSpace *as;
    uint64_t dpa;

    if (!d || d == gone) {
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
                             const MemoryInterleave *il, uint64_t off,
                             PCIDevice *gone)
{
    CXLFMWTarget t;
    uint64_t toff, len = 1;
    unsigned e;

    if (!cxl_fmw_probe(fw, start + off, gone, &t)) {
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
                          const MemoryInterleave *il, PCIDevice *gone)
{
    uint64_t nchunks = il->size / il->chunk;
    uint64_t head = MIN(nchunks, 2 * (uint64_t)il->nb_entries);
    uint64_t tail = MIN(nchunks, (uint64_t)il->nb_entries);
    /* xorshift64 seed: never zero, different per piece */
    uint64_t k, x = ((start ^ il->size) * 0x9e3779b97f4a7c15ULL) | 1;
    unsigned i;

    for (k = 0; k < head; k++) {
        if (!cxl_fmw_check_at(fw, start, il, k * il->chunk, gone) ||
            !cxl_fmw_check_at(fw, start, il, (k + 1) * il->chunk - 1, gone)) {
            return false;
        }
    }
    for (k = nchunks - tail; k < nchunks; k++) {
        if (!cxl_fmw_check_at(fw, start, il, k * il->chunk, gone) ||
            !cxl_fmw_check_at(fw, start, il, (k + 1) * il->chunk - 1, gone)) {
            return false;
        }
    }
    for (i = 0; i < CXL_FMW_CHECK_SAMPLES; i++) {
        /* xorshift: deterministic per piece, so a failure reproduces */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (!cxl_fmw_check_at(fw, start, il, x % il->size, gone)) {
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
                                        uint64_t size, PCIDevice *gone,
                                        Error **errp)
{
    /* the finest decode granule: the shadow serves what sections cannot */
    const uint64_t granule = CXL_CACHE_LINE_SIZE * 4;
    g_autofree MemoryInterleaveChunk *seq = NULL;
    CXLFMWTarget t0, t;
    uint64_t chunk, nchunks, k, n;
    MemoryInterleave *il;

    if (!cxl_fmw_probe(fw, start, gone, &t0)) {
        error_setg(errp, "not decoded to static enabled RAM");
        return NULL;
    }

    /* The chunk: where the decode first stops being contiguous. */
    for (chunk = granule; chunk < size; chunk *= 2) {
        if (!cxl_fmw_probe(fw, start + chunk, gone, &t)) {
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
        if (!cxl_fmw_probe(fw, start + k * chunk, gone, &t)) {
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
    if (!cxl_fmw_check(fw, start, il, gone)) {
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
static bool cxl_fmw_piece_kind(CXLFMWRouting *r, MemoryInterleave *il,
                               CXLFMWPieceKind *kind,
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
            *kind = r->stitch ? CXL_FMW_PIECE_STITCHED
                              : CXL_FMW_PIECE_SECTIONS;
            return true;
        }
        /* under KVM a window without a slot exits on every access */
        trace_cxl_fmw_no_stitch(error_get_pretty(local_err));
        cxl_fmw_warn_once(r, "KVM cannot map the devices directly, a "
                          "write-back shadow serves the window", local_err);
    } else if (r->policy == CXL_FMW_ROUTE_AUTO && paged) {
        return false;   /* a target no route may serve as RAM */
    }
    *kind = CXL_FMW_PIECE_SHADOW;
    return true;
}

static bool cxl_fmw_ranges_equal(const CXLFMWRamRange *a, unsigned na,
                                 const CXLFMWRamRange *b, unsigned nb)
{
    unsigned i;

    if (na != nb) {
        return false;
    }
    for (i = 0; i < na; i++) {
        if (a[i].offset != b[i].offset || a[i].size != b[i].size ||
            a[i].kind != b[i].kind ||
            !memory_interleave_equal(a[i].il, b[i].il)) {
            return false;
        }
    }
    return true;
}

/*
 * With x-stitched=on, a piece is served by a plain RAM region over the
 * interleave's stitched host mapping (system/memory-interleave.h) instead of
 * the interleave's per-chunk translation: what KVM gets anyway, offered
 * to TCG so that the mapping can be exercised by a guest that runs.
 */
/*
 * Writes through a stitched piece (vCPUs, device DMA, vhost, KVM's slot)
 * dirty the piece's own RAM block, which is not migrated (nothing
 * registers it); the bytes are the targets'.  The block logs the VGA
 * client for every writer (memory_region_set_log()), and at every
 * dirty-log sync (migration's, before it reads the targets' bitmaps;
 * after the accelerator's, whose bits it takes in) the pages written
 * since the last sync are marked dirty in the targets, page by page.
 */
static void cxl_fmw_stitched_log_sync(MemoryListener *listener,
                                      MemoryRegionSection *section)
{
    CXLFMWStitched *st = (CXLFMWStitched *)
        object_dynamic_cast(section->mr->owner, TYPE_CXL_FMW_STITCHED);
    uint64_t page = qemu_target_page_size(), off, end, span;
    const MemoryInterleave *il;
    DirtyBitmapSnapshot *snap;
    ram_addr_t base;

    if (!st || section->mr != &st->mr) {
        return;
    }
    il = memory_interleave_host_layout(st->host);
    base = memory_region_get_ram_addr(&st->mr);
    off = section->offset_within_region;
    end = off + int128_get64(section->size);
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

static MemoryListener cxl_fmw_stitched_listener = {
    .name = "cxl-fmw-stitched",
    .log_sync = cxl_fmw_stitched_log_sync,
    .priority = MEMORY_LISTENER_PRIORITY_ACCEL + 1,
};

static void cxl_fmw_stitched_listen(void)
{
    static bool listening;

    if (!listening) {
        memory_listener_register(&cxl_fmw_stitched_listener,
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
    memory_region_init_ram_ptr(&st->mr, OBJECT(st), name, il->size,
                               memory_interleave_host_ptr(host));
    /* every writer marks it; cxl_fmw_stitched_log_sync() hands it on */
    memory_region_set_log(&st->mr, true, DIRTY_MEMORY_VGA);
    return st;
}

static void cxl_fmw_stitched_finalize(Object *obj)
{
    /* the region is gone and nobody maps it: the mapping may go */
    memory_interleave_host_unref(CXL_FMW_STITCHED(obj)->host);
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

/* Drop what a piece holds. */
static void cxl_fmw_range_release(CXLFMWRamRange *p)
{
    memory_interleave_host_unref(p->host);
    memory_interleave_unref(p->il);
    p->host = NULL;
    p->il = NULL;
}

/* Take RAM piece @i of @fw out of it; inside a transaction. */
static void cxl_fmw_unmap_piece(CXLFixedWindow *fw, unsigned i)
{
    CXLFMWRouting *r = fw->routing;

    if (r->stitched[i]) {
        /* freed once the last FlatView or mapping lets go of it */
        memory_region_del_subregion(&fw->mr, &r->stitched[i]->mr);
        object_unparent(OBJECT(r->stitched[i]));
        r->stitched[i] = NULL;
    } else if (r->shadow[i]) {
        /* written back to the devices first */
        memory_region_del_subregion(&fw->mr,
                                    cxl_fmw_shadow_region(r->shadow[i]));
        cxl_fmw_shadow_retire(r->shadow[i]);
        r->shadow[i] = NULL;
    } else if (r->ram[i].container) {
        memory_region_del_subregion(&fw->mr, &r->ram[i]);
        memory_region_set_interleave(&r->ram[i], NULL);
    }
    cxl_fmw_range_release(&r->cur[i]);
    trace_cxl_fmw_ram_unmap(fw->index, r->cur[i].offset, r->cur[i].size);
}

static void cxl_fmw_unmap_pieces(CXLFixedWindow *fw)
{
    CXLFMWRouting *r = fw->routing;
    unsigned i;

    for (i = 0; i < r->nb_cur; i++) {
        cxl_fmw_unmap_piece(fw, i);
    }
    r->nb_cur = 0;
}

/*
 * Serve piece @p of @fw as its kind says.  A shadow that cannot be made
 * leaves the piece on the MMIO decode.  The piece is still recorded with
 * its kind, so that the next routing update, finding the same layout,
 * keeps it as it is rather than trying again.
 */
static void cxl_fmw_map_piece(CXLFixedWindow *fw, unsigned i,
                              const CXLFMWRamRange *p)
{
    CXLFMWRouting *r = fw->routing;
    Error *err = NULL;

    switch (p->kind) {
    case CXL_FMW_PIECE_SHADOW:
        r->shadow[i] = cxl_fmw_shadow_new(OBJECT(fw), i, p->il,
                                          r->shadow_period_ms, &err);
        if (!r->shadow[i]) {
            trace_cxl_fmw_mmio(fw->index, p->offset, p->size,
                               error_get_pretty(err));
            cxl_fmw_warn_once(r, "no write-back shadow, the MMIO decode "
                              "serves the piece", err);
            return;
        }
        memory_region_add_subregion_overlap(
            &fw->mr, p->offset, cxl_fmw_shadow_region(r->shadow[i]), 1);
        return;
    case CXL_FMW_PIECE_STITCHED:
        r->stitched[i] = cxl_fmw_stitched_new(fw, i, p->il);
        if (r->stitched[i]) {
            memory_region_add_subregion_overlap(&fw->mr, p->offset,
                                                &r->stitched[i]->mr, 1);
            return;
        }
        /* warned; interleave sections then, as before */
        /* fall through */
    case CXL_FMW_PIECE_SECTIONS:
        memory_region_set_size(&r->ram[i], p->size);
        memory_region_set_interleave(&r->ram[i], p->il);
        memory_region_add_subregion_overlap(&fw->mr, p->offset, &r->ram[i],
                                            1);
        return;
    }
}

/* Route window @fw given the sorted committed decoder boundaries @cuts. */
static void cxl_fmw_route(CXLFixedWindow *fw, GArray *cuts, PCIDevice *gone)
{
    CXLFMWRouting *r = fw->routing;
    CXLFMWRamRange next[CXL_FMW_MAX_RAM_RANGES] = {};
    unsigned nb_next = 0, i;
    hwaddr end = fw->base + fw->size, from = fw->base;

    if (!r) {
        return;
    }
    if (r->rebuild) {
        /* a new policy or way of serving: every piece is made anew */
        memory_region_transaction_begin();
        cxl_fmw_unmap_pieces(fw);
        memory_region_transaction_commit();
        r->rebuild = false;
    }
    if (r->policy != CXL_FMW_ROUTE_MMIO && fw->num_targets &&
        fw->target_hbs[0]) {
        for (i = 0; i <= cuts->len; i++) {
            hwaddr to = i < cuts->len ? g_array_index(cuts, hwaddr, i) : end;
            Error *err = NULL;
            MemoryInterleaveHost *host = NULL;
            MemoryInterleave *il;
            CXLFMWPieceKind kind;

            if (to <= from) {
                continue;
            }
            to = MIN(to, end);
            il = cxl_fmw_derive(fw, from - fw->base, to - from, gone, &err);
            if (il && nb_next == CXL_FMW_MAX_RAM_RANGES) {
                memory_interleave_unref(il);
                il = NULL;
                error_setg(&err, "too many decoded pieces in one window");
            }
            if (il && nb_next < r->nb_cur &&
                r->cur[nb_next].offset == from - fw->base &&
                r->cur[nb_next].size == to - from &&
                memory_interleave_equal(r->cur[nb_next].il, il)) {
                /*
                 * As it was: so is its kind (deciding again would stitch
                 * the window anew under KVM, on every register write)
                 */
                kind = r->cur[nb_next].kind;
            } else if (il && !cxl_fmw_piece_kind(r, il, &kind, &host,
                                                 &err)) {
                memory_interleave_unref(il);
                il = NULL;
            }
            if (il) {
                next[nb_next++] = (CXLFMWRamRange) {
                    .offset = from - fw->base, .size = to - from, .il = il,
                    .kind = kind, .host = host,
                };
            } else {
                trace_cxl_fmw_mmio(fw->index, from - fw->base, to - from,
                                   error_get_pretty(err));
                error_free(err);
            }
            from = to;
            if (from >= end) {
                break;
            }
        }
    }

    if (cxl_fmw_ranges_equal(r->cur, r->nb_cur, next, nb_next)) {
        for (i = 0; i < nb_next; i++) {
            cxl_fmw_range_release(&next[i]);
        }
        return;
    }

    /*
     * A piece that stays as it was stays mapped: a shadow serving it goes
     * on (tearing it down while vCPUs write would race their writes with
     * its last write-back), and nothing is re-rendered for it.
     */
    memory_region_transaction_begin();
    for (i = 0; i < r->nb_cur; i++) {
        if (i >= nb_next || !cxl_fmw_ranges_equal(&r->cur[i], 1, &next[i],
                                                  1)) {
            cxl_fmw_unmap_piece(fw, i);
        }
    }
    for (i = 0; i < nb_next; i++) {
        if (r->cur[i].il && i < r->nb_cur) {
            cxl_fmw_range_release(&next[i]);   /* kept as it was */
            continue;
        }
        /* the kind asked for: what the next update compares with */
        r->cur[i] = next[i];
        cxl_fmw_map_piece(fw, i, &next[i]);
        trace_cxl_fmw_ram_map(fw->index, next[i].offset, next[i].size,
                              next[i].il->nb_entries, next[i].il->chunk);
    }
    r->nb_cur = nb_next;
    memory_region_transaction_commit();
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
 * A routing pass may wait for vCPUs with the BQL dropped: the final
 * write-back of a shadow it retires waits for every vCPU to leave its
 * translation block (memory_region_snapshot_and_clear_dirty()), and so
 * does any write-back at a sync point (VM stop, a media operation).  Another
 * thread may then take the BQL and change the decode (a vCPU's decoder
 * commit, a media operation's completion).  Its update is neither run
 * inside the pass or write-back (which hold state it would change: the
 * pieces, the list of shadows being written back) nor dropped: it is
 * remembered, and run once the pass or the last write-back is over.  A
 * device being removed in between has left the bus by then: the later
 * pass does not find it.
 */
static bool cxl_routing_busy, cxl_routing_pending;

void cxl_fmws_update_routing(PCIDevice *gone)
{
    g_autoptr(GArray) cuts = NULL;
    GSList *windows, *it;

    if (cxl_routing_busy || cxl_fmws_shadows_syncing()) {
        cxl_routing_pending = true;
        trace_cxl_fmw_routing_deferred();
        return;
    }
    do {
        cxl_routing_pending = false;
        windows = cxl_fmws_get_all_sorted();
        if (!windows) {
            return;
        }
        cxl_routing_busy = true;
        cuts = g_array_new(false, false, sizeof(hwaddr));
        object_child_foreach_recursive(object_get_root(), cxl_fmw_collect,
                                       cuts);
        g_array_sort(cuts, cxl_fmw_cmp_hwaddr);
        for (it = windows; it; it = it->next) {
            cxl_fmw_route(CXL_FMW(it->data), cuts, gone);
        }
        g_slist_free(windows);
        g_clear_pointer(&cuts, g_array_unref);
        cxl_routing_busy = false;
        /* @gone is still on the bus until we return: keep leaving it out */
        /* a write-back elsewhere still waits: it runs the next pass */
    } while (cxl_routing_pending && !cxl_fmws_shadows_syncing());
}

void cxl_fmws_routing_resume(void)
{
    if (cxl_routing_pending && !cxl_routing_busy &&
        !cxl_fmws_shadows_syncing()) {
        cxl_fmws_update_routing(NULL);
    }
}

/*
 * A new policy or way of serving: the pieces are made anew.  The guest
 * did not ask for it and may be writing: its vCPUs are paused, so that
 * the last write-back of a shadow sees every write.
 */
static void cxl_fmw_reroute(CXLFixedWindow *fw)
{
    bool running = runstate_is_running();

    if (running) {
        pause_all_vcpus();
    }
    /* in a routing pass, which may be deferred (cxl_fmws_update_routing) */
    fw->routing->rebuild = true;
    cxl_fmws_update_routing(NULL);
    if (running) {
        resume_all_vcpus();
    }
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

    fw->routing = r;
    r->policy = CXL_FMW_ROUTE_AUTO;
    r->index = fw->index;
    memory_region_init(&fw->mr, OBJECT(fw), "cxl-fixed-memory-region",
                       fw->size);
    memory_region_init_io(&r->io, OBJECT(fw), ops, fw,
                          "cxl-fixed-memory-region.mmio", fw->size);
    memory_region_add_subregion(&fw->mr, 0, &r->io);
    for (i = 0; i < CXL_FMW_MAX_RAM_RANGES; i++) {
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
