/*
 * Standalone stand-in for QEMU's system/ramblock.h: a RAM block is its
 * flags (RAM_SHARED, RAM_READONLY in system/memory.h).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef STANDALONE_SYSTEM_RAMBLOCK_H
#define STANDALONE_SYSTEM_RAMBLOCK_H

#include "system/memory.h"

struct RAMBlock {
    uint32_t flags;
};

static inline bool qemu_ram_is_shared(RAMBlock *rb)
{
    return rb->flags & RAM_SHARED;
}

#endif
