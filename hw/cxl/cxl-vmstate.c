/*
 * Migration of CXL component registers
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Upstream, no CXL device has a VMStateDescription: after migration the
 * destination's host bridges, ports and type-3 devices come up with reset
 * PCI configuration and HDM decoders, and a guest loses every region it
 * had.  vmstate_cxl_component carries a component's cache/mem register
 * block (the HDM decoders among it); the devices embed it next to their
 * PCI state.  Once a block is loaded the fixed windows are routed again,
 * so RAM routes come back exactly as the decoders say.
 *
 * Not migrated: mailbox background operations, event logs, poison lists
 * and dynamic capacity extents of type-3 devices.
 */

#include "qemu/osdep.h"
#include "migration/vmstate.h"
#include "hw/cxl/cxl.h"
#include "hw/cxl/cxl_interleave.h"

static int cxl_component_post_load(void *opaque, int version_id)
{
    cxl_fmws_update_routing();
    return 0;
}

const VMStateDescription vmstate_cxl_component = {
    .name = "cxl-component-registers",
    .version_id = 1,
    .minimum_version_id = 1,
    .post_load = cxl_component_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32_ARRAY(crb.cache_mem_registers, CXLComponentState,
                             CXL2_COMPONENT_CM_REGION_SIZE >> 2),
        VMSTATE_END_OF_LIST()
    }
};
