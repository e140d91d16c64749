/*
 * Write-back shadows of CXL fixed window pieces (hw/cxl/cxl-shadow.c)
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_CXL_CXL_SHADOW_H
#define HW_CXL_CXL_SHADOW_H

struct CXLType3Dev;
struct MemoryInterleave;

/*
 * The write-back shadow of a piece whose decode switches device inside a
 * target page (hw/cxl/cxl-shadow.c): a RAM region filled from the
 * devices' backends and written back to them, in the background every
 * @period_ms (0: CXL_SHADOW_WRITEBACK_MS).  cxl_shadow_new()
 * makes it (a child of @owner) or says why not; the caller maps
 * cxl_shadow_region().  Retiring it (hw/cxl/cxl-interleave.c): once
 * the region is out of the window, cxl_shadow_retire() ends its
 * background write-back, and cxl_shadow_flush() writes back what
 * was written to it since, each time the retire protocol says.
 */
typedef struct CXLShadow CXLShadow;
CXLShadow *cxl_shadow_new(Object *owner, unsigned index,
                          struct MemoryInterleave *il,
                          uint32_t period_ms, Error **errp);
MemoryRegion *cxl_shadow_region(CXLShadow *sh);
CXLShadow *cxl_shadow_from_object(Object *obj);
void cxl_shadow_retire(CXLShadow *sh);
void cxl_shadow_flush(CXLShadow *sh);

/*
 * Write every live shadow back now: a sync point.  Context: main thread,
 * BQL held; waits for the vCPUs with it dropped.
 */
void cxl_shadows_sync(void);

/*
 * A device operation that writes a device's media while the guest runs
 * (Media Operations sanitize, Clear Poison) is bracketed without waiting
 * for the vCPUs (rule 42 of docs/devel/cxl-interleave.rst): before it,
 * cxl_shadows_quiesce() waits until no background copy into the
 * backends is under way (none starts until the BQL is released); after
 * it, a reload copies the bytes it changed into the shadows that hold
 * them, and marks them dirty there: cxl_shadows_reload() for @len
 * bytes of @target at @offset, cxl_shadows_reload_dpa() for @len bytes
 * of @ct3d's DPA space at @dpa (@len may reach past its end).
 * Context: BQL held throughout, any thread.
 */
void cxl_shadows_quiesce(void);
void cxl_shadows_reload(MemoryRegion *target, uint64_t offset,
                        uint64_t len);
void cxl_shadows_reload_dpa(struct CXLType3Dev *ct3d, uint64_t dpa,
                            uint64_t len);

#endif
