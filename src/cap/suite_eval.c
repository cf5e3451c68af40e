// SPDX-License-Identifier: MIT
// suite_eval.c — the public capability API of include/keel.h: suite files
// (keel_suite_load/free/count), scoring a whole suite on a model
// (keel_suite_eval: load the model, wrap it as a training model with nothing
// trainable, attach a PEFT LoRA adapter when asked, then per capability load
// its data, score every item and aggregate with a 95% CI), and the results
// as JSON (cJSON) or a text table. Sits on top of cap.h's suite/tasks/run/
// metrics; the CLI (`keel eval`) and the ledger's users call it.
#include "cap/cap.h"
#include "adapters/lora.h"
#include "model/train.h"

#include <cJSON.h>
#include <math.h>

// Items scored per keel_cap_score call: the progress callback runs between
// calls. Big enough that the length sort inside a call keeps padding low.
#define EVAL_CHUNK_MC 64
#define EVAL_CHUNK_GEN 16
#define EVAL_CHUNK_PPL 16

struct keel_suite {
    keel_cap_suite s;
    char *path;
};

keel_status keel_suite_load(const char *path, keel_suite **out, keel_err *err) {
    if (out) *out = NULL;
    if (!path || !out) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_suite_load: NULL argument");
    keel_suite *s = keel_calloc(1, sizeof *s);
    if (!s || !(s->path = keel_strdup(path))) {
        free(s);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    }
    keel_status st = keel_cap_suite_load_file(&s->s, path, err);
    if (st) {
        free(s->path);
        free(s);
        return st;
    }
    *out = s;
    return KEEL_OK;
}

void keel_suite_free(keel_suite *s) {
    if (!s) return;
    keel_cap_suite_free(&s->s);
    free(s->path);
    free(s);
}

int32_t keel_suite_count(const keel_suite *s) { return s ? s->s.n : 0; }

const char *keel_suite_name(const keel_suite *s, int32_t i) {
    return s && i >= 0 && i < s->s.n ? s->s.v[i].name : NULL;
}

keel_eval_opts keel_eval_default_opts(void) {
    keel_eval_opts o = {0};
    return o;
}

static bool select_none(const char *hf, void *ud) {
    (void)hf, (void)ud;
    return false;
}

// Score one capability: data, chunks of items, aggregate.
static keel_status eval_one(const keel_cap_spec *spec0, int32_t ci, const keel_train_model *tm, keel_lora *lo,
                            const keel_eval_opts *o, keel_cap_result *r, keel_err *err) {
    double t0 = keel_time_s();
    keel_cap_spec spec = *spec0; // shallow: only limit changes
    if (o->limit > 0 && (spec.limit == 0 || spec.limit > o->limit)) spec.limit = o->limit;
    keel_cap_data d;
    keel_status st = keel_cap_data_load(&d, &spec, tm->m->tok, err);
    if (st) return st;
    keel_cap_outcome *out = keel_calloc(d.n_items ? (size_t)d.n_items : 1, sizeof *out);
    int64_t *idx = keel_calloc(d.n_items ? (size_t)d.n_items : 1, sizeof *idx);
    if (!out || !idx) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "capability '%s': out of memory", spec.name);
        goto done;
    }
    int64_t chunk = spec.kind == KEEL_CAP_MULTIPLE_CHOICE ? EVAL_CHUNK_MC
                    : spec.kind == KEEL_CAP_PERPLEXITY    ? EVAL_CHUNK_PPL
                                                          : EVAL_CHUNK_GEN;
    for (int64_t i = 0; i < d.n_items; i++) idx[i] = i;
    if (o->progress) o->progress(ci, 0, d.n_items, o->ud);
    for (int64_t k0 = 0; k0 < d.n_items; k0 += chunk) {
        int64_t n = d.n_items - k0 < chunk ? d.n_items - k0 : chunk;
        st = keel_cap_score(&d, tm, lo, idx + k0, n, out + k0, err);
        if (st) goto done;
        if (o->progress) o->progress(ci, k0 + n, d.n_items, o->ud);
    }
    keel_cap_aggregate(&spec, out, d.n_items, o->seed, r);
    r->seconds = keel_time_s() - t0;
done:
    if (out) keel_cap_outcomes_free(out, d.n_items);
    free(out);
    free(idx);
    keel_cap_data_free(&d);
    return st;
}

keel_status keel_suite_eval(const char *model, const keel_suite *s, const keel_eval_opts *o, keel_cap_result *out,
                            keel_err *err) {
    if (!model || !s || (s->s.n && !out)) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_suite_eval: NULL argument");
    keel_eval_opts def = keel_eval_default_opts();
    if (!o) o = &def;
    if (o->limit < 0 || o->n_threads < 0)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_suite_eval: limit %lld, n_threads %d (need >= 0)",
                         (long long)o->limit, (int)o->n_threads);
    keel_model_params mp = keel_model_default_params();
    mp.n_threads = o->n_threads;
    keel_model *m = NULL;
    keel_status st = keel_model_load(model, &mp, &m, err);
    if (st) return st;
    keel_train_model tm;
    keel_lora lo;
    bool tm_ok = false, lo_ok = false;
    st = keel_train_model_init(&tm, m, select_none, NULL, err);
    if (st) goto done;
    tm_ok = true;
    if (o->adapter) {
        memset(&lo, 0, sizeof lo);
        st = keel_lora_load(&lo, &tm, o->adapter, 0, err);
        if (st) goto done;
        lo_ok = true;
    }
    for (int32_t i = 0; i < s->s.n; i++) {
        st = eval_one(&s->s.v[i], i, &tm, lo_ok ? &lo : NULL, o, &out[i], err);
        if (st) goto done;
    }
done:
    if (lo_ok) keel_lora_free(&lo);
    if (tm_ok) keel_train_model_free(&tm);
    keel_model_free(m);
    return st;
}

// ---------------------------------------------------------------- output

keel_status keel_cap_results_json(const keel_cap_result *r, int32_t n, char **out, keel_err *err) {
    if (out) *out = NULL;
    if (!out || n < 0 || (n && !r)) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_cap_results_json: NULL argument");
    cJSON *arr = cJSON_CreateArray();
    bool ok = arr != NULL;
    for (int32_t i = 0; ok && i < n; i++) {
        const keel_cap_result *x = &r[i];
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddItemToArray(arr, o);
        if (!ok) {
            cJSON_Delete(o);
            break;
        }
        ok = cJSON_AddStringToObject(o, "name", x->name) && cJSON_AddStringToObject(o, "kind", x->kind) &&
             cJSON_AddStringToObject(o, "metric", x->metric) && cJSON_AddNumberToObject(o, "value", x->value) &&
             cJSON_AddNumberToObject(o, "lo", x->lo) && cJSON_AddNumberToObject(o, "hi", x->hi) &&
             cJSON_AddNumberToObject(o, "se", x->se) && cJSON_AddNumberToObject(o, "n", (double)x->n) &&
             cJSON_AddNumberToObject(o, "n_tokens", (double)x->n_tokens) &&
             cJSON_AddBoolToObject(o, "higher_is_better", x->higher_is_better);
        if (ok && x->metric2[0])
            ok = cJSON_AddStringToObject(o, "metric2", x->metric2) && cJSON_AddNumberToObject(o, "value2", x->value2) &&
                 cJSON_AddNumberToObject(o, "lo2", x->lo2) && cJSON_AddNumberToObject(o, "hi2", x->hi2);
        ok = ok && cJSON_AddNumberToObject(o, "seconds", x->seconds);
    }
    char *text = ok ? cJSON_Print(arr) : NULL;
    cJSON_Delete(arr);
    if (!text) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "results JSON: out of memory");
    size_t len = strlen(text);
    char *c = keel_malloc(len + 2);
    if (!c) {
        cJSON_free(text);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "results JSON: out of memory");
    }
    memcpy(c, text, len);
    c[len] = '\n';
    c[len + 1] = 0;
    cJSON_free(text);
    *out = c;
    return KEEL_OK;
}

// A value on its metric's scale: rates as 0.xxxx, perplexity with 3 decimals.
static void fmt_val(char *b, size_t cap, double v, bool rate) {
    if (!isfinite(v)) snprintf(b, cap, "%s", isnan(v) ? "nan" : "inf");
    else snprintf(b, cap, rate ? "%.4f" : "%.3f", v);
}

keel_status keel_cap_results_table(const keel_cap_result *r, int32_t n, char **out, keel_err *err) {
    if (out) *out = NULL;
    if (!out || n < 0 || (n && !r)) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_cap_results_table: NULL argument");
    int wname = 10;
    for (int32_t i = 0; i < n; i++) {
        int l = (int)strnlen(r[i].name, sizeof r[i].name);
        if (l > wname) wname = l;
    }
    keel_buf b = {0};
    bool ok = keel_buf_printf(&b, "%-*s  %-11s  %9s  %-21s  %6s  %s\n", wname, "capability", "metric", "value", "95% CI", "n",
                              "also");
    for (int32_t i = 0; ok && i < n; i++) {
        const keel_cap_result *x = &r[i];
        bool rate = x->higher_is_better;
        char v[32], lo[32], hi[32], ci[72], also[160] = "";
        fmt_val(v, sizeof v, x->value, rate);
        fmt_val(lo, sizeof lo, x->lo, rate);
        fmt_val(hi, sizeof hi, x->hi, rate);
        snprintf(ci, sizeof ci, "[%s, %s]", lo, hi);
        if (x->metric2[0]) {
            char v2[32], l2[32], h2[32];
            fmt_val(v2, sizeof v2, x->value2, true);
            fmt_val(l2, sizeof l2, x->lo2, true);
            fmt_val(h2, sizeof h2, x->hi2, true);
            snprintf(also, sizeof also, "%s %s [%s, %s]", x->metric2, v2, l2, h2);
        } else if (!x->higher_is_better) {
            snprintf(also, sizeof also, "%lld tokens", (long long)x->n_tokens);
        }
        ok = keel_buf_printf(&b, "%-*s  %-11s  %9s  %-21s  %6lld  %s\n", wname, x->name, x->metric, v, ci, (long long)x->n, also);
    }
    if (!ok || !keel_buf_append(&b, "", 1)) {
        free(b.data);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "results table: out of memory");
    }
    *out = b.data;
    return KEEL_OK;
}
