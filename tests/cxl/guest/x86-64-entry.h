/*
 * What the freestanding x86-64 guests for q35 (-bios, 64 KiB at
 * 0xffff0000) share: the GDT, the real-mode entry, the boot page tables
 * (the first 8 GiB identity-mapped with 1 GiB pages, in low RAM), the
 * switch to long mode and the reset vector.
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Include it right after .text; the image then goes on at start32, in
 * 32-bit protected mode, where the includer uses FLAT_SEGMENTS,
 * BOOT_TABLES and LONG_MODE (to start64), and ends with RESET_VECTOR.
 */

#define BASE        0xffff0000
#define ABS(x)      (BASE + (x) - image)
#define BOOT_PML4   0x10000
#define BOOT_PDPT   0x11000

image:

gdt:
    .quad   0
    .quad   0x00cf9a000000ffff          /* 0x08 code32 */
    .quad   0x00cf92000000ffff          /* 0x10 data */
    .quad   0x00af9a000000ffff          /* 0x18 code64 */
gdt_end:

gdt_desc:
    .word   gdt_end - gdt - 1
    .long   ABS(gdt)

    .code16
start16:
    cli
    lgdtl   %cs:(gdt_desc - image)
    movl    %cr0, %eax
    orl     $1, %eax
    movl    %eax, %cr0
    ljmpl   $0x08, $ABS(start32)

/* flat data segments, in protected mode */
.macro FLAT_SEGMENTS
    movw    $0x10, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
.endm

/* boot tables: identity map of 8 GiB with 1 GiB pages */
.macro BOOT_TABLES
    movl    $(BOOT_PDPT | 3), BOOT_PML4
    movl    $0, BOOT_PML4 + 4
    xorl    %ecx, %ecx
0:  movl    %ecx, %eax
    shll    $30, %eax
    orl     $0xe3, %eax                 /* P RW PS A D */
    movl    %eax, BOOT_PDPT(, %ecx, 8)
    movl    %ecx, %eax
    shrl    $2, %eax
    movl    %eax, BOOT_PDPT + 4(, %ecx, 8)
    incl    %ecx
    cmpl    $8, %ecx
    jne     0b
.endm

/* PAE, the boot tables, EFER.LME, paging: on to start64 */
.macro LONG_MODE
    movl    %cr4, %eax
    orl     $(1 << 5), %eax             /* PAE */
    movl    %eax, %cr4
    movl    $BOOT_PML4, %eax
    movl    %eax, %cr3
    movl    $0xc0000080, %ecx           /* EFER.LME */
    rdmsr
    orl     $(1 << 8), %eax
    wrmsr
    movl    %cr0, %eax
    orl     $(1 << 31), %eax
    movl    %eax, %cr0
    ljmpl   $0x18, $ABS(start64)
.endm

.macro RESET_VECTOR
    .org    0xfff0
reset:                                  /* jmp near start16, IP wraps */
    .byte   0xe9
    .word   (start16 - reset - 3) & 0xffff
    .org    0x10000
.endm
