/*
 * Guest-side helper of the e2e scenarios (static, runs from the initramfs)
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Run it under "numactl --membind=NODE" so that its memory, and the page
 * tables the kernel allocates for it, come from NODE.  Every result is one
 * line "E2E <what> key=value ..." on stdout, which the init script copies
 * to the serial console for the host to check.
 *
 *   cxl-e2e bw MIB              read/write/copy bandwidth, MB/s
 *   cxl-e2e pt TABLES           touch one page per 2 MiB over TABLES page
 *                               tables' worth of address space, twice
 *   cxl-e2e pattern MIB SECS    fill MIB with words = own physical address
 *                               ^ MAGIC, print the page frame ranges, keep
 *                               the memory for SECS seconds
 *   cxl-e2e odirect DEV MIB SEED
 *                               O_DIRECT write then read of MIB at offset 0
 *                               of DEV from a buffer on the node; compare;
 *                               print the FNV-1a hash of what was written
 *   cxl-e2e fwcommit GRAN REGIONS
 *                               commit the HDM decoders as firmware would
 *                               (cxl-fwcommit.c)
 */

#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "cxl-e2e.h"

#define MIB (1024UL * 1024)
#define MAGIC 0x5a5a000000000000ULL

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

/*
 * Passes over the buffer until at least BW_SECONDS have gone: a write-back
 * period (20 ms) or a timer tick in the middle of a short loop would
 * otherwise decide the figure.
 */
#define BW_SECONDS 0.5

static int cmd_bw(size_t mib)
{
    size_t size = mib * MIB, n = size / 8, i;
    uint64_t *a, sum = 0;
    double t, w, r, c, f;
    int wr = 0, rr = 0, cr = 0;
    char *p;

    /* first touch: a page fault and a zeroed page each 4 KiB */
    t = now();
    p = mmap(NULL, size, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    for (i = 0; i < size; i += 4096) {
        p[i] = 1;
    }
    f = now() - t;
    munmap(p, size);

    a = alloc(size);
    t = now();
    do {
        for (i = 0; i < n; i++) {
            a[i] = i + wr;
        }
        wr++;
    } while (now() - t < BW_SECONDS);
    w = now() - t;
    t = now();
    do {
        for (i = 0; i < n; i++) {
            sum += a[i];
        }
        rr++;
    } while (now() - t < BW_SECONDS);
    r = now() - t;
    t = now();
    do {
        memcpy(a + n / 2, a, size / 2);
        cr++;
    } while (now() - t < BW_SECONDS);
    c = now() - t;
    printf("E2E bw mib=%zu write=%.0f read=%.0f copy=%.0f touch=%.0f "
           "sum=%" PRIu64 "\n", mib, wr * mib / w, rr * mib / r,
           cr * mib / 2 / c, mib / f, sum & 1);
    return 0;
}

static int cmd_pt(long tables)
{
    size_t span = tables * 2 * MIB, off;
    char *p = mmap(NULL, span, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    double t;
    int pass;
    long sum = 0;

    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    t = now();
    for (pass = 0; pass < 2; pass++) {
        for (off = 0; off < span; off += 2 * MIB) {
            p[off] += 1;
            sum += p[off];
        }
    }
    printf("E2E pt tables=%ld seconds=%.3f ok=%d\n", tables, now() - t,
           sum == tables * 3);
    return sum == tables * 3 ? 0 : 1;
}

static uint64_t page_frame(int fd, void *va)
{
    uint64_t e;

    if (pread(fd, &e, 8, (uintptr_t)va / 4096 * 8) != 8 ||
        !(e & (1ULL << 63))) {
        return 0;
    }
    return e & ((1ULL << 55) - 1);
}

static int cmd_pattern(size_t mib, int secs)
{
    size_t size = mib * MIB, pages = size / 4096, i, j;
    uint64_t *a = alloc(size), first = 0, prev = 0;
    int fd = open("/proc/self/pagemap", O_RDONLY);

    if (fd < 0 || mlock(a, size)) {
        perror("pagemap/mlock");
        return 1;
    }
    printf("E2E pattern-pages");
    for (i = 0; i < pages; i++) {
        uint64_t pfn = page_frame(fd, (char *)a + i * 4096);

        if (!pfn) {
            printf("\nE2E pattern error=no-pfn\n");
            return 1;
        }
        for (j = 0; j < 512; j++) {
            a[i * 512 + j] = (pfn * 4096 + j * 8) ^ MAGIC;
        }
        if (i && pfn == prev + 1) {
            prev = pfn;
            continue;
        }
        if (i) {
            printf(" %" PRIx64 "-%" PRIx64, first, prev);
        }
        first = prev = pfn;
    }
    printf(" %" PRIx64 "-%" PRIx64 "\n", first, prev);
    printf("E2E pattern-ready mib=%zu\n", mib);
    fflush(stdout);
    sleep(secs);
    return 0;
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    while (n--) {
        h = (h ^ *p++) * 0x100000001b3ULL;
    }
    return h;
}

static int cmd_odirect(const char *dev, size_t mib, unsigned seed)
{
    size_t size = mib * MIB, i;
    uint8_t *buf = alloc(size), *back = alloc(size);
    int fd = open(dev, O_RDWR | O_DIRECT);
    uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;

    if (fd < 0) {
        perror(dev);
        return 1;
    }
    for (i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = x;
    }
    if (pwrite(fd, buf, size, 0) != (ssize_t)size || fsync(fd) ||
        pread(fd, back, size, 0) != (ssize_t)size) {
        perror("O_DIRECT");
        return 1;
    }
    printf("E2E odirect mib=%zu fnv=%016" PRIx64 " same=%d\n", mib,
           fnv1a(buf, size), !memcmp(buf, back, size));
    return memcmp(buf, back, size) ? 1 : 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && !strcmp(argv[1], "bw")) {
        return cmd_bw(strtoul(argv[2], NULL, 0));
    }
    if (argc == 3 && !strcmp(argv[1], "pt")) {
        return cmd_pt(strtol(argv[2], NULL, 0));
    }
    if (argc == 4 && !strcmp(argv[1], "pattern")) {
        return cmd_pattern(strtoul(argv[2], NULL, 0), atoi(argv[3]));
    }
    if (argc == 5 && !strcmp(argv[1], "odirect")) {
        return cmd_odirect(argv[2], strtoul(argv[3], NULL, 0),
                           strtoul(argv[4], NULL, 0));
    }
    if (argc == 4 && !strcmp(argv[1], "fwcommit")) {
        return cmd_fwcommit(strtoull(argv[2], NULL, 0), atoi(argv[3]));
    }
    fprintf(stderr, "usage: see tests/e2e/guest/cxl-e2e.c\n");
    return 2;
}
