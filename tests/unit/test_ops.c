// SPDX-License-Identifier: MIT
// test_ops.c — every kernel in src/ops/ against a plain double-precision
// reference on random shapes (sizes off the panel/tile multiples included);
// the block formats against the gguf Python package (tests/golden/quant.json,
// made by tools/golden_quant.py); RoPE's two conventions against each other
// through llama.cpp's q/k row permutation. quant.c is included directly so
// both its portable C path and its SIMD path are checked.
#include "../../src/ops/quant.c"

#include "ops/ops.h"
#include "test.h"

#include <cjson/cJSON.h>

static keel_rng rng;

static void fill_normal(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = keel_rng_normal(&rng) * scale;
}

// ---- quant golden ----------------------------------------------------------------

static int hexval(char c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

static void test_quant_golden(void) {
    char *text = NULL;
    size_t len = 0;
    keel_err err;
    if (keel_read_file("tests/golden/quant.json", &text, &len, &err) != KEEL_OK) {
        CHECK("tests/golden/quant.json readable (run from the repo root)", 0);
        return;
    }
    cJSON *root = cJSON_Parse(text);
    cJSON *cases = cJSON_GetObjectItem(root, "cases");
    CHECK("golden has cases", cJSON_GetArraySize(cases) >= 15);
    int n_cases = 0;
    cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        keel_dtype t = (keel_dtype)cJSON_GetObjectItem(c, "type_id")->valueint;
        int n = cJSON_GetObjectItem(c, "n")->valueint;
        const char *hex = cJSON_GetObjectItem(c, "bytes")->valuestring;
        cJSON *vals = cJSON_GetObjectItem(c, "values");
        size_t nb = strlen(hex) / 2, want_nb = 0;
        int64_t ne[4] = {n, 1, 1, 1};
        CHECK("golden byte size matches keel_dtype_nbytes", keel_dtype_nbytes(t, ne, &want_nb) && nb == want_nb);
        uint8_t *bytes = malloc(nb);
        for (size_t i = 0; i < nb; i++) bytes[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
        float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n), *x = malloc(sizeof(float) * n);
        dequant_c(t, bytes, a, n);
        keel_dequant_row(t, bytes, b, n);
        int bad_c = 0, bad_fast = 0;
        double ref_dot = 0.0;
        fill_normal(x, (size_t)n, 1.0f);
        for (int i = 0; i < n; i++) {
            float want = (float)cJSON_GetArrayItem(vals, i)->valuedouble;
            bad_c += a[i] != want;
            bad_fast += b[i] != want;
            ref_dot += (double)want * x[i];
        }
        char what[96];
        snprintf(what, sizeof what, "%s n=%d: C dequant == gguf.quants", keel_dtype_name(t), n);
        CHECK(what, bad_c == 0);
        snprintf(what, sizeof what, "%s n=%d: dispatched dequant == gguf.quants", keel_dtype_name(t), n);
        CHECK(what, bad_fast == 0);
        snprintf(what, sizeof what, "%s n=%d: C dot", keel_dtype_name(t), n);
        CHECK_CLOSE(what, dot_c(t, bytes, x, n), ref_dot, 1e-4 * (1 + fabs(ref_dot)) * sqrt(n));
        snprintf(what, sizeof what, "%s n=%d: dispatched dot", keel_dtype_name(t), n);
        CHECK_CLOSE(what, keel_dot_row(t, bytes, x, n), ref_dot, 1e-4 * (1 + fabs(ref_dot)) * sqrt(n));
#ifdef KEEL_X86
        if (use_avx2()) {
            snprintf(what, sizeof what, "%s n=%d: AVX2 dot", keel_dtype_name(t), n);
            CHECK_CLOSE(what, dot_avx2(t, bytes, x, n), ref_dot, 1e-4 * (1 + fabs(ref_dot)) * sqrt(n));
        }
        if (use_avx512()) {
            snprintf(what, sizeof what, "%s n=%d: AVX-512 dot", keel_dtype_name(t), n);
            CHECK_CLOSE(what, dot_avx512(t, bytes, x, n), ref_dot, 1e-4 * (1 + fabs(ref_dot)) * sqrt(n));
        }
#endif
        free(bytes), free(a), free(b), free(x);
        n_cases++;
    }
    CHECK("all five types covered", n_cases == 15);
    cJSON_Delete(root);
    keel_free(text);
}

// ---- random stored weights -------------------------------------------------------

// A random (n_out, n_in) weight of type t, at byte offset `skew` in a fresh
// buffer (skew 2 makes F32 rows unaligned). Quantized blocks get random codes
// and sane f16 scales. Returns the buffer to free; w->data points into it.
static uint8_t *random_weight(keel_wmat *w, keel_dtype t, int64_t n_in, int64_t n_out, int skew) {
    int64_t ne[4] = {n_in, n_out, 1, 1};
    size_t nb = 0;
    KEEL_ASSERT(keel_dtype_nbytes(t, ne, &nb));
    uint8_t *buf = malloc(nb + 8);
    uint8_t *d = buf + skew;
    size_t n = (size_t)(n_in * n_out);
    switch (t) {
    case KEEL_DTYPE_F32:
        for (size_t i = 0; i < n; i++) {
            float v = keel_rng_normal(&rng) * 0.5f;
            memcpy(d + 4 * i, &v, 4);
        }
        break;
    case KEEL_DTYPE_F16: case KEEL_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            float v = keel_rng_normal(&rng) * 0.5f;
            uint16_t h = t == KEEL_DTYPE_F16 ? keel_fp32_to_fp16(v) : keel_fp32_to_bf16(v);
            memcpy(d + 2 * i, &h, 2);
        }
        break;
    default: {
        size_t bs = t == KEEL_DTYPE_Q8_0 ? 34 : t == KEEL_DTYPE_Q4_0 ? 18 : 20;
        int hdr = t == KEEL_DTYPE_Q4_1 ? 4 : 2;
        for (size_t b = 0; b < n / 32; b++) {
            uint8_t *blk = d + b * bs;
            for (size_t i = 0; i < bs; i++) blk[i] = (uint8_t)keel_rng_u64(&rng);
            uint16_t sc = keel_fp32_to_fp16(0.01f + 0.05f * keel_rng_uniform(&rng));
            memcpy(blk, &sc, 2);
            if (hdr == 4) {
                uint16_t m = keel_fp32_to_fp16(-0.2f * keel_rng_uniform(&rng));
                memcpy(blk + 2, &m, 2);
            }
        }
    }
    }
    KEEL_ASSERT(keel_wmat_init(w, t, n_in, n_out, d));
    return buf;
}

static double max_abs_diff(const float *a, const float *b, size_t n, double *max_ref) {
    double m = 0.0, r = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d; // NaN sticks
        if (fabs(b[i]) > r) r = fabs(b[i]);
    }
    if (max_ref) *max_ref = r;
    return m;
}

// Error allowed against the double reference: fp32 sums grow with sqrt(n_in);
// the bf16 paths are bounded by their rounding of the products (2^-16 for the
// hi/lo split, 2^-8 for plain bf16) relative to the largest output.
static double matmul_tol(keel_prec p, double max_ref, int64_t n_in) {
    switch (p) {
    case KEEL_PREC_BF16X3: return 5e-5 * (1.0 + max_ref);
    case KEEL_PREC_BF16: return 1e-2 * (1.0 + max_ref);
    default: return 2e-6 * (1.0 + max_ref) * sqrt((double)n_in);
    }
}

static void test_matmul(keel_ops_scratch *s, const char *path) {
    double worst = 0.0; // largest error relative to the output scale, T > 1
    static const keel_dtype types[] = {KEEL_DTYPE_F32, KEEL_DTYPE_F16, KEEL_DTYPE_BF16,
                                       KEEL_DTYPE_Q8_0, KEEL_DTYPE_Q4_0, KEEL_DTYPE_Q4_1};
    static const int64_t shapes[][3] = {
        // n_in, n_out, T
        {32, 1, 1}, {64, 7, 1}, {96, 65, 1}, {160, 300, 1}, {576, 129, 1},
        {32, 1, 2}, {64, 7, 3}, {96, 65, 5}, {160, 300, 17}, {256, 257, 130}, {576, 96, 64},
    };
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++)
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
            for (int skew = 0; skew <= (types[ti] == KEEL_DTYPE_F32 ? 2 : 0); skew += 2) {
                int64_t n_in = shapes[si][0], n_out = shapes[si][1], T = shapes[si][2];
                if (types[ti] == KEEL_DTYPE_F32 && si % 3 == 1) n_in += 3; // not a multiple of anything
                keel_wmat w;
                uint8_t *wb = random_weight(&w, types[ti], n_in, n_out, skew);
                float *x = malloc(sizeof(float) * T * n_in);
                float *y = malloc(sizeof(float) * T * n_out), *yr = malloc(sizeof(float) * T * n_out);
                fill_normal(x, (size_t)(T * n_in), 1.0f);
                keel_matmul(y, x, &w, T, s);
                keel_matmul_ref(yr, x, &w, T);
                double mr, d = max_abs_diff(y, yr, (size_t)(T * n_out), &mr);
                char what[128];
                snprintf(what, sizeof what, "matmul (%s) %s in=%lld out=%lld T=%lld skew=%d", path,
                         keel_dtype_name(types[ti]), (long long)n_in, (long long)n_out, (long long)T, skew);
                CHECK_CLOSE(what, d, 0.0, matmul_tol(s->prec, mr, n_in));
                if (T > 1 && d / (1.0 + mr) > worst) worst = d / (1.0 + mr);
                free(wb), free(x), free(y), free(yr);
            }
    // The reduced-precision paths must really have run where the CPU has AMX
    // (else they fall back to fp32 and the loose tolerance would test nothing).
    if (s->prec == KEEL_PREC_BF16 && (keel_cpu_features() & KEEL_CPU_AMX_BF16)) {
        char what[96];
        snprintf(what, sizeof what, "matmul (%s): bf16 rounding visible (worst %.2g)", path, worst);
        CHECK(what, worst > 1e-4);
    }
    if (s->prec == KEEL_PREC_BF16X3 && (keel_cpu_features() & KEEL_CPU_AMX_BF16)) {
        char what[96];
        snprintf(what, sizeof what, "matmul (%s): bf16x3 between fp32 and bf16 (worst %.2g)", path, worst);
        CHECK(what, worst > 1e-8 && worst < 1e-4);
    }
}

// Three weights of different types and heights on one x, as q/k/v are run.
static void test_matmul_multi(keel_ops_scratch *s, const char *path) {
    for (int64_t T = 1; T <= 70; T += 23) {
        const int64_t K = 96, outs[3] = {50, 12, 37};
        const keel_dtype types[3] = {KEEL_DTYPE_Q4_1, KEEL_DTYPE_F16, KEEL_DTYPE_Q8_0};
        keel_wmat w[3];
        uint8_t *wb[3];
        float *y[3], *yr[3], *x = malloc(sizeof(float) * T * K);
        keel_mm mm[3];
        fill_normal(x, (size_t)(T * K), 1.0f);
        for (int i = 0; i < 3; i++) {
            wb[i] = random_weight(&w[i], types[i], K, outs[i], 0);
            y[i] = malloc(sizeof(float) * T * outs[i]);
            yr[i] = malloc(sizeof(float) * T * outs[i]);
            mm[i].w = &w[i];
            mm[i].y = y[i];
        }
        keel_matmul_multi(x, T, mm, 3, s);
        for (int i = 0; i < 3; i++) {
            keel_matmul_ref(yr[i], x, &w[i], T);
            double mr, d = max_abs_diff(y[i], yr[i], (size_t)(T * outs[i]), &mr);
            char what[96];
            snprintf(what, sizeof what, "matmul_multi (%s) T=%lld weight %d", path, (long long)T, i);
            CHECK_CLOSE(what, d, 0.0, matmul_tol(s->prec, mr, K));
            free(wb[i]), free(y[i]), free(yr[i]);
        }
        free(x);
    }
}

// ---- norm, rope, attention, activations ---------------------------------------------

static void test_rmsnorm(void) {
    int64_t T = 5, C = 77;
    float x[5 * 77], w[77], y[5 * 77], yr[5 * 77];
    fill_normal(x, (size_t)(T * C), 2.0f);
    fill_normal(w, (size_t)C, 1.0f);
    keel_op_rmsnorm_fwd(y, x, w, T, C, 1e-5f);
    keel_op_rmsnorm_ref(yr, x, w, T, C, 1e-5f);
    CHECK_CLOSE("rmsnorm vs ref", max_abs_diff(y, yr, (size_t)(T * C), NULL), 0.0, 1e-5);
    keel_op_rmsnorm_fwd(x, x, w, T, C, 1e-5f); // in place
    CHECK_CLOSE("rmsnorm in place", max_abs_diff(x, yr, (size_t)(T * C), NULL), 0.0, 1e-5);
}

static void test_rope(void) {
    enum { T = 6, NH = 3, HD = 16 };
    for (int style = 0; style < 2; style++)
        for (int n_rot = HD; n_rot >= 8; n_rot -= 8) {
            float x[T * NH * HD], xr[T * NH * HD], cs[T * HD];
            fill_normal(x, T * NH * HD, 1.0f);
            memcpy(xr, x, sizeof x);
            keel_rope_table(cs, 1000, T, n_rot, 10000.0f);
            keel_op_rope_fwd(x, cs, T, NH, HD, n_rot, (keel_rope_style)style);
            keel_op_rope_ref(xr, 1000, T, NH, HD, n_rot, 10000.0f, (keel_rope_style)style);
            char what[64];
            snprintf(what, sizeof what, "rope style %d n_rot %d vs ref", style, n_rot);
            CHECK_CLOSE(what, max_abs_diff(x, xr, sizeof x / sizeof *x, NULL), 0.0, 2e-6);
        }
    // position 0 is the identity
    float x[NH * HD], x0[NH * HD], cs[HD];
    fill_normal(x, NH * HD, 1.0f);
    memcpy(x0, x, sizeof x);
    keel_rope_table(cs, 0, 1, HD, 10000.0f);
    keel_op_rope_fwd(x, cs, 1, NH, HD, HD, KEEL_ROPE_NORM);
    CHECK("rope at position 0 is the identity", memcmp(x, x0, sizeof x) == 0);
}

// HF stores q/k rows unpermuted and rotates halves; llama.cpp's converter
// permutes the rows, reshape(n_head, 2, hd/2, in).swapaxes(1, 2), and rotates
// adjacent pairs. Both must give the same attention scores.
static void test_rope_permutation(void) {
    enum { NH = 3, HD = 8, IN = 12, T = 4 };
    float w_hf[NH * HD * IN], w_gg[NH * HD * IN], x[T * IN];
    fill_normal(w_hf, NH * HD * IN, 0.5f);
    fill_normal(x, T * IN, 1.0f);
    for (int h = 0; h < NH; h++)
        for (int i = 0; i < HD / 2; i++)
            for (int j = 0; j < 2; j++)
                memcpy(w_gg + (h * HD + 2 * i + j) * IN, w_hf + (h * HD + j * (HD / 2) + i) * IN,
                       sizeof(float) * IN);
    keel_wmat a, b;
    keel_wmat_init(&a, KEEL_DTYPE_F32, IN, NH * HD, w_hf);
    keel_wmat_init(&b, KEEL_DTYPE_F32, IN, NH * HD, w_gg);
    float q_hf[T * NH * HD], q_gg[T * NH * HD], cs[T * HD / 2 * 2];
    keel_matmul_ref(q_hf, x, &a, T);
    keel_matmul_ref(q_gg, x, &b, T);
    keel_rope_table(cs, 7, T, HD, 10000.0f);
    keel_op_rope_fwd(q_hf, cs, T, NH, HD, HD, KEEL_ROPE_NEOX);
    keel_op_rope_fwd(q_gg, cs, T, NH, HD, HD, KEEL_ROPE_NORM);
    double worst = 0.0, worst_dot = 0.0;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < HD / 2; i++)
                for (int j = 0; j < 2; j++) {
                    double d = fabs(q_gg[(t * NH + h) * HD + 2 * i + j] - q_hf[(t * NH + h) * HD + j * (HD / 2) + i]);
                    if (d > worst) worst = d;
                }
    // and the scores q_t . q_u per head, which attention actually uses
    for (int t = 0; t < T; t++)
        for (int u = 0; u < T; u++)
            for (int h = 0; h < NH; h++) {
                double s1 = 0, s2 = 0;
                for (int i = 0; i < HD; i++) {
                    s1 += (double)q_hf[(t * NH + h) * HD + i] * q_hf[(u * NH + h) * HD + i];
                    s2 += (double)q_gg[(t * NH + h) * HD + i] * q_gg[(u * NH + h) * HD + i];
                }
                if (fabs(s1 - s2) > worst_dot) worst_dot = fabs(s1 - s2);
            }
    CHECK_CLOSE("NEOX on HF rows == NORM on permuted rows", worst, 0.0, 1e-5);
    CHECK_CLOSE("same scores under both conventions", worst_dot, 0.0, 1e-4);
}

static void test_attention(keel_ops_scratch *s) {
    static const int cfg[][5] = {
        // T, pos0, n_head, n_head_kv, hd
        {1, 0, 2, 2, 8}, {1, 9, 4, 2, 8}, {7, 0, 8, 4, 8}, {5, 3, 9, 3, 64}, {33, 40, 6, 1, 12},
        {17, 100, 4, 2, 64}, {1, 130, 2, 1, 128}, {3, 61, 3, 3, 32}, {70, 0, 2, 1, 16},
    };
    for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++) {
        int T = cfg[c][0], pos0 = cfg[c][1], nh = cfg[c][2], nkv = cfg[c][3], hd = cfg[c][4];
        int n = pos0 + T;
        float *q = malloc(sizeof(float) * T * nh * hd), *o = malloc(sizeof(float) * T * nh * hd);
        float *orf = malloc(sizeof(float) * T * nh * hd);
        float *k = malloc(sizeof(float) * n * nkv * hd), *v = malloc(sizeof(float) * n * nkv * hd);
        fill_normal(q, (size_t)T * nh * hd, 1.0f);
        fill_normal(k, (size_t)n * nkv * hd, 1.0f);
        fill_normal(v, (size_t)n * nkv * hd, 1.0f);
        int64_t ldk = keel_kt_stride(n);
        float *kt = malloc(sizeof(float) * nkv * hd * ldk);
        keel_kt_store(kt, ldk, k, n, 0, nkv, hd);
        keel_op_attention_fwd(o, q, kt, ldk, v, T, pos0, nh, nkv, hd, s);
        free(kt);
        keel_op_attention_ref(orf, q, k, v, T, pos0, nh, nkv, hd);
        char what[96];
        snprintf(what, sizeof what, "attention T=%d pos0=%d heads %d/%d hd %d", T, pos0, nh, nkv, hd);
        CHECK_CLOSE(what, max_abs_diff(o, orf, (size_t)T * nh * hd, NULL), 0.0, 1e-5);
        free(q), free(o), free(orf), free(k), free(v);
    }
}

static void test_activations(void) {
    float g[37], u[37], y[37];
    fill_normal(g, 37, 3.0f);
    fill_normal(u, 37, 1.0f);
    keel_op_swiglu_fwd(y, g, u, 37);
    double worst = 0.0;
    for (int i = 0; i < 37; i++) {
        double want = (double)g[i] / (1.0 + exp(-(double)g[i])) * u[i];
        if (fabs(want - y[i]) > worst) worst = fabs(want - y[i]);
    }
    CHECK_CLOSE("swiglu vs double", worst, 0.0, 1e-5);

    float x[50], p[50];
    fill_normal(x, 50, 10.0f);
    x[3] = 500.0f; // large values must not overflow
    keel_op_softmax_fwd(p, x, 50);
    double mx = x[0], sum = 0.0, tot = 0.0;
    for (int i = 0; i < 50; i++) mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < 50; i++) sum += exp(x[i] - mx);
    worst = 0.0;
    for (int i = 0; i < 50; i++) {
        double want = exp(x[i] - mx) / sum;
        if (fabs(want - p[i]) > worst) worst = fabs(want - p[i]);
        tot += p[i];
    }
    CHECK_CLOSE("softmax vs double", worst, 0.0, 1e-6);
    CHECK_CLOSE("softmax sums to 1", tot, 1.0, 1e-5);

    float a[6] = {1, 5, 2, 5, -1, 0};
    CHECK("argmax picks the first of ties", keel_op_argmax(a, 6) == 1);
    CHECK("argmax of nothing", keel_op_argmax(a, 0) == -1);
    float z[3] = {1, 2, 3}, w[3] = {1, 1, 1};
    keel_op_add(z, w, 3);
    CHECK("add", z[0] == 2 && z[2] == 4);
}

int main(void) {
    keel_rng_seed(&rng, 1234);
    keel_ops_scratch s;
    keel_err err;
    size_t per = keel_matmul_scratch_floats(1024);
    if (keel_attention_scratch_floats(4096) > per) per = keel_attention_scratch_floats(4096);
    // s packs x (the AVX-512 kernel where the CPU has it); s2 has no shared
    // buffer, so it always takes the generic panel + sgemm path.
    keel_ops_scratch s2;
    if (keel_ops_scratch_init(&s, 2, per, keel_matmul_shared_floats(256, 1024), &err) != KEEL_OK ||
        keel_ops_scratch_init(&s2, 2, per, 0, &err) != KEEL_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_quant_golden();
    test_matmul(&s, "packed");
    test_matmul(&s2, "generic");
    test_matmul_multi(&s, "packed");
    test_matmul_multi(&s2, "generic");
    keel_ops_scratch_free(&s2);
    if (!(keel_cpu_features() & KEEL_CPU_AMX_BF16))
        printf("note: no AMX-BF16 here; the bf16 precisions run (and are tested) as fp32\n");
    s.prec = KEEL_PREC_BF16X3;
    test_matmul(&s, "amx bf16x3");
    test_matmul_multi(&s, "amx bf16x3");
    s.prec = KEEL_PREC_BF16;
    test_matmul(&s, "amx bf16");
    test_matmul_multi(&s, "amx bf16");
    s.prec = KEEL_PREC_FP32;
    test_rmsnorm();
    test_rope();
    test_rope_permutation();
    test_attention(&s);
    test_activations();
    keel_ops_scratch_free(&s);
    return test_report();
}
