/*
 * Standalone stand-in for QEMU's qemu/error-report.h.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef STANDALONE_QEMU_ERROR_REPORT_H
#define STANDALONE_QEMU_ERROR_REPORT_H

#include "qapi/error.h"

/* Print the error on stderr and free it; counted for tests. */
void error_report_err(Error *err);
void error_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern unsigned error_report_count;

/* Print the warning on stderr; counted for tests. */
void warn_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern unsigned warn_report_count;

#endif
