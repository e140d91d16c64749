/*
 * Freestanding arm64 guest for the virt machine (-bios): two vCPUs run
 * atomics on memory in a CXL window, through translation tables that
 * also live in the window and that the walker updates itself.
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The host fills the parameter block before starting the CPUs:
 *   PARAMS + 0x00  A: 64 bytes for the atomics (in the window)
 *   PARAMS + 0x08  N: iterations per CPU
 *   PARAMS + 0x10  PT: 12 KiB for the translation tables (in the window)
 *   PARAMS + 0x18  CODE: 8 bytes for code (in the window), or 0
 * and reads back:
 *   PARAMS + 0x20  CPU 1 done (1)
 *   PARAMS + 0x28  CPU 0 done (0x600df00d), after CPU 1
 *   PARAMS + 0x30  PSCI CPU_ON return value
 *   PARAMS + 0x38  what code written at CODE returned (1)
 *   PARAMS + 0x40  what it returned once rewritten (2): a stale
 *                  translation means the code's page was not tracked
 *
 * Each CPU: N exclusive (ldxr/stxr) increments of A[0], N LSE ldadd of 3
 * to A[1], N casal increments of A[2], N ldaxp/stlxp increments of both
 * halves of A[4..5].  The tables map, with 1 GiB blocks whose Access flag
 * is clear: GiB 0 (the code), GiB 1 (RAM, read-only + DBM) and the first
 * GiB of the window.  TCR_EL1.HA/HD make the walker set the Access flags
 * and clear the RAM block's read-only bit: atomic updates of descriptors
 * in the window.
 */

#define PARAMS      0x44000000
#define WINDOW      0x10000000000
#define BLOCK       0x301               /* block, SH inner, AF clear */
#define BLOCK_RO    (BLOCK | (1 << 7) | (1 << 51))  /* AP[2] + DBM */
/* T0SZ 16, WBWA, inner shareable, EPD1, IPS 48 bits, HA, HD */
#define TCR         (16 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23) | \
                     (5 << 32) | (1 << 39) | (1 << 40))

    .text
    .globl _start
_start:
    ldr     x20, =PARAMS
    ldr     x21, [x20, #0]
    ldr     x22, [x20, #8]
    ldr     x23, [x20, #16]
    add     x24, x23, #0x1000           /* L1 for VA 0 .. 512 GiB */
    add     x25, x23, #0x2000           /* L1 for the window's 512 GiB */
    mov     x0, x23
    mov     x1, #(3 * 4096 / 8)
0:  str     xzr, [x0], #8
    subs    x1, x1, #1
    b.ne    0b
    orr     x0, x24, #3
    str     x0, [x23]                   /* L0[0] -> table */
    orr     x0, x25, #3
    str     x0, [x23, #16]              /* L0[2] -> table (1 TiB) */
    ldr     x0, =BLOCK
    str     x0, [x24]                   /* GiB 0: code */
    ldr     x1, =(0x40000000 | BLOCK_RO)
    str     x1, [x24, #8]               /* GiB 1: RAM */
    ldr     x2, =WINDOW
    orr     x2, x2, x0
    str     x2, [x25]                   /* the window's first GiB */
    dsb     sy

    ldr     x0, =0xc4000003             /* PSCI CPU_ON (64-bit) */
    mov     x1, #1
    adr     x2, secondary
    mov     x3, #0
    hvc     #0
    str     x0, [x20, #0x30]

    bl      mmu_on
    ldr     x26, [x20, #0x18]
    cbz     x26, 8f
    /* code in the window, run, rewritten, run again */
    ldr     w0, =0xd2800020             /* mov x0, #1 */
    ldr     w1, =0xd65f03c0             /* ret */
    str     w0, [x26]
    str     w1, [x26, #4]
    bl      sync_icache
    blr     x26
    str     x0, [x20, #0x38]
    ldr     w0, =0xd2800040             /* mov x0, #2 */
    str     w0, [x26]
    bl      sync_icache
    blr     x26
    str     x0, [x20, #0x40]
8:  bl      atomics
1:  ldr     x0, [x20, #0x20]
    cbz     x0, 1b
    ldr     x0, =0x600df00d
    str     x0, [x20, #0x28]
    dsb     sy
2:  wfi
    b       2b

secondary:
    ldr     x20, =PARAMS
    ldr     x21, [x20, #0]
    ldr     x22, [x20, #8]
    ldr     x23, [x20, #16]
    bl      mmu_on
    bl      atomics
    mov     x0, #1
    str     x0, [x20, #0x20]
    dsb     sy
3:  wfi
    b       3b

sync_icache:
    dc      cvau, x26
    dsb     ish
    ic      ivau, x26
    dsb     ish
    isb
    ret

mmu_on:
    mov     x0, #0xff
    msr     mair_el1, x0
    ldr     x0, =TCR
    msr     tcr_el1, x0
    msr     ttbr0_el1, x23
    isb
    tlbi    vmalle1
    dsb     sy
    isb
    mrs     x0, sctlr_el1
    orr     x0, x0, #1                  /* M */
    orr     x0, x0, #(1 << 2)           /* C */
    orr     x0, x0, #(1 << 12)          /* I */
    msr     sctlr_el1, x0
    isb
    ret

atomics:
    mov     x1, x22
1:  ldxr    x2, [x21]
    add     x2, x2, #1
    stxr    w3, x2, [x21]
    cbnz    w3, 1b
    subs    x1, x1, #1
    b.ne    1b

    add     x6, x21, #8
    mov     x4, #3
    mov     x1, x22
2:  ldadd   x4, x5, [x6]
    subs    x1, x1, #1
    b.ne    2b

    add     x6, x21, #16
    mov     x1, x22
3:  ldr     x7, [x6]
4:  add     x9, x7, #1
    mov     x8, x7
    casal   x8, x9, [x6]
    cmp     x8, x7
    mov     x7, x8
    b.ne    4b
    subs    x1, x1, #1
    b.ne    3b

    add     x6, x21, #32
    mov     x1, x22
5:  ldaxp   x2, x3, [x6]
    add     x2, x2, #1
    add     x3, x3, #1
    stlxp   w4, x2, x3, [x6]
    cbnz    w4, 5b
    subs    x1, x1, #1
    b.ne    5b
    ret

    .ltorg
