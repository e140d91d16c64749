/*
 * "cxl-e2e fwcommit": commit HDM decoders from the guest, as firmware would
 *
 * Copyright (c) 2026 The qemu-cxl-interleave authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Arm64 Linux 6.12 cannot commit a region itself (it has no way to
 * invalidate CPU caches for a memory range, so "cxl create-region" fails
 * with "Failed to synchronize CPU cache state"), but it assembles and
 * onlines a region whose decoders firmware committed before the cxl
 * modules probed.  This plays that firmware: from the CEDT (the fixed
 * memory window and each host bridge's register block) and the PCI
 * devices in sysfs (each type-3 device's component-register BAR, found
 * through its Register Locator DVSEC), it splits every device into
 * @regions equal parts and commits, for part k, endpoint decoder k
 * (all devices, region granularity @gran) and host bridge decoder k
 * (its root ports in port-number order, granularity = window granule x
 * host bridges, as Linux expects of an auto-discovered region), through
 * /dev/mem.  Run it after PCI enumeration and before the cxl modules.
 *
 * Prints "E2E fwcommit ..." lines; exits non-zero, saying why, if a
 * decoder does not commit.
 */

#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "cxl-e2e.h"

#define MAX_HB 8
#define MAX_PORTS 8

#define PCI_CLASS_CXL_MEM 0x0502
#define DVSEC_VENDOR_CXL 0x1e98
#define DVSEC_REG_LOCATOR 8
#define REG_BLOCK_COMPONENT 1
#define CM_OFFSET 0x1000          /* CXL.cachemem registers in the block */
#define CAP_ID_HDM 5
#define HDM_CAP 0x0
#define HDM_GLOBAL_CTRL 0x4
#define HDM_ENABLE (1u << 1)
#define HDM_DEC(n, reg) (0x10 + 0x20 * (n) + (reg))
#define CTRL_COMMIT (1u << 9)
#define CTRL_COMMITTED (1u << 10)
#define CTRL_ERR (1u << 11)
#define CTRL_HOSTONLY (1u << 12)

struct port {
    unsigned number;            /* PCIe Link Capabilities port number */
    char ep[PATH_MAX];          /* sysfs path of its type-3 device */
};

struct hb {
    uint32_t uid;
    uint64_t regs;              /* CHBS base */
    int nports;
    struct port ports[MAX_PORTS];
};

/* @buf (PATH_MAX bytes) = @dir/@name; -1 if that does not fit */
static int pathf(char *buf, const char *dir, const char *name)
{
    return snprintf(buf, PATH_MAX, "%s/%s", dir, name) < PATH_MAX ? 0 : -1;
}

static int fail(const char *what)
{
    printf("E2E fail fwcommit: %s\n", what);
    return 1;
}

static ssize_t read_file(const char *path, void *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    ssize_t n;

    if (fd < 0) {
        return -1;
    }
    n = read(fd, buf, len);
    close(fd);
    return n;
}

static uint32_t le32(const uint8_t *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return le32(p) | (uint64_t)le32(p + 4) << 32;
}

static uint32_t cfg32(const uint8_t *cfg, unsigned off)
{
    return le32(cfg + off);
}

/* Maps @len bytes of physical memory at @pa (page-aligned) */
static volatile uint32_t *map_phys(uint64_t pa, size_t len)
{
    int fd = open("/dev/mem", O_RDWR | O_SYNC);
    void *p;

    if (fd < 0) {
        return NULL;
    }
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, pa);
    close(fd);
    return p == MAP_FAILED ? NULL : p;
}

/*
 * The HDM decoder capability of the component register block at @pa:
 * walks the CXL capability array at the start of the cache/mem registers.
 */
static volatile uint32_t *hdm_regs(uint64_t pa)
{
    volatile uint32_t *cm = map_phys(pa, 0x10000);   /* device registers */
    uint32_t hdr;
    unsigned i, n;

    if (!cm) {
        return NULL;
    }
    cm += CM_OFFSET / 4;
    hdr = cm[0];
    if ((hdr & 0xffff) != 1) {
        return NULL;
    }
    n = hdr >> 24;
    for (i = 1; i <= n; i++) {
        /* a 12-bit offset: the 64 KiB mapping covers any capability */
        if ((cm[i] & 0xffff) == CAP_ID_HDM) {
            return cm + (cm[i] >> 20) / 4;
        }
    }
    return NULL;
}

/* Number of decoders an HDM decoder capability register announces */
static int decoder_count(uint32_t cap)
{
    unsigned c = cap & 0xf;

    return c == 0 ? 1 : c <= 8 ? 2 * c : c <= 12 ? 16 + 4 * (c - 8) : 0;
}

static int gran_enc(uint64_t gran)
{
    int e = 0;

    while ((256ull << e) < gran) {
        e++;
    }
    return (256ull << e) == gran ? e : -1;
}

static int ways_enc(int ways)
{
    switch (ways) {
    case 1: return 0;
    case 2: return 1;
    case 4: return 2;
    case 8: return 3;
    case 16: return 4;
    case 3: return 8;
    case 6: return 9;
    case 12: return 10;
    }
    return -1;
}

/*
 * Programs and commits decoder @n of @hdm; @targets (NULL for an
 * endpoint, whose target-list register is the DPA skip, 0 here).
 */
static int commit(volatile uint32_t *hdm, int n, uint64_t base,
                  uint64_t size, int ways, uint64_t gran,
                  const unsigned *targets, const char *who)
{
    uint64_t tl = 0;
    uint32_t ctrl;
    int i, ge = gran_enc(gran), we = ways_enc(ways);
    struct timespec ms = { 0, 1000000 };
    char msg[200];

    if (ge < 0 || we < 0) {
        snprintf(msg, sizeof(msg), "%s: %d ways at %" PRIu64 " cannot be "
                 "encoded", who, ways, gran);
        return fail(msg);
    }
    for (i = 0; targets && i < ways; i++) {
        tl |= (uint64_t)targets[i] << (8 * i);
    }
    hdm[HDM_GLOBAL_CTRL / 4] |= HDM_ENABLE;
    hdm[HDM_DEC(n, 0x0) / 4] = base;
    hdm[HDM_DEC(n, 0x4) / 4] = base >> 32;
    hdm[HDM_DEC(n, 0x8) / 4] = size;
    hdm[HDM_DEC(n, 0xc) / 4] = size >> 32;
    hdm[HDM_DEC(n, 0x14) / 4] = tl;
    hdm[HDM_DEC(n, 0x18) / 4] = tl >> 32;
    hdm[HDM_DEC(n, 0x10) / 4] = ge | we << 4 | CTRL_HOSTONLY | CTRL_COMMIT;
    /* the spec lets the commit complete later: give it 10 ms */
    for (i = 0; i < 10; i++) {
        ctrl = hdm[HDM_DEC(n, 0x10) / 4];
        if (ctrl & (CTRL_COMMITTED | CTRL_ERR)) {
            break;
        }
        nanosleep(&ms, NULL);
    }
    printf("E2E fwcommit %s decoder=%d base=0x%" PRIx64 " size=0x%" PRIx64
           " ways=%d gran=%" PRIu64 " ctrl=0x%x\n", who, n, base, size, ways,
           gran, ctrl);
    if (!(ctrl & CTRL_COMMITTED) || (ctrl & CTRL_ERR)) {
        snprintf(msg, sizeof(msg), "%s decoder %d did not commit (ctrl "
                 "0x%x)", who, n, ctrl);
        return fail(msg);
    }
    return 0;
}

/* Component-register address of the PCI device at sysfs path @dev */
static uint64_t component_regs(const char *dev)
{
    uint8_t cfg[4096];
    char path[PATH_MAX], line[200];
    unsigned off = 0x100, i, hops = 0;
    FILE *f;

    if (pathf(path, dev, "config") ||
        read_file(path, cfg, sizeof(cfg)) != sizeof(cfg)) {
        return 0;
    }
    /* extended capabilities: 4-byte aligned, above 0x100, no loops */
    while (off >= 0x100 && off + 12 <= sizeof(cfg) && hops++ < 1024) {
        uint32_t h = cfg32(cfg, off);

        if ((h & 0xffff) == 0x23 &&
            (cfg32(cfg, off + 4) & 0xffff) == DVSEC_VENDOR_CXL &&
            (cfg32(cfg, off + 8) & 0xffff) == DVSEC_REG_LOCATOR) {
            unsigned len = cfg32(cfg, off + 4) >> 20;

            for (i = off + 0xc; i + 8 <= off + len && i + 8 <= sizeof(cfg);
                 i += 8) {
                uint32_t lo = cfg32(cfg, i), hi = cfg32(cfg, i + 4);
                uint64_t start = 0;
                int bar = lo & 7;

                if (((lo >> 8) & 0xff) != REG_BLOCK_COMPONENT) {
                    continue;
                }
                /* line @bar of "resource": start end flags */
                f = pathf(path, dev, "resource") ? NULL : fopen(path, "r");
                while (f && bar-- >= 0 && fgets(line, sizeof(line), f)) {
                    start = strtoull(line, NULL, 0);
                }
                if (f) {
                    fclose(f);
                }
                return start ? start + (lo & 0xffff0000) +
                               ((uint64_t)hi << 32) : 0;
            }
        }
        off = (h >> 20) & ~3u;
    }
    return 0;
}

/* PCIe port number of the root port at sysfs path @dev */
static int port_number(const char *dev, unsigned *num)
{
    uint8_t cfg[256];
    char path[PATH_MAX];
    unsigned ptr, hops = 0;

    if (pathf(path, dev, "config") ||
        read_file(path, cfg, sizeof(cfg)) != sizeof(cfg)) {
        return -1;
    }
    for (ptr = cfg[0x34] & ~3u; ptr >= 0x40 && ptr + 0x10 <= sizeof(cfg) &&
         hops++ < 48; ptr = cfg[ptr + 1] & ~3u) {
        if (cfg[ptr] == 0x10) {
            *num = cfg32(cfg, ptr + 0xc) >> 24;
            return 0;
        }
    }
    return -1;
}

static int is_pci_function(const char *name)
{
    unsigned a, b, c, d;

    return sscanf(name, "%x:%x:%x.%x", &a, &b, &c, &d) == 4;
}

static int pci_class(const char *dev)
{
    char path[PATH_MAX], buf[32] = "";

    if (pathf(path, dev, "class") ||
        read_file(path, buf, sizeof(buf) - 1) <= 0) {
        return -1;
    }
    return strtoul(buf, NULL, 0) >> 8;
}

static int port_cmp(const void *a, const void *b)
{
    const struct port *pa = a, *pb = b;

    return (pa->number > pb->number) - (pa->number < pb->number);
}

/* The root ports of host bridge @hb and the type-3 device below each */
static int find_ports(struct hb *hb)
{
    char path[PATH_MAX], root[PATH_MAX], rp[PATH_MAX], ep[PATH_MAX];
    char msg[PATH_MAX + 100];
    struct dirent *e, *c;
    DIR *d, *dc;

    /* ACPI0016 device whose _UID is the CHBS UID -> its PCI root bus */
    d = opendir("/sys/bus/acpi/devices");
    root[0] = 0;
    while (d && (e = readdir(d))) {
        char uid[32] = "";

        if (strncmp(e->d_name, "ACPI0016:", 9)) {
            continue;
        }
        snprintf(path, sizeof(path), "/sys/bus/acpi/devices/%s/uid",
                 e->d_name);
        if (read_file(path, uid, sizeof(uid) - 1) > 0 &&
            strtoul(uid, NULL, 0) == hb->uid) {
            snprintf(path, sizeof(path),
                     "/sys/bus/acpi/devices/%s/physical_node", e->d_name);
            if (!realpath(path, root)) {
                root[0] = 0;
            }
        }
    }
    if (d) {
        closedir(d);
    }
    if (!root[0]) {
        snprintf(msg, sizeof(msg), "no ACPI0016 host bridge with UID %u",
                 hb->uid);
        return fail(msg);
    }
    d = opendir(root);
    hb->nports = 0;
    while (d && (e = readdir(d))) {
        struct port *p = &hb->ports[hb->nports];

        if (!is_pci_function(e->d_name)) {
            continue;
        }
        if (hb->nports == MAX_PORTS) {
            closedir(d);
            return fail("more root ports with a type-3 device than "
                        "this helper handles");
        }
        if (pathf(rp, root, e->d_name) || port_number(rp, &p->number)) {
            continue;
        }
        p->ep[0] = 0;
        dc = opendir(rp);
        while (dc && (c = readdir(dc))) {
            if (is_pci_function(c->d_name) && !pathf(ep, rp, c->d_name) &&
                pci_class(ep) == PCI_CLASS_CXL_MEM) {
                memcpy(p->ep, ep, sizeof(ep));
            }
        }
        if (dc) {
            closedir(dc);
        }
        if (p->ep[0]) {
            hb->nports++;
        }
    }
    if (d) {
        closedir(d);
    }
    /* port-number order: the host bridge decoder's target list */
    qsort(hb->ports, hb->nports, sizeof(hb->ports[0]), port_cmp);
    if (!hb->nports) {
        snprintf(msg, sizeof(msg), "no type-3 device below %s", root);
        return fail(msg);
    }
    return 0;
}

static int enable_device(const char *dev)
{
    char path[PATH_MAX];
    int fd, ok;

    fd = pathf(path, dev, "enable") ? -1 : open(path, O_WRONLY);
    ok = fd >= 0 && write(fd, "1", 1) == 1;
    if (fd >= 0) {
        close(fd);
    }
    return ok ? 0 : -1;
}

/* 0 if @hdm has at least @n decoders, else says how many it has */
static int check_decoders(volatile uint32_t *hdm, int n, const char *who)
{
    int have = decoder_count(hdm[HDM_CAP / 4]);

    if (have >= n) {
        return 0;
    }
    printf("E2E fwcommit %s has %d HDM decoders, %d wanted\n", who, have, n);
    return -1;
}

int cmd_fwcommit(uint64_t gran, int regions)
{
    static uint8_t cedt[65536];
    static struct hb hbs[MAX_HB];
    struct hb *order[MAX_HB];
    uint64_t wbase = 0, wsize = 0, wgran = 0, rsize;
    uint32_t targets[MAX_HB];
    int nhb = 0, ntargets = 0, ways, h, p, r;
    ssize_t len = read_file("/sys/firmware/acpi/tables/CEDT", cedt,
                            sizeof(cedt));
    ssize_t off;
    char msg[PATH_MAX + 100];

    if (len < 36) {
        return fail("no CEDT in /sys/firmware/acpi/tables");
    }
    if (regions < 1) {
        return fail("the number of regions must be at least 1");
    }
    for (off = 36; off + 4 <= len; ) {
        uint8_t type = cedt[off];
        unsigned slen = le32(cedt + off) >> 16;

        if (slen < 8 || off + slen > len ||
            (type == 0 && slen < 24) || (type == 1 && slen < 36)) {
            return fail("malformed CEDT structure");
        }
        if (type == 0) {                                        /* CHBS */
            if (nhb == MAX_HB) {
                return fail("more host bridges than this helper handles");
            }
            hbs[nhb].uid = le32(cedt + off + 4);
            hbs[nhb].regs = le64(cedt + off + 16);
            nhb++;
        } else if (type == 1 && !wsize) {           /* the first CFMWS */
            wbase = le64(cedt + off + 8);
            wsize = le64(cedt + off + 16);
            wgran = 256ull << le32(cedt + off + 28);
            ntargets = (slen - 36) / 4;
            for (h = 0; h < ntargets && h < MAX_HB; h++) {
                targets[h] = le32(cedt + off + 36 + 4 * h);
            }
        }
        off += slen;
    }
    if (!wsize || !ntargets || ntargets > MAX_HB) {
        return fail("no usable CFMWS in the CEDT");
    }
    if (gran != wgran) {
        /* the host-bridge granularity below assumes it */
        snprintf(msg, sizeof(msg), "region granularity %" PRIu64 " differs "
                 "from the window's %" PRIu64 ": not supported", gran, wgran);
        return fail(msg);
    }
    printf("E2E fwcommit window base=0x%" PRIx64 " size=0x%" PRIx64
           " gran=%" PRIu64 " hbs=%d\n", wbase, wsize, wgran, ntargets);

    /* host bridges in the window's target order */
    ways = 0;
    for (h = 0; h < ntargets; h++) {
        int k;

        for (k = 0; k < nhb && hbs[k].uid != targets[h]; k++) {
            continue;
        }
        if (k == nhb) {
            snprintf(msg, sizeof(msg), "CFMWS target %u has no CHBS",
                     targets[h]);
            return fail(msg);
        }
        order[h] = &hbs[k];
        if (find_ports(order[h])) {
            return 1;
        }
        if (h && order[h]->nports != order[0]->nports) {
            return fail("host bridges with different numbers of devices");
        }
        ways += order[h]->nports;
    }
    rsize = wsize / regions;
    if (!rsize || rsize % (ways * (256ull << 20))) {
        snprintf(msg, sizeof(msg), "%d regions of a 0x%" PRIx64 " window "
                 "are not multiples of 256 MiB per device", regions, wsize);
        return fail(msg);
    }

    /* endpoints first, then host bridges, as Linux commits */
    for (h = 0; h < ntargets; h++) {
        for (p = 0; p < order[h]->nports; p++) {
            const char *ep = order[h]->ports[p].ep;
            uint64_t regs = component_regs(ep);
            volatile uint32_t *hdm;                 /* device registers */

            if (!regs) {
                snprintf(msg, sizeof(msg), "%s: no component registers", ep);
                return fail(msg);
            }
            if (enable_device(ep)) {
                snprintf(msg, sizeof(msg), "%s: cannot enable", ep);
                return fail(msg);
            }
            hdm = hdm_regs(regs);
            if (!hdm || check_decoders(hdm, regions, ep)) {
                snprintf(msg, sizeof(msg), "%s: no HDM decoder capability "
                         "with %d decoders at 0x%" PRIx64, ep, regions, regs);
                return fail(msg);
            }
            printf("E2E fwcommit-ep %s position=%d\n", strrchr(ep, '/') + 1,
                   h + ntargets * p);
            for (r = 0; r < regions; r++) {
                if (commit(hdm, r, wbase + r * rsize, rsize, ways, gran,
                           NULL, strrchr(ep, '/') + 1)) {
                    return 1;
                }
            }
        }
    }
    for (h = 0; h < ntargets; h++) {
        volatile uint32_t *hdm = hdm_regs(order[h]->regs);  /* registers */
        unsigned tl[MAX_PORTS];
        char who[32];

        snprintf(who, sizeof(who), "hb%u", order[h]->uid);
        if (!hdm || check_decoders(hdm, regions, who)) {
            snprintf(msg, sizeof(msg), "host bridge %u: no HDM decoder "
                     "capability with %d decoders at 0x%" PRIx64,
                     order[h]->uid, regions, order[h]->regs);
            return fail(msg);
        }
        for (p = 0; p < order[h]->nports; p++) {
            tl[p] = order[h]->ports[p].number;
        }
        for (r = 0; r < regions; r++) {
            if (commit(hdm, r, wbase + r * rsize, rsize, order[h]->nports,
                       wgran * ntargets, tl, who)) {
                return 1;
            }
        }
    }
    return 0;
}
