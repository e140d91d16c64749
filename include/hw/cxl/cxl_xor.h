/*
 * CXL fixed memory windows: XOR interleave arithmetic (hw/cxl/cxl-xor.c)
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_CXL_CXL_XOR_H
#define HW_CXL_CXL_XOR_H

#include "exec/hwaddr.h"

struct CXLFixedWindow;
struct CXLFixedMemoryWindowOptions;

/* At most 16 host bridges: log2(16) maps */
#define CXL_FMW_MAX_XORMAPS 4

/*
 * Take @opts' interleave arithmetic and XOR maps into @fw, whose ways and
 * granularity are set, or say why they cannot be.  Context: machine
 * options (-M cxl-fmw.N...), before the machine is created.
 */
bool cxl_fmw_xor_config(struct CXLFixedWindow *fw,
                        const struct CXLFixedMemoryWindowOptions *opts,
                        Error **errp);

/*
 * The CEDT has one CXIMS per host bridge interleave granularity: XOR
 * windows of the same granularity must agree on their maps.  Context:
 * machine done, once every window is made.
 */
bool cxl_fmws_xor_check(Error **errp);

/* Does @fw pick its host bridges with XOR arithmetic? */
bool cxl_fmw_is_xor(const struct CXLFixedWindow *fw);

/* Which of @fw's host bridges the window decode sends @hpa to */
unsigned cxl_fmw_hb_index(const struct CXLFixedWindow *fw, hwaddr hpa);

/* The CFMWS Interleave Arithmetic field: 0 modulo, 1 XOR */
uint8_t cxl_fmw_arithmetic(const struct CXLFixedWindow *fw);

/* Append the CEDT's CXIMS structures to @table_data */
void cxl_build_cxims(GArray *table_data);

#endif
