/*
 * cxl-e2e: the guest helper's commands implemented outside cxl-e2e.c
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef CXL_E2E_H
#define CXL_E2E_H

#include <stdint.h>

/* cxl-fwcommit.c: commit @regions HDM decoder sets of granularity @gran */
int cmd_fwcommit(uint64_t gran, int regions);

#endif
