// SPDX-License-Identifier: MIT
// core.h — internal foundation shared by every layer: error reporting,
// allocation hooks, half-precision conversion, RNG, file mapping, threads.
// Knows nothing about transformers. Lower layers never include higher ones.
#ifndef KEEL_CORE_H
#define KEEL_CORE_H

#include "keel.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define KEEL_INTERNAL __attribute__((visibility("hidden")))
#define KEEL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define KEEL_INTERNAL
#define KEEL_PRINTF(a, b)
#endif

// ---- errors --------------------------------------------------------------

// Record an error (err may be NULL) and return code. Use as
//   return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tensor %s offset past end", path, name);
#define KEEL_FAIL(err, code, ...) keel_fail_((err), (code), __FILE__, __LINE__, __VA_ARGS__)
KEEL_INTERNAL keel_status keel_fail_(keel_err *err, keel_status code, const char *file, int line,
                                     const char *fmt, ...) KEEL_PRINTF(5, 6);

// Our own bugs (never untrusted input): always on, abort with file:line.
#define KEEL_ASSERT(x)                                                                  \
    do {                                                                                \
        if (!(x)) keel_abort_(__FILE__, __LINE__, "assertion failed: %s", #x);          \
    } while (0)
KEEL_INTERNAL void keel_abort_(const char *file, int line, const char *fmt, ...)
    KEEL_PRINTF(3, 4) __attribute__((noreturn));

// ---- memory --------------------------------------------------------------

// Every heap allocation goes through these; tests can make the Nth fail.
KEEL_INTERNAL void *keel_malloc(size_t n);
KEEL_INTERNAL void *keel_calloc(size_t n, size_t size);
KEEL_INTERNAL void *keel_realloc(void *p, size_t n);
KEEL_INTERNAL char *keel_strdup(const char *s);
KEEL_INTERNAL char *keel_strndup(const char *s, size_t n);
// 64-byte aligned; release with keel_free_aligned.
KEEL_INTERNAL void *keel_malloc_aligned(size_t n);
KEEL_INTERNAL void keel_free_aligned(void *p);
// Test hook: the n-th allocation from now fails (0 = never).
KEEL_INTERNAL void keel_mem_fail_after(long n);

// Growable byte buffer (strings, token arrays).
typedef struct keel_buf {
    char *data;
    size_t len, cap;
} keel_buf;
KEEL_INTERNAL bool keel_buf_reserve(keel_buf *b, size_t extra);
KEEL_INTERNAL bool keel_buf_append(keel_buf *b, const void *p, size_t n);
KEEL_INTERNAL bool keel_buf_appends(keel_buf *b, const char *s);
KEEL_INTERNAL bool keel_buf_printf(keel_buf *b, const char *fmt, ...) KEEL_PRINTF(2, 3);

// ---- half precision ------------------------------------------------------

KEEL_INTERNAL float keel_fp16_to_fp32(uint16_t h);
KEEL_INTERNAL uint16_t keel_fp32_to_fp16(float f);
static inline float keel_bf16_to_fp32(uint16_t h) {
    union { uint32_t u; float f; } v;
    v.u = (uint32_t)h << 16;
    return v.f;
}
KEEL_INTERNAL uint16_t keel_fp32_to_bf16(float f); // round to nearest even

// ---- rng (splitmix64 seeding an xoshiro256**; bit-identical everywhere) --

typedef struct keel_rng {
    uint64_t s[4];
} keel_rng;
KEEL_INTERNAL void keel_rng_seed(keel_rng *r, uint64_t seed);
KEEL_INTERNAL uint64_t keel_rng_u64(keel_rng *r);
KEEL_INTERNAL float keel_rng_uniform(keel_rng *r); // [0, 1), 24 bits
KEEL_INTERNAL double keel_rng_uniform_d(keel_rng *r); // [0, 1), 53 bits
KEEL_INTERNAL float keel_rng_normal(keel_rng *r); // N(0, 1), Box-Muller

// ---- files ---------------------------------------------------------------

// Read-only whole-file mapping.
typedef struct keel_map {
    const uint8_t *data;
    size_t size;
    char *path;   // owned copy, for messages
} keel_map;
KEEL_INTERNAL keel_status keel_map_open(const char *path, keel_map *m, keel_err *err);
KEEL_INTERNAL void keel_map_close(keel_map *m);
// Read a whole (small) file into a NUL-terminated heap buffer.
KEEL_INTERNAL keel_status keel_read_file(const char *path, char **out, size_t *len, keel_err *err);
KEEL_INTERNAL bool keel_path_is_dir(const char *path);
KEEL_INTERNAL bool keel_path_exists(const char *path);
// Join dir and name into a heap string.
KEEL_INTERNAL char *keel_path_join(const char *dir, const char *name);

// ---- utf-8 ---------------------------------------------------------------

// Length of the UTF-8 sequence starting at s (1..4), or 0 if invalid/truncated.
KEEL_INTERNAL size_t keel_utf8_len(const char *s, size_t avail);
// True if the whole buffer is valid UTF-8; else *bad_at is the first bad offset.
KEEL_INTERNAL bool keel_utf8_valid(const char *s, size_t n, size_t *bad_at);
// Decode one code point (s must be valid at that position); returns its byte length.
KEEL_INTERNAL size_t keel_utf8_decode(const char *s, uint32_t *cp);
// Encode cp into out (>= 4 bytes); returns length.
KEEL_INTERNAL size_t keel_utf8_encode(uint32_t cp, char *out);

// ---- threads -------------------------------------------------------------

// One thread pool for everything: OpenMP (and OpenBLAS's OpenMP build).
KEEL_INTERNAL void keel_threads_set(int n); // 0 = all cores
KEEL_INTERNAL int keel_threads_get(void);

// ---- time ----------------------------------------------------------------
KEEL_INTERNAL double keel_time_s(void); // monotonic seconds

#endif // KEEL_CORE_H
