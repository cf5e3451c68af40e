// SPDX-License-Identifier: MIT
// test_grad.c — every training kernel of ops/grad.h against central finite
// differences of a double-precision reference forward written here.
// Method: a scalar L = sum(dy * y) with random dy; the fp32 kernel gives the
// analytic gradient; the FD gradient is (L(x+h) - L(x-h)) / 2h per input
// element, h = 1e-6, in double on the same float-rounded inputs. FD error:
// truncation h^2 |L'''| / 6 ~ 1e-13, rounding ~ 1e-16 |L| / h ~ 1e-9 — far
// below the fp32 kernel's own error, so the check measures the kernel.
// Tolerance: max |analytic - FD| <= TOL * max(|FD|) with TOL = 3e-5: fp32
// sums of n <= 160 terms are within gamma_n = n * 2^-24 ~ 1e-5 relative of
// their terms' magnitude (Higham, Accuracy and Stability, 3.1); measured
// errors are ~1e-7 and printed. Shapes are small and odd (C 37, hd 5, V 11),
// with GQA (n_head_kv < n_head), both RoPE styles with partial rotation, and
// masked cross-entropy; thread counts 1..4 where kernels split work.
#include "model/train.h"
#include "ops/grad.h"
#include "test.h"

#define FD_H 1e-6
#define TOL 3e-5

static keel_rng rng;
static double worst_fd; // worst relative error seen over all FD checks

static float rnd(void) { return 2.0f * keel_rng_uniform(&rng) - 1.0f; }
static void fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * rnd();
}
static double *to_d(const float *x, size_t n) {
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}
static double dot_d(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

// FD gradient of f(ctx) over the n doubles at x (perturbed in place, restored).
typedef double (*loss_fn)(void *ctx);
static void fd(double *x, size_t n, loss_fn f, void *ctx, double *g) {
    for (size_t i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + FD_H;
        double lp = f(ctx);
        x[i] = x0 - FD_H;
        double lm = f(ctx);
        x[i] = x0;
        g[i] = (lp - lm) / (2 * FD_H);
    }
}

// max |a - ref| / max |ref|, also recorded in worst_fd.
static double rel_max(const float *a, const double *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        num = d > num ? d : num;
        den = fabs(ref[i]) > den ? fabs(ref[i]) : den;
    }
    double r = num / (den > 0 ? den : 1.0);
    if (r > worst_fd) worst_fd = r;
    return r;
}

#define CHECK_GRAD(descr, a, ref, n)                                                   \
    do {                                                                               \
        double r_ = rel_max((a), (ref), (n));                                          \
        if (!(r_ <= TOL)) fprintf(stderr, "  %s: rel err %.3e\n", (descr), r_);        \
        CHECK(descr, r_ <= TOL);                                                       \
    } while (0)

// ---- RMSNorm ---------------------------------------------------------------------------------

typedef struct rms_ctx {
    int64_t N, C;
    double *x, *w, *dy;
    float eps;
} rms_ctx;

static double rms_loss(void *p) {
    rms_ctx *c = p;
    double L = 0;
    for (int64_t n = 0; n < c->N; n++) {
        const double *x = c->x + n * c->C;
        double ss = 0;
        for (int64_t i = 0; i < c->C; i++) ss += x[i] * x[i];
        double r = 1.0 / sqrt(ss / (double)c->C + c->eps);
        for (int64_t i = 0; i < c->C; i++) L += c->dy[n * c->C + i] * x[i] * r * c->w[i];
    }
    return L;
}

static void test_rmsnorm(void) {
    const int64_t N = 3, C = 37;
    float x[3 * 37], w[37], dy[3 * 37], y[3 * 37], r[3], dx[3 * 37], dw[37];
    fill(x, N * C, 2.0f);
    fill(w, C, 1.5f);
    fill(dy, N * C, 1.0f);
    rms_ctx c = {N, C, to_d(x, N * C), to_d(w, C), to_d(dy, N * C), 1e-5f};
    keel_op_rmsnorm_train_fwd(y, r, x, w, N, C, c.eps);
    double *yd = malloc(sizeof(double) * N * C);
    for (int64_t n = 0; n < N; n++) {
        double ss = 0;
        for (int64_t i = 0; i < C; i++) ss += c.x[n * C + i] * c.x[n * C + i];
        double rr = 1.0 / sqrt(ss / C + c.eps);
        for (int64_t i = 0; i < C; i++) yd[n * C + i] = c.x[n * C + i] * rr * c.w[i];
    }
    CHECK_GRAD("rmsnorm forward", y, yd, N * C);
    memset(dx, 0, sizeof dx);
    memset(dw, 0, sizeof dw);
    keel_op_rmsnorm_bwd_acc(dx, dw, dy, x, w, r, N, C);
    double gx[3 * 37], gw[37];
    fd(c.x, N * C, rms_loss, &c, gx);
    fd(c.w, C, rms_loss, &c, gw);
    CHECK_GRAD("rmsnorm dx", dx, gx, N * C);
    CHECK_GRAD("rmsnorm dw", dw, gw, C);
    // accumulation: a second call adds the same again; dw NULL (frozen) leaves dx the same
    float dx2[3 * 37];
    memcpy(dx2, dx, sizeof dx);
    keel_op_rmsnorm_bwd_acc(dx2, NULL, dy, x, w, r, N, C);
    bool twice = true;
    for (int64_t i = 0; i < N * C; i++) twice &= fabsf(dx2[i] - 2 * dx[i]) <= 1e-6f * (1 + fabsf(dx[i]));
    CHECK("rmsnorm dx accumulates", twice);
    free(yd);
    free(c.x), free(c.w), free(c.dy);
}

// ---- linear ---------------------------------------------------------------------------------

typedef struct lin_ctx {
    int64_t N, n_in, n_out;
    double *x, *W, *dy;
} lin_ctx;

static double lin_loss(void *p) {
    lin_ctx *c = p;
    double L = 0;
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t o = 0; o < c->n_out; o++)
            L += c->dy[n * c->n_out + o] * dot_d(c->x + n * c->n_in, c->W + o * c->n_in, (size_t)c->n_in);
    return L;
}

static void test_linear(int nt) {
    const int64_t N = 7, n_in = 19, n_out = 13;
    float x[7 * 19], W[13 * 19], dy[7 * 13], y[7 * 13], dx[7 * 19], dW[13 * 19];
    fill(x, N * n_in, 1.0f);
    fill(W, n_out * n_in, 0.5f);
    fill(dy, N * n_out, 1.0f);
    lin_ctx c = {N, n_in, n_out, to_d(x, N * n_in), to_d(W, n_out * n_in), to_d(dy, N * n_out)};
    keel_op_linear_fwd_f32(y, x, W, N, n_in, n_out, nt);
    double yd[7 * 13];
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < n_out; o++) yd[n * n_out + o] = dot_d(c.x + n * n_in, c.W + o * n_in, n_in);
    CHECK_GRAD("linear forward", y, yd, N * n_out);
    fill(dx, N * n_in, 9.0f); // overwritten (dx_acc false)
    memset(dW, 0, sizeof dW);
    keel_op_linear_bwd_f32(dx, dW, dy, x, W, N, n_in, n_out, false, nt);
    double gx[7 * 19], gW[13 * 19];
    fd(c.x, N * n_in, lin_loss, &c, gx);
    fd(c.W, n_out * n_in, lin_loss, &c, gW);
    CHECK_GRAD("linear dx", dx, gx, N * n_in);
    CHECK_GRAD("linear dW", dW, gW, n_out * n_in);
    keel_op_linear_bwd_f32(dx, NULL, dy, x, W, N, n_in, n_out, true, nt);
    double g2[7 * 19];
    for (int i = 0; i < N * n_in; i++) g2[i] = 2 * gx[i];
    CHECK_GRAD("linear dx_acc", dx, g2, N * n_in);
    free(c.x), free(c.W), free(c.dy);
}

// keel_gemm in all four transpose cases, big enough to split over threads.
static void test_gemm(int nt) {
    const int64_t M = 70, Nn = 61, K = 53;
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * Nn);
    float *C = malloc(sizeof(float) * M * Nn);
    double *R = malloc(sizeof(double) * M * Nn);
    fill(A, M * K, 1.0f);
    fill(B, K * Nn, 1.0f);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            // A is (M, K) when !ta else (K, M); B is (K, N) when !tb else (N, K).
            int64_t lda = ta ? M : K, ldb = tb ? K : Nn;
            fill(C, M * Nn, 1.0f);
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < Nn; j++) {
                    double s = 0.5 * C[i * Nn + j];
                    for (int64_t k = 0; k < K; k++)
                        s += (double)(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
                    R[i * Nn + j] = s;
                }
            keel_gemm(ta, tb, M, Nn, K, A, lda, B, ldb, 0.5f, C, Nn, nt);
            CHECK_GRAD("gemm", C, R, M * Nn);
        }
    free(A), free(B), free(C), free(R);
}

// Frozen weights in their stored type: fwd_q and the dx-only backward against
// the dequantized matrix in double.
static void make_rows(keel_dtype t, uint8_t *dst, int64_t rows, int64_t n_in, size_t *row_bytes) {
    int64_t nb = n_in / 32;
    size_t rb = 0;
    switch (t) {
    case KEEL_DTYPE_F32: rb = (size_t)n_in * 4; break;
    case KEEL_DTYPE_F16:
    case KEEL_DTYPE_BF16: rb = (size_t)n_in * 2; break;
    case KEEL_DTYPE_Q8_0: rb = (size_t)nb * 34; break;
    case KEEL_DTYPE_Q4_0: rb = (size_t)nb * 18; break;
    case KEEL_DTYPE_Q4_1: rb = (size_t)nb * 20; break;
    }
    *row_bytes = rb;
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *p = dst + (size_t)r * rb;
        if (t == KEEL_DTYPE_F32 || t == KEEL_DTYPE_F16 || t == KEEL_DTYPE_BF16) {
            for (int64_t i = 0; i < n_in; i++) {
                float v = rnd();
                if (t == KEEL_DTYPE_F32) memcpy(p + 4 * i, &v, 4);
                else {
                    uint16_t h = t == KEEL_DTYPE_F16 ? keel_fp32_to_fp16(v) : keel_fp32_to_bf16(v);
                    memcpy(p + 2 * i, &h, 2);
                }
            }
            continue;
        }
        for (int64_t b = 0; b < nb; b++) {
            size_t bb = rb / (size_t)nb;
            uint8_t *q = p + (size_t)b * bb;
            uint16_t d = keel_fp32_to_fp16(0.01f + 0.05f * keel_rng_uniform(&rng));
            uint16_t mm = keel_fp32_to_fp16(-0.3f * keel_rng_uniform(&rng));
            memcpy(q, &d, 2);
            size_t hdr = 2;
            if (t == KEEL_DTYPE_Q4_1) memcpy(q + 2, &mm, 2), hdr = 4;
            for (size_t i = hdr; i < bb; i++) q[i] = (uint8_t)(keel_rng_u64(&rng) & 0xff);
        }
    }
}

static void test_linear_frozen(keel_dtype t) {
    const int64_t N = 6, n_in = 96, n_out = 70; // 70 rows: one full panel of 64 and a partial one
    uint8_t *raw = malloc((size_t)n_out * n_in * 4);
    size_t rb;
    make_rows(t, raw, n_out, n_in, &rb);
    keel_wmat w;
    CHECK("wmat", keel_wmat_init(&w, t, n_in, n_out, raw));
    float *Wf = malloc(sizeof(float) * n_out * n_in);
    for (int64_t r = 0; r < n_out; r++) keel_dequant_row(t, raw + (size_t)r * rb, Wf + r * n_in, n_in);
    float x[6 * 96], dy[6 * 70], y[6 * 70], dx[6 * 96];
    fill(x, N * n_in, 1.0f);
    fill(dy, N * n_out, 1.0f);
    double yd[6 * 70], dxd[6 * 96];
    for (int64_t n = 0; n < N; n++) {
        for (int64_t o = 0; o < n_out; o++) {
            double s = 0;
            for (int64_t i = 0; i < n_in; i++) s += (double)x[n * n_in + i] * Wf[o * n_in + i];
            yd[n * n_out + o] = s;
        }
        for (int64_t i = 0; i < n_in; i++) {
            double s = 0;
            for (int64_t o = 0; o < n_out; o++) s += (double)dy[n * n_out + o] * Wf[o * n_in + i];
            dxd[n * n_in + i] = s;
        }
    }
    char msg[96];
    for (int nt = 1; nt <= 4; nt++) {
        keel_err err;
        keel_ops_scratch s;
        if (keel_ops_scratch_init(&s, nt, keel_grad_scratch_floats(n_in, 8), 0, &err)) {
            CHECK("scratch", 0);
            break;
        }
        keel_op_linear_fwd_q(y, x, &w, N, &s);
        snprintf(msg, sizeof msg, "frozen %s forward, %d threads", keel_dtype_name(t), nt);
        CHECK_GRAD(msg, y, yd, N * n_out);
        fill(dx, N * n_in, 5.0f);
        keel_op_linear_bwd_dx_q(dx, dy, &w, N, false, &s);
        snprintf(msg, sizeof msg, "frozen %s dx, %d threads", keel_dtype_name(t), nt);
        CHECK_GRAD(msg, dx, dxd, N * n_in);
        keel_op_linear_bwd_dx_q(dx, dy, &w, N, true, &s);
        double d2[6 * 96];
        for (int i = 0; i < N * n_in; i++) d2[i] = 2 * dxd[i];
        snprintf(msg, sizeof msg, "frozen %s dx_acc, %d threads", keel_dtype_name(t), nt);
        CHECK_GRAD(msg, dx, d2, N * n_in);
        keel_ops_scratch_free(&s);
    }
    free(raw), free(Wf);
}

// ---- embedding ------------------------------------------------------------------------------

static void test_embedding(void) {
    const int64_t V = 9, C = 7, N = 12;
    float E[9 * 7], x[12 * 7], dx[12 * 7], dE[9 * 7];
    int32_t tok[12] = {3, 0, 8, 3, 3, 5, 1, 8, 0, 2, 7, 3}; // repeats: 3 x4, 8 x2, 0 x2
    fill(E, V * C, 1.0f);
    fill(dx, N * C, 1.0f);
    keel_wmat w;
    keel_wmat_init(&w, KEEL_DTYPE_F32, C, V, E);
    keel_op_embed_fwd(x, &w, tok, N);
    bool same = true;
    for (int64_t n = 0; n < N; n++) same &= !memcmp(x + n * C, E + tok[n] * C, C * sizeof(float));
    CHECK("embedding forward = rows", same);
    memset(dE, 0, sizeof dE);
    keel_op_embed_bwd(dE, dx, tok, N, C);
    // L = sum dx * E[tok]: dL/dE[v] = sum over n with tok n = v of dx[n] (FD is exact here)
    double ref[9 * 7] = {0};
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) ref[tok[n] * C + c] += dx[n * C + c];
    CHECK_GRAD("embedding dE scatter-add", dE, ref, V * C);
    CHECK("embedding: unused rows stay 0", dE[4 * C] == 0.0f && dE[6 * C + 3] == 0.0f);
}

// ---- RoPE ------------------------------------------------------------------------------------

typedef struct rope_ctx {
    int64_t B, T;
    int nh, hd, n_rot;
    keel_rope_style st;
    const float *cs;
    double *x, *dy;
} rope_ctx;

static void rope_ref(double *y, const rope_ctx *c) {
    int half = c->n_rot / 2;
    size_t n = (size_t)(c->B * c->T * c->nh * c->hd);
    memcpy(y, c->x, n * sizeof(double));
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t t = 0; t < c->T; t++)
            for (int h = 0; h < c->nh; h++) {
                double *v = y + ((b * c->T + t) * c->nh + h) * c->hd;
                for (int i = 0; i < half; i++) {
                    double cc = c->cs[(t * half + i) * 2], ss = c->cs[(t * half + i) * 2 + 1];
                    int i0 = c->st == KEEL_ROPE_NORM ? 2 * i : i, i1 = c->st == KEEL_ROPE_NORM ? 2 * i + 1 : i + half;
                    double a = v[i0], bb = v[i1];
                    v[i0] = a * cc - bb * ss;
                    v[i1] = a * ss + bb * cc;
                }
            }
}

static double rope_loss(void *p) {
    rope_ctx *c = p;
    size_t n = (size_t)(c->B * c->T * c->nh * c->hd);
    double *y = malloc(n * sizeof(double));
    rope_ref(y, c);
    double L = dot_d(y, c->dy, n);
    free(y);
    return L;
}

static void test_rope(keel_rope_style st, int n_rot) {
    const int64_t B = 2, T = 5;
    const int nh = 3, hd = 8;
    const size_t n = (size_t)(B * T * nh * hd);
    float cs[5 * 8], x[240], dy[240], y[240], g[240];
    keel_rope_table(cs, 0, T, n_rot, 10000.0f);
    fill(x, n, 1.0f);
    fill(dy, n, 1.0f);
    rope_ctx c = {B, T, nh, hd, n_rot, st, cs, to_d(x, n), to_d(dy, n)};
    memcpy(y, x, sizeof x);
    keel_op_rope_train(y, cs, B, T, nh, hd, n_rot, st, false);
    double yd[240], gd[240];
    rope_ref(yd, &c);
    const char *nm = st == KEEL_ROPE_NORM ? "NORM" : "NEOX";
    char msg[64];
    snprintf(msg, sizeof msg, "rope %s n_rot %d forward", nm, n_rot);
    CHECK_GRAD(msg, y, yd, n);
    memcpy(g, dy, sizeof dy);
    keel_op_rope_train(g, cs, B, T, nh, hd, n_rot, st, true);
    fd(c.x, n, rope_loss, &c, gd);
    snprintf(msg, sizeof msg, "rope %s n_rot %d backward (inverse rotation)", nm, n_rot);
    CHECK_GRAD(msg, g, gd, n);
    // the inverse undoes the forward
    keel_op_rope_train(y, cs, B, T, nh, hd, n_rot, st, true);
    double xd[240];
    for (size_t i = 0; i < n; i++) xd[i] = x[i];
    snprintf(msg, sizeof msg, "rope %s inverse(forward(x)) = x", nm);
    CHECK_GRAD(msg, y, xd, n);
    free(c.x), free(c.dy);
}

// ---- attention ------------------------------------------------------------------------------

typedef struct att_ctx {
    int64_t B, T;
    int NH, NKV, hd;
    double *q, *k, *v, *dy;
} att_ctx;

static void att_ref(double *out, const att_ctx *c) {
    const int64_t Qd = (int64_t)c->NH * c->hd, Kd = (int64_t)c->NKV * c->hd;
    double *p = malloc(sizeof(double) * (size_t)c->T);
    for (int64_t b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++) {
            int g = h / (c->NH / c->NKV);
            for (int64_t i = 0; i < c->T; i++) {
                const double *qi = c->q + (b * c->T + i) * Qd + h * c->hd;
                double mx = -1e300, sum = 0;
                for (int64_t j = 0; j <= i; j++) {
                    p[j] = dot_d(qi, c->k + (b * c->T + j) * Kd + g * c->hd, (size_t)c->hd) / sqrt((double)c->hd);
                    mx = p[j] > mx ? p[j] : mx;
                }
                for (int64_t j = 0; j <= i; j++) sum += (p[j] = exp(p[j] - mx));
                double *o = out + (b * c->T + i) * Qd + h * c->hd;
                for (int d = 0; d < c->hd; d++) {
                    double s = 0;
                    for (int64_t j = 0; j <= i; j++) s += p[j] / sum * c->v[(b * c->T + j) * Kd + g * c->hd + d];
                    o[d] = s;
                }
            }
        }
    free(p);
}

static double att_loss(void *p) {
    att_ctx *c = p;
    size_t n = (size_t)(c->B * c->T * c->NH * c->hd);
    double *o = malloc(n * sizeof(double));
    att_ref(o, c);
    double L = dot_d(o, c->dy, n);
    free(o);
    return L;
}

static void test_attention(int NH, int NKV, int nt) {
    const int64_t B = 2, T = 6;
    const int hd = 5;
    const size_t nq = (size_t)(B * T * NH * hd), nk = (size_t)(B * T * NKV * hd);
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *dy = malloc(nq * 4);
    float *out = malloc(nq * 4), *P = malloc(sizeof(float) * (size_t)(B * NH * T * T));
    float *dq = malloc(nq * 4), *dk = malloc(nk * 4), *dv = malloc(nk * 4);
    fill(q, nq, 1.5f);
    fill(k, nk, 1.5f);
    fill(v, nk, 1.0f);
    fill(dy, nq, 1.0f);
    att_ctx c = {B, T, NH, NKV, hd, to_d(q, nq), to_d(k, nk), to_d(v, nk), to_d(dy, nq)};
    keel_op_attention_train_fwd(out, P, q, k, v, B, T, NH, NKV, hd, nt);
    double *od = malloc(nq * sizeof(double));
    att_ref(od, &c);
    char msg[96];
    snprintf(msg, sizeof msg, "attention %d/%d heads forward", NH, NKV);
    CHECK_GRAD(msg, out, od, nq);
    bool causal = true;
    for (int64_t r = 0; r < B * NH * T; r++)
        for (int64_t j = r % T + 1; j < T; j++) causal &= P[r * T + j] == 0.0f;
    CHECK("attention P causal zeros", causal);
    keel_err err;
    keel_ops_scratch s;
    keel_ops_scratch_init(&s, nt, keel_grad_scratch_floats(8, T), 0, &err);
    fill(dk, nk, 7.0f); // must be overwritten
    keel_op_attention_bwd(dq, dk, dv, dy, P, q, k, v, B, T, NH, NKV, hd, &s);
    double *gq = malloc(nq * 8), *gk = malloc(nk * 8), *gv = malloc(nk * 8);
    fd(c.q, nq, att_loss, &c, gq);
    fd(c.k, nk, att_loss, &c, gk);
    fd(c.v, nk, att_loss, &c, gv);
    snprintf(msg, sizeof msg, "attention %d/%d heads dq (%d threads)", NH, NKV, nt);
    CHECK_GRAD(msg, dq, gq, nq);
    snprintf(msg, sizeof msg, "attention %d/%d heads dk (%d threads)", NH, NKV, nt);
    CHECK_GRAD(msg, dk, gk, nk);
    snprintf(msg, sizeof msg, "attention %d/%d heads dv (%d threads)", NH, NKV, nt);
    CHECK_GRAD(msg, dv, gv, nk);
    keel_ops_scratch_free(&s);
    free(q), free(k), free(v), free(dy), free(out), free(P), free(dq), free(dk), free(dv);
    free(c.q), free(c.k), free(c.v), free(c.dy), free(od), free(gq), free(gk), free(gv);
}

// ---- SwiGLU ---------------------------------------------------------------------------------

typedef struct swi_ctx {
    int64_t n;
    double *g, *u, *dy;
} swi_ctx;

static double swi_loss(void *p) {
    swi_ctx *c = p;
    double L = 0;
    for (int64_t i = 0; i < c->n; i++) L += c->dy[i] * c->g[i] / (1 + exp(-c->g[i])) * c->u[i];
    return L;
}

static void test_swiglu(void) {
    const int64_t n = 23;
    float g[23], u[23], dy[23], y[23], dg[23], du[23];
    fill(g, n, 4.0f);
    fill(u, n, 2.0f);
    fill(dy, n, 1.0f);
    swi_ctx c = {n, to_d(g, n), to_d(u, n), to_d(dy, n)};
    keel_op_swiglu_train_fwd(y, g, u, n);
    double yd[23], gg[23], gu[23];
    for (int64_t i = 0; i < n; i++) yd[i] = c.g[i] / (1 + exp(-c.g[i])) * c.u[i];
    CHECK_GRAD("swiglu forward", y, yd, n);
    keel_op_swiglu_bwd(dg, du, dy, g, u, n);
    fd(c.g, n, swi_loss, &c, gg);
    fd(c.u, n, swi_loss, &c, gu);
    CHECK_GRAD("swiglu dgate", dg, gg, n);
    CHECK_GRAD("swiglu dup", du, gu, n);
    free(c.g), free(c.u), free(c.dy);
}

// ---- cross-entropy ----------------------------------------------------------------------------

typedef struct xent_ctx {
    int64_t N, V;
    double *l;
    const int32_t *tg;
    const uint8_t *mask;
    double dloss;
} xent_ctx;

static double xent_loss(void *p) {
    xent_ctx *c = p;
    double L = 0, cnt = 0;
    for (int64_t n = 0; n < c->N; n++) {
        if (c->mask && !c->mask[n]) continue;
        const double *l = c->l + n * c->V;
        double mx = -1e300, s = 0;
        for (int64_t j = 0; j < c->V; j++) mx = l[j] > mx ? l[j] : mx;
        for (int64_t j = 0; j < c->V; j++) s += exp(l[j] - mx);
        L += mx + log(s) - l[c->tg[n]];
        cnt++;
    }
    return cnt ? c->dloss * L / cnt : 0;
}

static void test_xent(bool use_mask) {
    const int64_t N = 6, V = 11;
    float l[66], lse[6], d[66];
    int32_t tg[6] = {3, 10, 0, 3, 7, 5};
    uint8_t mask[6] = {1, 0, 1, 1, 0, 1};
    fill(l, N * V, 4.0f);
    xent_ctx c = {N, V, to_d(l, N * V), tg, use_mask ? mask : NULL, 0.7};
    float loss = keel_op_xent_fwd(lse, l, tg, c.mask, N, V, 2);
    c.dloss = 1.0;
    double ref = xent_loss(&c);
    c.dloss = 0.7;
    CHECK_CLOSE(use_mask ? "xent masked loss" : "xent loss", loss, ref, 1e-6 * fabs(ref));
    memcpy(d, l, sizeof l);
    keel_op_xent_bwd(d, d, lse, tg, c.mask, N, V, 0.7f, 2); // in place
    double g[66];
    fd(c.l, N * V, xent_loss, &c, g);
    CHECK_GRAD(use_mask ? "xent masked dlogits (in place, dloss 0.7)" : "xent dlogits", d, g, N * V);
    if (use_mask) {
        bool z = true;
        for (int64_t j = 0; j < V; j++) z &= d[1 * V + j] == 0.0f && d[4 * V + j] == 0.0f;
        CHECK("xent masked rows have zero gradient", z);
        uint8_t none[6] = {0};
        CHECK("xent all masked: loss 0", keel_op_xent_fwd(lse, l, tg, none, N, V, 1) == 0.0f);
        keel_op_xent_bwd(d, l, lse, tg, none, N, V, 1.0f, 1);
        z = true;
        for (int64_t j = 0; j < N * V; j++) z &= d[j] == 0.0f;
        CHECK("xent all masked: zero gradient", z);
    }
    free(c.l);
}

int main(void) {
    keel_rng_seed(&rng, 20261129);
    test_rmsnorm();
    for (int nt = 1; nt <= 3; nt += 2) {
        test_linear(nt);
        test_gemm(nt);
    }
    keel_dtype types[] = {KEEL_DTYPE_F32, KEEL_DTYPE_F16, KEEL_DTYPE_BF16, KEEL_DTYPE_Q8_0, KEEL_DTYPE_Q4_0,
                          KEEL_DTYPE_Q4_1};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) test_linear_frozen(types[i]);
    test_embedding();
    test_rope(KEEL_ROPE_NORM, 8);
    test_rope(KEEL_ROPE_NEOX, 8);
    test_rope(KEEL_ROPE_NORM, 6); // partial rotation: dims 6, 7 pass through
    test_rope(KEEL_ROPE_NEOX, 4);
    test_attention(4, 2, 1); // GQA
    test_attention(3, 1, 2); // multi-query, odd head count
    test_attention(2, 2, 3); // plain multi-head, more threads than kv tasks per sequence
    test_swiglu();
    test_xent(false);
    test_xent(true);
    printf("worst FD relative error %.3e (tolerance %.0e)\n", worst_fd, TOL);
    return test_report();
}
