/*
 * Freestanding arm64 guest for the virt machine (-bios): one vCPU writes
 * a CXL window forever, for tests that change the window's route, migrate
 * or read backends while a guest writes (tests/cxl/routing-test.py).
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Parameters (host -> guest) and results (guest -> host) at PARAMS, in RAM:
 *   0x00 buffer (in the window, 64-byte aligned)
 *   0x08 size (a multiple of 64)
 *   0x10 passes completed (guest -> host), after each whole pass
 *   0x18 0x600df00d once the guest runs
 *   0x20 ESR_EL1 of the first exception taken (0: none), then the guest
 *        stops: a store the window refuses is a synchronous external abort
 *   0x28 FAR_EL1 of that exception
 *   0x30 stride (host -> guest): bytes between two stores, a multiple of
 *        8; 0 is 8, every word
 *   0x38 passes to make (host -> guest), then wait; 0: forever
 * Pass g (from 1) stores, at every stride-th byte of the buffer at offset
 * o, the value g << 32 | o, in address order, with the MMU off (so the
 * stores are single-copy atomic and reach memory in program order).
 */

#define PARAMS      0x44000000

    .text
    .globl _start
_start:
    ldr     x20, =PARAMS
    adr     x0, vectors
    msr     vbar_el1, x0
    isb
    ldr     x0, =0x600df00d
    str     x0, [x20, #0x18]
    ldr     x21, [x20, #0]
    ldr     x22, [x20, #8]
    ldr     x24, [x20, #0x30]
    cbnz    x24, 0f
    mov     x24, #8
0:  ldr     x25, [x20, #0x38]
    mov     x23, #0                     /* pass */
1:  add     x23, x23, #1
    mov     x1, #0                      /* offset */
2:  orr     x2, x1, x23, lsl #32
    str     x2, [x21, x1]
    add     x1, x1, x24
    cmp     x1, x22
    b.lo    2b
    str     x23, [x20, #0x10]
    cmp     x23, x25
    b.ne    1b
    dsb     sy
4:  wfi
    b       4b

    .ltorg

    /* every exception: record it and stop */
    .balign 2048
vectors:
    .rept   16
    b       fault
    .balign 128
    .endr

fault:
    ldr     x20, =PARAMS
    mrs     x0, esr_el1
    str     x0, [x20, #0x20]
    mrs     x0, far_el1
    str     x0, [x20, #0x28]
    dsb     sy
3:  wfi
    b       3b

    .ltorg
