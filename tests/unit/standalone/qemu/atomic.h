/*
 * Standalone stand-in for QEMU's qemu/atomic.h: the operations the
 * reference counts use, with QEMU's sequentially consistent semantics.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef STANDALONE_QEMU_ATOMIC_H
#define STANDALONE_QEMU_ATOMIC_H

#define qatomic_read(ptr)       __atomic_load_n(ptr, __ATOMIC_RELAXED)
#define qatomic_set(ptr, i)     __atomic_store_n(ptr, i, __ATOMIC_RELAXED)
#define qatomic_inc(ptr)        ((void)__atomic_fetch_add(ptr, 1, \
                                                          __ATOMIC_SEQ_CST))
#define qatomic_fetch_dec(ptr)  __atomic_fetch_sub(ptr, 1, __ATOMIC_SEQ_CST)
#define qatomic_dec_fetch(ptr)  __atomic_sub_fetch(ptr, 1, __ATOMIC_SEQ_CST)

#endif
