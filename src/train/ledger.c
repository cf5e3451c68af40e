// SPDX-License-Identifier: MIT
// ledger.c — the capability ledger of a run (ledger.h): data loaded once,
// seeded monitor subsets, base outcomes kept per item so every later
// measurement is compared with the base on the same items, bounds checks,
// ledger.jsonl. Scoring itself is cap/run.c (training forward, so LoRA and
// trainable tensors apply exactly as in training); aggregation and bounds
// are cap/metrics.c.
#include "train/ledger.h"
#include "io/io.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>

// FNV-1a of the capability name: each capability gets its own subset stream.
static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

keel_status keel_ledger_init(keel_ledger *L, const keel_cap_suite *suite, int64_t sample, uint64_t seed,
                             keel_cap_decide decide, const keel_tokenizer *tok, keel_err *err) {
    memset(L, 0, sizeof *L);
    L->suite = suite;
    L->n = suite->n;
    L->decide = decide;
    L->seed = seed;
    if (L->n == 0) return KEEL_OK;
    size_t n = (size_t)L->n;
    L->data = keel_calloc(n, sizeof *L->data);
    L->sample = keel_calloc(n, sizeof *L->sample);
    L->n_sample = keel_calloc(n, sizeof *L->n_sample);
    L->base_out = keel_calloc(n, sizeof *L->base_out);
    L->base_full = keel_calloc(n, sizeof *L->base_full);
    L->base_sample = keel_calloc(n, sizeof *L->base_sample);
    L->now = keel_calloc(n, sizeof *L->now);
    if (!L->data || !L->sample || !L->n_sample || !L->base_out || !L->base_full || !L->base_sample || !L->now) {
        keel_ledger_free(L);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "ledger: out of memory");
    }
    for (int32_t c = 0; c < L->n; c++) {
        const keel_cap_spec *sp = &suite->v[c];
        keel_status st = keel_cap_data_load(&L->data[c], sp, tok, err);
        if (st) {
            keel_ledger_free(L);
            return st;
        }
        int64_t ni = L->data[c].n_items;
        if (ni == 0) {
            keel_ledger_free(L);
            return KEEL_FAIL(err, KEEL_ERR_INVALID, "capability '%s': %s holds no items", sp->name, sp->data);
        }
        L->n_sample[c] = ni;
        if (sample > 0 && sample < ni) {
            // Partial Fisher-Yates over the item indices, then sorted: a fixed
            // subset, in file order, that depends only on the seed and the name.
            int64_t *idx = keel_malloc((size_t)ni * sizeof *idx);
            if (!idx) {
                keel_ledger_free(L);
                return KEEL_FAIL(err, KEEL_ERR_NOMEM, "ledger: out of memory");
            }
            for (int64_t i = 0; i < ni; i++) idx[i] = i;
            keel_rng r;
            keel_rng_seed(&r, seed ^ name_hash(sp->name));
            for (int64_t i = 0; i < sample; i++) {
                int64_t j = i + (int64_t)(keel_rng_u64(&r) % (uint64_t)(ni - i));
                int64_t tmp = idx[i];
                idx[i] = idx[j];
                idx[j] = tmp;
            }
            qsort(idx, (size_t)sample, sizeof *idx, cmp_i64);
            L->sample[c] = idx;
            L->n_sample[c] = sample;
        }
    }
    return KEEL_OK;
}

void keel_ledger_free(keel_ledger *L) {
    if (!L) return;
    for (int32_t c = 0; c < L->n; c++) {
        if (L->data) keel_cap_data_free(&L->data[c]);
        if (L->sample) free(L->sample[c]);
        if (L->base_out && L->base_out[c]) {
            keel_cap_outcomes_free(L->base_out[c], L->data ? L->data[c].n_items : 0);
            free(L->base_out[c]);
        }
    }
    free(L->data);
    free(L->sample);
    free(L->n_sample);
    free(L->base_out);
    free(L->base_full);
    free(L->base_sample);
    free(L->now);
    if (L->jsonl) fclose(L->jsonl);
    memset(L, 0, sizeof *L);
}

// Base results from the per-item outcomes: all items, and the subset.
static keel_status base_aggregate(keel_ledger *L, keel_err *err) {
    for (int32_t c = 0; c < L->n; c++) {
        const keel_cap_spec *sp = &L->suite->v[c];
        keel_cap_aggregate(sp, L->base_out[c], L->data[c].n_items, L->seed, &L->base_full[c]);
        if (!L->sample[c]) {
            L->base_sample[c] = L->base_full[c];
            continue;
        }
        keel_cap_outcome *sub = keel_malloc((size_t)L->n_sample[c] * sizeof *sub);
        if (!sub) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "ledger: out of memory");
        for (int64_t i = 0; i < L->n_sample[c]; i++) sub[i] = L->base_out[c][L->sample[c][i]];
        keel_cap_aggregate(sp, sub, L->n_sample[c], L->seed, &L->base_sample[c]);
        free(sub); // shallow copies: the texts belong to base_out
    }
    L->have_base = true;
    return KEEL_OK;
}

keel_status keel_ledger_measure_base(keel_ledger *L, const struct keel_train_model *tm, struct keel_lora *lo,
                                     keel_err *err) {
    double t0 = keel_time_s();
    for (int32_t c = 0; c < L->n; c++) {
        int64_t ni = L->data[c].n_items;
        L->base_out[c] = keel_calloc((size_t)ni, sizeof *L->base_out[c]);
        if (!L->base_out[c]) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "ledger: out of memory");
        double tc = keel_time_s();
        keel_status st = keel_cap_score(&L->data[c], tm, lo, NULL, ni, L->base_out[c], err);
        if (st) return st;
        L->now[c].seconds = keel_time_s() - tc; // kept across the aggregation below
    }
    keel_status st = base_aggregate(L, err);
    if (st) return st;
    for (int32_t c = 0; c < L->n; c++) {
        L->base_full[c].seconds = L->now[c].seconds;
        L->now[c] = L->base_full[c];
    }
    L->now_base = L->base_full;
    L->now_sampled = false;
    L->seconds += keel_time_s() - t0;
    return KEEL_OK;
}

keel_status keel_ledger_save_base(const keel_ledger *L, const char *path, keel_err *err) {
    cJSON *root = cJSON_CreateObject(), *caps = root ? cJSON_AddArrayToObject(root, "capabilities") : NULL;
    bool ok = root && caps && cJSON_AddStringToObject(root, "format", "keel-ledger-base") &&
              cJSON_AddNumberToObject(root, "version", 1);
    for (int32_t c = 0; ok && c < L->n; c++) {
        cJSON *o = cJSON_CreateObject();
        int64_t ni = L->data[c].n_items;
        ok = o && cJSON_AddItemToArray(caps, o) && cJSON_AddStringToObject(o, "name", L->suite->v[c].name) &&
             cJSON_AddNumberToObject(o, "n_items", (double)ni);
        cJSON *a = ok ? cJSON_AddArrayToObject(o, "a") : NULL, *b = ok ? cJSON_AddArrayToObject(o, "b") : NULL;
        cJSON *nn = ok ? cJSON_AddArrayToObject(o, "n") : NULL;
        ok = a && b && nn;
        for (int64_t i = 0; ok && i < ni; i++) {
            const keel_cap_outcome *x = &L->base_out[c][i];
            ok = cJSON_AddItemToArray(a, cJSON_CreateNumber(x->a)) && cJSON_AddItemToArray(b, cJSON_CreateNumber(x->b)) &&
                 cJSON_AddItemToArray(nn, cJSON_CreateNumber((double)x->n));
        }
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    keel_iobuf io[2] = {{text, strlen(text)}, {"\n", 1}};
    keel_status st = keel_atomic_write_bufs(path, io, 2, err);
    cJSON_free(text);
    return st;
}

keel_status keel_ledger_load_base(keel_ledger *L, const char *path, keel_err *err) {
    char *text = NULL;
    size_t len = 0;
    keel_status st = keel_read_file(path, &text, &len, err);
    if (st) return st;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *caps = root ? cJSON_GetObjectItemCaseSensitive(root, "capabilities") : NULL;
    if (!cJSON_IsArray(caps) || cJSON_GetArraySize(caps) != L->n) {
        cJSON_Delete(root);
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: not a ledger base file for this job's %d capabilities", path, (int)L->n);
    }
    for (int32_t c = 0; c < L->n; c++) {
        const cJSON *o = cJSON_GetArrayItem(caps, c);
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(o, "name");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "a"), *b = cJSON_GetObjectItemCaseSensitive(o, "b");
        const cJSON *nn = cJSON_GetObjectItemCaseSensitive(o, "n");
        int64_t ni = L->data[c].n_items;
        if (!cJSON_IsString(nm) || strcmp(nm->valuestring, L->suite->v[c].name) || !cJSON_IsArray(a) ||
            !cJSON_IsArray(b) || !cJSON_IsArray(nn) || cJSON_GetArraySize(a) != ni || cJSON_GetArraySize(b) != ni ||
            cJSON_GetArraySize(nn) != ni) {
            cJSON_Delete(root);
            return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: capability %d ('%s') does not match the job's (name or item count "
                             "changed since the run started)", path, (int)c, L->suite->v[c].name);
        }
        L->base_out[c] = keel_calloc((size_t)ni, sizeof *L->base_out[c]);
        if (!L->base_out[c]) {
            cJSON_Delete(root);
            return KEEL_FAIL(err, KEEL_ERR_NOMEM, "ledger: out of memory");
        }
        const cJSON *xa = a->child, *xb = b->child, *xn = nn->child;
        for (int64_t i = 0; i < ni; i++, xa = xa->next, xb = xb->next, xn = xn->next) {
            if (!cJSON_IsNumber(xa) || !cJSON_IsNumber(xb) || !cJSON_IsNumber(xn)) {
                cJSON_Delete(root);
                return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: capability '%s' item %lld: not a number", path,
                                 L->suite->v[c].name, (long long)i);
            }
            L->base_out[c][i] = (keel_cap_outcome){.a = xa->valuedouble, .b = xb->valuedouble, .n = (int64_t)xn->valuedouble};
        }
    }
    cJSON_Delete(root);
    st = base_aggregate(L, err);
    if (st) return st;
    for (int32_t c = 0; c < L->n; c++) L->now[c] = L->base_full[c];
    L->now_base = L->base_full;
    return KEEL_OK;
}

keel_status keel_ledger_measure(keel_ledger *L, const struct keel_train_model *tm, struct keel_lora *lo, bool sampled,
                                keel_err *err) {
    double t0 = keel_time_s();
    keel_status st = KEEL_OK;
    for (int32_t c = 0; c < L->n && !st; c++) {
        const int64_t *items = sampled ? L->sample[c] : NULL;
        int64_t ni = items ? L->n_sample[c] : L->data[c].n_items;
        keel_cap_outcome *out = keel_calloc((size_t)ni, sizeof *out);
        if (!out) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "ledger: out of memory");
        double tc = keel_time_s();
        st = keel_cap_score(&L->data[c], tm, lo, items, ni, out, err);
        if (!st) {
            keel_cap_aggregate(&L->suite->v[c], out, ni, L->seed, &L->now[c]);
            L->now[c].seconds = keel_time_s() - tc;
        }
        keel_cap_outcomes_free(out, ni);
        free(out);
    }
    L->now_sampled = sampled;
    L->now_base = sampled ? L->base_sample : L->base_full;
    L->seconds += keel_time_s() - t0;
    return st;
}

int32_t keel_ledger_check(const keel_ledger *L, char *why, size_t cap) {
    int32_t bad = 0;
    size_t used = 0;
    if (cap) why[0] = 0;
    for (int32_t c = 0; c < L->n; c++) {
        char one[512];
        if (keel_cap_bounds_ok(&L->suite->v[c], L->decide, &L->now_base[c], &L->now[c], one, sizeof one)) continue;
        bad++;
        if (used < cap) {
            int k = snprintf(why + used, cap - used, "%s%s", used ? "; " : "", one);
            if (k > 0) used += (size_t)k;
        }
    }
    return bad;
}

static void add_result(cJSON *o, const char *pfx, const keel_cap_result *r) {
    char k[32];
    snprintf(k, sizeof k, "%svalue", pfx);
    cJSON_AddNumberToObject(o, k, r->value);
    snprintf(k, sizeof k, "%slo", pfx);
    cJSON_AddNumberToObject(o, k, r->lo);
    snprintf(k, sizeof k, "%shi", pfx);
    cJSON_AddNumberToObject(o, k, r->hi);
}

static void write_line(keel_ledger *L, cJSON *o) {
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    if (s && L->jsonl) {
        fputs(s, L->jsonl);
        fputc('\n', L->jsonl);
        fflush(L->jsonl);
    }
    cJSON_free(s);
    cJSON_Delete(o);
}

void keel_ledger_log_measure(keel_ledger *L, int64_t step, const char *phase) {
    for (int32_t c = 0; c < L->n; c++) {
        const keel_cap_result *r = &L->now[c], *b = &L->now_base[c];
        char one[512];
        bool ok = keel_cap_bounds_ok(&L->suite->v[c], L->decide, b, r, one, sizeof one);
        cJSON *o = cJSON_CreateObject();
        if (!o) return;
        cJSON_AddNumberToObject(o, "step", (double)step);
        cJSON_AddStringToObject(o, "phase", phase);
        cJSON_AddBoolToObject(o, "sampled", L->now_sampled);
        cJSON_AddStringToObject(o, "capability", r->name);
        cJSON_AddStringToObject(o, "metric", r->metric);
        add_result(o, "", r);
        cJSON_AddNumberToObject(o, "se", r->se);
        cJSON_AddNumberToObject(o, "n", (double)r->n);
        if (r->metric2[0]) {
            cJSON_AddStringToObject(o, "metric2", r->metric2);
            cJSON_AddNumberToObject(o, "value2", r->value2);
        }
        add_result(o, "base_", b);
        cJSON_AddNumberToObject(o, "change", r->value - b->value);
        cJSON_AddBoolToObject(o, "bounds_ok", ok);
        if (!ok) cJSON_AddStringToObject(o, "violation", one);
        cJSON_AddNumberToObject(o, "seconds", r->seconds);
        write_line(L, o);
    }
}

void keel_ledger_log_decision(keel_ledger *L, int64_t step, const char *action, const char *reason,
                              const char *checkpoint) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return;
    cJSON_AddNumberToObject(o, "step", (double)step);
    cJSON_AddStringToObject(o, "decision", action);
    cJSON_AddStringToObject(o, "reason", reason ? reason : "");
    if (checkpoint) cJSON_AddStringToObject(o, "checkpoint", checkpoint);
    write_line(L, o);
}
