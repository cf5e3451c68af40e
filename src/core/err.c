// SPDX-License-Identifier: MIT
// err.c — status strings and the error record filled by KEEL_FAIL.
#include "core.h"

const char *keel_status_str(keel_status s) {
    switch (s) {
    case KEEL_OK: return "ok";
    case KEEL_ERR_NOMEM: return "out of memory";
    case KEEL_ERR_IO: return "I/O error";
    case KEEL_ERR_FORMAT: return "malformed file";
    case KEEL_ERR_UNSUPPORTED: return "unsupported";
    case KEEL_ERR_INVALID: return "invalid argument";
    }
    return "unknown status";
}

keel_status keel_fail_(keel_err *err, keel_status code, const char *file, int line,
                       const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
        err->file = file;
        err->line = line;
    }
    return code;
}

void keel_abort_(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "keel: internal error at %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}
