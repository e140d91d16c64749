/*
 * Standalone stand-in for QEMU's qemu/int128.h (the __int128 flavour).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef STANDALONE_QEMU_INT128_H
#define STANDALONE_QEMU_INT128_H

typedef __int128_t Int128;

static inline Int128 int128_make64(uint64_t a) { return a; }
static inline Int128 int128_zero(void) { return 0; }
static inline Int128 int128_2_64(void) { return (Int128)1 << 64; }
static inline uint64_t int128_getlo(Int128 a) { return a; }
static inline int64_t int128_gethi(Int128 a) { return a >> 64; }
static inline uint64_t int128_get64(Int128 a)
{
    assert((uint64_t)a == a);
    return a;
}
static inline Int128 int128_add(Int128 a, Int128 b) { return a + b; }
static inline Int128 int128_sub(Int128 a, Int128 b) { return a - b; }
static inline bool int128_eq(Int128 a, Int128 b) { return a == b; }
static inline bool int128_ge(Int128 a, Int128 b) { return a >= b; }
static inline bool int128_lt(Int128 a, Int128 b) { return a < b; }
static inline bool int128_le(Int128 a, Int128 b) { return a <= b; }
static inline bool int128_gt(Int128 a, Int128 b) { return a > b; }
static inline bool int128_nz(Int128 a) { return a != 0; }
static inline Int128 int128_min(Int128 a, Int128 b) { return a < b ? a : b; }
static inline Int128 int128_max(Int128 a, Int128 b) { return a > b ? a : b; }

#endif
