/*
 * Freestanding x86-64 guest for q35 (-bios, 64 KiB at 0xffff0000): two
 * CPUs run lock-prefixed atomics on memory in a CXL window, through page
 * tables that also live in the window and whose Accessed/Dirty bits the
 * walker sets itself.
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The host fills the parameter block before starting the CPUs:
 *   PARAMS + 0x00  A: 64 bytes for the atomics (in the window)
 *   PARAMS + 0x08  N: iterations per CPU
 *   PARAMS + 0x10  PT: 8 KiB for the page tables (in the window)
 * and reads back:
 *   PARAMS + 0x18  window page tables ready (BSP -> AP)
 *   PARAMS + 0x20  CPU 1 done (1)
 *   PARAMS + 0x28  CPU 0 done (0x600df00d), after CPU 1
 *   PARAMS + 0x30  CODE: 6 bytes for code (in the window), or 0 (host)
 *   PARAMS + 0x38  what code written at CODE returned (1)
 *   PARAMS + 0x40  what it returned once rewritten (2): a stale
 *                  translation means the code's page was not tracked
 *
 * Both CPUs go from the reset vector (BSP) or a SIPI trampoline (AP) to
 * long mode on boot page tables in low RAM, then switch CR3 to tables in
 * the window that map the first 8 GiB with 1 GiB pages, Accessed and
 * Dirty clear, and run: N lock inc of A[0], N lock xadd of 3 to A[1], N
 * lock cmpxchg increments of A[2], N lock cmpxchg16b increments of both
 * halves of A[4..5].
 */

#define PARAMS      0x200000
#define TRAMPOLINE  0x9000
#define LAPIC_ICR   0xfee00300

    .text
#include "x86-64-entry.h"

    /* copied to TRAMPOLINE; the AP starts here in real mode, CS = 0x900 */
trampoline:
    cli
    lgdtl   %cs:(tramp_desc - trampoline)
    movl    %cr0, %eax
    orl     $1, %eax
    movl    %eax, %cr0
    ljmpl   $0x08, $ABS(start32)
tramp_desc:
    .word   gdt_end - gdt - 1
    .long   ABS(gdt)
trampoline_end:

    .code32
start32:
    FLAT_SEGMENTS
    /* boot tables: identity map of 8 GiB with 1 GiB pages */
    movl    $0x1, %eax                  /* LAPIC ID decides the role */
    cpuid
    shrl    $24, %ebx
    jnz     1f
    BOOT_TABLES
1:  LONG_MODE

    .code64
start64:
    movl    $PARAMS, %ebp
    movq    0(%rbp), %rsi               /* A */
    movq    8(%rbp), %r12               /* N */
    movq    16(%rbp), %rdi              /* PT */
    movl    $0x1, %eax
    cpuid
    shrl    $24, %ebx
    movl    $0x70000, %esp              /* AP stack */
    jnz     ap64
    movl    $0x80000, %esp              /* BSP stack */

    /* window page tables: PML4 at PT, PDPT at PT + 4 KiB, A/D clear */
    movq    %rdi, %rdx
    movl    $(2 * 4096 / 8), %ecx
0:  movq    $0, (%rdx)
    addq    $8, %rdx
    loop    0b
    leaq    0x1000 + 3(%rdi), %rax      /* P RW */
    movq    %rax, (%rdi)
    xorl    %ecx, %ecx
1:  movq    %rcx, %rax
    shlq    $30, %rax
    orq     $0x83, %rax                 /* P RW PS */
    movq    %rax, 0x1000(%rdi, %rcx, 8)
    incl    %ecx
    cmpl    $8, %ecx
    jne     1b
    movq    %rdi, %cr3
    movq    $1, 0x18(%rbp)

    /* start CPU 1: copy the trampoline, INIT, SIPI */
    leaq    trampoline(%rip), %rsi
    movl    $TRAMPOLINE, %edi
    movl    $(trampoline_end - trampoline), %ecx
    rep movsb
    movq    0(%rbp), %rsi
    movq    16(%rbp), %rdi
    movl    $LAPIC_ICR, %ebx
    movl    $(1 << 24), 0x10(%rbx)
    movl    $0x4500, (%rbx)             /* INIT */
    movl    $(1 << 24), 0x10(%rbx)
    movl    $(0x4600 | (TRAMPOLINE >> 12)), (%rbx)  /* SIPI */

    movq    0x30(%rbp), %r13
    testq   %r13, %r13
    jz      8f
    /* code in the window, run, rewritten, run again */
    movl    $0x000001b8, (%r13)         /* mov $1, %eax */
    movw    $0xc300, 4(%r13)            /* ret */
    call    *%r13
    movq    %rax, 0x38(%rbp)
    movb    $2, 1(%r13)
    call    *%r13
    movq    %rax, 0x40(%rbp)
8:  call    atomics
2:  cmpq    $0, 0x20(%rbp)
    je      2b
    movq    $0x600df00d, 0x28(%rbp)
3:  hlt
    jmp     3b

ap64:
    cmpq    $0, 0x18(%rbp)
    je      ap64
    movq    %rdi, %cr3
    call    atomics
    movq    $1, 0x20(%rbp)
4:  hlt
    jmp     4b

atomics:
    movq    %r12, %rcx
0:  lock incq (%rsi)
    loop    0b

    movq    %r12, %rcx
1:  movq    $3, %rax
    lock xaddq %rax, 8(%rsi)
    loop    1b

    movq    %r12, %rcx
2:  movq    16(%rsi), %rax
3:  leaq    1(%rax), %rdx
    lock cmpxchgq %rdx, 16(%rsi)
    jne     3b
    loop    2b

    movq    %r12, %r8
4:  movq    32(%rsi), %rax
    movq    40(%rsi), %rdx
5:  leaq    1(%rax), %rbx
    leaq    1(%rdx), %rcx
    lock cmpxchg16b 32(%rsi)
    jne     5b
    decq    %r8
    jnz     4b
    ret

    RESET_VECTOR
