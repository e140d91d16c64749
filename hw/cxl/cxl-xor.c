/*
 * CXL fixed memory windows: XOR interleave arithmetic
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * A window whose CFMWS says Interleave Arithmetic 1 picks its host bridge
 * with XOR maps (CXIMS): bit i of the target's position in the window's
 * list is the parity of the host physical address under map i.  Host
 * bridge, switch and endpoint decoders keep modulo arithmetic.  What a
 * map may hold, the default maps and what is served as RAM:
 * docs/devel/cxl-interleave.rst, "XOR interleave".
 */

#include "qemu/osdep.h"
#include "qemu/host-utils.h"
#include "qapi/error.h"
#include "qapi/qapi-types-machine.h"
#include "hw/acpi/aml-build.h"
#include "hw/cxl/cxl.h"
#include "hw/cxl/cxl_host.h"
#include "hw/cxl/cxl_xor.h"

/* CXL host physical addresses are 52 bits wide */
#define CXL_HPA_BITS 52

bool cxl_fmw_is_xor(const CXLFixedWindow *fw)
{
    return fw->interleave_arithmetic == CXL_INTERLEAVE_ARITHMETIC_XOR;
}

/* log2 of the window's ways: the number of maps an XOR window has */
static unsigned cxl_fmw_xor_nr_maps(const CXLFixedWindow *fw)
{
    return ctz32(fw->num_targets);
}

/* The lowest address bit that selects a host bridge */
static unsigned cxl_fmw_gran_bit(const CXLFixedWindow *fw)
{
    return 8 + fw->enc_int_gran;
}

/*
 * The default maps (rule 43): map i folds address bits gran + i + 4k,
 * up to bit 51, onto position bit i, so that consecutive sets of granules
 * change their order over the host bridges, as platforms' maps do.  The
 * stride is the most maps a window has: map i is the same for every
 * window of the granularity, whatever its ways and size, as the one
 * CXIMS of that granularity needs.
 */
static uint64_t cxl_fmw_xor_default_map(const CXLFixedWindow *fw, unsigned i)
{
    uint64_t map = 0;

    for (unsigned b = cxl_fmw_gran_bit(fw) + i; b < CXL_HPA_BITS;
         b += CXL_FMW_MAX_XORMAPS) {
        map |= 1ULL << b;
    }
    return map;
}

bool cxl_fmw_xor_config(CXLFixedWindow *fw,
                        const CXLFixedMemoryWindowOptions *opts,
                        Error **errp)
{
    unsigned n, g = cxl_fmw_gran_bit(fw), i = 0;
    uint64List *m;

    fw->interleave_arithmetic = opts->has_interleave_arithmetic ?
        opts->interleave_arithmetic : CXL_INTERLEAVE_ARITHMETIC_MODULO;
    if (!cxl_fmw_is_xor(fw)) {
        if (opts->xor_maps) {
            error_setg(errp, "xor-maps needs interleave-arithmetic=xor");
            return false;
        }
        return true;
    }
    if (!is_power_of_2(fw->num_targets)) {
        error_setg(errp, "XOR interleave arithmetic over %u host bridges is "
                   "not emulated: 1, 2, 4, 8 or 16 host bridges only (3, 6 "
                   "and 12 need the modulo-3 step)", fw->num_targets);
        return false;
    }
    n = cxl_fmw_xor_nr_maps(fw);
    if (!opts->xor_maps) {
        for (i = 0; i < n; i++) {
            fw->xormaps[i] = cxl_fmw_xor_default_map(fw, i);
        }
        fw->nr_xormaps = n;
        return true;
    }
    for (m = opts->xor_maps; m; m = m->next, i++) {
        uint64_t map = m->value;

        if (i >= n) {
            break;
        }
        if (map & MAKE_64BIT_MASK(0, g)) {
            error_setg(errp, "XOR map %u (0x%" PRIx64 ") names address bits "
                       "below the interleave granularity (bit %u)", i, map, g);
            return false;
        }
        if (map >> CXL_HPA_BITS) {
            error_setg(errp, "XOR map %u (0x%" PRIx64 ") names address bits "
                       "above bit %u", i, map, CXL_HPA_BITS - 1);
            return false;
        }
        /*
         * Exactly one bit of those that tell the granules of one set of
         * ways apart, bit g + i: then each set reaches every host bridge
         * once (a bijection), and map i's lowest bit is position bit i,
         * as an OS that undoes the maps expects.
         */
        if (extract64(map, g, n) != 1ULL << i) {
            error_setg(errp, "XOR map %u (0x%" PRIx64 ") must have bit %u "
                       "set and no other bit from %u to %u, so that every "
                       "%u consecutive granules reach each host bridge once",
                       i, map, g + i, g, g + n - 1, fw->num_targets);
            return false;
        }
        fw->xormaps[i] = map;
    }
    if (i != n || m) {
        error_setg(errp, "XOR interleave over %u host bridges needs %u XOR "
                   "maps, not %u", fw->num_targets, n,
                   i + (m ? (unsigned)QAPI_LIST_LENGTH(m) : 0));
        return false;
    }
    fw->nr_xormaps = n;
    return true;
}

unsigned cxl_fmw_hb_index(const CXLFixedWindow *fw, hwaddr hpa)
{
    unsigned n = 0;

    if (!cxl_fmw_is_xor(fw)) {
        return (hpa / cxl_decode_ig(fw->enc_int_gran)) % fw->num_targets;
    }
    for (unsigned i = 0; i < fw->nr_xormaps; i++) {
        n |= (ctpop64(hpa & fw->xormaps[i]) & 1) << i;
    }
    return n;
}

uint8_t cxl_fmw_arithmetic(const CXLFixedWindow *fw)
{
    return cxl_fmw_is_xor(fw) ? 1 : 0;
}

/*
 * The XOR window with the most maps at granularity @gran (encoded), for
 * its CXIMS; NULL if none uses maps.  Windows of one host bridge use
 * none.
 */
static CXLFixedWindow *cxl_fmw_xor_longest(GSList *all, uint8_t gran)
{
    CXLFixedWindow *best = NULL;

    for (GSList *it = all; it; it = it->next) {
        CXLFixedWindow *fw = CXL_FMW(it->data);

        if (cxl_fmw_is_xor(fw) && fw->nr_xormaps &&
            fw->enc_int_gran == gran &&
            (!best || fw->nr_xormaps > best->nr_xormaps)) {
            best = fw;
        }
    }
    return best;
}

bool cxl_fmws_xor_check(Error **errp)
{
    g_autoptr(GSList) all = cxl_fmws_get_all_sorted();

    for (GSList *it = all; it; it = it->next) {
        CXLFixedWindow *fw = CXL_FMW(it->data), *ref;

        if (!cxl_fmw_is_xor(fw) || !fw->nr_xormaps) {
            continue;
        }
        ref = cxl_fmw_xor_longest(all, fw->enc_int_gran);
        for (unsigned i = 0; i < fw->nr_xormaps; i++) {
            if (fw->xormaps[i] != ref->xormaps[i]) {
                error_setg(errp, "CXL fixed memory windows %d and %d: XOR "
                           "windows of one interleave granularity (%" PRIu64
                           " bytes) share the CEDT's maps for it, but map %u "
                           "differs (0x%" PRIx64 ", 0x%" PRIx64 ")",
                           ref->index, fw->index,
                           (uint64_t)cxl_decode_ig(fw->enc_int_gran), i,
                           ref->xormaps[i], fw->xormaps[i]);
                return false;
            }
        }
    }
    return true;
}

/* CXL 3.0 9.17.1.6 (CXL XOR Interleave Math Structure): one per granule */
void cxl_build_cxims(GArray *table_data)
{
    g_autoptr(GSList) all = cxl_fmws_get_all_sorted();
    unsigned long done = 0;

    for (GSList *it = all; it; it = it->next) {
        CXLFixedWindow *fw = CXL_FMW(it->data), *ref;

        if (!cxl_fmw_is_xor(fw) || !fw->nr_xormaps ||
            test_bit(fw->enc_int_gran, &done)) {
            continue;
        }
        set_bit(fw->enc_int_gran, &done);
        ref = cxl_fmw_xor_longest(all, fw->enc_int_gran);
        build_append_int_noprefix(table_data, 2, 1);    /* Type: CXIMS */
        build_append_int_noprefix(table_data, 0, 1);    /* Reserved */
        build_append_int_noprefix(table_data, 8 + 8 * ref->nr_xormaps, 2);
        build_append_int_noprefix(table_data, 0, 2);    /* Reserved */
        /* Host Bridge Interleave Granularity, encoded as in the CFMWS */
        build_append_int_noprefix(table_data, ref->enc_int_gran, 1);
        build_append_int_noprefix(table_data, ref->nr_xormaps, 1);
        for (unsigned i = 0; i < ref->nr_xormaps; i++) {
            build_append_int_noprefix(table_data, ref->xormaps[i], 8);
        }
    }
}
