// SPDX-License-Identifier: MIT
// yaml_util.c — small helpers for reading YAML documents with libyaml's
// document API, shared by the two YAML readers: job/job.c (job.yaml) and
// cap/suite.c (the `capabilities:` list). Here in io/ because cap/ sits below
// job/ and both already read files through io/; nothing here knows a schema.
// Null scalars, plain numbers (finite decimals only), node kinds and scalar
// excerpts for messages, the did-you-mean hint for unknown names, and the
// writers' double-quoted strings and round-tripping numbers.
#include "io/io.h"

#include <errno.h>
#include <math.h>
#include <yaml.h>

bool keel_yaml_is_null(const yaml_node_t *n) {
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
    const char *v = (const char *)n->data.scalar.value;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

const char *keel_yaml_kind(const yaml_node_t *n) {
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SEQUENCE_NODE: return "a list";
    default: return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? "a plain scalar" : "a quoted string";
    }
}

const char *keel_yaml_shown(const yaml_node_t *n, char *buf, size_t cap) {
    size_t len = n->data.scalar.length, j = 0;
    const unsigned char *v = n->data.scalar.value;
    for (size_t i = 0; i < len && j + 4 < cap; i++) buf[j++] = (v[i] < 0x20 || v[i] == 0x7f) ? '?' : (char)v[i];
    if (len > 0 && j + 4 >= cap) { buf[j++] = '.'; buf[j++] = '.'; buf[j++] = '.'; }
    buf[j] = 0;
    return buf;
}

bool keel_yaml_double(const yaml_node_t *n, double *out) {
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
    const char *s = (const char *)n->data.scalar.value;
    if (!*s || strlen(s) != n->data.scalar.length) return false;
    // strtod also reads hex floats, "inf", "nan" and leading spaces: refuse them
    for (const char *p = s; *p; p++)
        if (!strchr("0123456789+-.eE", *p)) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v)) return false;
    *out = v;
    return true;
}

bool keel_yaml_int(const yaml_node_t *n, bool allow_neg, int64_t *out, uint64_t *uout) {
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
    const char *s = (const char *)n->data.scalar.value;
    if (strlen(s) != n->data.scalar.length) return false;
    const char *p = s;
    bool neg = false;
    if (*p == '+' || *p == '-') neg = *p++ == '-';
    if (!*p) return false;
    uint64_t v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    if (uout) {
        if (neg && v) return false;
        *uout = v;
        return true;
    }
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX) return false;
    if (neg && !allow_neg && v) return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

// Levenshtein distance, capped inputs (names are short); large = no match.
static int edit_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    if (na > 40 || nb > 40) return 99;
    int d[41][41];
    for (size_t i = 0; i <= na; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= nb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= na; i++)
        for (size_t j = 1; j <= nb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[na][nb];
}

void keel_did_you_mean(const char *got, const char *const *cands, int n, char *out, size_t cap) {
    out[0] = 0;
    int best = 99;
    const char *bestc = NULL;
    for (int i = 0; i < n && cands[i]; i++) {
        int dd = edit_distance(got, cands[i]);
        if (dd < best) best = dd, bestc = cands[i];
    }
    int lim = (int)strlen(got) / 3;
    if (lim < 2) lim = 2;
    if (bestc && best <= lim) snprintf(out, cap, " (did you mean '%s'?)", bestc);
}

bool keel_yaml_put_str(keel_buf *b, const char *s) {
    bool ok = keel_buf_appends(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; ok && *p; p++) {
        if (*p == '"' || *p == '\\') ok = keel_buf_printf(b, "\\%c", *p);
        else if (*p == '\n') ok = keel_buf_appends(b, "\\n");
        else if (*p == '\t') ok = keel_buf_appends(b, "\\t");
        else if (*p < 0x20 || *p == 0x7f) ok = keel_buf_printf(b, "\\x%02x", *p);
        // YAML folds these line separators inside quoted scalars: escape them
        else if (p[0] == 0xc2 && p[1] == 0x85) ok = keel_buf_appends(b, "\\N"), p++;
        else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9))
            ok = keel_buf_appends(b, p[2] == 0xa8 ? "\\L" : "\\P"), p += 2;
        else ok = keel_buf_append(b, p, 1); // UTF-8 passes through
    }
    return ok && keel_buf_appends(b, "\"");
}

bool keel_yaml_put_double(keel_buf *b, double v) {
    char s[40];
    snprintf(s, sizeof s, "%.15g", v);
    if (strtod(s, NULL) != v) snprintf(s, sizeof s, "%.17g", v);
    return keel_buf_appends(b, s);
}
