/*
 * Freestanding arm64 guest for the virt machine (-bios): memory bandwidth
 * loops timed with the virtual counter, for bench/tcg-bandwidth.py.
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Parameters (host -> guest) and results (guest -> host) at PARAMS:
 *   0x00 buffer (64-byte aligned)   0x08 size (multiple of 128)
 *   0x10 repetitions
 *   0x20 CNTFRQ_EL0                 0x28 ticks reading size bytes x reps
 *   0x30 ticks writing              0x38 ticks copying size/2 bytes x reps
 *   0x40 sum of the words read      0x48 0x600df00d when done
 * One untimed pass writes the whole buffer first.  Reads and writes are
 * 64 bytes per iteration with ldp/stp; the copy moves the first half of
 * the buffer to the second.
 */

#define PARAMS      0x44000000

    .text
    .globl _start
_start:
    ldr     x20, =PARAMS
    ldr     x21, [x20, #0]
    ldr     x22, [x20, #8]
    ldr     x23, [x20, #16]
    mrs     x0, cntfrq_el0
    str     x0, [x20, #0x20]

    /* untimed: touch every page once (host faults are not bandwidth) */
    mov     x0, x21
    lsr     x1, x22, #6
0:  stp     xzr, xzr, [x0]
    add     x0, x0, #64
    subs    x1, x1, #1
    b.ne    0b

    /* read */
    mov     x10, #0
    isb
    mrs     x24, cntvct_el0
    mov     x12, x23
1:  mov     x0, x21
    lsr     x1, x22, #6
2:  ldp     x2, x3, [x0]
    ldp     x4, x5, [x0, #16]
    ldp     x6, x7, [x0, #32]
    ldp     x8, x9, [x0, #48]
    add     x10, x10, x2
    add     x10, x10, x9
    add     x0, x0, #64
    subs    x1, x1, #1
    b.ne    2b
    subs    x12, x12, #1
    b.ne    1b
    isb
    mrs     x25, cntvct_el0
    sub     x25, x25, x24
    str     x25, [x20, #0x28]
    str     x10, [x20, #0x40]

    /* write */
    isb
    mrs     x24, cntvct_el0
    mov     x12, x23
3:  mov     x0, x21
    lsr     x1, x22, #6
4:  stp     x1, x12, [x0]
    stp     x1, x12, [x0, #16]
    stp     x1, x12, [x0, #32]
    stp     x1, x12, [x0, #48]
    add     x0, x0, #64
    subs    x1, x1, #1
    b.ne    4b
    subs    x12, x12, #1
    b.ne    3b
    isb
    mrs     x25, cntvct_el0
    sub     x25, x25, x24
    str     x25, [x20, #0x30]

    /* copy: first half to second half */
    isb
    mrs     x24, cntvct_el0
    mov     x12, x23
5:  mov     x0, x21
    lsr     x13, x22, #1
    add     x14, x21, x13
    lsr     x1, x13, #6
6:  ldp     x2, x3, [x0]
    ldp     x4, x5, [x0, #16]
    ldp     x6, x7, [x0, #32]
    ldp     x8, x9, [x0, #48]
    stp     x2, x3, [x14]
    stp     x4, x5, [x14, #16]
    stp     x6, x7, [x14, #32]
    stp     x8, x9, [x14, #48]
    add     x0, x0, #64
    add     x14, x14, #64
    subs    x1, x1, #1
    b.ne    6b
    subs    x12, x12, #1
    b.ne    5b
    isb
    mrs     x25, cntvct_el0
    sub     x25, x25, x24
    str     x25, [x20, #0x38]

    ldr     x0, =0x600df00d
    str     x0, [x20, #0x48]
    dsb     sy
7:  wfi
    b       7b

    .ltorg
