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
 * component reset, media state): route every window again.  From the
 * main thread, at once unless a pass is under way (it runs this one
 * after); from a vCPU, in the main loop, the vCPU waiting for it.  Cheap
 * when nothing changed.  Context: BQL held.
 */
void cxl_fmws_update_routing(void);

/*
 * As cxl_fmws_update_routing(), but always from the main loop: for a
 * device that is leaving, whose removal must be over (off its bus) when
 * the pass looks at the decode.  Context: BQL held.
 */
void cxl_fmws_update_routing_later(void);

/*
 * Hold routing passes off while a sync point that drops the BQL runs,
 * maybe outside the main thread (the VM state handler runs in the
 * migration thread at its completion): a pass asked for meanwhile runs
 * from the main loop once the last hold is released.  Context: BQL held.
 */
void cxl_fmws_routing_hold(void);
void cxl_fmws_routing_release(void);

/*
 * Hand what was written through every retired piece that something may
 * still hold (an address_space_map() in flight) to the backends now: a
 * sync point (VM stop).  Called with the BQL held.
 */
void cxl_fmws_retirees_flush(void);

#endif
