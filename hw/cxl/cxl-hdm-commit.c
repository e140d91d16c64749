/*
 * CXL HDM decoder commit checks
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * A decoder that software programs inconsistently must not commit: the
 * component sets the Error Not Committed bit (CXL r3.1 8.2.4.20.7) and
 * leaves Committed clear, so the decode (and the RAM routing derived from
 * it) never sees it.  What is refused here is what a decoder cannot
 * implement: reserved encodings, interleaves the component does not
 * advertise, a size that does not split into 256 MiB per way, ranges
 * beyond the HPA space, decoders committed out of order or overlapping
 * the one below, and device decoders reaching beyond the device's DPA.
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "qemu/host-utils.h"
#include "hw/cxl/cxl.h"

#define HDM_INC (R_CXL_HDM_DECODER1_BASE_LO - R_CXL_HDM_DECODER0_BASE_LO)

/* CXL r3.1 8.2.4.20.7: IG encodings above 16 KiB are reserved */
#define CXL_HDM_IG_MAX 6

const char *cxl_hdm_decoder_commit_error(const uint32_t *cm, int which,
                                         uint32_t ctrl, bool device,
                                         uint64_t capacity)
{
    uint32_t cap = ldl_le_p(cm + R_CXL_HDM_DECODER_CAPABILITY);
    CXLHDMDecoderRange r = cxl_hdm_decoder_range(cm, which);
    uint64_t base = r.base, size = r.size;
    uint32_t ig = FIELD_EX32(ctrl, CXL_HDM_DECODER0_CTRL, IG);
    uint32_t iw = FIELD_EX32(ctrl, CXL_HDM_DECODER0_CTRL, IW);
    int ways = cxl_interleave_ways_dec(iw, NULL);
    uint64_t dpa_end = 0;
    int i;

    if (ig > CXL_HDM_IG_MAX) {
        return "reserved interleave granularity encoding";
    }
    if (!ways) {
        return "reserved interleave ways encoding";
    }
    if (ways % 3 == 0 &&
        !FIELD_EX32(cap, CXL_HDM_DECODER_CAPABILITY, 3_6_12_WAY)) {
        return "3, 6 and 12-way interleave not supported by this component";
    }
    if (ways == 16 && !FIELD_EX32(cap, CXL_HDM_DECODER_CAPABILITY, 16_WAY)) {
        return "16-way interleave not supported by this component";
    }
    if (!device && ways > 8) {
        return "more ways than the target list holds";
    }
    if (size % (ways * 256 * MiB)) {
        return "size is not a multiple of 256 MiB per way";
    }
    if (base + size < base || base + size > (1ULL << 52)) {
        return "range beyond the 52-bit host physical address space";
    }
    if (which > 0) {
        uint32_t prev = ldl_le_p(cm + R_CXL_HDM_DECODER0_CTRL +
                                 (which - 1) * HDM_INC);

        if (!FIELD_EX32(prev, CXL_HDM_DECODER0_CTRL, COMMITTED)) {
            return "committed before the decoder below it";
        }
        CXLHDMDecoderRange below = cxl_hdm_decoder_range(cm, which - 1);

        if (base < below.base + below.size) {
            return "overlaps or precedes the decoder below it";
        }
    }
    if (device) {
        /* DPA is allocated decoder by decoder: skip, then size / ways */
        for (i = 0; i <= which; i++) {
            uint32_t c = i == which ? ctrl :
                ldl_le_p(cm + R_CXL_HDM_DECODER0_CTRL + i * HDM_INC);
            int w = cxl_interleave_ways_dec(
                FIELD_EX32(c, CXL_HDM_DECODER0_CTRL, IW), NULL);

            CXLHDMDecoderRange ri = cxl_hdm_decoder_range(cm, i);
            uint64_t part = w ? ri.size / w : 0;

            if (uadd64_overflow(dpa_end, ri.dpa_skip, &dpa_end) ||
                uadd64_overflow(dpa_end, part, &dpa_end)) {
                return "DPA range beyond the device's capacity";
            }
        }
        if (dpa_end > capacity) {
            return "DPA range beyond the device's capacity";
        }
    }
    return NULL;
}
