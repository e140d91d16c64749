/*
 * Test device: an interleave built from many alias MemoryRegions
 *
 *   -device x-alias-interleave-testdev,id=il,count=32768,granule=16384,
 *           targets=4,addr=ADDR,targets-addr=TADDR[,names=unique|none|same]
 *           [,interleave=on|off]
 *
 * creates @targets RAM regions of count / targets * granule bytes, maps
 * them one after the other at @targets-addr, and maps at @addr a
 * container of @count aliases of @granule bytes: alias i shows granule
 * i / targets of target i % targets (a plain round-robin interleave, as
 * a CXL host bridge decodes it).  Everything is added in one memory
 * transaction, the way bulk users should do it (see
 * docs/devel/memory-sections.rst).  The container opts in to being
 * rendered as one interleave (memory_region_set_interleave_aliases());
 * with interleave=off it is rendered alias by alias, as any container
 * that does not opt in.
 *
 * With mmio=on the targets are I/O regions instead of RAM: an 8-byte read
 * at offset o of target t returns (0xa0 + t) << 56 | o, so a CPU access
 * through the window exercises the TCG I/O TLB path (section numbers
 * past the page size).
 *
 * Read-only properties report what it cost: "build-ns" (create, add and
 * commit all aliases), and "recommit-ns", refreshed each time the
 * "recommit" property is set: an unrelated commit elsewhere in the
 * machine (a small region toggled) while the aliases are present.
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qemu/timer.h"
#include "qemu/units.h"
#include "qemu/host-utils.h"
#include "hw/qdev-core.h"
#include "hw/qdev-properties.h"
#include "system/memory.h"
#include "system/memory-interleave.h"
#include "system/address-spaces.h"

#define TYPE_ALIAS_INTERLEAVE_TESTDEV "x-alias-interleave-testdev"
OBJECT_DECLARE_SIMPLE_TYPE(AliasInterleaveTestdev, ALIAS_INTERLEAVE_TESTDEV)

struct AliasInterleaveTestdev {
    DeviceState parent_obj;

    uint32_t count;
    uint64_t granule;
    uint32_t nb_targets;
    uint64_t addr;
    uint64_t targets_addr;
    char *names;
    bool mmio;
    bool interleave;

    MemoryRegion container;
    MemoryRegion *targets;
    struct AliasInterleaveTarget *target_ids;
    MemoryRegion *aliases;
    MemoryRegion toggle;        /* the "unrelated" region of recommit */
    int64_t build_ns;
    int64_t recommit_ns;
};

typedef struct AliasInterleaveTarget {
    unsigned index;
} AliasInterleaveTarget;

static uint64_t alias_interleave_mmio_read(void *opaque, hwaddr addr,
                                           unsigned size)
{
    AliasInterleaveTarget *t = opaque;

    return (uint64_t)(0xa0 + t->index) << 56 | addr;
}

static void alias_interleave_mmio_write(void *opaque, hwaddr addr,
                                        uint64_t val, unsigned size)
{
}

static const MemoryRegionOps alias_interleave_mmio_ops = {
    .read = alias_interleave_mmio_read,
    .write = alias_interleave_mmio_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .impl = { .min_access_size = 8, .max_access_size = 8 },
    .valid = { .min_access_size = 1, .max_access_size = 8 },
};

static void alias_interleave_realize(DeviceState *dev, Error **errp)
{
    AliasInterleaveTestdev *s = ALIAS_INTERLEAVE_TESTDEV(dev);
    Object *obj = OBJECT(s);
    uint64_t per_target, total;
    int64_t t0;
    uint32_t i;

    if (!s->count || !s->nb_targets || s->count % s->nb_targets) {
        error_setg(errp, "%s: count (%" PRIu32 ") must be a non-zero"
                   " multiple of targets (%" PRIu32 ")",
                   TYPE_ALIAS_INTERLEAVE_TESTDEV, s->count, s->nb_targets);
        return;
    }
    if (!s->granule || (s->granule & (s->granule - 1))) {
        error_setg(errp, "%s: granule 0x%" PRIx64 " is not a power of two",
                   TYPE_ALIAS_INTERLEAVE_TESTDEV, s->granule);
        return;
    }
    if (umul64_overflow(s->count, s->granule, &total) ||
        total > INT64_MAX) {
        error_setg(errp, "%s: count x granule does not fit 63 bits",
                   TYPE_ALIAS_INTERLEAVE_TESTDEV);
        return;
    }
    if (!s->names) {
        s->names = g_strdup("unique");
    }
    if (strcmp(s->names, "unique") && strcmp(s->names, "none") &&
        strcmp(s->names, "same")) {
        error_setg(errp, "%s: names must be unique, none or same",
                   TYPE_ALIAS_INTERLEAVE_TESTDEV);
        return;
    }
    per_target = s->count / s->nb_targets * s->granule;

    s->targets = g_new0(MemoryRegion, s->nb_targets);
    s->target_ids = g_new0(AliasInterleaveTarget, s->nb_targets);
    for (i = 0; i < s->nb_targets; i++) {
        g_autofree char *name = g_strdup_printf("alias-il-target%u", i);

        s->target_ids[i].index = i;
        if (s->mmio) {
            memory_region_init_io(&s->targets[i], obj,
                                  &alias_interleave_mmio_ops,
                                  &s->target_ids[i], name, per_target);
        } else if (!memory_region_init_ram_nomigrate(&s->targets[i], obj,
                                                     name, per_target,
                                                     errp)) {
            return;
        }
    }
    memory_region_init_io(&s->toggle, obj, NULL, s, "alias-il-toggle", 4096);

    t0 = get_clock();
    memory_region_transaction_begin();
    memory_region_init(&s->container, obj, "alias-il-container",
                       (uint64_t)s->count * s->granule);
    memory_region_set_interleave_aliases(&s->container, s->interleave);
    s->aliases = g_new0(MemoryRegion, s->count);
    for (i = 0; i < s->count; i++) {
        g_autofree char *name = NULL;

        if (!strcmp(s->names, "same")) {
            name = g_strdup("alias-il");
        } else if (!strcmp(s->names, "unique")) {
            name = g_strdup_printf("alias-il-%u", i);
        }

        memory_region_init_alias(&s->aliases[i], obj, name,
                                 &s->targets[i % s->nb_targets],
                                 (uint64_t)(i / s->nb_targets) * s->granule,
                                 s->granule);
        memory_region_add_subregion(&s->container,
                                    (uint64_t)i * s->granule, &s->aliases[i]);
    }
    memory_region_add_subregion(get_system_memory(), s->addr, &s->container);
    for (i = 0; i < s->nb_targets; i++) {
        memory_region_add_subregion(get_system_memory(),
                                    s->targets_addr + i * per_target,
                                    &s->targets[i]);
    }
    memory_region_add_subregion(get_system_memory(),
                                s->targets_addr + s->nb_targets * per_target,
                                &s->toggle);
    memory_region_transaction_commit();
    s->build_ns = get_clock() - t0;
}

static void alias_interleave_set_recommit(Object *obj, bool value,
                                          Error **errp)
{
    AliasInterleaveTestdev *s = ALIAS_INTERLEAVE_TESTDEV(obj);
    int64_t t0;

    if (!s->aliases) {
        error_setg(errp, "%s: not built", TYPE_ALIAS_INTERLEAVE_TESTDEV);
        return;
    }
    t0 = get_clock();
    memory_region_set_enabled(&s->toggle, !s->toggle.enabled);
    s->recommit_ns = get_clock() - t0;
}

static bool alias_interleave_get_recommit(Object *obj, Error **errp)
{
    return false;
}

static void alias_interleave_get_ns(Object *obj, Visitor *v, const char *name,
                                    void *opaque, Error **errp)
{
    int64_t *ns = opaque;

    visit_type_int64(v, name, ns, errp);
}

static void alias_interleave_init(Object *obj)
{
    AliasInterleaveTestdev *s = ALIAS_INTERLEAVE_TESTDEV(obj);

    object_property_add_bool(obj, "recommit", alias_interleave_get_recommit,
                             alias_interleave_set_recommit);
    object_property_add(obj, "build-ns", "int", alias_interleave_get_ns,
                        NULL, NULL, &s->build_ns);
    object_property_add(obj, "recommit-ns", "int", alias_interleave_get_ns,
                        NULL, NULL, &s->recommit_ns);
}

static const Property alias_interleave_properties[] = {
    DEFINE_PROP_UINT32("count", AliasInterleaveTestdev, count, 0),
    DEFINE_PROP_UINT64("granule", AliasInterleaveTestdev, granule, 16 * KiB),
    DEFINE_PROP_UINT32("targets", AliasInterleaveTestdev, nb_targets, 4),
    DEFINE_PROP_UINT64("addr", AliasInterleaveTestdev, addr, 0),
    DEFINE_PROP_UINT64("targets-addr", AliasInterleaveTestdev, targets_addr,
                       0),
    /*
     * Alias names: "unique" (alias-il-N), "none" (NULL: no QOM child) or
     * "same" (all alias-il: shows QOM's [*] name probing, O(n) each).
     */
    DEFINE_PROP_STRING("names", AliasInterleaveTestdev, names),
    DEFINE_PROP_BOOL("mmio", AliasInterleaveTestdev, mmio, false),
    /* render the aliases as one interleave where they form a pattern */
    DEFINE_PROP_BOOL("interleave", AliasInterleaveTestdev, interleave, true),
};

static void alias_interleave_class_init(ObjectClass *oc, const void *data)
{
    DeviceClass *dc = DEVICE_CLASS(oc);

    dc->desc = "Test: an interleave of many alias MemoryRegions";
    dc->realize = alias_interleave_realize;
    /* its regions stay mapped for the machine's lifetime */
    dc->hotpluggable = false;
    device_class_set_props(dc, alias_interleave_properties);
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
}

static const TypeInfo alias_interleave_info = {
    .name = TYPE_ALIAS_INTERLEAVE_TESTDEV,
    .parent = TYPE_DEVICE,
    .instance_size = sizeof(AliasInterleaveTestdev),
    .instance_init = alias_interleave_init,
    .class_init = alias_interleave_class_init,
};

static void alias_interleave_register_types(void)
{
    type_register_static(&alias_interleave_info);
}

type_init(alias_interleave_register_types)
