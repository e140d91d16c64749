/*
 * Standalone stand-in for QEMU's qemu/cutils.h: buffer_is_zero().
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef STANDALONE_QEMU_CUTILS_H
#define STANDALONE_QEMU_CUTILS_H

static inline bool buffer_is_zero(const void *buf, size_t len)
{
    const unsigned char *p = buf;

    return !len || (!p[0] && !memcmp(p, p + 1, len - 1));
}

#endif
