// SPDX-License-Identifier: MIT
// check.c — keel_data_check, the library side of `keel data check`: load a
// JSONL file keeping malformed lines as issues, then count tokens and trained
// positions, build a length histogram (KEEL_DATA_HIST_BINS equal-width bins
// over [min, max] of the untruncated lengths), list over-length examples, and
// group exact duplicates (equal 64-bit hash of the normalized content;
// format.c says what "normalized" means).
#include "data/data.h"

void keel_data_report_free(keel_data_report *r) {
    if (!r) return;
    free(r->over_lines);
    free(r->dup_off);
    free(r->dup_lines);
    for (int64_t i = 0; i < r->n_malformed; i++) free(r->bad_msgs ? r->bad_msgs[i] : NULL);
    free(r->bad_lines);
    free(r->bad_msgs);
    memset(r, 0, sizeof *r);
}

typedef struct hl {
    uint64_t hash;
    int64_t line;
} hl;

static int cmp_hl(const void *a, const void *b) {
    const hl *x = a, *y = b;
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

static int cmp_group(const void *a, const void *b) {
    // groups are compared by their first line: report in file order
    const int64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

keel_status keel_data_check(const char *path, const keel_tokenizer *tok, const keel_data_params *p,
                            keel_data_report *out, keel_err *err) {
    if (!out) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_data_check: NULL argument");
    memset(out, 0, sizeof *out);
    keel_data_params dp = p ? *p : keel_data_default_params();
    dp.skip_malformed = true;
    keel_dataset *d = NULL;
    keel_status st = keel_dataset_load(path, tok, &dp, &d, err);
    if (st) return st;
    keel_data_report *r = out;
    hl *h = NULL;
    int64_t *groups = NULL; // (first line, start in h, count) triples
    int64_t n = d->n_ex;
    r->format = d->format;
    r->n_lines = d->n_lines;
    r->n_examples = n;
    r->n_malformed = d->n_iss;
    if (d->n_iss) {
        r->bad_lines = keel_calloc((size_t)d->n_iss, sizeof *r->bad_lines);
        r->bad_msgs = keel_calloc((size_t)d->n_iss, sizeof *r->bad_msgs);
        if (!r->bad_lines || !r->bad_msgs) goto oom;
        for (int64_t i = 0; i < d->n_iss; i++) {
            r->bad_lines[i] = d->iss[i].line;
            if (!(r->bad_msgs[i] = keel_strdup(d->iss[i].msg))) goto oom;
        }
    }
    r->min_len = n ? INT32_MAX : 0;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        const keel_data_ex *e = &d->ex[i];
        r->n_tokens += e->n;
        for (int32_t k = 0; k < e->n; k++) r->n_trained += d->mask[e->off + (size_t)k];
        if (e->n_full < r->min_len) r->min_len = e->n_full;
        if (e->n_full > r->max_len) r->max_len = e->n_full;
        sum += e->n_full;
        r->n_over += e->n_full > dp.max_seq_len;
    }
    r->mean_len = n ? sum / (double)n : 0;

    // histogram: equal-width integer bins covering [min_len, max_len]
    if (n) {
        int64_t span = (int64_t)r->max_len - r->min_len + 1;
        int32_t bins = span < KEEL_DATA_HIST_BINS ? (int32_t)span : KEEL_DATA_HIST_BINS;
        int64_t w = (span + bins - 1) / bins;
        bins = (int32_t)((span + w - 1) / w);
        r->n_bins = bins;
        for (int32_t b = 0; b < bins; b++) {
            r->hist_lo[b] = (int32_t)(r->min_len + b * w);
            int64_t hi = r->min_len + (b + 1) * w - 1;
            r->hist_hi[b] = (int32_t)(hi < r->max_len ? hi : r->max_len);
        }
        for (int64_t i = 0; i < n; i++) r->hist_count[(d->ex[i].n_full - r->min_len) / w]++;
    }

    if (r->n_over) {
        if (!(r->over_lines = keel_malloc((size_t)r->n_over * sizeof *r->over_lines))) goto oom;
        int64_t k = 0;
        for (int64_t i = 0; i < n; i++)
            if (d->ex[i].n_full > dp.max_seq_len) r->over_lines[k++] = d->ex[i].line;
    }

    // duplicates: sort (hash, line), runs of equal hash of length >= 2
    if (n >= 2) {
        if (!(h = keel_malloc((size_t)n * sizeof *h))) goto oom;
        for (int64_t i = 0; i < n; i++) h[i].hash = d->ex[i].hash, h[i].line = d->ex[i].line;
        qsort(h, (size_t)n, sizeof *h, cmp_hl);
        int64_t ng = 0, nl = 0;
        for (int64_t i = 0; i < n;) {
            int64_t j = i + 1;
            while (j < n && h[j].hash == h[i].hash) j++;
            if (j - i >= 2) ng++, nl += j - i;
            i = j;
        }
        if (ng) {
            if (!(groups = keel_malloc((size_t)ng * 3 * sizeof *groups))) goto oom;
            r->dup_off = keel_malloc((size_t)(ng + 1) * sizeof *r->dup_off);
            r->dup_lines = keel_malloc((size_t)nl * sizeof *r->dup_lines);
            if (!r->dup_off || !r->dup_lines) goto oom;
            int64_t g = 0;
            for (int64_t i = 0; i < n;) {
                int64_t j = i + 1;
                while (j < n && h[j].hash == h[i].hash) j++;
                if (j - i >= 2) groups[3 * g] = h[i].line, groups[3 * g + 1] = i, groups[3 * g + 2] = j - i, g++;
                i = j;
            }
            qsort(groups, (size_t)ng, 3 * sizeof *groups, cmp_group);
            int64_t k = 0;
            for (g = 0; g < ng; g++) {
                r->dup_off[g] = k;
                for (int64_t m = 0; m < groups[3 * g + 2]; m++) r->dup_lines[k++] = h[groups[3 * g + 1] + m].line;
            }
            r->dup_off[ng] = k;
            r->n_dup_groups = ng;
        }
    }
    free(h);
    free(groups);
    keel_dataset_free(d);
    return KEEL_OK;
oom:
    free(h);
    free(groups);
    keel_dataset_free(d);
    keel_data_report_free(r);
    return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
}
