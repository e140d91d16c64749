/*
 * Standalone build of target-independent QEMU files for the cmocka tier:
 * the few osdep definitions they use, nothing more.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef STANDALONE_QEMU_OSDEP_H
#define STANDALONE_QEMU_OSDEP_H

#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <glib.h>

#include "qemu/typedefs.h"

#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif
#define QEMU_IS_ALIGNED(n, m) (((n) % (m)) == 0)
#define ARRAY_SIZE(x) (sizeof(x) / sizeof((x)[0]))

#endif
