/*
 * Test device: DMA into guest memory the three ways devices do it
 *
 *   -device x-dma-probe-testdev,id=dma
 *
 * Set "addr" and "len", then "op" to run one operation on
 * address_space_memory, synchronously:
 *
 *   map-write    address_space_map() piece by piece, fill, unmap
 *   map-check    address_space_map() piece by piece, compare
 *   rw-write     dma_memory_write() of the whole range
 *   rw-check     dma_memory_read() of the whole range, compare
 *   cache-write  address_space_cache_init() over the range, stq_le_cached
 *   cache-check  address_space_cache_init() over the range, ldq_le_cached
 *   ldst-write   address_space_st{q,l,w,b}_le over the range, 8 bytes at a
 *                time from addr (unaligned when addr is), then the tail
 *   ldst-check   the same with address_space_ld*_le
 *   ldst-cached-write, ldst-cached-check
 *                the same through a MemoryRegionCache over the range
 *   hold-map     address_space_map() for writing, kept: the mapping a
 *                device has in flight while the guest changes the map
 *   hold-release fill the held mapping and unmap it
 *   iotlb        address_space_get_iotlb_entry() at addr: "iotlb-addr"
 *                (translated_addr) and "iotlb-mask" (addr_mask)
 *
 * With "while-running" set, an operation fails while the VM is stopped, as
 * a real device does no DMA then (a test racing a migration's final stop
 * knows whether its write happened before it).
 *
 * Every byte written or expected is the byte of the little-endian word
 * (a & ~7) ^ (seed << 56) at its own guest physical address a, so the
 * test can predict the content of any backend.  The cache operations need
 * an 8-byte aligned addr and len.  Read-only results: "pieces" (mappings
 * the map operations got), "direct" (how many of them pointed straight
 * into a RAM block rather than a bounce buffer), "max-piece" (the longest
 * mapping; for the cache operations, the length the cache covers), and
 * "mismatches" (bytes that differed, or that could not be accessed).
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qemu/units.h"
#include "hw/qdev-core.h"
#include "hw/qdev-properties.h"
#include "system/address-spaces.h"
#include "system/dma.h"
#include "system/memory.h"
#include "qemu/rcu.h"
#include "system/runstate.h"

#define TYPE_DMA_PROBE_TESTDEV "x-dma-probe-testdev"
OBJECT_DECLARE_SIMPLE_TYPE(DMAProbeTestdev, DMA_PROBE_TESTDEV)

struct DMAProbeTestdev {
    DeviceState parent_obj;

    uint64_t addr;
    uint64_t len;
    uint32_t seed;
    uint64_t pieces;
    uint64_t direct;
    uint64_t max_piece;
    uint64_t mismatches;
    uint64_t iotlb_addr;
    uint64_t iotlb_mask;
    bool while_running;
    /* hold-map: the mapping kept until hold-release */
    uint8_t *held;
    hwaddr held_addr;
    hwaddr held_len;
};

static uint8_t dma_probe_byte(uint64_t a, uint32_t seed)
{
    uint64_t word = (a & ~7ULL) ^ ((uint64_t)seed << 56);

    return word >> ((a & 7) * 8);
}

static uint64_t dma_probe_word(uint64_t a, uint32_t seed)
{
    return a ^ ((uint64_t)seed << 56);
}

static void dma_probe_map(DMAProbeTestdev *s, bool is_write)
{
    uint64_t done = 0;

    while (done < s->len) {
        hwaddr plen = s->len - done;
        ram_addr_t offset;
        uint8_t *p;
        hwaddr i;

        p = address_space_map(&address_space_memory, s->addr + done, &plen,
                              is_write, MEMTXATTRS_UNSPECIFIED);
        if (!p || !plen) {
            s->mismatches += s->len - done;
            return;
        }
        s->pieces++;
        s->direct += memory_region_from_host(p, &offset) != NULL;
        s->max_piece = MAX(s->max_piece, plen);
        for (i = 0; i < plen; i++) {
            uint8_t want = dma_probe_byte(s->addr + done + i, s->seed);

            if (is_write) {
                p[i] = want;
            } else if (p[i] != want) {
                s->mismatches++;
            }
        }
        address_space_unmap(&address_space_memory, p, plen, is_write, plen);
        done += plen;
    }
}

static void dma_probe_rw(DMAProbeTestdev *s, bool is_write)
{
    g_autofree uint8_t *buf = g_malloc(s->len);
    uint64_t i;

    if (is_write) {
        for (i = 0; i < s->len; i++) {
            buf[i] = dma_probe_byte(s->addr + i, s->seed);
        }
        if (dma_memory_write(&address_space_memory, s->addr, buf, s->len,
                             MEMTXATTRS_UNSPECIFIED) != MEMTX_OK) {
            s->mismatches = s->len;
        }
        return;
    }
    if (dma_memory_read(&address_space_memory, s->addr, buf, s->len,
                        MEMTXATTRS_UNSPECIFIED) != MEMTX_OK) {
        s->mismatches = s->len;
        return;
    }
    for (i = 0; i < s->len; i++) {
        s->mismatches += buf[i] != dma_probe_byte(s->addr + i, s->seed);
    }
}

static void dma_probe_cache(DMAProbeTestdev *s, bool is_write, Error **errp)
{
    MemoryRegionCache cache = {};
    int64_t got;
    uint64_t i;

    if ((s->addr | s->len) & 7) {
        error_setg(errp, "%s: cache operations need 8-byte alignment",
                   TYPE_DMA_PROBE_TESTDEV);
        return;
    }
    /*
     * The cache may cover less than asked (virtio then refuses the ring);
     * accesses past what it covers are not allowed: count them as failed.
     */
    got = address_space_cache_init(&cache, &address_space_memory, s->addr,
                                   s->len, is_write);
    s->max_piece = MAX(got, 0);
    if (s->max_piece < s->len) {
        s->mismatches += s->len - s->max_piece;
    }
    for (i = 0; i + 8 <= s->max_piece; i += 8) {
        uint64_t want = dma_probe_word(s->addr + i, s->seed);
        MemTxResult r = MEMTX_OK;

        if (is_write) {
            address_space_stq_le_cached(&cache, i, want,
                                        MEMTXATTRS_UNSPECIFIED, &r);
        } else if (address_space_ldq_le_cached(&cache, i,
                                               MEMTXATTRS_UNSPECIFIED,
                                               &r) != want) {
            s->mismatches += 8;
            continue;
        }
        if (r != MEMTX_OK) {
            s->mismatches += 8;
        }
    }
    if (is_write && s->max_piece) {
        address_space_cache_invalidate(&cache, 0, s->max_piece);
    }
    address_space_cache_destroy(&cache);
}

/*
 * Loads and stores of up to 8 bytes from @s->addr on, each at its own
 * (possibly unaligned) address; @cache: through a cache over the range.
 */
static void dma_probe_ldst(DMAProbeTestdev *s, bool is_write, bool cached,
                           Error **errp)
{
    MemoryRegionCache cache = {};
    uint64_t i, n;

    if (cached && address_space_cache_init(&cache, &address_space_memory,
                                           s->addr, s->len, is_write) <
                  (int64_t)s->len) {
        address_space_cache_destroy(&cache);
        s->mismatches = s->len;
        return;
    }
    for (i = 0; i < s->len; i += n) {
        uint64_t a = s->addr + i, want = 0, got = 0, j;
        MemTxResult r = MEMTX_OK;

        n = MIN(s->len - i, 8);
        n = n == 8 ? 8 : n >= 4 ? 4 : n >= 2 ? 2 : 1;
        for (j = 0; j < n; j++) {
            want |= (uint64_t)dma_probe_byte(a + j, s->seed) << (8 * j);
        }
        if (is_write && cached) {
            switch (n) {
            case 8:
                address_space_stq_le_cached(&cache, i, want,
                                            MEMTXATTRS_UNSPECIFIED, &r);
                break;
            case 4:
                address_space_stl_le_cached(&cache, i, want,
                                            MEMTXATTRS_UNSPECIFIED, &r);
                break;
            case 2:
                address_space_stw_le_cached(&cache, i, want,
                                            MEMTXATTRS_UNSPECIFIED, &r);
                break;
            default:
                address_space_stb_cached(&cache, i, want,
                                         MEMTXATTRS_UNSPECIFIED, &r);
            }
        } else if (is_write) {
            switch (n) {
            case 8:
                address_space_stq_le(&address_space_memory, a, want,
                                     MEMTXATTRS_UNSPECIFIED, &r);
                break;
            case 4:
                address_space_stl_le(&address_space_memory, a, want,
                                     MEMTXATTRS_UNSPECIFIED, &r);
                break;
            case 2:
                address_space_stw_le(&address_space_memory, a, want,
                                     MEMTXATTRS_UNSPECIFIED, &r);
                break;
            default:
                address_space_stb(&address_space_memory, a, want,
                                  MEMTXATTRS_UNSPECIFIED, &r);
            }
        } else if (cached) {
            got = n == 8 ? address_space_ldq_le_cached(&cache, i,
                                                       MEMTXATTRS_UNSPECIFIED,
                                                       &r) :
                  n == 4 ? address_space_ldl_le_cached(&cache, i,
                                                       MEMTXATTRS_UNSPECIFIED,
                                                       &r) :
                  n == 2 ? address_space_lduw_le_cached(&cache, i,
                                                        MEMTXATTRS_UNSPECIFIED,
                                                        &r) :
                  address_space_ldub_cached(&cache, i,
                                            MEMTXATTRS_UNSPECIFIED, &r);
        } else {
            got = n == 8 ? address_space_ldq_le(&address_space_memory, a,
                                                MEMTXATTRS_UNSPECIFIED, &r) :
                  n == 4 ? address_space_ldl_le(&address_space_memory, a,
                                                MEMTXATTRS_UNSPECIFIED, &r) :
                  n == 2 ? address_space_lduw_le(&address_space_memory, a,
                                                 MEMTXATTRS_UNSPECIFIED, &r) :
                  address_space_ldub(&address_space_memory, a,
                                     MEMTXATTRS_UNSPECIFIED, &r);
        }
        if (r != MEMTX_OK || (!is_write && got != want)) {
            s->mismatches += n;
        }
        s->pieces++;
    }
    if (cached) {
        if (is_write) {
            address_space_cache_invalidate(&cache, 0, s->len);
        }
        address_space_cache_destroy(&cache);
    }
}

static void dma_probe_hold(DMAProbeTestdev *s, bool release, Error **errp)
{
    hwaddr i;

    if (!release) {
        if (s->held) {
            error_setg(errp, "%s: a mapping is already held",
                       TYPE_DMA_PROBE_TESTDEV);
            return;
        }
        s->held_len = s->len;
        s->held_addr = s->addr;
        s->held = address_space_map(&address_space_memory, s->addr,
                                    &s->held_len, true,
                                    MEMTXATTRS_UNSPECIFIED);
        s->max_piece = s->held ? s->held_len : 0;
        s->pieces = !!s->held;
        return;
    }
    if (!s->held) {
        error_setg(errp, "%s: no mapping held", TYPE_DMA_PROBE_TESTDEV);
        return;
    }
    for (i = 0; i < s->held_len; i++) {
        s->held[i] = dma_probe_byte(s->held_addr + i, s->seed);
    }
    address_space_unmap(&address_space_memory, s->held, s->held_len, true,
                        s->held_len);
    s->held = NULL;
}

static void dma_probe_iotlb(DMAProbeTestdev *s)
{
    IOMMUTLBEntry e;

    RCU_READ_LOCK_GUARD();
    e = address_space_get_iotlb_entry(&address_space_memory, s->addr, false,
                                      MEMTXATTRS_UNSPECIFIED);
    s->iotlb_addr = e.translated_addr;
    s->iotlb_mask = e.addr_mask;
}

static void dma_probe_set_op(Object *obj, const char *op, Error **errp)
{
    DMAProbeTestdev *s = DMA_PROBE_TESTDEV(obj);

    if (!s->len || s->len > 64 * MiB) {
        error_setg(errp, "%s: len must be 1 byte to 64 MiB",
                   TYPE_DMA_PROBE_TESTDEV);
        return;
    }
    if (s->while_running && !runstate_is_running()) {
        error_setg(errp, "%s: the VM is not running", TYPE_DMA_PROBE_TESTDEV);
        return;
    }
    s->pieces = s->direct = s->max_piece = s->mismatches = 0;
    if (!strcmp(op, "map-write") || !strcmp(op, "map-check")) {
        dma_probe_map(s, op[4] == 'w');
    } else if (!strcmp(op, "rw-write") || !strcmp(op, "rw-check")) {
        dma_probe_rw(s, op[3] == 'w');
    } else if (!strcmp(op, "cache-write") || !strcmp(op, "cache-check")) {
        dma_probe_cache(s, op[6] == 'w', errp);
    } else if (!strcmp(op, "ldst-write") || !strcmp(op, "ldst-check")) {
        dma_probe_ldst(s, op[5] == 'w', false, errp);
    } else if (!strcmp(op, "ldst-cached-write") ||
               !strcmp(op, "ldst-cached-check")) {
        dma_probe_ldst(s, op[12] == 'w', true, errp);
    } else if (!strcmp(op, "hold-map") || !strcmp(op, "hold-release")) {
        dma_probe_hold(s, op[5] == 'r', errp);
    } else if (!strcmp(op, "iotlb")) {
        dma_probe_iotlb(s);
    } else {
        error_setg(errp, "%s: unknown op '%s'", TYPE_DMA_PROBE_TESTDEV, op);
    }
}

static bool dma_probe_get_running(Object *obj, Error **errp)
{
    return DMA_PROBE_TESTDEV(obj)->while_running;
}

static void dma_probe_set_running(Object *obj, bool value, Error **errp)
{
    DMA_PROBE_TESTDEV(obj)->while_running = value;
}

static void dma_probe_init(Object *obj)
{
    DMAProbeTestdev *s = DMA_PROBE_TESTDEV(obj);

    object_property_add_str(obj, "op", NULL, dma_probe_set_op);
    object_property_add_uint64_ptr(obj, "addr", &s->addr,
                                   OBJ_PROP_FLAG_READWRITE);
    object_property_add_uint64_ptr(obj, "len", &s->len,
                                   OBJ_PROP_FLAG_READWRITE);
    object_property_add_uint32_ptr(obj, "seed", &s->seed,
                                   OBJ_PROP_FLAG_READWRITE);
    object_property_add_uint64_ptr(obj, "pieces", &s->pieces,
                                   OBJ_PROP_FLAG_READ);
    object_property_add_uint64_ptr(obj, "direct", &s->direct,
                                   OBJ_PROP_FLAG_READ);
    object_property_add_uint64_ptr(obj, "max-piece", &s->max_piece,
                                   OBJ_PROP_FLAG_READ);
    object_property_add_uint64_ptr(obj, "mismatches", &s->mismatches,
                                   OBJ_PROP_FLAG_READ);
    object_property_add_uint64_ptr(obj, "iotlb-addr", &s->iotlb_addr,
                                   OBJ_PROP_FLAG_READ);
    object_property_add_uint64_ptr(obj, "iotlb-mask", &s->iotlb_mask,
                                   OBJ_PROP_FLAG_READ);
    object_property_add_bool(obj, "while-running", dma_probe_get_running,
                             dma_probe_set_running);
}

static void dma_probe_class_init(ObjectClass *oc, const void *data)
{
    DeviceClass *dc = DEVICE_CLASS(oc);

    dc->desc = "Test: DMA by map, by dma_memory_rw and through a cache";
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
}

static const TypeInfo dma_probe_info = {
    .name = TYPE_DMA_PROBE_TESTDEV,
    .parent = TYPE_DEVICE,
    .instance_size = sizeof(DMAProbeTestdev),
    .instance_init = dma_probe_init,
    .class_init = dma_probe_class_init,
};

static void dma_probe_register_types(void)
{
    type_register_static(&dma_probe_info);
}

type_init(dma_probe_register_types)
