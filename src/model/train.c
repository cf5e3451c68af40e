// SPDX-License-Identifier: MIT
// train.c — the Llama model in training mode (train.h): trainable parameters
// copied to one fp32 buffer in HF order, the activation arena for (B, T), the
// training forward (same graph as forward.c, no KV cache, every activation
// the backward needs kept) and the backward, layer by layer in reverse with
// the kernels of ops/grad.h. Checked op by op against finite differences
// (tests/unit/test_grad.c) and as a whole against PyTorch autograd
// (tests/unit/test_model_grad.c, tools/golden_grads.py).
#include "model/train.h"

#include <stdio.h>

// ---- parameters -------------------------------------------------------------------------

// One tensor of the model in HF order, before we know whether it trains.
typedef struct tdesc {
    char name[96];
    int64_t rows, cols;
    const keel_wmat *mat;  // matrices
    const float *vec;      // norm vectors
    keel_tlinear *lin;     // where to bind it
    keel_tvec *tv;
} tdesc;

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

int keel_train_params_find(const keel_train_params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->t[i].name, name)) return i;
    return -1;
}

static void bind_lin(keel_tlinear *l, const keel_wmat *w) {
    memset(l, 0, sizeof *l);
    l->base = *w;
    l->param = -1;
}

keel_status keel_train_model_init(keel_train_model *tm, const keel_model *m, keel_train_select_fn sel,
                                  void *ud, keel_err *err) {
    memset(tm, 0, sizeof *tm);
    const keel_model_desc *d = &m->desc;
    const int nl = d->n_layer;
    tm->m = m;
    tm->n_threads = m->n_threads > 0 ? m->n_threads : 1;
    tm->tied = m->output.data == m->tok_embd.data;
    tm->layers = keel_calloc((size_t)nl, sizeof *tm->layers);
    size_t nd = 1 + (size_t)nl * 9 + 2;
    tdesc *td = keel_calloc(nd, sizeof *td);
    if (!tm->layers || !td) {
        keel_free(td);
        keel_train_model_free(tm);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "training model: out of memory");
    }
    int n = 0;
#define ADD_MAT(nm, w, l)                                                         \
    do {                                                                          \
        snprintf(td[n].name, sizeof td[n].name, "%s", nm);                        \
        td[n].rows = (w)->n_out, td[n].cols = (w)->n_in, td[n].mat = (w);        \
        td[n].lin = (l);                                                          \
        bind_lin((l), (w));                                                       \
        n++;                                                                      \
    } while (0)
#define ADD_VEC(nm, v, t)                                                         \
    do {                                                                          \
        snprintf(td[n].name, sizeof td[n].name, "%s", nm);                        \
        td[n].rows = 1, td[n].cols = d->n_embd, td[n].vec = (v), td[n].tv = (t);  \
        (t)->w = (v), (t)->dw = NULL, (t)->param = -1;                            \
        n++;                                                                      \
    } while (0)
    ADD_MAT("model.embed_tokens.weight", &m->tok_embd, &tm->tok_embd);
    static const char *const proj[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                        "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                        "mlp.down_proj"};
    char nm[96];
    for (int l = 0; l < nl; l++) {
        const keel_layer *L = &m->layers[l];
        keel_tlayer *T = &tm->layers[l];
        const keel_wmat *src[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        keel_tlinear *dst[7] = {&T->wq, &T->wk, &T->wv, &T->wo, &T->w_gate, &T->w_up, &T->w_down};
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
        ADD_VEC(nm, L->attn_norm, &T->attn_norm);
        for (int i = 0; i < 4; i++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, proj[i]);
            ADD_MAT(nm, src[i], dst[i]);
        }
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD_VEC(nm, L->ffn_norm, &T->ffn_norm);
        for (int i = 4; i < 7; i++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, proj[i]);
            ADD_MAT(nm, src[i], dst[i]);
        }
    }
    ADD_VEC("model.norm.weight", m->output_norm, &tm->output_norm);
    if (!tm->tied) ADD_MAT("lm_head.weight", &m->output, &tm->output);
    else bind_lin(&tm->output, &m->output);
#undef ADD_MAT
#undef ADD_VEC

    // Which train, and the offsets of their slices.
    bool *on = keel_calloc((size_t)n, sizeof *on);
    tm->p.t = keel_calloc((size_t)n, sizeof *tm->p.t);
    if (!on || !tm->p.t) {
        keel_free(on);
        keel_free(td);
        keel_train_model_free(tm);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "training model: out of memory");
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        on[i] = sel ? sel(td[i].name, ud) : true;
        if (!on[i]) continue;
        keel_tparam *p = &tm->p.t[tm->p.n];
        snprintf(p->name, sizeof p->name, "%s", td[i].name);
        p->rows = td[i].rows, p->cols = td[i].cols, p->off = off;
        off += round16((size_t)(p->rows * p->cols));
        tm->p.n++;
    }
    tm->p.n_floats = off;
    if (off) {
        tm->p.w = keel_malloc_aligned(off * sizeof(float));
        tm->p.g = keel_malloc_aligned(off * sizeof(float));
        if (!tm->p.w || !tm->p.g) {
            keel_free(on);
            keel_free(td);
            keel_train_model_free(tm);
            return KEEL_FAIL(err, KEEL_ERR_NOMEM, "training parameters: out of memory (%.1f MiB)",
                             2.0 * (double)off * sizeof(float) / 1048576.0);
        }
        memset(tm->p.w, 0, off * sizeof(float));
        memset(tm->p.g, 0, off * sizeof(float));
    }
    // Copy (dequantize) the trainable tensors and point their views at the copies.
    for (int i = 0, k = 0; i < n; i++) {
        if (!on[i]) continue;
        keel_tparam *p = &tm->p.t[k];
        float *w = tm->p.w + p->off, *g = tm->p.g + p->off;
        if (td[i].mat) {
            const keel_wmat *src = td[i].mat;
            for (int64_t r = 0; r < src->n_out; r++)
                keel_dequant_row(src->type, src->data + (size_t)r * src->row_bytes, w + r * src->n_in, src->n_in);
            keel_tlinear *l = td[i].lin;
            l->w = w, l->dw = g, l->param = k;
            l->base.type = KEEL_DTYPE_F32;
            l->base.row_bytes = (size_t)src->n_in * sizeof(float);
            l->base.data = (const uint8_t *)w;
        } else {
            memcpy(w, td[i].vec, (size_t)p->cols * sizeof(float));
            td[i].tv->w = w, td[i].tv->dw = g, td[i].tv->param = k;
        }
        k++;
    }
    if (tm->tied) { // the head is the embedding: same values, same gradient
        tm->output = tm->tok_embd;
    }
    keel_free(on);
    keel_free(td);
    return KEEL_OK;
}

void keel_train_model_free(keel_train_model *tm) {
    if (!tm) return;
    keel_free(tm->layers);
    keel_free(tm->p.t);
    keel_free_aligned(tm->p.w);
    keel_free_aligned(tm->p.g);
    memset(tm, 0, sizeof *tm);
}

void keel_train_zero_grad(keel_train_model *tm) {
    if (tm->p.g) memset(tm->p.g, 0, tm->p.n_floats * sizeof(float));
}

// Point a linear / vector view at its slice of the (new) buffers.
static void rebind_lin(keel_tlinear *l, const keel_train_params *p) {
    if (l->param < 0) return;
    float *w = p->w + p->t[l->param].off;
    l->w = w, l->dw = p->g + p->t[l->param].off;
    l->base.data = (const uint8_t *)w;
}
static void rebind_vec(keel_tvec *v, const keel_train_params *p) {
    if (v->param < 0) return;
    v->w = p->w + p->t[v->param].off, v->dw = p->g + p->t[v->param].off;
}

keel_status keel_train_params_append(keel_train_model *tm, const keel_tparam *add, int n, keel_err *err) {
    keel_train_params *p = &tm->p;
    if (n <= 0) return KEEL_OK;
    size_t extra = 0;
    for (int i = 0; i < n; i++) extra += round16((size_t)(add[i].rows * add[i].cols));
    size_t nf = p->n_floats + extra;
    keel_tparam *t = keel_malloc((size_t)(p->n + n) * sizeof *t);
    float *w = keel_malloc_aligned(nf * sizeof(float)), *g = keel_malloc_aligned(nf * sizeof(float));
    if (!t || !w || !g) {
        keel_free(t);
        keel_free_aligned(w);
        keel_free_aligned(g);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "training parameters: out of memory (%.1f MiB)",
                         2.0 * (double)nf * sizeof(float) / 1048576.0);
    }
    if (p->n) memcpy(t, p->t, (size_t)p->n * sizeof *t);
    if (p->n_floats) {
        memcpy(w, p->w, p->n_floats * sizeof(float));
        memcpy(g, p->g, p->n_floats * sizeof(float));
    }
    memset(w + p->n_floats, 0, extra * sizeof(float));
    memset(g + p->n_floats, 0, extra * sizeof(float));
    size_t off = p->n_floats;
    for (int i = 0; i < n; i++) {
        t[p->n + i] = add[i];
        t[p->n + i].off = off;
        off += round16((size_t)(add[i].rows * add[i].cols));
    }
    keel_free(p->t);
    keel_free_aligned(p->w);
    keel_free_aligned(p->g);
    p->t = t, p->w = w, p->g = g, p->n += n, p->n_floats = nf;
    rebind_lin(&tm->tok_embd, p);
    if (tm->tied) tm->output = tm->tok_embd;
    else rebind_lin(&tm->output, p);
    rebind_vec(&tm->output_norm, p);
    for (int l = 0; l < tm->m->desc.n_layer; l++) {
        keel_tlayer *T = &tm->layers[l];
        keel_tlinear *lin[7] = {&T->wq, &T->wk, &T->wv, &T->wo, &T->w_gate, &T->w_up, &T->w_down};
        for (int i = 0; i < 7; i++) rebind_lin(lin[i], p);
        rebind_vec(&T->attn_norm, p);
        rebind_vec(&T->ffn_norm, p);
    }
    return KEEL_OK;
}

// ---- activation arena ---------------------------------------------------------------------

// Carve n elements of size sz from the arena at *off (64-byte steps); with
// base NULL only counts.
static void *carve(char *base, size_t *off, size_t n, size_t sz) {
    void *p = base ? base + *off : NULL;
    *off += (n * sz + 63) / 64 * 64;
    return p;
}

// Lay out (base NULL: measure) every buffer of a; returns the bytes used.
static size_t layout(keel_train_acts *a, const keel_train_model *tm, char *base) {
    const keel_model_desc *d = &tm->m->desc;
    size_t B = (size_t)a->B, T = (size_t)a->T, N = B * T, C = (size_t)d->n_embd;
    size_t hd = (size_t)tm->m->head_dim, Q = (size_t)d->n_head * hd, K = (size_t)d->n_head_kv * hd;
    size_t F = (size_t)d->n_ff, V = (size_t)d->n_vocab, f = sizeof(float);
    size_t off = 0;
    for (int l = 0; l < d->n_layer; l++) {
        keel_tacts_layer *L = base ? &a->L[l] : &(keel_tacts_layer){0};
        L->x = carve(base, &off, N * C, f);
        L->xn1 = carve(base, &off, N * C, f);
        L->r1 = carve(base, &off, N, f);
        L->q = carve(base, &off, N * Q, f);
        L->k = carve(base, &off, N * K, f);
        L->v = carve(base, &off, N * K, f);
        L->P = carve(base, &off, B * (size_t)d->n_head * T * T, f);
        L->att = carve(base, &off, N * Q, f);
        L->xm = carve(base, &off, N * C, f);
        L->xn2 = carve(base, &off, N * C, f);
        L->r2 = carve(base, &off, N, f);
        L->g = carve(base, &off, N * F, f);
        L->u = carve(base, &off, N * F, f);
        L->h = carve(base, &off, N * F, f);
    }
    a->xf = carve(base, &off, N * C, f);
    a->xnf = carve(base, &off, N * C, f);
    a->rf = carve(base, &off, N, f);
    a->logits = carve(base, &off, N * V, f);
    a->lse = carve(base, &off, N, f);
    a->cs = carve(base, &off, T * (size_t)d->n_rot, f);
    a->tokens = carve(base, &off, N, sizeof(int32_t));
    a->targets = carve(base, &off, N, sizeof(int32_t));
    a->mask = carve(base, &off, N, 1);
    a->dres = carve(base, &off, N * C, f);
    a->dxn = carve(base, &off, N * C, f);
    a->dq = carve(base, &off, N * Q, f);
    a->datt = carve(base, &off, N * Q, f);
    a->dk = carve(base, &off, N * K, f);
    a->dv = carve(base, &off, N * K, f);
    a->dg = carve(base, &off, N * F, f);
    a->du = carve(base, &off, N * F, f);
    a->dh = carve(base, &off, N * F, f);
    return off;
}

keel_status keel_train_acts_init(keel_train_acts *a, const keel_train_model *tm, int32_t B, int32_t T,
                                 keel_err *err) {
    memset(a, 0, sizeof *a);
    const keel_model_desc *d = &tm->m->desc;
    if (B < 1 || T < 1 || (int64_t)B * T > (1 << 24))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "training batch of %d x %d tokens", (int)B, (int)T);
    // Rough size in double first, so a huge (B, T) fails cleanly instead of overflowing size_t.
    double est = (double)B * T * ((double)d->n_layer * (6.0 * d->n_embd + 4.0 * d->n_head * tm->m->head_dim +
                                                       3.0 * d->n_ff + (double)d->n_head * T) + d->n_vocab);
    if (est * sizeof(float) > 0x1p46)
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "training activations for %d x %d tokens would take %.0f GiB",
                         (int)B, (int)T, est * sizeof(float) / 0x1p30);
    a->B = B, a->T = T;
    size_t bytes = layout(a, tm, NULL);
    a->L = keel_calloc((size_t)d->n_layer, sizeof *a->L);
    a->arena = keel_malloc_aligned(bytes);
    if (!a->L || !a->arena) {
        keel_train_acts_free(a);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "training activations: out of memory (%d x %d tokens, %.1f MiB)",
                         (int)B, (int)T, (double)bytes / 1048576.0);
    }
    a->arena_bytes = bytes;
    layout(a, tm, a->arena);
    a->seg0 = keel_malloc((size_t)B * (size_t)T * sizeof *a->seg0); // packed rows only
    if (!a->seg0) {
        keel_train_acts_free(a);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "training activations: out of memory (%d x %d tokens)", (int)B, (int)T);
    }
    int64_t hd = tm->m->head_dim, max_in = d->n_embd;
    if (d->n_head * hd > max_in) max_in = d->n_head * hd;
    if (d->n_ff > max_in) max_in = d->n_ff;
    // shared: x packed once for keel_matmul (the linear forwards, grad.h)
    size_t per = keel_grad_scratch_floats(max_in, T), mm = keel_matmul_scratch_floats(max_in);
    keel_status st = keel_ops_scratch_init(&a->ops, tm->n_threads, per > mm ? per : mm,
                                           keel_matmul_shared_floats((int64_t)B * T, max_in), err);
    if (st) {
        keel_train_acts_free(a);
        return st;
    }
    a->ops.prec = KEEL_PREC_FP32;
    keel_rope_table(a->cs, 0, T, d->n_rot, d->rope_theta);
    return KEEL_OK;
}

void keel_train_acts_free(keel_train_acts *a) {
    if (!a) return;
    keel_free(a->L);
    keel_free_aligned(a->arena);
    keel_free(a->seg0);
    keel_ops_scratch_free(&a->ops);
    memset(a, 0, sizeof *a);
}

// ---- linear layer (the LoRA hook) ---------------------------------------------------------------

void keel_tlinear_fwd(const keel_tlinear *l, float *y, const float *x, int64_t N, const keel_ops_scratch *s) {
    // trainable weights too: base is an F32 view of params.w, and fwd_q's
    // matmul path (x packed once) beats the general GEMM here
    keel_op_linear_fwd_q(y, x, &l->base, N, s);
    if (l->adapter) l->adapter->fwd(l->adapter, y, x, N, s); // y += s * (x A^T) B^T (adapters/lora.c)
}

void keel_tlinear_bwd(const keel_tlinear *l, float *dx, const float *dy, const float *x, int64_t N,
                      bool dx_acc, const keel_ops_scratch *s) {
    if (l->w) keel_op_linear_bwd_f32(dx, l->dw, dy, x, l->w, N, l->base.n_in, l->base.n_out, dx_acc, s->n_threads);
    else if (dx) keel_op_linear_bwd_dx_q(dx, dy, &l->base, N, dx_acc, s);
    // adapter: dA, dB into params.g; dx += its branch (after the base wrote or added dx)
    if (l->adapter) l->adapter->bwd(l->adapter, dx, dy, x, N, s);
}

// ---- row-parallel elementwise steps --------------------------------------------------------------
// The per-row / per-element ops of grad.h run serially; here their rows are
// split over the team in contiguous chunks, four per thread, handed out
// dynamically (a thread that loses its core does not stall the team). Every element is computed by the
// same code whatever the split, so results do not depend on the thread count.
// (Serial they were ~10% of a 1-thread SmolLM2 step, twice that share with 2.)

// Rows [r0, r1) of chunk c of nc over N rows.
static void chunk(int64_t N, int c, int nc, int64_t *r0, int64_t *r1) {
    *r0 = N * c / nc, *r1 = N * (c + 1) / nc;
}

static int team(const keel_ops_scratch *s, int64_t work) {
    return work < 65536 || s->n_threads < 1 ? 1 : s->n_threads;
}

static void par_rmsnorm_fwd(float *y, float *r, const float *x, const float *w, int64_t N, int64_t C, float eps,
                            const keel_ops_scratch *s) {
    int nt = team(s, N * C), nc = nt * 4;
    (void)nt;
KEEL_OMP(parallel for num_threads(nt) schedule(dynamic, 1))
    for (int c = 0; c < nc; c++) {
        int64_t r0, r1;
        chunk(N, c, nc, &r0, &r1);
        keel_op_rmsnorm_train_fwd(y + r0 * C, r + r0, x + r0 * C, w, r1 - r0, C, eps);
    }
}

// dx rows in parallel; dw (when trainable) serially in row order, as the
// serial kernel adds it.
static void par_rmsnorm_bwd_acc(float *dx, float *dw, const float *dy, const float *x, const float *w,
                                const float *r, int64_t N, int64_t C, const keel_ops_scratch *s) {
    int nt = team(s, N * C), nc = nt * 4;
    (void)nt;
KEEL_OMP(parallel for num_threads(nt) schedule(dynamic, 1))
    for (int c = 0; c < nc; c++) {
        int64_t r0, r1;
        chunk(N, c, nc, &r0, &r1);
        keel_op_rmsnorm_bwd_acc(dx + r0 * C, NULL, dy + r0 * C, x + r0 * C, w, r + r0, r1 - r0, C);
    }
    if (dw)
        for (int64_t n = 0; n < N; n++) {
            const float *xr = x + n * C, *gr = dy + n * C;
            float rn = r[n];
            for (int64_t i = 0; i < C; i++) dw[i] += gr[i] * xr[i] * rn;
        }
}

static void par_swiglu_fwd(float *y, const float *g, const float *u, int64_t n, const keel_ops_scratch *s) {
    int nt = team(s, n), nc = nt * 4;
    (void)nt;
KEEL_OMP(parallel for num_threads(nt) schedule(dynamic, 1))
    for (int c = 0; c < nc; c++) {
        int64_t i0, i1;
        chunk(n, c, nc, &i0, &i1);
        keel_op_swiglu_train_fwd(y + i0, g + i0, u + i0, i1 - i0);
    }
}

static void par_swiglu_bwd(float *dg, float *du, const float *dy, const float *g, const float *u, int64_t n,
                           const keel_ops_scratch *s) {
    int nt = team(s, n), nc = nt * 4;
    (void)nt;
KEEL_OMP(parallel for num_threads(nt) schedule(dynamic, 1))
    for (int c = 0; c < nc; c++) {
        int64_t i0, i1;
        chunk(n, c, nc, &i0, &i1);
        keel_op_swiglu_bwd(dg + i0, du + i0, dy + i0, g + i0, u + i0, i1 - i0);
    }
}

// y += x over n floats
static void par_add(float *y, const float *x, int64_t n, const keel_ops_scratch *s) {
    int nt = team(s, n), nc = nt * 4;
    (void)nt;
KEEL_OMP(parallel for num_threads(nt) schedule(dynamic, 1))
    for (int c = 0; c < nc; c++) {
        int64_t i0, i1;
        chunk(n, c, nc, &i0, &i1);
        for (int64_t i = i0; i < i1; i++) y[i] += x[i];
    }
}

// ---- forward -------------------------------------------------------------------------------------

keel_status keel_train_forward(const keel_train_model *tm, keel_train_acts *a, const int32_t *tokens,
                               const int32_t *targets, const uint8_t *mask, float *loss, keel_err *err) {
    return keel_train_forward_seg(tm, a, tokens, targets, mask, NULL, loss, err);
}

keel_status keel_train_forward_seg(const keel_train_model *tm, keel_train_acts *a, const int32_t *tokens,
                                   const int32_t *targets, const uint8_t *mask, const int32_t *seg, float *loss,
                                   keel_err *err) {
    const keel_model *m = tm->m;
    const keel_model_desc *d = &m->desc;
    const int64_t B = a->B, T = a->T, N = B * T, C = d->n_embd, V = d->n_vocab;
    const int hd = m->head_dim, NH = d->n_head, NKV = d->n_head_kv;
    const int64_t F = d->n_ff;
    const keel_ops_scratch *s = &a->ops;
    for (int64_t n = 0; n < N; n++) {
        if (tokens[n] < 0 || tokens[n] >= V)
            return KEEL_FAIL(err, KEEL_ERR_INVALID, "training batch: token id %d at row %d, position %d is outside the vocabulary (%d)",
                             (int)tokens[n], (int)(n / T), (int)(n % T), (int)V);
        if ((!mask || mask[n]) && (targets[n] < 0 || targets[n] >= V))
            return KEEL_FAIL(err, KEEL_ERR_INVALID, "training batch: target id %d at row %d, position %d is outside the vocabulary (%d)",
                             (int)targets[n], (int)(n / T), (int)(n % T), (int)V);
    }
    if (seg)
        for (int64_t n = 0; n < N; n++) {
            int64_t t = n % T;
            bool ok = seg[n] >= 0 && seg[n] <= t && (t == 0 || seg[n] == seg[n - 1] || seg[n] == t);
            if (!ok)
                return KEEL_FAIL(err, KEEL_ERR_INVALID, "training batch: segment start %d at row %d, position %d is not "
                                 "a valid segment start (0 <= start <= position, segments contiguous)",
                                 (int)seg[n], (int)(n / T), (int)t);
        }
    a->packed = seg != NULL;
    if (seg) memcpy(a->seg0, seg, (size_t)N * sizeof(int32_t));
    const int32_t *sg = a->packed ? a->seg0 : NULL;
    memcpy(a->tokens, tokens, (size_t)N * sizeof(int32_t));
    memcpy(a->targets, targets, (size_t)N * sizeof(int32_t));
    if (mask) memcpy(a->mask, mask, (size_t)N);
    else memset(a->mask, 1, (size_t)N);

    keel_op_embed_fwd(a->L[0].x, &tm->tok_embd.base, tokens, N);
    for (int l = 0; l < d->n_layer; l++) {
        const keel_tlayer *W = &tm->layers[l];
        keel_tacts_layer *A = &a->L[l];
        float *xout = l + 1 < d->n_layer ? a->L[l + 1].x : a->xf;

        par_rmsnorm_fwd(A->xn1, A->r1, A->x, W->attn_norm.w, N, C, d->norm_eps, s);
        keel_tlinear_fwd(&W->wq, A->q, A->xn1, N, s);
        keel_tlinear_fwd(&W->wk, A->k, A->xn1, N, s);
        keel_tlinear_fwd(&W->wv, A->v, A->xn1, N, s);
        keel_op_rope_train_seg(A->q, a->cs, sg, B, T, NH, hd, d->n_rot, m->rope, false);
        keel_op_rope_train_seg(A->k, a->cs, sg, B, T, NKV, hd, d->n_rot, m->rope, false);
        keel_op_attention_train_fwd_seg(A->att, A->P, A->q, A->k, A->v, sg, B, T, NH, NKV, hd, s->n_threads);
        keel_tlinear_fwd(&W->wo, A->xm, A->att, N, s);
        par_add(A->xm, A->x, N * C, s);

        par_rmsnorm_fwd(A->xn2, A->r2, A->xm, W->ffn_norm.w, N, C, d->norm_eps, s);
        keel_tlinear_fwd(&W->w_gate, A->g, A->xn2, N, s);
        keel_tlinear_fwd(&W->w_up, A->u, A->xn2, N, s);
        par_swiglu_fwd(A->h, A->g, A->u, N * F, s);
        keel_tlinear_fwd(&W->w_down, xout, A->h, N, s);
        par_add(xout, A->xm, N * C, s);
    }
    par_rmsnorm_fwd(a->xnf, a->rf, a->xf, tm->output_norm.w, N, C, d->norm_eps, s);
    if (a->head_rows) {
        // only the positions asked for: gather their normed rows (into the
        // backward's dxn, unused here), one head matmul, no loss
        const int64_t n = a->n_head_rows;
        KEEL_ASSERT(n >= 0 && n <= N);
        for (int64_t k = 0; k < n; k++) {
            KEEL_ASSERT(a->head_rows[k] >= 0 && a->head_rows[k] < N);
            memcpy(a->dxn + k * C, a->xnf + (int64_t)a->head_rows[k] * C, (size_t)C * sizeof(float));
        }
        if (n > 0) keel_tlinear_fwd(&tm->output, a->logits, a->dxn, n, s);
        a->loss = 0;
        if (loss) *loss = 0;
        return KEEL_OK;
    }
    keel_tlinear_fwd(&tm->output, a->logits, a->xnf, N, s);
    a->loss = keel_op_xent_fwd(a->lse, a->logits, a->targets, a->mask, N, V, s->n_threads);
    if (loss) *loss = a->loss;
    return KEEL_OK;
}

// ---- backward ------------------------------------------------------------------------------------

void keel_train_backward(keel_train_model *tm, keel_train_acts *a) {
    KEEL_ASSERT(!a->head_rows); // a scoring forward has no loss to differentiate
    const keel_model *m = tm->m;
    const keel_model_desc *d = &m->desc;
    const int64_t B = a->B, T = a->T, N = B * T, C = d->n_embd, V = d->n_vocab;
    const int hd = m->head_dim, NH = d->n_head, NKV = d->n_head_kv;
    const int64_t F = d->n_ff;
    const keel_ops_scratch *s = &a->ops;
    const int32_t *sg = a->packed ? a->seg0 : NULL; // segments of the last forward

    // head: dlogits in place, then through the final norm into the residual grad
    keel_op_xent_bwd(a->logits, a->logits, a->lse, a->targets, a->mask, N, V, 1.0f, s->n_threads);
    keel_tlinear_bwd(&tm->output, a->dxn, a->logits, a->xnf, N, false, s);
    memset(a->dres, 0, (size_t)(N * C) * sizeof(float));
    par_rmsnorm_bwd_acc(a->dres, tm->output_norm.dw, a->dxn, a->xf, tm->output_norm.w, a->rf, N, C, s);

    for (int l = d->n_layer - 1; l >= 0; l--) {
        const keel_tlayer *W = &tm->layers[l];
        const keel_tacts_layer *A = &a->L[l];
        // feed-forward: xout = xm + down(swiglu(gate(xn2), up(xn2))); dres = d xout
        keel_tlinear_bwd(&W->w_down, a->dh, a->dres, A->h, N, false, s);
        par_swiglu_bwd(a->dg, a->du, a->dh, A->g, A->u, N * F, s);
        keel_tlinear_bwd(&W->w_gate, a->dxn, a->dg, A->xn2, N, false, s);
        keel_tlinear_bwd(&W->w_up, a->dxn, a->du, A->xn2, N, true, s);
        par_rmsnorm_bwd_acc(a->dres, W->ffn_norm.dw, a->dxn, A->xm, W->ffn_norm.w, A->r2, N, C, s);
        // attention: xm = x + o(attn(rope(q(xn1)), rope(k(xn1)), v(xn1))); dres = d xm
        keel_tlinear_bwd(&W->wo, a->datt, a->dres, A->att, N, false, s);
        keel_op_attention_bwd_seg(a->dq, a->dk, a->dv, a->datt, A->P, A->q, A->k, A->v, sg, B, T, NH, NKV, hd, s);
        keel_op_rope_train_seg(a->dq, a->cs, sg, B, T, NH, hd, d->n_rot, m->rope, true);
        keel_op_rope_train_seg(a->dk, a->cs, sg, B, T, NKV, hd, d->n_rot, m->rope, true);
        keel_tlinear_bwd(&W->wq, a->dxn, a->dq, A->xn1, N, false, s);
        keel_tlinear_bwd(&W->wk, a->dxn, a->dk, A->xn1, N, true, s);
        keel_tlinear_bwd(&W->wv, a->dxn, a->dv, A->xn1, N, true, s);
        par_rmsnorm_bwd_acc(a->dres, W->attn_norm.dw, a->dxn, A->x, W->attn_norm.w, A->r1, N, C, s);
    }
    if (tm->tok_embd.dw) keel_op_embed_bwd(tm->tok_embd.dw, a->dres, a->tokens, N, C);
}
