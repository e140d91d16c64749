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
struct PCIDevice;
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
 * Hand what was written through every retired piece that something may
 * still hold (an address_space_map() in flight) to the backends now: a
 * sync point (VM stop).  Called with the BQL held.
 */
void cxl_fmws_retirees_flush(void);

#endif
