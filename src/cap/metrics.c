// SPDX-License-Identifier: MIT
// metrics.c — per-item outcomes of a capability -> value, 95% CI and standard
// error (src/cap/cap.h, "metrics.c" and "bounds"): Wilson score intervals for
// rates (Wilson 1927; z = 1.959964), a seeded percentile bootstrap over
// documents for perplexity (Efron & Tibshirani 1993, ch. 13); answer
// normalisation, regex extraction and probe matching (PCRE2, UTF mode); and
// the bound check the ledger uses to accept or reject a checkpoint.
#include "cap/cap.h"

#include <ctype.h>
#include <math.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define WILSON_Z 1.959964
#define BOOT_B 1000

void keel_wilson(int64_t k, int64_t n, double *lo, double *hi) {
    if (n <= 0) {
        *lo = 0;
        *hi = 1;
        return;
    }
    if (k < 0) k = 0;
    if (k > n) k = n;
    double p = (double)k / (double)n, nn = (double)n, z2 = WILSON_Z * WILSON_Z;
    double den = 1 + z2 / nn;
    double mid = (p + z2 / (2 * nn)) / den;
    double half = WILSON_Z * sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / den;
    *lo = k == 0 ? 0 : fmax(0, mid - half);
    *hi = k == n ? 1 : fmin(1, mid + half);
}

// A rate: mean of 0/1 outcomes, Wilson CI, se sqrt(p(1-p)/n). n = 0 gives
// value 0 with the vacuous interval [0, 1].
static void rate(const keel_cap_outcome *out, int64_t n, bool second, double *v, double *lo, double *hi, double *se) {
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) k += (second ? out[i].b : out[i].a) >= 0.5;
    keel_wilson(k, n, lo, hi);
    double p = n ? (double)k / (double)n : 0;
    *v = p;
    *se = n ? sqrt(p * (1 - p) / (double)n) : 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Linear-interpolated percentile of sorted v[0..n) (numpy's default rule).
static double percentile(const double *v, int n, double q) {
    double pos = q * (n - 1);
    int i = (int)floor(pos);
    if (i >= n - 1) return v[n - 1];
    double f = pos - i;
    return v[i] + f * (v[i + 1] - v[i]);
}

// ppl = exp(sum NLL / sum tokens) over documents; CI: 2.5/97.5 percentiles of
// BOOT_B resamples of documents with replacement; se: sd (n-1) of those.
static void perplexity(const keel_cap_outcome *out, int64_t n, uint64_t seed, keel_cap_result *r) {
    double sa = 0;
    int64_t sn = 0;
    for (int64_t i = 0; i < n; i++) {
        sa += out[i].a;
        sn += out[i].n;
    }
    r->n_tokens = sn;
    if (n == 0 || sn <= 0) {
        r->value = r->lo = r->hi = sn > 0 ? exp(sa / (double)sn) : 0;
        r->se = 0;
        return;
    }
    double ppl = exp(sa / (double)sn);
    r->value = ppl;
    double *bv = keel_malloc(BOOT_B * sizeof *bv);
    if (!bv) { // no memory for 8 KB: a degenerate but honest interval
        r->lo = r->hi = ppl;
        r->se = 0;
        return;
    }
    keel_rng g;
    keel_rng_seed(&g, seed);
    double mean = 0;
    for (int b = 0; b < BOOT_B; b++) {
        double a = 0;
        int64_t t = 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t j = (int64_t)(keel_rng_uniform_d(&g) * (double)n);
            if (j >= n) j = n - 1;
            a += out[j].a;
            t += out[j].n;
        }
        bv[b] = t > 0 ? exp(a / (double)t) : ppl;
        mean += bv[b];
    }
    mean /= BOOT_B;
    double ss = 0;
    for (int b = 0; b < BOOT_B; b++) ss += (bv[b] - mean) * (bv[b] - mean);
    r->se = sqrt(ss / (BOOT_B - 1));
    qsort(bv, BOOT_B, sizeof *bv, cmp_double);
    r->lo = percentile(bv, BOOT_B, 0.025);
    r->hi = percentile(bv, BOOT_B, 0.975);
    keel_free(bv);
}

void keel_cap_aggregate(const keel_cap_spec *spec, const keel_cap_outcome *out, int64_t n, uint64_t seed,
                        keel_cap_result *r) {
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", spec->name ? spec->name : "");
    snprintf(r->kind, sizeof r->kind, "%s", keel_cap_kind_name(spec->kind));
    snprintf(r->metric, sizeof r->metric, "%s", keel_cap_metric_name(spec));
    r->higher_is_better = keel_cap_higher_is_better(spec);
    r->n = n < 0 ? 0 : n;
    if (n < 0) n = 0;
    switch (spec->kind) {
    case KEEL_CAP_PERPLEXITY: perplexity(out, n, seed, r); break;
    case KEEL_CAP_MULTIPLE_CHOICE:
        rate(out, n, spec->acc_norm, &r->value, &r->lo, &r->hi, &r->se);
        {
            double se2;
            rate(out, n, !spec->acc_norm, &r->value2, &r->lo2, &r->hi2, &se2);
        }
        snprintf(r->metric2, sizeof r->metric2, "%s", spec->acc_norm ? "acc" : "acc_norm");
        break;
    case KEEL_CAP_EXACT_MATCH:
    case KEEL_CAP_PROBE: rate(out, n, false, &r->value, &r->lo, &r->hi, &r->se); break;
    }
}

// ---- normalisation, extraction, probes ---------------------------------------------

char *keel_cap_normalize(const keel_cap_spec *spec, char *s) {
    if (!s) return s;
    char *w = s;
    bool pending_space = false, any = false;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (spec->norm_punct && c < 0x80 && ispunct(c)) continue;
        if (spec->norm_space && (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')) {
            pending_space = any;
            continue;
        }
        if (pending_space) {
            *w++ = ' ';
            pending_space = false;
        }
        if (spec->norm_case && c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        *w++ = (char)c;
        any = true;
    }
    *w = 0;
    return s;
}

// Compile re (UTF, Unicode \w \d \s classes (UCP); invalid UTF-8 in the
// subject is tolerated: a generation may end mid-character) or fail naming
// the capability, the key and the offset.
static keel_status compile(const keel_cap_spec *spec, const char *key, const char *re, pcre2_code **out,
                           keel_err *err) {
    int ec;
    PCRE2_SIZE off;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
    *out = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, opts, &ec, &off, NULL);
    if (!*out) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "capability '%s': %s regex /%s/ at offset %zu: %s",
                         spec->name ? spec->name : "?", key, re, (size_t)off, (const char *)msg);
    }
    return KEEL_OK;
}

// Run re on text: 1 match, 0 none, < 0 a PCRE2 error (md filled on a match).
static int match(pcre2_code *re, const char *text, pcre2_match_data *md) {
    return pcre2_match(re, (PCRE2_SPTR)text, strlen(text), 0, 0, md, NULL);
}

keel_status keel_cap_extract(const keel_cap_spec *spec, const char *text, char **out, keel_err *err) {
    *out = NULL;
    if (!text) text = "";
    if (!spec->extract || !spec->extract[0]) {
        *out = keel_strdup(text);
        return *out ? KEEL_OK : KEEL_FAIL(err, KEEL_ERR_NOMEM, "out of memory");
    }
    pcre2_code *re;
    keel_status st = compile(spec, "extract", spec->extract, &re, err);
    if (st) return st;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) {
        pcre2_code_free(re);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "out of memory");
    }
    int rc = match(re, text, md);
    if (rc > 0) {
        uint32_t ncap = 0;
        pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &ncap);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        int g = ncap >= 1 ? 1 : 0;
        // an unset group 1 (an optional group that did not take part) is ""
        if (g == 1 && (rc < 2 || ov[2] == PCRE2_UNSET)) *out = keel_strdup("");
        else *out = keel_strndup(text + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
        if (!*out) st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "out of memory");
    } else if (rc != PCRE2_ERROR_NOMATCH) {
        st = KEEL_FAIL(err, KEEL_ERR_INVALID, "capability '%s': extract regex failed to run (PCRE2 error %d)",
                       spec->name ? spec->name : "?", rc);
    }
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return st;
}

keel_status keel_cap_probe_match(const keel_cap_spec *spec, const char *text, bool *matched, keel_err *err) {
    *matched = false;
    if (!spec->pattern || !spec->pattern[0])
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "capability '%s': probe without a pattern",
                         spec->name ? spec->name : "?");
    pcre2_code *re;
    keel_status st = compile(spec, "pattern", spec->pattern, &re, err);
    if (st) return st;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) {
        pcre2_code_free(re);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "out of memory");
    }
    int rc = match(re, text ? text : "", md);
    if (rc > 0) *matched = true;
    else if (rc != PCRE2_ERROR_NOMATCH)
        st = KEEL_FAIL(err, KEEL_ERR_INVALID, "capability '%s': pattern failed to run (PCRE2 error %d)",
                       spec->name ? spec->name : "?", rc);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return st;
}

// ---- bounds ---------------------------------------------------------------------

static void add_why(char *why, size_t cap, size_t *used, const char *fmt, ...) KEEL_PRINTF(4, 5);
static void add_why(char *why, size_t cap, size_t *used, const char *fmt, ...) {
    if (!why || cap == 0 || *used >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(why + *used, cap - *used, fmt, ap);
    va_end(ap);
    if (k > 0) *used = *used + (size_t)k < cap ? *used + (size_t)k : cap - 1;
}

// A bound "x >= limit" (ge) or "x <= limit" holds under decide: POINT tests
// the point value; CI tests the CI end most favourable to the model, so it
// fails only when the whole interval is on the wrong side.
static bool holds(const keel_cap_result *now, bool ge, double limit, keel_cap_decide decide) {
    double x = decide == KEEL_CAP_DECIDE_CI ? (ge ? now->hi : now->lo) : now->value;
    return ge ? x >= limit : x <= limit;
}

bool keel_cap_bounds_ok(const keel_cap_spec *spec, keel_cap_decide def_decide, const keel_cap_result *base,
                        const keel_cap_result *now, char *why, size_t cap) {
    keel_cap_decide decide = spec->decide >= 0 ? (keel_cap_decide)spec->decide : def_decide;
    const char *dname = decide == KEEL_CAP_DECIDE_CI ? "ci" : "point";
    bool hib = keel_cap_higher_is_better(spec);
    size_t used = 0;
    if (why && cap) why[0] = 0;
    bool ok = true;
    const char *name = spec->name ? spec->name : "?";
#define HEAD()                                                                                            \
    do {                                                                                                  \
        if (ok) add_why(why, cap, &used, "%s %s %.3f [%.3f, %.3f]", name, keel_cap_metric_name(spec), now->value, \
                        now->lo, now->hi);                                                                \
        else add_why(why, cap, &used, ";");                                                               \
    } while (0)
    if (spec->has_max_drop && base) {
        double allowed = spec->max_drop_rel ? spec->max_drop * fabs(base->value) : spec->max_drop;
        double limit = hib ? base->value - allowed : base->value + allowed;
        if (!holds(now, hib, limit, decide)) {
            HEAD();
            double moved = hib ? base->value - now->value : now->value - base->value;
            char md[48];
            if (spec->max_drop_rel) snprintf(md, sizeof md, "%g%%", spec->max_drop * 100);
            else snprintf(md, sizeof md, "%g", spec->max_drop);
            if (spec->max_drop_rel && base->value != 0) // a relative bound: say how far in percent
                add_why(why, cap, &used, " %s %.3g%% from base %.3f (max_drop %s, %s)", hib ? "dropped" : "rose",
                        100.0 * moved / fabs(base->value), base->value, md, dname);
            else
                add_why(why, cap, &used, " %s %.3f from base %.3f (max_drop %s, %s)", hib ? "dropped" : "rose", moved,
                        base->value, md, dname);
            ok = false;
        }
    }
    if (spec->has_min && !holds(now, true, spec->min, decide)) {
        HEAD();
        add_why(why, cap, &used, " below min %g (%s)", spec->min, dname);
        ok = false;
    }
    if (spec->has_max && !holds(now, false, spec->max, decide)) {
        HEAD();
        add_why(why, cap, &used, " above max %g (%s)", spec->max, dname);
        ok = false;
    }
#undef HEAD
    return ok;
}
