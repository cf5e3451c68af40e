// SPDX-License-Identifier: MIT
// run.c — score a capability's items on the TRAINING forward (model/train.h),
// so an attached LoRA adapter or trainable fp32 tensors count exactly as the
// trainer applies them (cap.h). Three scorers:
//   multiple choice  one row per (item, choice) request: ctx + cont, left-
//                    truncated to n_ctx_train + 1 tokens and the last token
//                    dropped (lm-evaluation-harness's _loglikelihood_tokens);
//                    position i's logits predict token i + 1; the
//                    continuation's log_softmax summed in double. acc =
//                    argmax ll == gold, acc_norm = argmax ll / choice length
//                    (code points), ties to the first (numpy argmax).
//   perplexity       each document cut into non-overlapping windows of
//                    spec->window tokens (at most n_ctx_train); within a
//                    window every token after the first is scored given the
//                    window's earlier tokens; NLL and count summed per document.
//   exact_match, probe  greedy generation (eval/adapter_eval.c's
//                    keel_train_greedy), decoded, then extract + normalise +
//                    compare, or matched against the probe's pattern.
// Rows are sorted by length (longest first, ties by request order) and packed
// into batches of at most CAP_BATCH_TOKENS padded tokens, so padding stays
// small; results are written back in item order. Padding sits after a row's
// end and attention is causal, so it never changes a real position's logits.
// The batches depend only on the data, never on the thread count. The rules
// above that both scorers share (requests, windows, acc/acc_norm, judging)
// are implemented once in score_common.c; this file supplies train_scorer.
#include "cap/cap.h"
#include "adapters/lora.h"
#include "eval/eval.h"
#include "model/train.h"

#include <math.h>

// Padded tokens per forward: bounds the activation arena (about 1.5 MiB per
// token for SmolLM2-135M, logits included).
#define CAP_BATCH_TOKENS 512
// Rows per greedy call (keel_train_greedy decodes up to 8 rows per forward),
// and the padded tokens (rows x (prompt + max_new)) one call may hold.
#define CAP_GREEDY_ROWS 8
#define CAP_GREEDY_TOKENS 1024

// One scored row: tokens tok[0..T) are the input; the last n_sc positions'
// logits are scored against tgt[0..n_sc).
typedef struct row {
    const int32_t *tok;
    int32_t T;
    const int32_t *tgt;
    int32_t n_sc;
    int64_t id;       // request (multiple choice) or window (perplexity) index
} row;

static int row_cmp(const void *a, const void *b) {
    const row *x = a, *y = b;
    if (x->T != y->T) return x->T > y->T ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

// log p(target | position) from one row of logits, in double.
static double log_prob(const float *l, int64_t V, int32_t target) {
    double mx;
    double lse = keel_cap_log_sum_exp(l, V, &mx);
    return (double)l[target] - mx - lse;
}

// Lexicographic order of the rows' input tokens (a prefix sorts right
// before its extensions), ties by id.
static int lex_cmp(const void *a, const void *b) {
    const row *x = *(const row *const *)a, *y = *(const row *const *)b;
    int32_t n = x->T < y->T ? x->T : y->T;
    for (int32_t i = 0; i < n; i++)
        if (x->tok[i] != y->tok[i]) return x->tok[i] < y->tok[i] ? -1 : 1;
    if (x->T != y->T) return x->T < y->T ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static bool is_prefix(const row *x, const row *y) {
    return x->T <= y->T && !memcmp(x->tok, y->tok, (size_t)x->T * sizeof *x->tok);
}

// Run the rows and write res[row.id] = the summed log probability of each
// row's scored tokens. A row whose input is a prefix of another row's input
// (multiple-choice requests with the same context and a one-token
// continuation, e.g. BoolQ's " no" / " yes"; identical windows) is not run:
// causal attention gives its positions the same logits inside the longer
// row, so it is scored from there. rows is reordered.
static keel_status run_rows(const keel_train_model *tm, keel_lora *lo, row *rows, int64_t n_rows, double *res,
                            keel_err *err) {
    if (n_rows == 0) return KEEL_OK;
    const int64_t V = tm->m->desc.n_vocab;
    row **lex = keel_malloc((size_t)n_rows * sizeof *lex);
    int64_t *runner = keel_malloc((size_t)n_rows * sizeof *runner); // the row whose forward serves row i
    int64_t *head = keel_malloc((size_t)n_rows * sizeof *head);     // runner -> first served row (-1: none)
    int64_t *next = keel_malloc((size_t)n_rows * sizeof *next);     // served row -> next served row of its runner
    row *run = keel_malloc((size_t)n_rows * sizeof *run);           // the rows that run (id = index into rows)
    keel_train_acts a;
    bool acts_ok = false;
    int32_t *tokens = NULL, *targets = NULL, *hrows = NULL;
    uint8_t *mask = NULL;
    int32_t Bmax = 1, Tmax = 1;
    int64_t *lo_pos = keel_malloc((size_t)n_rows * sizeof *lo_pos), *base = keel_malloc((size_t)n_rows * sizeof *base);
    keel_status st = KEEL_OK;
    if (!lex || !runner || !head || !next || !run || !lo_pos || !base) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "capability scoring: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n_rows; i++) lex[i] = &rows[i], head[i] = next[i] = -1;
    qsort(lex, (size_t)n_rows, sizeof *lex, lex_cmp);
    int64_t n_run = 0;
    for (int64_t i = n_rows - 1; i >= 0; i--) {
        int64_t me = lex[i] - rows;
        runner[me] = me;
        if (i + 1 < n_rows && is_prefix(lex[i], lex[i + 1])) runner[me] = runner[lex[i + 1] - rows];
        if (runner[me] == me) {
            run[n_run] = *lex[i];
            run[n_run++].id = me;
        } else {
            next[me] = head[runner[me]];
            head[runner[me]] = me;
        }
    }
    qsort(run, (size_t)n_run, sizeof *run, row_cmp); // longest first, ties by row
    Tmax = run[0].T;
    Bmax = CAP_BATCH_TOKENS / Tmax;
    if (Bmax < 1) Bmax = 1;
    if (Bmax > n_run) Bmax = (int32_t)n_run;
    const int64_t cap_tokens = (int64_t)Bmax * Tmax;
    st = keel_train_acts_init(&a, tm, Bmax, Tmax, err);
    if (st) goto done;
    acts_ok = true;
    if (lo) {
        st = keel_lora_reserve(lo, cap_tokens, err);
        if (st) goto done;
        keel_lora_set_train(lo, false, 0);
    }
    tokens = keel_calloc((size_t)cap_tokens, sizeof *tokens);
    targets = keel_calloc((size_t)cap_tokens, sizeof *targets);
    mask = keel_calloc((size_t)cap_tokens, 1); // all 0: the (unused) loss counts nothing
    hrows = keel_malloc((size_t)cap_tokens * sizeof *hrows);
    if (!tokens || !targets || !mask || !hrows) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "capability scoring: out of memory for %lld tokens", (long long)cap_tokens);
        goto done;
    }
    for (int64_t r0 = 0; r0 < n_run;) {
        // the batch: runs r0.. while they fit (the first is the longest);
        // B * T <= Bmax * Tmax and T <= Tmax keep every arena buffer in bounds
        const int32_t T = run[r0].T;
        int64_t B = cap_tokens / T;
        if (B > n_run - r0) B = n_run - r0;
        memset(tokens, 0, (size_t)(B * T) * sizeof *tokens);
        for (int64_t r = 0; r < B; r++)
            memcpy(tokens + r * T, run[r0 + r].tok, (size_t)run[r0 + r].T * sizeof *tokens);
        // the head runs only on the positions some row scores: per run, the
        // span from the first scored position of any row it serves to its end
        int64_t nh = 0;
        for (int64_t r = 0; r < B; r++) {
            const int64_t self = run[r0 + r].id;
            int64_t lo_p = run[r0 + r].T, hi_p = 0;
            for (int64_t wi = self; wi >= 0; wi = wi == self ? head[self] : next[wi]) {
                if (rows[wi].T - rows[wi].n_sc < lo_p) lo_p = rows[wi].T - rows[wi].n_sc;
                if (rows[wi].T > hi_p) hi_p = rows[wi].T;
            }
            lo_pos[r] = lo_p;
            base[r] = nh;
            for (int64_t p = lo_p; p < hi_p; p++) hrows[nh++] = (int32_t)(r * T + p);
        }
        a.B = (int32_t)B;
        a.T = T;
        a.head_rows = hrows;
        a.n_head_rows = nh;
        st = keel_train_forward(tm, &a, tokens, targets, mask, NULL, err);
        if (st) goto done;
        for (int64_t r = 0; r < B; r++) {
            // the runner itself, then every row it serves
            const int64_t self = run[r0 + r].id;
            for (int64_t wi = self; wi >= 0; wi = wi == self ? head[self] : next[wi]) {
                const row *w = &rows[wi];
                double sum = 0;
                for (int32_t i = 0; i < w->n_sc; i++) {
                    const int64_t pos = w->T - w->n_sc + i;
                    sum += log_prob(a.logits + (base[r] + pos - lo_pos[r]) * V, V, w->tgt[i]);
                }
                res[w->id] = sum;
            }
        }
        r0 += B;
    }
done:
    if (acts_ok) {
        a.head_rows = NULL;
        a.B = Bmax;
        a.T = Tmax;
        keel_train_acts_free(&a);
    }
    free(tokens);
    free(targets);
    free(mask);
    free(hrows);
    free(lo_pos);
    free(base);
    free(lex);
    free(runner);
    free(head);
    free(next);
    free(run);
    return st;
}

// ---------------------------------------------------------------- spans

// The scorer's spans on the training forward (group unused: run_rows finds
// shared prefixes itself).
static keel_status score_spans(const keel_train_model *tm, keel_lora *lo, const keel_cap_span *s,
                               const int64_t *group, int64_t n, double *res, keel_err *err) {
    (void)group;
    row *rows = keel_calloc(n ? (size_t)n : 1, sizeof *rows);
    if (!rows) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "capability scoring: out of memory");
    for (int64_t i = 0; i < n; i++)
        rows[i] = (row){s[i].tok, s[i].T, s[i].tok + s[i].T - s[i].n_sc + 1, s[i].n_sc, i};
    keel_status st = run_rows(tm, lo, rows, n, res, err);
    free(rows);
    return st;
}

// ---------------------------------------------------------------- generation

typedef struct gen_ord {
    int32_t n;
    int64_t k;
} gen_ord;

static int gen_cmp(const void *a, const void *b) {
    const gen_ord *x = a, *y = b;
    if (x->n != y->n) return x->n > y->n ? -1 : 1;
    return x->k < y->k ? -1 : x->k > y->k;
}

static keel_status score_gen(const keel_cap_scorer *sc, const keel_cap_data *d, const keel_train_model *tm,
                             keel_lora *lo, const int64_t *items, int64_t n_items, keel_cap_outcome *out,
                             keel_err *err) {
    const keel_cap_spec *spec = d->spec;
    const int32_t max_new = spec->max_new_tokens;
    const int64_t n_ctx = tm->m->desc.n_ctx_train;
    if (max_new >= n_ctx)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "capability '%s': max_new_tokens %d does not fit the model's context (%lld)",
                         spec->name, (int)max_new, (long long)n_ctx);
    const int32_t keep = (int32_t)(n_ctx - max_new); // prompt tokens kept (the last ones)
    gen_ord *ord = keel_calloc(n_items ? (size_t)n_items : 1, sizeof *ord);
    int32_t *buf = keel_malloc((size_t)CAP_GREEDY_ROWS * (size_t)max_new * sizeof *buf);
    keel_status st = KEEL_OK;
    if (!ord || !buf) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "capability '%s': out of memory", spec->name);
        goto done;
    }
    for (int64_t k = 0; k < n_items; k++) {
        const keel_cap_item *it = &d->items[items ? items[k] : k];
        int32_t np = 0;
        st = keel_cap_gen_prompt(sc, spec, tm, it, keep, &np, err);
        if (st) goto done;
        ord[k] = (gen_ord){np, k};
    }
    qsort(ord, (size_t)n_items, sizeof *ord, gen_cmp);
    for (int64_t g0 = 0; g0 < n_items;) {
        // rows per call: keel_train_greedy sizes its arena for (rows, longest
        // prompt + max_new); long prompts get fewer rows (the longest come first)
        int64_t fit = CAP_GREEDY_TOKENS / ((int64_t)ord[g0].n + max_new);
        int32_t nb = fit < 1 ? 1 : fit < CAP_GREEDY_ROWS ? (int32_t)fit : CAP_GREEDY_ROWS;
        if (nb > n_items - g0) nb = (int32_t)(n_items - g0);
        const int32_t *prompts[CAP_GREEDY_ROWS];
        int32_t n_prompt[CAP_GREEDY_ROWS], n_out[CAP_GREEDY_ROWS];
        int32_t *outs[CAP_GREEDY_ROWS];
        for (int32_t r = 0; r < nb; r++) {
            const keel_cap_item *it = &d->items[items ? items[ord[g0 + r].k] : ord[g0 + r].k];
            n_prompt[r] = ord[g0 + r].n;
            prompts[r] = it->prompt + (it->n_prompt - n_prompt[r]);
            outs[r] = buf + (size_t)r * max_new;
            n_out[r] = 0;
        }
        st = keel_train_greedy(tm, lo, prompts, n_prompt, nb, max_new, outs, n_out, NULL, NULL, err);
        if (st) goto done;
        for (int32_t r = 0; r < nb; r++) {
            int64_t k = ord[g0 + r].k;
            st = keel_cap_gen_outcome(spec, tm, &d->items[items ? items[k] : k], outs[r], n_out[r], &out[k], err);
            if (st) goto done;
        }
        g0 += nb;
    }
done:
    free(ord);
    free(buf);
    return st;
}

// ---------------------------------------------------------------- public

// check_inputs off: the training forward rejects out-of-vocabulary tokens
// itself, and this path never checked the adapter's model (kept as it was).
static const keel_cap_scorer train_scorer = {score_spans, score_gen, false};

keel_status keel_cap_loglik(const keel_train_model *tm, keel_lora *lo, const keel_cap_request *req, int64_t n,
                            double *ll, keel_err *err) {
    if (!tm || n < 0 || (n && (!req || !ll))) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_cap_loglik: NULL argument");
    const keel_cap_request **p = keel_calloc(n ? (size_t)n : 1, sizeof *p);
    if (!p) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "log-likelihoods: out of memory");
    for (int64_t i = 0; i < n; i++) p[i] = &req[i];
    keel_status st = keel_cap_loglik_with(&train_scorer, tm, lo, p, NULL, n, ll, err);
    free(p);
    return st;
}

keel_status keel_cap_score_train(const keel_cap_data *d, const keel_train_model *tm, keel_lora *lo,
                                 const int64_t *items, int64_t n_items, keel_cap_outcome *out, keel_err *err) {
    return keel_cap_score_with(&train_scorer, d, tm, lo, items, n_items, out, err);
}
