/*
 * Standalone stand-in for QEMU's qemu/bitops.h: the bit tests and
 * searches the project's target-independent files use, with the same
 * names and results (util/bitops.c has the word-at-a-time versions).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef STANDALONE_QEMU_BITOPS_H
#define STANDALONE_QEMU_BITOPS_H

#define BITS_PER_LONG   (sizeof(unsigned long) * 8)
#define BIT_WORD(nr)    ((nr) / BITS_PER_LONG)

static inline int test_bit(long nr, const unsigned long *addr)
{
    return 1UL & (addr[BIT_WORD(nr)] >> (nr & (BITS_PER_LONG - 1)));
}

/* The first set bit at or after @offset, or @size if none. */
static inline void clear_bit(long nr, unsigned long *addr)
{
    addr[nr / BITS_PER_LONG] &= ~(1UL << (nr % BITS_PER_LONG));
}

static inline unsigned long find_next_bit(const unsigned long *addr,
                                          unsigned long size,
                                          unsigned long offset)
{
    while (offset < size && !test_bit(offset, addr)) {
        offset++;
    }
    return MIN(offset, size);
}

/* The first clear bit at or after @offset, or @size if none. */
static inline unsigned long find_next_zero_bit(const unsigned long *addr,
                                               unsigned long size,
                                               unsigned long offset)
{
    while (offset < size && test_bit(offset, addr)) {
        offset++;
    }
    return MIN(offset, size);
}

static inline unsigned long find_first_bit(const unsigned long *addr,
                                           unsigned long size)
{
    return find_next_bit(addr, size, 0);
}

#endif
