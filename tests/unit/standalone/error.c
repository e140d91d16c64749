/*
 * Standalone stand-in for QEMU's Error API.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/error-report.h"

Error *error_abort;

void error_setg(Error **errp, const char *fmt, ...)
{
    va_list ap;

    if (!errp) {
        return;
    }
    if (errp == &error_abort) {
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\n");
        abort();
    }
    g_assert(*errp == NULL);   /* QEMU's rule: never overwrite an error */
    *errp = g_new0(Error, 1);
    va_start(ap, fmt);
    (*errp)->msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
}

const char *error_get_pretty(const Error *err)
{
    return err->msg;
}

void error_free(Error *err)
{
    if (err) {
        g_free(err->msg);
        g_free(err);
    }
}

unsigned error_report_count;

void error_report_err(Error *err)
{
    error_report_count++;
    fprintf(stderr, "%s\n", err->msg);
    error_free(err);
}

void error_report(const char *fmt, ...)
{
    va_list ap;

    error_report_count++;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
}

unsigned warn_report_count;

void warn_report(const char *fmt, ...)
{
    va_list ap;

    warn_report_count++;
    va_start(ap, fmt);
    fprintf(stderr, "warning: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
}
