// SPDX-License-Identifier: MIT
// score_ctx.c — capability scoring on the INFERENCE forward (model/forward.c
// with a KV cache): keel_cap_score, the same outcomes as run.c's training-
// forward keel_cap_score_train (the reference) up to float rounding, several
// times faster because
//   - every request is a sequence of its own in a cache region, and the
//     requests of one item (the choices of a multiple-choice question) share
//     their longest common token prefix: it runs once (phase 1), its keys and
//     values are copied into the other requests' regions, then only the
//     differing tails run (phase 2);
//   - many items' sequences run in one forward call (keel_model_forward_segs,
//     up to SC_TOKENS tokens), so the matmuls stay batched;
//   - the head (final norm + lm head) runs only on the positions scored;
//   - generation decodes with the cache (prompt once, then one token per item
//     per call, all live items of a group in one call).
// The scored model: tm's weights as the training forward sees them (a shallow
// keel_model view whose linears/norms point at tm's views, so trainable fp32
// tensors of full fine-tuning count) plus lo (a live keel_lora: its A/B in
// tm->p.w, B transposed afresh on every call). Requests, truncation, windows,
// sums in double, acc/acc_norm and judging are score_common.c's, shared
// with run.c (rules: run.c's header); this file supplies ctx_scorer.
// Numerics: the batched matmul kernels differ from the training forward's
// (and one-token decode from batched) by float rounding (~1e-5 relative on
// logits); the model's matmul_precision applies (FP32 by default). Batches
// depend only on the data, never on the thread count.
#include "cap/cap.h"
#include "adapters/lora.h"
#include "model/train.h"

#include <math.h>

// Tokens per forward call (the activation buffers and the (SC_TOKENS, V)
// logits are sized for it); cache slots per batch of items (SmolLM2-135M:
// 46 KiB a slot), fewer when a slot is large.
#define SC_TOKENS 512
#define SC_SLOTS 2048
#define SC_CACHE_BYTES ((int64_t)256 << 20)

typedef struct sctx {
    keel_model view;      // tm's weights as a keel_model (shallow; layers owned)
    keel_layer *layers;
    keel_fwd_lora fl;     // lo as the forward applies it (when has_lora)
    bool has_lora;
    const float **A, **B, **Bt;
    float *bt;
    keel_kv_cache kv;
    keel_fwd_buf buf;
    float *logits;        // (SC_TOKENS, V)
    double *mx, *ls;      // (SC_TOKENS) per logits row: max and log sum exp(l - max)
    int32_t *rows;        // (SC_TOKENS) rows of the current call
    int64_t *rid;         // (SC_TOKENS) which work segment each row belongs to
    int32_t *rpos;        // (SC_TOKENS) its position
    int32_t *tok;         // (SC_TOKENS) the call's tokens
    keel_fwd_seg *seg;    // (SC_TOKENS)
} sctx;

static void sctx_free(sctx *s) {
    keel_free(s->layers);
    keel_free(s->A);
    keel_free(s->B);
    keel_free(s->Bt);
    keel_free(s->bt);
    keel_kv_cache_free(&s->kv);
    keel_fwd_buf_free(&s->buf);
    keel_free(s->logits);
    keel_free(s->mx);
    keel_free(s->ls);
    keel_free(s->rows);
    keel_free(s->rid);
    keel_free(s->rpos);
    keel_free(s->tok);
    keel_free(s->seg);
    memset(s, 0, sizeof *s);
}

// The model view: the loaded model with every linear, norm, embedding and
// head replaced by tm's views of them (frozen ones are the model's own; the
// trainable ones fp32 slices of tm->p.w, q/k rows in the file's order, as the
// inference forward expects).
static keel_status sctx_init(sctx *s, const keel_train_model *tm, keel_lora *lo, int32_t n_slots, int32_t max_span,
                             keel_err *err) {
    memset(s, 0, sizeof *s);
    const keel_model *m = tm->m;
    const int nl = m->desc.n_layer;
    s->view = *m;
    s->view.n_threads = tm->n_threads;
    s->layers = keel_calloc((size_t)nl, sizeof *s->layers);
    if (!s->layers) goto nomem;
    for (int l = 0; l < nl; l++) {
        const keel_tlayer *T = &tm->layers[l];
        keel_layer *L = &s->layers[l];
        L->attn_norm = T->attn_norm.w;
        L->ffn_norm = T->ffn_norm.w;
        L->wq = T->wq.base, L->wk = T->wk.base, L->wv = T->wv.base, L->wo = T->wo.base;
        L->w_gate = T->w_gate.base, L->w_up = T->w_up.base, L->w_down = T->w_down.base;
    }
    s->view.layers = s->layers;
    s->view.tok_embd = tm->tok_embd.base;
    s->view.output = tm->output.base;
    s->view.output_norm = tm->output_norm.w;
    if (lo && lo->n > 0) {
        const size_t nslot = (size_t)nl * KEEL_LORA_N_PROJ;
        const int64_t r = lo->r;
        size_t nbt = 0;
        for (int i = 0; i < lo->n; i++) nbt += (size_t)(lo->mods[i].n_out * r);
        s->A = keel_calloc(nslot, sizeof *s->A);
        s->B = keel_calloc(nslot, sizeof *s->B);
        s->Bt = keel_calloc(nslot, sizeof *s->Bt);
        s->bt = keel_malloc((nbt ? nbt : 1) * sizeof(float));
        if (!s->A || !s->B || !s->Bt || !s->bt) goto nomem;
        float *bt = s->bt;
        for (int i = 0; i < lo->n; i++) {
            const keel_lora_mod *md = &lo->mods[i];
            size_t slot = (size_t)md->layer * KEEL_LORA_N_PROJ + (size_t)md->proj;
            const float *B = keel_lora_B(lo, i); // (n_out, r), the current values
            s->A[slot] = keel_lora_A(lo, i);
            s->B[slot] = B;
            s->Bt[slot] = bt;
            for (int64_t o = 0; o < md->n_out; o++)
                for (int64_t k = 0; k < r; k++) bt[k * md->n_out + o] = B[o * r + k];
            bt += md->n_out * r;
        }
        s->fl = (keel_fwd_lora){lo->r, lo->scale, s->A, s->B, s->Bt};
        s->has_lora = true;
    }
    keel_status st = keel_kv_cache_init(&s->view, n_slots, &s->kv, err);
    if (!st) st = keel_fwd_buf_init(&s->view, SC_TOKENS, max_span, &s->buf, err);
    if (!st && s->has_lora) st = keel_fwd_buf_lora_reserve(&s->buf, s->fl.r, err);
    if (st) {
        sctx_free(s);
        return st;
    }
    const size_t V = (size_t)m->desc.n_vocab;
    s->logits = keel_malloc(SC_TOKENS * V * sizeof *s->logits);
    s->mx = keel_malloc(SC_TOKENS * sizeof *s->mx);
    s->ls = keel_malloc(SC_TOKENS * sizeof *s->ls);
    s->rows = keel_malloc(SC_TOKENS * sizeof *s->rows);
    s->rid = keel_malloc(SC_TOKENS * sizeof *s->rid);
    s->rpos = keel_malloc(SC_TOKENS * sizeof *s->rpos);
    s->tok = keel_malloc(SC_TOKENS * sizeof *s->tok);
    s->seg = keel_malloc(SC_TOKENS * sizeof *s->seg);
    if (!s->logits || !s->mx || !s->ls || !s->rows || !s->rid || !s->rpos || !s->tok || !s->seg) goto nomem;
    return KEEL_OK;
nomem:
    sctx_free(s);
    return KEEL_FAIL(err, KEEL_ERR_NOMEM, "capability scoring: out of memory (%d cache slots)", (int)n_slots);
}

// One piece of work: positions [pos, pos + n) of a sequence tok whose region
// starts at slot0; the positions >= lo_row get logits (lo_row > pos + n - 1:
// none). id identifies it to the row handler.
typedef struct wseg {
    const int32_t *tok;
    int32_t pos, n, slot0, lo_row;
    int64_t id;
} wseg;

// Called for every logits row in order (for each work segment, positions
// ascending); mx/ls: the row's max and log sum exp(l - max) when lse was asked.
typedef keel_status (*row_fn)(void *ud, int64_t id, int32_t pos, const float *l, double mx, double ls,
                              keel_err *err);

// Run the work segments in order, packed into forward calls of at most
// SC_TOKENS tokens (a segment that does not fit is split; its later part
// attends to the earlier one through the cache).
static keel_status run_work(sctx *s, wseg *w, int64_t n_w, bool lse, row_fn fn, void *ud, keel_err *err) {
    const int64_t V = s->view.desc.n_vocab;
    const keel_fwd_lora *fl = s->has_lora ? &s->fl : NULL;
    int64_t i = 0;
    int32_t done_in_i = 0; // tokens of w[i] already run
    while (i < n_w) {
        int32_t T = 0, n_seg = 0, nr = 0;
        while (i < n_w && T < SC_TOKENS) {
            const wseg *g = &w[i];
            int32_t left = g->n - done_in_i, take = left < SC_TOKENS - T ? left : SC_TOKENS - T;
            int32_t p0 = g->pos + done_in_i;
            s->seg[n_seg++] = (keel_fwd_seg){take, p0, g->slot0};
            memcpy(s->tok + T, g->tok + p0, (size_t)take * sizeof *s->tok);
            for (int32_t t = 0; t < take; t++)
                if (p0 + t >= g->lo_row) {
                    s->rows[nr] = T + t;
                    s->rid[nr] = i;
                    s->rpos[nr++] = p0 + t;
                }
            T += take;
            done_in_i += take;
            if (done_in_i == g->n) i++, done_in_i = 0;
        }
        keel_model_forward_segs(&s->view, &s->kv, &s->buf, fl, s->tok, s->seg, n_seg, s->rows, nr,
                                nr ? s->logits : NULL);
        if (lse) {
            const int nthr = s->view.n_threads > 0 ? s->view.n_threads : 1;
            (void)nthr;
KEEL_OMP(parallel for num_threads(nthr) schedule(static) if(nr > 1 && nthr > 1))
            for (int32_t k = 0; k < nr; k++) // run.c's log_prob, split: max and log sum, then the target
                s->ls[k] = keel_cap_log_sum_exp(s->logits + (size_t)k * (size_t)V, V, &s->mx[k]);
        }
        for (int32_t k = 0; k < nr; k++) {
            keel_status st = fn(ud, w[s->rid[k]].id, s->rpos[k], s->logits + (size_t)k * (size_t)V,
                                lse ? s->mx[k] : 0, lse ? s->ls[k] : 0, err);
            if (st) return st;
        }
    }
    return KEEL_OK;
}

// Copy positions [0, n) of the region at src into the region at dst, every layer.
static void copy_prefix(sctx *s, int32_t src, int32_t dst, int32_t n) {
    const keel_model_desc *d = &s->view.desc;
    const int64_t K = (int64_t)d->n_head_kv * s->view.head_dim;
    for (int l = 0; l < d->n_layer; l++) {
        float *kt = s->kv.k + (size_t)l * (size_t)K * (size_t)s->kv.ldk;
        float *vc = s->kv.v + (size_t)l * (size_t)s->kv.n_ctx * (size_t)K;
        for (int64_t r = 0; r < K; r++)
            memcpy(kt + r * s->kv.ldk + dst, kt + r * s->kv.ldk + src, (size_t)n * sizeof(float));
        memcpy(vc + (size_t)dst * K, vc + (size_t)src * K, (size_t)n * (size_t)K * sizeof(float));
    }
}

// ---------------------------------------------------------------- log-likelihoods

// A scored sequence: input tokens seq[0..T) (seq[T] exists: the last target),
// positions [T - n_sc, T) scored against seq[pos + 1]. Requests of one group
// (an item's choices) share their common prefix.
typedef struct sreq {
    const int32_t *seq;
    int32_t T, n_sc;
    int64_t group;
} sreq;

typedef struct ll_state {
    const sreq *q;
    double *res;
    // phase 1: the work segment of group g covers requests [g0[g], g0[g] + gn[g])
    const int64_t *g0;
    const int32_t *gn;
    bool phase1;
} ll_state;

static keel_status ll_row(void *ud, int64_t id, int32_t pos, const float *l, double mx, double ls, keel_err *err) {
    (void)err;
    ll_state *st = ud;
    int64_t r0 = st->phase1 ? st->g0[id] : id, r1 = st->phase1 ? r0 + st->gn[id] : id + 1;
    for (int64_t r = r0; r < r1; r++) {
        const sreq *q = &st->q[r];
        if (pos < q->T - q->n_sc || pos >= q->T) continue;
        st->res[r] += (double)l[q->seq[pos + 1]] - mx - ls;
    }
    return KEEL_OK;
}

// res[i] = the summed log probability of q[i]'s scored tokens. q is sorted by
// group (the requests of a group are consecutive).
static keel_status score_reqs(const keel_train_model *tm, keel_lora *lo, const sreq *q, int64_t n, double *res,
                              keel_err *err) {
    for (int64_t i = 0; i < n; i++) res[i] = 0;
    if (n == 0) return KEEL_OK;
    // groups, their prefix, their slot need
    int64_t n_g = 0;
    for (int64_t i = 0; i < n; i++)
        if (i == 0 || q[i].group != q[i - 1].group) n_g++;
    int64_t *g0 = keel_malloc((size_t)n_g * sizeof *g0), *gslots = keel_malloc((size_t)n_g * sizeof *gslots);
    int32_t *gn = keel_malloc((size_t)n_g * sizeof *gn), *gp = keel_malloc((size_t)n_g * sizeof *gp);
    int32_t *slot = keel_malloc((size_t)n * sizeof *slot);
    wseg *w = keel_malloc((size_t)n * sizeof *w);
    sctx s;
    bool s_ok = false;
    keel_status st = KEEL_OK;
    if (!g0 || !gslots || !gn || !gp || !slot || !w) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "capability scoring: out of memory");
        goto done;
    }
    int64_t max_g = 1;
    int32_t max_span = 1;
    for (int64_t i = 0, g = -1; i < n; i++) {
        if (i == 0 || q[i].group != q[i - 1].group) {
            g++;
            g0[g] = i, gn[g] = 0, gp[g] = q[i].T, gslots[g] = 0;
        }
        int32_t p = 0; // common prefix with the group's first request
        const sreq *a = &q[g0[g]];
        while (p < gp[g] && p < q[i].T && a->seq[p] == q[i].seq[p]) p++;
        gp[g] = p;
        gn[g]++;
        gslots[g] += q[i].T;
        if (gslots[g] > max_g) max_g = gslots[g];
        if (q[i].T > max_span) max_span = q[i].T;
    }
    // the cache: SC_SLOTS slots, fewer for a model whose slot is large (at
    // most SC_CACHE_BYTES), never fewer than the largest group needs
    const keel_model_desc *md = &tm->m->desc;
    const int64_t slot_bytes = (int64_t)md->n_layer * md->n_head_kv * tm->m->head_dim * 2 * (int64_t)sizeof(float);
    int64_t n_slots = SC_CACHE_BYTES / (slot_bytes > 0 ? slot_bytes : 1), total = 0;
    if (n_slots > SC_SLOTS) n_slots = SC_SLOTS;
    if (n_slots < max_g) n_slots = max_g;
    for (int64_t i = 0; i < n; i++) total += q[i].T;
    if (n_slots > total) n_slots = total;
    if (n_slots > INT32_MAX / 2) {
        st = KEEL_FAIL(err, KEEL_ERR_INVALID, "capability scoring: %lld cache slots", (long long)n_slots);
        goto done;
    }
    st = sctx_init(&s, tm, lo, (int32_t)n_slots, max_span, err);
    if (st) goto done;
    s_ok = true;
    ll_state ls = {q, res, g0, gn, true};
    for (int64_t ga = 0; ga < n_g;) {
        // the batch: groups ga.. while their slots fit and each phase stays
        // within one forward call (the first group always goes)
        int64_t gb = ga, used = 0, t1 = 0, t2 = 0;
        while (gb < n_g) {
            int64_t tail = 0;
            for (int64_t i = g0[gb]; i < g0[gb] + gn[gb]; i++) tail += q[i].T - gp[gb];
            if (gb > ga && (used + gslots[gb] > n_slots || t1 + gp[gb] > SC_TOKENS || t2 + tail > SC_TOKENS)) break;
            for (int64_t i = g0[gb]; i < g0[gb] + gn[gb]; i++) {
                slot[i] = (int32_t)used;
                used += q[i].T;
            }
            t1 += gp[gb], t2 += tail;
            gb++;
        }
        // phase 1: each group's common prefix, in its first request's region
        int64_t nw = 0;
        for (int64_t g = ga; g < gb; g++) {
            if (gp[g] == 0) continue;
            int32_t lo_row = INT32_MAX;
            for (int64_t i = g0[g]; i < g0[g] + gn[g]; i++)
                if (q[i].T - q[i].n_sc < lo_row) lo_row = q[i].T - q[i].n_sc;
            w[nw++] = (wseg){q[g0[g]].seq, 0, gp[g], slot[g0[g]], lo_row, g};
        }
        ls.phase1 = true;
        st = run_work(&s, w, nw, true, ll_row, &ls, err);
        if (st) goto done;
        // phase 2: every request's own tail, after a copy of the prefix
        nw = 0;
        for (int64_t g = ga; g < gb; g++)
            for (int64_t i = g0[g]; i < g0[g] + gn[g]; i++) {
                if (i > g0[g] && gp[g] > 0) copy_prefix(&s, slot[g0[g]], slot[i], gp[g]);
                if (q[i].T > gp[g]) w[nw++] = (wseg){q[i].seq, gp[g], q[i].T - gp[g], slot[i], q[i].T - q[i].n_sc, i};
            }
        ls.phase1 = false;
        st = run_work(&s, w, nw, true, ll_row, &ls, err);
        if (st) goto done;
        ga = gb;
    }
done:
    if (s_ok) sctx_free(&s);
    keel_free(g0);
    keel_free(gslots);
    keel_free(gn);
    keel_free(gp);
    keel_free(slot);
    keel_free(w);
    return st;
}

// The scorer's spans on the inference forward; group[i] (NULL: i) groups
// the requests that share their common prefix.
static keel_status score_spans(const keel_train_model *tm, keel_lora *lo, const keel_cap_span *s,
                               const int64_t *group, int64_t n, double *res, keel_err *err) {
    sreq *q = keel_calloc(n ? (size_t)n : 1, sizeof *q);
    if (!q) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "capability scoring: out of memory");
    for (int64_t i = 0; i < n; i++) q[i] = (sreq){s[i].tok, s[i].T, s[i].n_sc, group ? group[i] : i};
    keel_status st = score_reqs(tm, lo, q, n, res, err);
    keel_free(q);
    return st;
}

static keel_status score_gen(const keel_cap_scorer *sc, const keel_cap_data *d, const keel_train_model *tm,
                             keel_lora *lo, const int64_t *items, int64_t n_items, keel_cap_outcome *out,
                             keel_err *err);

static const keel_cap_scorer ctx_scorer = {score_spans, score_gen, true};

keel_status keel_cap_loglik_ctx(const keel_train_model *tm, keel_lora *lo, const keel_cap_request *req, int64_t n,
                                double *ll, keel_err *err) {
    if (!tm || n < 0 || (n && (!req || !ll)))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_cap_loglik_ctx: NULL argument");
    keel_status st = keel_cap_check_lora(tm, lo, err);
    if (st) return st;
    const keel_cap_request **p = keel_calloc(n ? (size_t)n : 1, sizeof *p);
    if (!p) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "log-likelihoods: out of memory");
    for (int64_t i = 0; i < n; i++) p[i] = &req[i];
    // requests with the same context in a row form a group (as an item's choices)
    int64_t *grp = keel_malloc((n ? (size_t)n : 1) * sizeof *grp);
    if (!grp) {
        keel_free(p);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "log-likelihoods: out of memory");
    }
    for (int64_t i = 0; i < n; i++)
        grp[i] = i > 0 && req[i].n_ctx == req[i - 1].n_ctx &&
                         !memcmp(req[i].ctx, req[i - 1].ctx, (size_t)req[i].n_ctx * sizeof *req[i].ctx)
                     ? grp[i - 1]
                     : i;
    st = keel_cap_loglik_with(&ctx_scorer, tm, lo, p, grp, n, ll, err);
    keel_free(grp);
    keel_free(p);
    return st;
}

// ---------------------------------------------------------------- generation

// Items decoded together: each holds a cache region of prompt + max_new slots.
#define SC_GEN_ITEMS 16

typedef struct gen_state {
    const keel_tokenizer *tok;
    int32_t **seq;    // (group) prompt + generated tokens
    int32_t *len, *n_out;
    bool *live;
    int32_t max_new, V;
} gen_state;

static keel_status gen_row(void *ud, int64_t id, int32_t pos, const float *l, double mx, double ls, keel_err *err) {
    (void)pos, (void)mx, (void)ls, (void)err;
    gen_state *g = ud;
    const int32_t V = g->V;
    int64_t best = 0; // the first maximum, as keel_train_greedy
    for (int64_t j = 1; j < V; j++)
        if (l[j] > l[best]) best = j;
    if (keel_token_is_eog(g->tok, (int32_t)best)) {
        g->live[id] = false;
        return KEEL_OK;
    }
    g->seq[id][g->len[id]++] = (int32_t)best;
    if (++g->n_out[id] >= g->max_new) g->live[id] = false;
    return KEEL_OK;
}

static keel_status score_gen(const keel_cap_scorer *sc, const keel_cap_data *d, const keel_train_model *tm,
                             keel_lora *lo, const int64_t *items, int64_t n_items, keel_cap_outcome *out,
                             keel_err *err) {
    const keel_cap_spec *spec = d->spec;
    const int32_t max_new = spec->max_new_tokens;
    const int64_t n_ctx = tm->m->desc.n_ctx_train;
    if (max_new < 1 || max_new >= n_ctx)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "capability '%s': max_new_tokens %d does not fit the model's context (%lld)",
                         spec->name, (int)max_new, (long long)n_ctx);
    const int32_t keep = (int32_t)(n_ctx - max_new); // prompt tokens kept (the last ones)
    int32_t max_span = 1;
    for (int64_t k = 0; k < n_items; k++) {
        int32_t np = 0;
        keel_status st = keel_cap_gen_prompt(sc, spec, tm, &d->items[items ? items[k] : k], keep, &np, err);
        if (st) return st;
        if (np + max_new > max_span) max_span = np + max_new;
    }
    const int64_t G = n_items < SC_GEN_ITEMS ? n_items : SC_GEN_ITEMS;
    int32_t *seqbuf = keel_malloc((size_t)G * (size_t)max_span * sizeof *seqbuf);
    int32_t *seqp[SC_GEN_ITEMS], len[SC_GEN_ITEMS], n_out[SC_GEN_ITEMS], slot0[SC_GEN_ITEMS];
    bool live[SC_GEN_ITEMS];
    wseg w[SC_GEN_ITEMS];
    sctx s;
    bool s_ok = false;
    keel_status st = KEEL_OK;
    if (!seqbuf) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "capability '%s': out of memory", spec->name);
        goto done;
    }
    st = sctx_init(&s, tm, lo, (int32_t)(G * max_span), max_span, err);
    if (st) goto done;
    s_ok = true;
    gen_state gs = {tm->m->tok, seqp, len, n_out, live, max_new, tm->m->desc.n_vocab};
    for (int64_t k0 = 0; k0 < n_items; k0 += G) {
        const int32_t nb = (int32_t)(n_items - k0 < G ? n_items - k0 : G);
        int32_t nw = 0;
        for (int32_t r = 0; r < nb; r++) {
            const keel_cap_item *it = &d->items[items ? items[k0 + r] : k0 + r];
            int32_t np = it->n_prompt < keep ? it->n_prompt : keep;
            seqp[r] = seqbuf + (size_t)r * (size_t)max_span;
            memcpy(seqp[r], it->prompt + (it->n_prompt - np), (size_t)np * sizeof *seqbuf);
            len[r] = np, n_out[r] = 0, live[r] = true, slot0[r] = r * max_span;
            w[nw++] = (wseg){seqp[r], 0, np, slot0[r], np - 1, r};
        }
        st = run_work(&s, w, nw, false, gen_row, &gs, err); // the prompts, and each one's first token
        if (st) goto done;
        for (;;) { // one token per live item per call
            nw = 0;
            for (int32_t r = 0; r < nb; r++)
                if (live[r]) w[nw++] = (wseg){seqp[r], len[r] - 1, 1, slot0[r], len[r] - 1, r};
            if (nw == 0) break;
            st = run_work(&s, w, nw, false, gen_row, &gs, err);
            if (st) goto done;
        }
        for (int32_t r = 0; r < nb; r++) {
            int64_t k = k0 + r;
            st = keel_cap_gen_outcome(spec, tm, &d->items[items ? items[k] : k], seqp[r] + (len[r] - n_out[r]),
                                      n_out[r], &out[k], err);
            if (st) goto done;
        }
    }
done:
    if (s_ok) sctx_free(&s);
    keel_free(seqbuf);
    return st;
}

// ---------------------------------------------------------------- public

keel_status keel_cap_score(const keel_cap_data *d, const keel_train_model *tm, keel_lora *lo, const int64_t *items,
                           int64_t n_items, keel_cap_outcome *out, keel_err *err) {
    return keel_cap_score_with(&ctx_scorer, d, tm, lo, items, n_items, out, err);
}
