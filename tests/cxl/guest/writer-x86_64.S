/*
 * Freestanding x86-64 guest for q35 (-bios, 64 KiB at 0xffff0000): one CPU
 * writes a CXL window forever, the x86 twin of writer-aarch64.S, for tests
 * that change the window's route while a guest writes
 * (tests/cxl/retire-test.py).
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Parameters (host -> guest) and results (guest -> host) at PARAMS, in RAM,
 * laid out as writer-aarch64.S lays them out:
 *   0x00 buffer (in the window, below 8 GiB), 0x08 size, 0x10 passes
 *   completed, 0x18 0x600df00d once the guest runs, 0x30 stride (0: 8),
 *   0x38 passes to make (0: forever), 0x40 register stores to make after
 *   the last pass (address at 0x48 + 16 i, 32-bit value at 0x50 + 16 i),
 *   0xc8 1 once they are made.
 * No exception is caught: one resets the machine, and the passes start
 * again from 0, which a test sees.
 * From the reset vector to long mode on page tables in low RAM that map
 * the first 8 GiB with 1 GiB pages; pass g stores g << 32 | o at every
 * stride-th offset o of the buffer, in address order.
 */

#define PARAMS      0x200000

    .text
#include "x86-64-entry.h"

    .code32
start32:
    FLAT_SEGMENTS
    BOOT_TABLES
    LONG_MODE

    .code64
start64:
    movl    $PARAMS, %ebp
    movl    $0x80000, %esp
    movq    $0x600df00d, 0x18(%rbp)
    movq    0(%rbp), %r8                /* buffer */
    movq    8(%rbp), %r9                /* size */
    movq    0x30(%rbp), %r10            /* stride */
    testq   %r10, %r10
    jnz     0f
    movq    $8, %r10
0:  movq    0x38(%rbp), %r11            /* passes to make */
    xorq    %r12, %r12                  /* pass */
1:  incq    %r12
    xorq    %rcx, %rcx                  /* offset */
2:  movq    %r12, %rax
    shlq    $32, %rax
    orq     %rcx, %rax
    movq    %rax, (%r8, %rcx)
    addq    %r10, %rcx
    cmpq    %r9, %rcx
    jb      2b
    movq    %r12, 0x10(%rbp)
    cmpq    %r11, %r12
    jne     1b
    /* the register stores the host asked for, in order */
    movq    0x40(%rbp), %rcx
    leaq    0x48(%rbp), %rsi
5:  testq   %rcx, %rcx
    jz      6f
    movq    (%rsi), %rdi
    movl    8(%rsi), %eax
    movl    %eax, (%rdi)
    addq    $16, %rsi
    decq    %rcx
    jmp     5b
6:  movq    $1, 0xc8(%rbp)
3:  hlt
    jmp     3b

    RESET_VECTOR
