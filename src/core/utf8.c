// SPDX-License-Identifier: MIT
// utf8.c — strict UTF-8 validation, decoding and encoding (RFC 3629: no
// overlongs, no surrogates, nothing above U+10FFFF).
#include "core.h"

size_t keel_utf8_len(const char *s, size_t avail) {
    const unsigned char *u = (const unsigned char *)s;
    if (avail == 0) return 0;
    unsigned c = u[0];
    if (c < 0x80) return 1;
    size_t n;
    uint32_t min;
    if ((c & 0xe0) == 0xc0) { n = 2; min = 0x80; }
    else if ((c & 0xf0) == 0xe0) { n = 3; min = 0x800; }
    else if ((c & 0xf8) == 0xf0) { n = 4; min = 0x10000; }
    else return 0;
    if (avail < n) return 0;
    uint32_t cp = c & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((u[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (u[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

bool keel_utf8_valid(const char *s, size_t n, size_t *bad_at) {
    size_t i = 0;
    while (i < n) {
        size_t l = keel_utf8_len(s + i, n - i);
        if (!l) {
            if (bad_at) *bad_at = i;
            return false;
        }
        i += l;
    }
    return true;
}

size_t keel_utf8_decode(const char *s, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    unsigned c = u[0];
    if (c < 0x80) { *cp = c; return 1; }
    size_t n = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
    uint32_t v = c & (0x7f >> n);
    for (size_t i = 1; i < n; i++) v = (v << 6) | (u[i] & 0x3f);
    *cp = v;
    return n;
}

size_t keel_utf8_encode(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}
