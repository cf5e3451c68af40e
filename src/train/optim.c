// SPDX-License-Identifier: MIT
// optim.c — AdamW over one contiguous fp32 parameter buffer, global-norm
// gradient clipping and gradient-accumulation helpers (declared in train.h).
// The update follows PyTorch's torch.optim.AdamW single-tensor path operation
// by operation in fp32 (decay, lerp, addcmul, sqrt/div/add, addcdiv) so a
// golden from PyTorch matches to float rounding
// (https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html).
// Elementwise loops are split over OpenMP threads (bit-identical for any
// thread count); the norm reduction uses fixed chunks summed in order.
#include "train/train.h"

#include <math.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#ifdef _OPENMP
#define OPT_OMP(x) _Pragma(OPT_OMP_STR(omp x))
#define OPT_OMP_STR(x) #x
#else
#define OPT_OMP(x)
#endif

// Below this many elements a loop runs on the calling thread: a parallel
// region costs more than it saves.
#define OPT_PAR_MIN 32768
// Norm: elements per chunk, and chunks per round (one stack array of partials).
#define NORM_CHUNK 4096
#define NORM_ROUND 1024

keel_adamw_params keel_adamw_default_params(void) {
    keel_adamw_params p = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
    return p;
}

keel_status keel_adamw_init(keel_adamw *opt, size_t n, const keel_adamw_params *p, keel_err *err) {
    memset(opt, 0, sizeof *opt);
    if (n == 0) return KEEL_FAIL(err, KEEL_ERR_INVALID, "adamw: empty parameter buffer");
    if (!(p->beta1 >= 0 && p->beta1 < 1))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "adamw: beta1 %g not in [0, 1)", p->beta1);
    if (!(p->beta2 >= 0 && p->beta2 < 1))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "adamw: beta2 %g not in [0, 1)", p->beta2);
    if (!(p->eps >= 0)) return KEEL_FAIL(err, KEEL_ERR_INVALID, "adamw: eps %g < 0", p->eps);
    if (!(p->weight_decay >= 0))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "adamw: weight_decay %g < 0", p->weight_decay);
    opt->p = *p;
    opt->n = n;
    return KEEL_OK;
}

keel_status keel_adamw_no_decay(keel_adamw *opt, size_t begin, size_t end, keel_err *err) {
    if (begin > end || end > opt->n)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "adamw: no-decay range [%zu, %zu) outside [0, %zu)",
                         begin, end, opt->n);
    if (begin == end) return KEEL_OK;
    keel_range *r = keel_realloc(opt->no_decay, (opt->n_no_decay + 1) * sizeof *r);
    if (!r) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "adamw: out of memory for no-decay ranges");
    opt->no_decay = r;
    // Insert sorted by begin, then merge neighbours that overlap or touch.
    size_t k = opt->n_no_decay;
    while (k > 0 && r[k - 1].begin > begin) {
        r[k] = r[k - 1];
        k--;
    }
    r[k] = (keel_range){begin, end};
    opt->n_no_decay++;
    size_t w = 0;
    for (size_t i = 1; i < opt->n_no_decay; i++) {
        if (r[i].begin <= r[w].end) {
            if (r[i].end > r[w].end) r[w].end = r[i].end;
        } else {
            r[++w] = r[i];
        }
    }
    opt->n_no_decay = w + 1;
    return KEEL_OK;
}

keel_status keel_adamw_alloc_state(keel_adamw *opt, keel_err *err) {
    if (opt->m && opt->v) return KEEL_OK;
    if (opt->n > SIZE_MAX / sizeof(float))
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "adamw: %zu parameters overflow", opt->n);
    size_t bytes = opt->n * sizeof(float);
    float *m = keel_malloc_aligned(bytes);
    float *v = m ? keel_malloc_aligned(bytes) : NULL;
    if (!m || !v) {
        keel_free_aligned(m);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "adamw: out of memory for moments (2 x %zu bytes)",
                         bytes);
    }
    memset(m, 0, bytes);
    memset(v, 0, bytes);
    keel_free_aligned(opt->m);
    keel_free_aligned(opt->v);
    opt->m = m;
    opt->v = v;
    return KEEL_OK;
}

void keel_adamw_free(keel_adamw *opt) {
    if (!opt) return;
    keel_free_aligned(opt->m);
    keel_free_aligned(opt->v);
    free(opt->no_decay);
    memset(opt, 0, sizeof *opt);
}

// Scalars of one step, rounded to fp32 once, as PyTorch's CPU kernels see them.
typedef struct adam_coef {
    float decay;  // 1 - lr*wd
    float b1c;    // 1 - beta1 (lerp weight)
    float b2;     // beta2
    float b2c;    // 1 - beta2
    float bc2s;   // sqrt(1 - beta2^t)
    float eps;
    float nstep;  // -lr / (1 - beta1^t)
} adam_coef;

// The Adam update of elements [0, n) of p/g/m/v; the decay multiply first if
// `decay`. Scalar and SSE paths perform the same IEEE operations in the same
// order (no FMA: -std=c11 keeps contraction off), so an element's result
// does not depend on which path or thread handled it.
static void adam_block(float *restrict p, const float *restrict g, float *restrict m,
                       float *restrict v, size_t n, const adam_coef *c, bool decay) {
    size_t i = 0;
#if defined(__SSE2__)
    const __m128 vdec = _mm_set1_ps(c->decay), vb1c = _mm_set1_ps(c->b1c),
                 vb2 = _mm_set1_ps(c->b2), vb2c = _mm_set1_ps(c->b2c),
                 vbc2s = _mm_set1_ps(c->bc2s), veps = _mm_set1_ps(c->eps),
                 vns = _mm_set1_ps(c->nstep);
    for (; i + 4 <= n; i += 4) {
        __m128 pi = _mm_loadu_ps(p + i), gi = _mm_loadu_ps(g + i);
        __m128 mi = _mm_loadu_ps(m + i), vi = _mm_loadu_ps(v + i);
        if (decay) pi = _mm_mul_ps(pi, vdec);
        mi = _mm_add_ps(mi, _mm_mul_ps(vb1c, _mm_sub_ps(gi, mi)));
        vi = _mm_add_ps(_mm_mul_ps(vi, vb2), _mm_mul_ps(_mm_mul_ps(vb2c, gi), gi));
        __m128 den = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vi), vbc2s), veps);
        pi = _mm_add_ps(pi, _mm_div_ps(_mm_mul_ps(vns, mi), den));
        _mm_storeu_ps(m + i, mi);
        _mm_storeu_ps(v + i, vi);
        _mm_storeu_ps(p + i, pi);
    }
#endif
    for (; i < n; i++) {
        float pi = p[i], gi = g[i], mi = m[i], vi = v[i];
        if (decay) pi = pi * c->decay;
        mi = mi + c->b1c * (gi - mi);
        vi = vi * c->b2 + c->b2c * gi * gi;
        float den = sqrtf(vi) / c->bc2s + c->eps;
        p[i] = pi + (c->nstep * mi) / den;
        m[i] = mi;
        v[i] = vi;
    }
}

// Run adam_block over [b, e), split over threads in 16-float-aligned pieces.
static void adam_range(keel_adamw *opt, float *p, const float *g, size_t b, size_t e,
                       const adam_coef *c, bool decay) {
    size_t n = e - b;
    if (n < OPT_PAR_MIN) {
        adam_block(p + b, g + b, opt->m + b, opt->v + b, n, c, decay);
        return;
    }
    const size_t blk = 16384;
    long nb = (long)((n + blk - 1) / blk);
    OPT_OMP(parallel for schedule(static))
    for (long k = 0; k < nb; k++) {
        size_t s = b + (size_t)k * blk, t = s + blk < e ? s + blk : e;
        adam_block(p + s, g + s, opt->m + s, opt->v + s, t - s, c, decay);
    }
}

keel_status keel_adamw_step(keel_adamw *opt, float *param, const float *grad, double lr,
                            keel_err *err) {
    if (!(lr >= 0) || !isfinite(lr))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "adamw: learning rate %g is not a finite value >= 0", lr);
    keel_status st = keel_adamw_alloc_state(opt, err);
    if (st != KEEL_OK) return st;
    opt->t++;
    const keel_adamw_params *hp = &opt->p;
    double t = (double)opt->t;
    double bc1 = 1.0 - pow(hp->beta1, t);
    double bc2 = 1.0 - pow(hp->beta2, t);
    adam_coef c = {
        .decay = (float)(1.0 - lr * hp->weight_decay),
        .b1c = (float)(1.0 - hp->beta1),
        .b2 = (float)hp->beta2,
        .b2c = (float)(1.0 - hp->beta2),
        .bc2s = (float)sqrt(bc2),
        .eps = (float)hp->eps,
        .nstep = (float)(-(lr / bc1)),
    };
    // PyTorch skips the decay multiply entirely when weight_decay is 0.
    bool wd = hp->weight_decay != 0;
    size_t pos = 0;
    for (size_t k = 0; k < opt->n_no_decay; k++) {
        const keel_range *r = &opt->no_decay[k];
        if (r->begin > pos) adam_range(opt, param, grad, pos, r->begin, &c, wd);
        adam_range(opt, param, grad, r->begin, r->end, &c, false);
        pos = r->end;
    }
    if (pos < opt->n) adam_range(opt, param, grad, pos, opt->n, &c, wd);
    return KEEL_OK;
}

// ---- gradients --------------------------------------------------------------

// Sum of squares of x (n <= NORM_CHUNK) in double: eight lanes with a fixed
// assignment of elements to lanes, then the lanes in order.
static double sumsq_chunk(const float *x, size_t n) {
    double acc[8] = {0};
    size_t i = 0;
#if defined(__SSE2__)
    // Lanes (0,1) (2,3) (4,5) (6,7) of acc as four double pairs: the same
    // element-to-lane assignment, so the same bits as the scalar loop.
    __m128d a0 = _mm_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    for (; i + 8 <= n; i += 8) {
        __m128 lo = _mm_loadu_ps(x + i), hi = _mm_loadu_ps(x + i + 4);
        __m128d d0 = _mm_cvtps_pd(lo), d1 = _mm_cvtps_pd(_mm_movehl_ps(lo, lo));
        __m128d d2 = _mm_cvtps_pd(hi), d3 = _mm_cvtps_pd(_mm_movehl_ps(hi, hi));
        a0 = _mm_add_pd(a0, _mm_mul_pd(d0, d0));
        a1 = _mm_add_pd(a1, _mm_mul_pd(d1, d1));
        a2 = _mm_add_pd(a2, _mm_mul_pd(d2, d2));
        a3 = _mm_add_pd(a3, _mm_mul_pd(d3, d3));
    }
    _mm_storeu_pd(acc + 0, a0);
    _mm_storeu_pd(acc + 2, a1);
    _mm_storeu_pd(acc + 4, a2);
    _mm_storeu_pd(acc + 6, a3);
#endif
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)x[i + j] * (double)x[i + j];
    for (int j = 0; i < n; i++, j++) acc[j] += (double)x[i] * (double)x[i];
    double s = 0;
    for (int j = 0; j < 8; j++) s += acc[j];
    return s;
}

double keel_grad_norm(const float *g, size_t n) {
    double total = 0;
    size_t n_chunks = (n + NORM_CHUNK - 1) / NORM_CHUNK;
    double part[NORM_ROUND];
    for (size_t c0 = 0; c0 < n_chunks; c0 += NORM_ROUND) {
        long nc = (long)(n_chunks - c0 < NORM_ROUND ? n_chunks - c0 : NORM_ROUND);
        OPT_OMP(parallel for schedule(static) if (nc > 8))
        for (long k = 0; k < nc; k++) {
            size_t s = (c0 + (size_t)k) * NORM_CHUNK;
            size_t len = n - s < NORM_CHUNK ? n - s : NORM_CHUNK;
            part[k] = sumsq_chunk(g + s, len);
        }
        for (long k = 0; k < nc; k++) total += part[k];
    }
    return sqrt(total);
}

void keel_grad_scale(float *g, size_t n, float s) {
    OPT_OMP(parallel for schedule(static) if (n >= OPT_PAR_MIN))
    for (size_t i = 0; i < n; i++) g[i] *= s;
}

void keel_grad_accumulate(float *dst, const float *src, size_t n) {
    OPT_OMP(parallel for schedule(static) if (n >= OPT_PAR_MIN))
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

void keel_grad_zero(float *g, size_t n) {
    if (n) memset(g, 0, n * sizeof *g);
}

double keel_grad_clip(float *g, size_t n, double max_norm) {
    double norm = keel_grad_norm(g, n);
    if (max_norm > 0 && isfinite(norm)) {
        // clip_grad_norm_: coef = max_norm / (norm + 1e-6), clamped to at most 1.
        double coef = max_norm / (norm + 1e-6);
        if (coef < 1.0) keel_grad_scale(g, n, (float)coef);
    }
    return norm;
}
