/*
 * Standalone stand-in for QEMU's Error API (qapi/error.h): same calls,
 * message kept so tests can check what an error says.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef STANDALONE_QAPI_ERROR_H
#define STANDALONE_QAPI_ERROR_H

typedef struct Error {
    char *msg;
} Error;

/* &error_abort: abort on error, as in QEMU */
extern Error *error_abort;

void error_setg(Error **errp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *error_get_pretty(const Error *err);
void error_free(Error *err);

#endif
