// SPDX-License-Identifier: MIT
// score_common.c — what the two capability scorers share (cap.h): argument
// checks and dispatch by kind, log-likelihood requests (ctx + cont joined,
// left-truncated to n_ctx_train + 1 tokens, the last dropped, as
// lm-evaluation-harness's _loglikelihood_tokens), multiple-choice acc /
// acc_norm, perplexity windows and their sums, and the exact_match / probe
// verdict on a generation. Each scorer (score_ctx.c on the inference forward,
// run.c on the training forward) supplies only how a list of spans is run and
// how it generates (keel_cap_scorer), so both give the same outcomes by
// construction up to the forwards' float rounding. Rules: run.c's header.
#include "cap/cap.h"
#include "adapters/lora.h"
#include "model/train.h"

#include <math.h>

double keel_cap_log_sum_exp(const float *l, int64_t V, double *mx) {
    float m = -INFINITY;
    for (int64_t j = 0; j < V; j++) m = l[j] > m ? l[j] : m;
    double s = 0;
    for (int64_t j = 0; j < V; j++) s += exp((double)l[j] - (double)m);
    *mx = m;
    return log(s);
}

keel_status keel_cap_check_tokens(const struct keel_train_model *tm, const int32_t *t, int64_t n, const char *what,
                                  keel_err *err) {
    for (int64_t i = 0; i < n; i++)
        if (t[i] < 0 || t[i] >= tm->m->desc.n_vocab)
            return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: token %d at index %lld is outside the vocabulary [0, %d)",
                             what, (int)t[i], (long long)i, (int)tm->m->desc.n_vocab);
    return KEEL_OK;
}

// ---------------------------------------------------------------- log-likelihoods

keel_status keel_cap_loglik_with(const keel_cap_scorer *sc, const struct keel_train_model *tm, struct keel_lora *lo,
                                 const keel_cap_request *const *req, const int64_t *group, int64_t n, double *ll,
                                 keel_err *err) {
    const int64_t max_len = (int64_t)tm->m->desc.n_ctx_train + 1; // lm-eval: max_length + 1 tokens, last dropped
    keel_cap_span *q = keel_calloc(n ? (size_t)n : 1, sizeof *q);
    int32_t **joined = keel_calloc(n ? (size_t)n : 1, sizeof *joined);
    keel_status st = KEEL_OK;
    if (!q || !joined) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "log-likelihoods: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        const keel_cap_request *r = req[i];
        int64_t len = (int64_t)r->n_ctx + r->n_cont;
        if (r->n_cont < 1 || len < 2) {
            st = KEEL_FAIL(err, KEEL_ERR_INVALID, "log-likelihood request %lld has %s", (long long)i,
                           r->n_cont < 1 ? "no continuation tokens" : "no context token to condition on");
            goto done;
        }
        int32_t *full = keel_malloc((size_t)len * sizeof *full);
        if (!full) {
            st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "log-likelihoods: out of memory");
            goto done;
        }
        memcpy(full, r->ctx, (size_t)r->n_ctx * sizeof *full);
        memcpy(full + r->n_ctx, r->cont, (size_t)r->n_cont * sizeof *full);
        joined[i] = full;
        if (sc->check_inputs) {
            st = keel_cap_check_tokens(tm, full, len, "log-likelihood request", err);
            if (st) goto done;
        }
        int64_t skip = len > max_len ? len - max_len : 0; // left truncation
        int32_t T = (int32_t)(len - skip - 1);
        int32_t n_sc = r->n_cont < T ? r->n_cont : T;
        q[i] = (keel_cap_span){full + skip, T, n_sc};
    }
    st = sc->spans(tm, lo, q, group, n, ll, err);
done:
    if (joined)
        for (int64_t i = 0; i < n; i++) keel_free(joined[i]);
    keel_free(joined);
    keel_free(q);
    return st;
}

// ---------------------------------------------------------------- multiple choice

static keel_status score_mc(const keel_cap_scorer *sc, const keel_cap_data *d, const struct keel_train_model *tm,
                            struct keel_lora *lo, const int64_t *items, int64_t n_items, keel_cap_outcome *out,
                            keel_err *err) {
    int64_t n_req = 0;
    for (int64_t k = 0; k < n_items; k++) {
        const keel_cap_item *it = &d->items[items ? items[k] : k];
        if (it->n_req < 1 || it->gold < 0 || it->gold >= it->n_req || it->req0 < 0 || it->req0 + it->n_req > d->n_req)
            return KEEL_FAIL(err, KEEL_ERR_INVALID, "capability '%s': %s:%lld: item without valid choices and gold",
                             d->spec->name, d->spec->data, (long long)it->line);
        n_req += it->n_req;
    }
    const keel_cap_request **req = keel_calloc(n_req ? (size_t)n_req : 1, sizeof *req);
    int64_t *grp = keel_calloc(n_req ? (size_t)n_req : 1, sizeof *grp);
    double *ll = keel_calloc(n_req ? (size_t)n_req : 1, sizeof *ll);
    keel_status st = KEEL_OK;
    if (!req || !ll || !grp) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "capability '%s': out of memory", d->spec->name);
        goto done;
    }
    int64_t nr = 0;
    for (int64_t k = 0; k < n_items; k++) { // an item's choices form one group
        const keel_cap_item *it = &d->items[items ? items[k] : k];
        for (int32_t j = 0; j < it->n_req; j++) grp[nr] = k, req[nr++] = &d->req[it->req0 + j];
    }
    st = keel_cap_loglik_with(sc, tm, lo, req, grp, n_req, ll, err);
    if (st) {
        if (err && !strncmp(err->msg, "log-likelihood request", 22)) {
            keel_err e2 = *err;
            st = KEEL_FAIL(err, st, "capability '%s' (%s): %s", d->spec->name, d->spec->data, e2.msg);
        }
        goto done;
    }
    nr = 0;
    for (int64_t k = 0; k < n_items; k++) {
        const keel_cap_item *it = &d->items[items ? items[k] : k];
        int32_t best = 0, best_n = 0;
        double bn = -INFINITY;
        for (int32_t j = 0; j < it->n_req; j++) {
            double v = ll[nr + j];
            int32_t len = d->choice_len ? d->choice_len[it->req0 + j] : 1;
            double vn = v / (len > 0 ? len : 1);
            if (v > ll[nr + best]) best = j; // strict: ties go to the first maximum
            if (j == 0 || vn > bn) bn = vn, best_n = j;
        }
        out[k].a = best == it->gold;
        out[k].b = best_n == it->gold;
        out[k].n = 1;
        out[k].text = NULL;
        nr += it->n_req;
    }
done:
    keel_free(req);
    keel_free(grp);
    keel_free(ll);
    return st;
}

// ---------------------------------------------------------------- perplexity

static keel_status score_ppl(const keel_cap_scorer *sc, const keel_cap_data *d, const struct keel_train_model *tm,
                             struct keel_lora *lo, const int64_t *items, int64_t n_items, keel_cap_outcome *out,
                             keel_err *err) {
    int64_t W = d->spec->window;
    if (W > tm->m->desc.n_ctx_train) W = tm->m->desc.n_ctx_train;
    if (W < 2) W = 2;
    int64_t n_rows = 0;
    for (int64_t k = 0; k < n_items; k++) {
        const keel_cap_item *it = &d->items[items ? items[k] : k];
        for (int64_t s = 0; s < it->n_tokens; s += W)
            if ((it->n_tokens - s < W ? it->n_tokens - s : W) >= 2) n_rows++;
    }
    keel_cap_span *q = keel_calloc(n_rows ? (size_t)n_rows : 1, sizeof *q);
    double *lp = keel_calloc(n_rows ? (size_t)n_rows : 1, sizeof *lp);
    int64_t *owner = keel_calloc(n_rows ? (size_t)n_rows : 1, sizeof *owner);
    keel_status st = KEEL_OK;
    if (!q || !lp || !owner) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "capability '%s': out of memory", d->spec->name);
        goto done;
    }
    int64_t nr = 0;
    for (int64_t k = 0; k < n_items; k++) {
        const keel_cap_item *it = &d->items[items ? items[k] : k];
        if (sc->check_inputs) {
            st = keel_cap_check_tokens(tm, it->tokens, it->n_tokens, d->spec->data, err);
            if (st) goto done;
        }
        for (int64_t s = 0; s < it->n_tokens; s += W) {
            int64_t len = it->n_tokens - s < W ? it->n_tokens - s : W;
            if (len < 2) continue;
            q[nr] = (keel_cap_span){it->tokens + s, (int32_t)(len - 1), (int32_t)(len - 1)};
            owner[nr++] = k;
        }
    }
    st = sc->spans(tm, lo, q, NULL, n_rows, lp, err); // every window a group of its own
    if (st) goto done;
    // windows were numbered in document order: sum them in that order
    for (int64_t r = 0; r < n_rows; r++) out[owner[r]].a -= lp[r];
    for (int64_t r = 0; r < n_rows; r++) out[owner[r]].n += q[r].n_sc;
done:
    keel_free(q);
    keel_free(lp);
    keel_free(owner);
    return st;
}

// ---------------------------------------------------------------- generation

keel_status keel_cap_judge(const keel_cap_spec *spec, const keel_cap_item *it, const char *text, double *pass,
                           keel_err *err) {
    if (spec->kind == KEEL_CAP_PROBE) {
        bool m = false;
        keel_status st = keel_cap_probe_match(spec, text, &m, err);
        if (st) return st;
        *pass = m == spec->expect_match;
        return KEEL_OK;
    }
    char *cand = NULL;
    if (spec->extract) {
        keel_status st = keel_cap_extract(spec, text, &cand, err);
        if (st) return st;
        if (!cand) { // no match: wrong
            *pass = 0;
            return KEEL_OK;
        }
    } else if (!(cand = keel_strdup(text))) {
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "capability '%s': out of memory", spec->name);
    }
    keel_cap_normalize(spec, cand);
    *pass = 0;
    for (int32_t j = 0; j < it->n_answers; j++)
        if (it->answers[j] && !strcmp(cand, it->answers[j])) *pass = 1;
    free(cand);
    return KEEL_OK;
}

keel_status keel_cap_gen_prompt(const keel_cap_scorer *sc, const keel_cap_spec *spec, const struct keel_train_model *tm,
                                const keel_cap_item *it, int32_t keep, int32_t *n_prompt, keel_err *err) {
    if (it->n_prompt < 1)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "capability '%s': %s:%lld: empty prompt", spec->name, spec->data,
                         (long long)it->line);
    if (sc->check_inputs) {
        keel_status st = keel_cap_check_tokens(tm, it->prompt, it->n_prompt, spec->data, err);
        if (st) return st;
    }
    *n_prompt = it->n_prompt < keep ? it->n_prompt : keep;
    return KEEL_OK;
}

keel_status keel_cap_gen_outcome(const keel_cap_spec *spec, const struct keel_train_model *tm, const keel_cap_item *it,
                                 const int32_t *gen, int32_t n_gen, keel_cap_outcome *o, keel_err *err) {
    char *text = NULL;
    keel_status st = keel_detokenize(tm->m->tok, gen, (size_t)n_gen, false, &text, err);
    if (st) return st;
    o->text = text;
    o->n = 1;
    return keel_cap_judge(spec, it, text, &o->a, err);
}

// ---------------------------------------------------------------- public

keel_status keel_cap_score_with(const keel_cap_scorer *sc, const keel_cap_data *d, const struct keel_train_model *tm,
                                struct keel_lora *lo, const int64_t *items, int64_t n_items, keel_cap_outcome *out,
                                keel_err *err) {
    if (!d || !d->spec || !tm || (n_items > 0 && !out) || n_items < 0)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_cap_score: NULL argument");
    if (!items && n_items > d->n_items)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_cap_score: %lld items asked, %lld loaded", (long long)n_items,
                         (long long)d->n_items);
    for (int64_t k = 0; items && k < n_items; k++)
        if (items[k] < 0 || items[k] >= d->n_items)
            return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_cap_score: item %lld out of range (%lld loaded)",
                             (long long)items[k], (long long)d->n_items);
    for (int64_t k = 0; k < n_items; k++) out[k] = (keel_cap_outcome){0};
    if (n_items == 0) return KEEL_OK;
    keel_status st;
    if (sc->check_inputs && (st = keel_cap_check_lora(tm, lo, err))) return st;
    switch (d->spec->kind) {
    case KEEL_CAP_MULTIPLE_CHOICE: st = score_mc(sc, d, tm, lo, items, n_items, out, err); break;
    case KEEL_CAP_PERPLEXITY: st = score_ppl(sc, d, tm, lo, items, n_items, out, err); break;
    case KEEL_CAP_EXACT_MATCH:
    case KEEL_CAP_PROBE: st = sc->gen(sc, d, tm, lo, items, n_items, out, err); break;
    default: st = KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_cap_score: unknown capability kind %d", (int)d->spec->kind);
    }
    if (st) keel_cap_outcomes_free(out, n_items);
    return st;
}

keel_status keel_cap_check_lora(const struct keel_train_model *tm, const struct keel_lora *lo, keel_err *err) {
    if (lo && lo->tm != tm)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "capability scoring: the LoRA adapter is attached to another model");
    return KEEL_OK;
}

void keel_cap_outcomes_free(keel_cap_outcome *o, int64_t n) {
    for (int64_t i = 0; o && i < n; i++) {
        free(o[i].text);
        o[i].text = NULL;
    }
}
