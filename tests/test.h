// SPDX-License-Identifier: MIT
// test.h — a really minimal test harness (after Redis testhelp.h). Each test
// binary ends with the plain line "N passed, N failed" and exits non-zero on
// any failure.
#ifndef KEEL_TEST_H
#define KEEL_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed, test_failed;

#define CHECK(descr, cond)                                                                 \
    do {                                                                                   \
        if (cond) test_passed++;                                                           \
        else {                                                                             \
            test_failed++;                                                                 \
            fprintf(stderr, "FAIL %s:%d: %s  [%s]\n", __FILE__, __LINE__, (descr), #cond); \
        }                                                                                  \
    } while (0)

#define CHECK_CLOSE(descr, a, b, tol)                                                      \
    do {                                                                                   \
        double a_ = (double)(a), b_ = (double)(b);                                         \
        if (fabs(a_ - b_) <= (tol)) test_passed++;                                         \
        else {                                                                             \
            test_failed++;                                                                 \
            fprintf(stderr, "FAIL %s:%d: %s: %.9g vs %.9g (tol %g)\n", __FILE__, __LINE__, \
                    (descr), a_, b_, (double)(tol));                                       \
        }                                                                                  \
    } while (0)

// Skip a whole test binary (counts nothing) with a reason.
#define TEST_SKIP(reason)                                  \
    do {                                                   \
        printf("skipped: %s\n0 passed, 0 failed\n", reason); \
        return 0;                                          \
    } while (0)

static inline int test_report(void) {
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}

// Path helpers: shared/ lives beside the repository (KEEL_SHARED overrides);
// downloaded models live in KEEL_CACHE (default ~/.cache/keel).
static inline const char *test_shared_path(char *buf, size_t cap, const char *rel) {
    const char *s = getenv("KEEL_SHARED");
    snprintf(buf, cap, "%s/%s", s && *s ? s : "../shared", rel);
    return buf;
}
static inline const char *test_cache_path(char *buf, size_t cap, const char *rel) {
    const char *c = getenv("KEEL_CACHE");
    const char *h = getenv("HOME");
    if (c && *c) snprintf(buf, cap, "%s/%s", c, rel);
    else snprintf(buf, cap, "%s/.cache/keel/%s", h ? h : ".", rel);
    return buf;
}
#endif
