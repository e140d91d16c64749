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
 *   0x40 register stores to make after the last pass (at most 8): the
 *        32-bit value at 0x50 + 16 i to the address at 0x48 + 16 i, in
 *        order, right after the pass's last store (a guest that
 *        uncommits the decoders of the memory it just wrote)
 *   0xc8 1 once those stores are made (guest -> host)
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
    ldr     x26, [x20, #0x40]
    add     x27, x20, #0x48
5:  cbz     x26, 6f
    ldp     x0, x1, [x27], #16
    str     w1, [x0]
    sub     x26, x26, #1
    b       5b
6:  mov     x0, #1
    str     x0, [x20, #0xc8]
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
