/*
 * Standalone stand-in for QEMU's qemu/typedefs.h: the names the
 * project's target-independent files use.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef STANDALONE_QEMU_TYPEDEFS_H
#define STANDALONE_QEMU_TYPEDEFS_H

typedef struct AddressSpace AddressSpace;
typedef struct FlatView FlatView;
typedef struct MemoryRegion MemoryRegion;
typedef struct MemoryRegionSection MemoryRegionSection;
typedef struct RAMBlock RAMBlock;

#endif
