// SPDX-License-Identifier: MIT
// mem.c — allocation hooks (with a fail-the-Nth switch for OOM tests) and a
// growable byte buffer.
#include "core.h"

static long g_fail_after; // 0 = never fail

void keel_mem_fail_after(long n) { g_fail_after = n; }

static bool should_fail(void) {
    if (g_fail_after <= 0) return false;
    return --g_fail_after == 0;
}

void *keel_malloc(size_t n) { return should_fail() ? NULL : malloc(n ? n : 1); }
void *keel_calloc(size_t n, size_t size) {
    return should_fail() ? NULL : calloc(n ? n : 1, size ? size : 1);
}
void *keel_realloc(void *p, size_t n) { return should_fail() ? NULL : realloc(p, n ? n : 1); }
void keel_free(void *p) { free(p); }

char *keel_strndup(const char *s, size_t n) {
    char *d = keel_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}
char *keel_strdup(const char *s) { return keel_strndup(s, strlen(s)); }

void *keel_malloc_aligned(size_t n) {
    if (should_fail()) return NULL;
    void *p = NULL;
    size_t sz = (n + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, sz ? sz : 64) != 0) return NULL;
    return p;
}
void keel_free_aligned(void *p) { free(p); }

bool keel_buf_reserve(keel_buf *b, size_t extra) {
    if (extra > SIZE_MAX - b->len - 1) return false;
    size_t need = b->len + extra + 1; // room for a NUL
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *d = keel_realloc(b->data, cap);
    if (!d) return false;
    b->data = d;
    b->cap = cap;
    return true;
}

bool keel_buf_append(keel_buf *b, const void *p, size_t n) {
    if (!keel_buf_reserve(b, n)) return false;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return true;
}

bool keel_buf_appends(keel_buf *b, const char *s) { return keel_buf_append(b, s, strlen(s)); }

bool keel_buf_printf(keel_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !keel_buf_reserve(b, (size_t)n)) return false;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return true;
}
