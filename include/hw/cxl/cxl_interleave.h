/*
 * CXL fixed memory windows served as RAM once their decoders commit
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_CXL_CXL_INTERLEAVE_H
#define HW_CXL_CXL_INTERLEAVE_H

#include "exec/hwaddr.h"

struct CXLFixedWindow;
struct CXLType3Dev;
struct PCIDevice;
struct AddressSpace;
struct MemoryRegionOps;

typedef struct CXLFMWRouting CXLFMWRouting;

/*
 * A fixed window is a container: the MMIO decode (@ops, cfmws_ops) covers
 * all of it at priority 0; every range whose committed decoders form a
 * RAM-compatible interleave is overlaid, at priority 1, by a region
 * served through an interleave of the devices' backends
 * (system/memory-interleave.h).  The MMIO decode stays the reference: the
 * interleave is derived by probing it and checked against it.
 */
void cxl_fmw_init_memory(struct CXLFixedWindow *fw,
                         const struct MemoryRegionOps *ops);

/*
 * Something the decode depends on changed (an HDM decoder register, a
 * component reset, media state, the topology): recompute the routing of
 * every window.  @gone, if set, is a device being removed.  Cheap when
 * nothing changed.  Called with the BQL held.
 */
void cxl_fmws_update_routing(struct PCIDevice *gone);

/*
 * Run an update that came while a routing pass or a shadow write-back
 * waited for vCPUs with the BQL dropped (hw/cxl/cxl-interleave.c).
 */
void cxl_fmws_routing_resume(void);

/*
 * The write-back shadow of a piece whose decode switches device inside a
 * target page (hw/cxl/cxl-shadow.c): a RAM region filled from the
 * devices' backends and written back to them.  cxl_fmw_shadow_new()
 * makes it (a child of @owner) or says why not; the caller maps
 * cxl_fmw_shadow_region().  cxl_fmw_shadow_retire(), once the region is
 * out of the window, writes it back and lets it go (freed once nothing
 * maps it).
 */
typedef struct CXLFMWShadow CXLFMWShadow;
CXLFMWShadow *cxl_fmw_shadow_new(Object *owner, unsigned index,
                                 struct MemoryInterleave *il, Error **errp);
struct MemoryRegion *cxl_fmw_shadow_region(CXLFMWShadow *sh);
void cxl_fmw_shadow_retire(CXLFMWShadow *sh);

/*
 * A device operation that writes a device's media while the guest runs
 * (Media Operations sanitize, Clear Poison) is bracketed: every shadow to
 * its backends before it, cxl_fmws_shadows_sync(), so that no older guest
 * write lands over the operation's bytes; and after it, the bytes it
 * changed copied again into the shadows that hold them:
 * cxl_fmws_shadows_reload() for @len bytes of @target at @offset,
 * cxl_type3_shadows_reload() for @len bytes of @ct3d's DPA space at @dpa
 * (@len may reach past its end).  Called with the BQL held.
 */
void cxl_fmws_shadows_sync(void);

/* Whether a shadow write-back waits for vCPUs (the BQL dropped) now. */
bool cxl_fmws_shadows_syncing(void);
void cxl_fmws_shadows_reload(struct MemoryRegion *target, uint64_t offset,
                             uint64_t len);
void cxl_type3_shadows_reload(struct CXLType3Dev *ct3d, uint64_t dpa,
                              uint64_t len);

/* The MMIO decode, shared with hw/cxl/cxl-host.c and hw/mem/cxl_type3.c */
struct PCIDevice *cxl_cfmws_find_device(struct CXLFixedWindow *fw,
                                        hwaddr addr);
int cxl_type3_hpa_to_as_and_dpa(struct CXLType3Dev *ct3d, hwaddr host_addr,
                                unsigned int size, struct AddressSpace **as,
                                uint64_t *dpa_offset);

#endif
