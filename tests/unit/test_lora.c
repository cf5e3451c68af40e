// SPDX-License-Identifier: MIT
// test_lora.c — LoRA (src/adapters/lora.c) on the tiny Llama (tests/data/tiny-llama-hf,
// 2 layers, C 64, F 160, V 320; and the same weights as tests/data/tiny-llama.gguf, q/k rows
// in Meta order): the branch's dA, dB, dx against central finite differences of a float64
// reference (and of keel's own forward with dropout on); B = 0 leaves the model unchanged;
// merged weights give the unmerged forward; a PEFT adapter (tests/data/tiny-lora-peft, made by
// tools/golden_lora.py) gives PyTorch+PEFT's loss, lora_A/lora_B gradients and logits
// (tests/golden/tiny_lora.*) on the HF and the GGUF base; save/load round trips and a
// GGUF-trained adapter, saved, gives the same logits on the HF base; dropout masks are
// deterministic; config and file errors; allocation failures. With KEEL_LORA_KEEP=DIR the
// keel-written adapters and their logits are left in DIR/{hf,gguf} for
// `tools/golden_lora.py --check DIR` (PEFT loads them and must give the same logits).
#include "adapters/lora.h"
#include "io/io.h"
#include "keel.h"
#include "test.h"
#include "test_fs.h"
#include "test_model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

static int n_threads = 2;

// ---- golden (tests/golden/tiny_lora.{json,f32}) ------------------------------------------

typedef struct gold {
    cJSON *j;
    float *f;
    size_t n_floats;
    int B, T, V;
    int32_t *tokens, *targets;
    uint8_t *mask;
    double loss;
} gold;

static bool gold_load(gold *G) {
    memset(G, 0, sizeof *G);
    char *js = test_read_file("tests/golden/tiny_lora.json", NULL);
    size_t nb = 0;
    G->f = (float *)test_read_file("tests/golden/tiny_lora.f32", &nb);
    G->n_floats = nb / 4;
    if (!js || !G->f) {
        free(js);
        return false;
    }
    G->j = cJSON_Parse(js);
    free(js);
    if (!G->j) return false;
    G->B = cJSON_GetObjectItem(G->j, "B")->valueint;
    G->T = cJSON_GetObjectItem(G->j, "T")->valueint;
    G->loss = cJSON_GetObjectItem(G->j, "loss")->valuedouble;
    int N = G->B * G->T;
    G->tokens = calloc((size_t)N, sizeof(int32_t));
    G->targets = calloc((size_t)N, sizeof(int32_t));
    G->mask = calloc((size_t)N, 1);
    cJSON *ids = cJSON_GetObjectItem(G->j, "ids"), *mk = cJSON_GetObjectItem(G->j, "mask");
    for (int b = 0; b < G->B; b++)
        for (int t = 0; t < G->T; t++) {
            G->tokens[b * G->T + t] = cJSON_GetArrayItem(cJSON_GetArrayItem(ids, b), t)->valueint;
            if (t + 1 < G->T) {
                G->targets[b * G->T + t] = cJSON_GetArrayItem(cJSON_GetArrayItem(ids, b), t + 1)->valueint;
                G->mask[b * G->T + t] = (uint8_t)cJSON_GetArrayItem(cJSON_GetArrayItem(mk, b), t)->valueint;
            }
        }
    return cJSON_GetObjectItem(G->j, "n_floats")->valuedouble == (double)G->n_floats;
}

static void gold_free(gold *G) {
    cJSON_Delete(G->j);
    free(G->f);
    free(G->tokens);
    free(G->targets);
    free(G->mask);
}

static const float *gold_find(const gold *G, const char *name, size_t *n) {
    cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(G->j, "tensors")) {
        if (strcmp(cJSON_GetObjectItem(t, "name")->valuestring, name)) continue;
        size_t cnt = 1;
        cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItem(t, "shape")) cnt *= (size_t)d->valueint;
        size_t off = (size_t)cJSON_GetObjectItem(t, "offset")->valuedouble;
        if (off + cnt > G->n_floats) return NULL;
        *n = cnt;
        return G->f + off;
    }
    return NULL;
}

static double rel_frob(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1e-300));
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= mx)) mx = d; // NaN sticks
    }
    return mx;
}

// Meta row order of a GGUF q/k matrix -> HF (train.h): HF row h*hd + j*hd/2 + i = keel row h*hd + 2i + j.
static void rows_to_hf(float *dst, const float *src, int64_t rows, int64_t cols, int64_t hd) {
    for (int64_t h = 0; h < rows / hd; h++)
        for (int64_t i = 0; i < hd / 2; i++)
            for (int64_t j = 0; j < 2; j++)
                memcpy(dst + (h * hd + j * (hd / 2) + i) * cols, src + (h * hd + 2 * i + j) * cols,
                       (size_t)cols * sizeof(float));
}

// ---- a model + LoRA + activations ----------------------------------------------------------

typedef struct rig {
    keel_model *m;
    keel_train_model tm;
    keel_lora lo;
    keel_train_acts a;
    bool has_lora, has_acts;
} rig;

static void rig_free(rig *R) {
    if (R->has_acts) keel_train_acts_free(&R->a);
    if (R->has_lora) keel_lora_free(&R->lo);
    keel_train_model_free(&R->tm);
    keel_model_free(R->m);
    memset(R, 0, sizeof *R);
}

static bool sel_all(const char *name, void *ud) { return true; }

// Model + (cfg: attach | dir: load | neither) + acts for (B, T).
static bool rig_init(rig *R, const char *model, const keel_lora_config *cfg, const char *dir, int B, int T,
                     keel_train_select_fn sel) {
    memset(R, 0, sizeof *R);
    keel_err err;
    R->m = test_load_model(model, n_threads);
    if (!R->m) return false;
    if (keel_train_model_init(&R->tm, R->m, sel ? sel : test_sel_none, NULL, &err)) goto fail;
    if (cfg || dir) {
        keel_status st = cfg ? keel_lora_attach(&R->lo, &R->tm, cfg, &err) : keel_lora_load(&R->lo, &R->tm, dir, 0, &err);
        if (st) goto fail;
        R->has_lora = true;
        if (keel_lora_reserve(&R->lo, (int64_t)B * T, &err)) goto fail;
    }
    if (keel_train_acts_init(&R->a, &R->tm, B, T, &err)) goto fail;
    R->has_acts = true;
    return true;
fail:
    fprintf(stderr, "rig %s: %s\n", model, err.msg);
    rig_free(R);
    return false;
}

// Forward (logits copied into out when not NULL), then backward. Returns the loss.
static float rig_step(rig *R, const gold *G, float *out, bool backward) {
    keel_err err;
    float loss = NAN;
    keel_train_zero_grad(&R->tm);
    if (keel_train_forward(&R->tm, &R->a, G->tokens, G->targets, G->mask, &loss, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return NAN;
    }
    if (out) memcpy(out, R->a.logits, (size_t)(G->B * G->T) * (size_t)R->m->desc.n_vocab * sizeof(float));
    if (backward) keel_train_backward(&R->tm, &R->a);
    return loss;
}

// Seeded nonzero B for every module.
static void fill_B(keel_lora *lo, uint64_t seed, float sd) {
    keel_rng r;
    keel_rng_seed(&r, seed);
    for (int i = 0; i < lo->n; i++) {
        float *B = keel_lora_B(lo, i);
        for (int64_t k = 0; k < lo->mods[i].n_out * lo->r; k++) B[k] = sd * keel_rng_normal(&r);
    }
}

static const char *const all7[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

static keel_lora_config cfg7(int r, double alpha) {
    keel_lora_config c = keel_lora_default_config();
    c.r = r, c.alpha = alpha, c.targets = all7, c.n_targets = 7, c.seed = 11;
    return c;
}

// ---- 1. the branch against finite differences ------------------------------------------------

// y (N, n_out) = s * (x A^T) B^T in double.
static void branch_ref(double *y, const double *x, const double *A, const double *Bm, double s, int64_t N,
                       int64_t n_in, int64_t n_out, int64_t r) {
    for (int64_t n = 0; n < N; n++) {
        double u[64];
        for (int64_t k = 0; k < r; k++) {
            double acc = 0;
            for (int64_t i = 0; i < n_in; i++) acc += x[n * n_in + i] * A[k * n_in + i];
            u[k] = acc;
        }
        for (int64_t o = 0; o < n_out; o++) {
            double acc = 0;
            for (int64_t k = 0; k < r; k++) acc += u[k] * Bm[o * r + k];
            y[n * n_out + o] = s * acc;
        }
    }
}

static double dot_d(const double *a, const double *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void test_branch_fd(double dropout) {
    rig R;
    const int N = 5;
    keel_lora_config c = keel_lora_default_config();
    const char *tg[1] = {"model.layers.0.mlp.down_proj"}; // n_in 160 -> n_out 64
    c.r = 3, c.alpha = 6, c.targets = tg, c.n_targets = 1, c.dropout = dropout, c.seed = 3;
    CHECK("branch rig", rig_init(&R, "tests/data/tiny-llama-hf", &c, NULL, 1, N, NULL));
    if (!R.m) return;
    keel_lora *lo = &R.lo;
    CHECK("one module", lo->n == 1 && lo->mods[0].n_in == 160 && lo->mods[0].n_out == 64);
    keel_lora_set_train(lo, true, 42);
    fill_B(lo, 9, 0.3f);
    const keel_lora_mod *md = &lo->mods[0];
    const int64_t n_in = md->n_in, n_out = md->n_out, r = lo->r;
    keel_rng rng;
    keel_rng_seed(&rng, 77);
    float *x = malloc(sizeof(float) * (size_t)(N * n_in)), *y = malloc(sizeof(float) * (size_t)(N * n_out));
    float *w = malloc(sizeof(float) * (size_t)(N * n_out)), *dx = calloc((size_t)(N * n_in), sizeof(float));
    for (int64_t i = 0; i < N * n_in; i++) x[i] = keel_rng_normal(&rng);
    for (int64_t i = 0; i < N * n_out; i++) w[i] = keel_rng_normal(&rng);
    float *A = keel_lora_A(lo, 0), *Bm = keel_lora_B(lo, 0);
    float *gA = R.tm.p.g + R.tm.p.t[md->pa].off, *gB = R.tm.p.g + R.tm.p.t[md->pb].off;
    // L = sum(w * y): dy = w.
    memset(y, 0, sizeof(float) * (size_t)(N * n_out));
    md->hook.fwd(&md->hook, y, x, N, &R.a.ops);
    md->hook.bwd(&md->hook, dx, w, x, N, &R.a.ops);

    if (dropout == 0) {
        // float64 reference, its central differences (L is bilinear: h = 0.5 is exact up to rounding)
        double *xd = malloc(sizeof(double) * (size_t)(N * n_in)), *Ad = malloc(sizeof(double) * (size_t)(r * n_in));
        double *Bd = malloc(sizeof(double) * (size_t)(n_out * r)), *yd = malloc(sizeof(double) * (size_t)(N * n_out));
        double *wd = malloc(sizeof(double) * (size_t)(N * n_out));
        for (int64_t i = 0; i < N * n_in; i++) xd[i] = x[i];
        for (int64_t i = 0; i < r * n_in; i++) Ad[i] = A[i];
        for (int64_t i = 0; i < n_out * r; i++) Bd[i] = Bm[i];
        for (int64_t i = 0; i < N * n_out; i++) wd[i] = w[i];
        branch_ref(yd, xd, Ad, Bd, lo->scale, N, n_in, n_out, r);
        double ymax = 0, yerr = 0;
        for (int64_t i = 0; i < N * n_out; i++) {
            ymax = fmax(ymax, fabs(yd[i]));
            yerr = fmax(yerr, fabs(yd[i] - y[i]));
        }
        CHECK("branch forward = float64 reference (1e-5 rel)", yerr <= 1e-5 * ymax && ymax > 0.1);
        double worst = 0;
        double *ps[3] = {Ad, Bd, xd};
        const float *gs[3] = {gA, gB, dx};
        int64_t ns[3] = {r * n_in, n_out * r, N * n_in};
        for (int which = 0; which < 3; which++)
            for (int t = 0; t < 12; t++) {
                int64_t k = (int64_t)(keel_rng_u64(&rng) % (uint64_t)ns[which]);
                double *p = ps[which], keepv = p[k], h = 0.5;
                p[k] = keepv + h;
                branch_ref(yd, xd, Ad, Bd, lo->scale, N, n_in, n_out, r);
                double lp = dot_d(yd, wd, N * n_out);
                p[k] = keepv - h;
                branch_ref(yd, xd, Ad, Bd, lo->scale, N, n_in, n_out, r);
                double lm = dot_d(yd, wd, N * n_out);
                p[k] = keepv;
                double fd = (lp - lm) / (2 * h), an = gs[which][k];
                double e = fabs(fd - an) / (fabs(fd) + 1e-3);
                if (e > worst) worst = e;
            }
        printf("branch (r 3, 160 -> 64): forward err %.2e of %.2f; dA, dB, dx vs float64 central differences: worst rel %.2e\n",
               yerr, ymax, worst);
        CHECK("dA, dB, dx = central differences (1e-4 rel)", worst < 1e-4);
        free(xd), free(Ad), free(Bd), free(yd), free(wd);
    } else {
        // with dropout: central differences of keel's own forward (same mask stream)
        float *yp = malloc(sizeof(float) * (size_t)(N * n_out));
        double worst = 0;
        float *ps[3] = {A, Bm, x};
        const float *gs[3] = {gA, gB, dx};
        int64_t ns[3] = {r * n_in, n_out * r, N * n_in};
        int zero_dx = 0;
        for (int64_t i = 0; i < N * n_in; i++) zero_dx += dx[i] == 0.0f;
        for (int which = 0; which < 3; which++)
            for (int t = 0; t < 12; t++) {
                int64_t k = (int64_t)(keel_rng_u64(&rng) % (uint64_t)ns[which]);
                float *p = ps[which], keepv = p[k], h = 0.5f;
                double l2[2];
                for (int sgn = 0; sgn < 2; sgn++) {
                    p[k] = keepv + (sgn ? -h : h);
                    memset(yp, 0, sizeof(float) * (size_t)(N * n_out));
                    md->hook.fwd(&md->hook, yp, x, N, &R.a.ops);
                    double l = 0;
                    for (int64_t i = 0; i < N * n_out; i++) l += (double)yp[i] * w[i];
                    l2[sgn] = l;
                }
                p[k] = keepv;
                double fd = (l2[0] - l2[1]) / (2.0 * h), an = gs[which][k];
                double e = fabs(fd - an) / (fabs(fd) + 1e-2);
                if (e > worst) worst = e;
            }
        printf("branch with dropout 0.5: dA, dB, dx vs central differences of keel's forward: worst rel %.2e; "
               "%d of %d dx entries dropped\n", worst, zero_dx, (int)(N * n_in));
        CHECK("dropout: dA, dB, dx = central differences (1e-3 rel)", worst < 1e-3);
        CHECK("dropout 0.5 drops about half of x", zero_dx > N * n_in * 2 / 5 && zero_dx < N * n_in * 3 / 5);
        free(yp);
    }
    free(x), free(y), free(w), free(dx);
    rig_free(&R);
}

// ---- 2. B = 0 is the base; 3. merge = unmerged ---------------------------------------------------

static void test_identity_and_merge(const gold *G) {
    const int64_t NV = (int64_t)G->B * G->T * 320;
    float *l0 = malloc(sizeof(float) * (size_t)NV), *l1 = malloc(sizeof(float) * (size_t)NV);
    float *l2 = malloc(sizeof(float) * (size_t)NV);
    rig base, R;
    CHECK("base rig", rig_init(&base, "tests/data/tiny-llama-hf", NULL, NULL, G->B, G->T, NULL));
    keel_lora_config c = cfg7(4, 8);
    CHECK("lora rig", rig_init(&R, "tests/data/tiny-llama-hf", &c, NULL, G->B, G->T, NULL));
    if (!base.m || !R.m) return;
    CHECK("14 LoRA tensors, only they train", R.lo.n == 7 * 2 && R.tm.p.n == 28);
    CHECK("scale alpha / r", R.lo.scale == 2.0f);
    float lb = rig_step(&base, G, l0, false);
    float ll = rig_step(&R, G, l1, true);
    CHECK("B = 0: same loss as the base", ll == lb);
    CHECK("B = 0: same logits as the base", !memcmp(l0, l1, sizeof(float) * (size_t)NV));
    // PEFT's init: A in U(-1/sqrt(n_in), 1/sqrt(n_in)) (not all tiny), B zero; dA = 0, dB != 0.
    bool a_ok = true, b_zero = true, ga_zero = true, gb_nz = false;
    double amax = 0;
    for (int i = 0; i < R.lo.n; i++) {
        const keel_lora_mod *md = &R.lo.mods[i];
        float *A = keel_lora_A(&R.lo, i), *Bm = keel_lora_B(&R.lo, i);
        float bound = 1.0f / sqrtf((float)md->n_in);
        for (int64_t k = 0; k < R.lo.r * md->n_in; k++) {
            a_ok &= fabsf(A[k]) <= bound;
            amax = fmax(amax, fabs(A[k]) / bound);
            ga_zero &= R.tm.p.g[R.tm.p.t[md->pa].off + (size_t)k] == 0.0f;
        }
        for (int64_t k = 0; k < R.lo.r * md->n_out; k++) {
            b_zero &= Bm[k] == 0.0f;
            gb_nz |= R.tm.p.g[R.tm.p.t[md->pb].off + (size_t)k] != 0.0f;
        }
    }
    CHECK("A within the Kaiming-uniform bound and filling it", a_ok && amax > 0.9);
    CHECK("B starts at zero", b_zero);
    CHECK("B = 0: dA = 0, dB != 0", ga_zero && gb_nz);
    // seeded: the same seed gives the same A
    rig R2;
    CHECK("second lora rig", rig_init(&R2, "tests/data/tiny-llama-hf", &c, NULL, G->B, G->T, NULL));
    if (R2.m) {
        CHECK("same seed, same A", !memcmp(R2.tm.p.w, R.tm.p.w, R.tm.p.n_floats * sizeof(float)));
        rig_free(&R2);
    }

    // merge: full fp32 copies of the base + s B A == the LoRA forward
    fill_B(&R.lo, 21, 0.2f);
    float lr = rig_step(&R, G, l1, false);
    rig M;
    CHECK("full rig", rig_init(&M, "tests/data/tiny-llama-hf", NULL, NULL, G->B, G->T, sel_all));
    if (M.m) {
        for (int i = 0; i < R.lo.n; i++) {
            char nm[96];
            snprintf(nm, sizeof nm, "%s.weight", R.lo.mods[i].module);
            int k = keel_train_params_find(&M.tm.p, nm);
            CHECK("merge target found", k >= 0);
            if (k >= 0) keel_lora_merge(&R.lo, i, M.tm.p.w + M.tm.p.t[k].off, 1.0f);
        }
        float lm = rig_step(&M, G, l2, false);
        double d = max_abs_diff(l1, l2, (size_t)NV), dl = max_abs_diff(l0, l1, (size_t)NV);
        printf("merged vs unmerged: logits max abs %.2e (adapter moves them by %.3f), loss %.7f vs %.7f\n", d, dl,
               lm, lr);
        CHECK("adapter changes the logits", dl > 0.05);
        // fp32 rounding of two summation orders (W + sBA rounded once vs the branch
        // added to x W^T): 8e-6 with OpenBLAS's sgemm, 1.1e-5 with the AVX-512 kernel
        // of ops/gemm_train.c, on logits of magnitude ~10.
        CHECK("merged forward = unmerged (2e-5)", d <= 2e-5);
        CHECK_CLOSE("merged loss = unmerged", lm, lr, 1e-5);
        for (int i = 0; i < R.lo.n; i++) {
            char nm[96];
            snprintf(nm, sizeof nm, "%s.weight", R.lo.mods[i].module);
            int k = keel_train_params_find(&M.tm.p, nm);
            if (k >= 0) keel_lora_merge(&R.lo, i, M.tm.p.w + M.tm.p.t[k].off, -1.0f);
        }
        rig_step(&M, G, l2, false);
        CHECK("unmerge restores the base (1e-5)", max_abs_diff(l0, l2, (size_t)NV) <= 1e-5);
        rig_free(&M);
    }
    rig_free(&R);
    rig_free(&base);
    free(l0), free(l1), free(l2);
}

// ---- 4/5. the PEFT adapter against PyTorch + PEFT --------------------------------------------------

static double worst_grad_rel, worst_logit;

static void test_peft(const gold *G, const char *model, bool gguf) {
    rig R;
    CHECK("load the PEFT adapter", rig_init(&R, model, NULL, "tests/data/tiny-lora-peft", G->B, G->T, NULL));
    if (!R.m) return;
    CHECK("PEFT adapter: 14 modules, r 4, scale 2", R.lo.n == 14 && R.lo.r == 4 && R.lo.scale == 2.0f);
    CHECK("GGUF base detected", R.lo.gguf_rows == gguf);
    const int64_t NV = (int64_t)G->B * G->T * 320;
    float *lg = malloc(sizeof(float) * (size_t)NV);
    float loss = rig_step(&R, G, lg, true);
    size_t n = 0;
    const float *ref = gold_find(G, "logits", &n);
    CHECK("golden logits", ref && n == (size_t)NV);
    double dlog = ref ? max_abs_diff(lg, ref, (size_t)NV) : 1;
    if (dlog > worst_logit) worst_logit = dlog;
    double worst = 0;
    int matched = 0;
    for (int i = 0; i < R.tm.p.n; i++) {
        const keel_tparam *p = &R.tm.p.t[i];
        const float *gr = gold_find(G, p->name, &n);
        if (!gr || n != (size_t)(p->rows * p->cols)) {
            CHECK(p->name, false);
            continue;
        }
        const float *mine = R.tm.p.g + p->off;
        float *tmp = NULL;
        if (gguf && strstr(p->name, "lora_B") && (strstr(p->name, "q_proj") || strstr(p->name, "k_proj"))) {
            tmp = malloc(sizeof(float) * n);
            rows_to_hf(tmp, mine, p->rows, p->cols, R.m->head_dim);
            mine = tmp;
        }
        double e = rel_frob(mine, gr, n);
        if (e > worst) worst = e;
        if (!(e < 1e-4)) fprintf(stderr, "  %s: rel %.3e\n", p->name, e);
        matched++;
        free(tmp);
    }
    if (worst > worst_grad_rel) worst_grad_rel = worst;
    printf("%s + PEFT adapter vs PyTorch+PEFT (f64): loss %.8f vs %.8f (rel %.1e), logits max abs %.2e, "
           "%d lora_A/B gradients worst rel Frobenius %.2e\n",
           gguf ? "GGUF" : "HF", loss, G->loss, fabs(loss - G->loss) / G->loss, dlog, matched, worst);
    CHECK("loss vs PEFT (1e-4 rel)", fabs(loss - G->loss) <= 1e-4 * G->loss);
    CHECK("logits vs PEFT (1e-4)", dlog <= 1e-4);
    CHECK("28 gradients compared", matched == 28);
    CHECK("lora_A/B gradients vs PEFT (rel Frobenius 1e-4)", worst < 1e-4);
    free(lg);
    rig_free(&R);
}

// 1 and 3 threads give the 2-thread loss and LoRA gradients bit for bit (dropout on). The
// base is trainable fp32 here (LoRA on top of full fine-tuning also works): the frozen-base dx
// path (keel_op_linear_bwd_dx_q) splits dx columns by thread count, so through it the
// gradients agree only to rounding (~4e-7 rel) across thread counts.
static void test_threads(const gold *G) {
    keel_lora_config c = cfg7(4, 8);
    c.dropout = 0.1;
    float ref_loss = 0, *ref = NULL;
    size_t nf = 0;
    bool same = true;
    static const int nts[3] = {2, 1, 3};
    for (int k = 0; k < 3; k++) {
        int nt = nts[k];
        n_threads = nt;
        keel_threads_set(nt);
        rig R;
        if (!rig_init(&R, "tests/data/tiny-llama-hf", &c, NULL, G->B, G->T, sel_all)) {
            same = false;
            break;
        }
        fill_B(&R.lo, 4, 0.2f);
        keel_lora_set_train(&R.lo, true, 17);
        float l = rig_step(&R, G, NULL, true);
        if (!ref) {
            nf = R.tm.p.n_floats;
            ref = malloc(nf * sizeof(float));
            memcpy(ref, R.tm.p.g, nf * sizeof(float));
            ref_loss = l;
        } else {
            same &= l == ref_loss && R.tm.p.n_floats == nf && !memcmp(ref, R.tm.p.g, nf * sizeof(float));
        }
        rig_free(&R);
    }
    n_threads = 2;
    keel_threads_set(2);
    CHECK("1 and 3 threads: bit-identical loss and LoRA gradients", same && ref);
    free(ref);
}

// ---- 6. save / load ---------------------------------------------------------------------------------

static char g_tmp[64];

// Adapter trained on `model` (seeded A, nonzero B) saved to dir; logits written beside it.
// Then: loaded back on the same base -> same parameters and logits; loaded on `other` (the
// same weights in the other layout) -> the same logits.
static void test_save_load(const gold *G, const char *model, const char *other, const char *dir) {
    rig R, L, O;
    keel_err err;
    keel_lora_config c = cfg7(4, 8);
    c.seed = 99;
    CHECK("save rig", rig_init(&R, model, &c, NULL, G->B, G->T, NULL));
    if (!R.m) return;
    fill_B(&R.lo, 5, 0.25f);
    const int64_t NV = (int64_t)G->B * G->T * 320;
    float *l1 = malloc(sizeof(float) * (size_t)NV), *l2 = malloc(sizeof(float) * (size_t)NV);
    rig_step(&R, G, l1, false);
    CHECK("keel_lora_save", keel_lora_save(&R.lo, dir, "tests/data/tiny-llama-hf", &err) == KEEL_OK);
    char p[512];
    snprintf(p, sizeof p, "%s/keel_logits.f32", dir);
    FILE *f = fopen(p, "wb");
    CHECK("write keel_logits.f32", f && fwrite(l1, sizeof(float), (size_t)NV, f) == (size_t)NV);
    if (f) fclose(f);
    // config: r, alpha, the seven short names
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    char *js = test_read_file(p, NULL);
    cJSON *j = js ? cJSON_Parse(js) : NULL;
    free(js);
    CHECK("adapter_config.json parses", j != NULL);
    if (j) {
        CHECK("config r", cJSON_GetObjectItem(j, "r")->valuedouble == 4);
        CHECK("config lora_alpha", cJSON_GetObjectItem(j, "lora_alpha")->valuedouble == 8);
        CHECK("config peft_type", !strcmp(cJSON_GetObjectItem(j, "peft_type")->valuestring, "LORA"));
        CHECK("config: seven target modules", cJSON_GetArraySize(cJSON_GetObjectItem(j, "target_modules")) == 7);
        cJSON_Delete(j);
    }
    // tensor names and shapes
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    keel_safetensors *st = NULL;
    CHECK("adapter opens", keel_st_open(p, &st, &err) == KEEL_OK);
    if (st) {
        const keel_tensor_info *a = keel_st_find_tensor(st, "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight");
        const keel_tensor_info *b = keel_st_find_tensor(st, "base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight");
        CHECK("28 tensors", keel_st_n_tensors(st) == 28);
        CHECK("lora_A shape (r, in)", a && a->type == KEEL_DTYPE_F32 && a->ne[1] == 4 && a->ne[0] == 160);
        CHECK("lora_B shape (out, r)", b && b->ne[1] == 32 && b->ne[0] == 4);
        if (b) { // k_proj's B in HF row order
            int i = keel_lora_find(&R.lo, "model.layers.0.self_attn.k_proj");
            float *hf = malloc(sizeof(float) * 32 * 4);
            if (R.lo.gguf_rows) rows_to_hf(hf, keel_lora_B(&R.lo, i), 32, 4, R.m->head_dim);
            else memcpy(hf, keel_lora_B(&R.lo, i), sizeof(float) * 32 * 4);
            CHECK("saved B rows in HF order", !memcmp(hf, b->data, sizeof(float) * 32 * 4));
            free(hf);
        }
        keel_st_close(st);
    }
    // back on the same base
    CHECK("reload rig", rig_init(&L, model, NULL, dir, G->B, G->T, NULL));
    if (L.m) {
        CHECK("reloaded parameters bit-identical", L.tm.p.n_floats == R.tm.p.n_floats &&
                                                     !memcmp(L.tm.p.w, R.tm.p.w, R.tm.p.n_floats * sizeof(float)));
        rig_step(&L, G, l2, false);
        CHECK("reloaded logits identical", !memcmp(l1, l2, sizeof(float) * (size_t)NV));
        rig_free(&L);
    }
    // on the other layout of the same weights
    CHECK("other-base rig", rig_init(&O, other, NULL, dir, G->B, G->T, NULL));
    if (O.m) {
        rig_step(&O, G, l2, false);
        double d = max_abs_diff(l1, l2, (size_t)NV);
        printf("adapter trained on %s, saved, applied to %s: logits max abs %.2e\n", model, other, d);
        CHECK("same logits on the other layout (1e-4)", d <= 1e-4);
        rig_free(&O);
    }
    rig_free(&R);
    free(l1), free(l2);
}

// ---- 7. dropout --------------------------------------------------------------------------------------

static void test_dropout(const gold *G) {
    rig R, Z;
    keel_lora_config c = cfg7(4, 8);
    c.dropout = 0.3;
    keel_lora_config cz = cfg7(4, 8);
    CHECK("dropout rig", rig_init(&R, "tests/data/tiny-llama-hf", &c, NULL, G->B, G->T, NULL));
    CHECK("no-dropout rig", rig_init(&Z, "tests/data/tiny-llama-hf", &cz, NULL, G->B, G->T, NULL));
    if (!R.m || !Z.m) return;
    fill_B(&R.lo, 8, 0.2f);
    fill_B(&Z.lo, 8, 0.2f);
    float lz = rig_step(&Z, G, NULL, true);
    float *gz = malloc(Z.tm.p.n_floats * sizeof(float));
    memcpy(gz, Z.tm.p.g, Z.tm.p.n_floats * sizeof(float));
    float le = rig_step(&R, G, NULL, true); // not training: no dropout
    CHECK("eval mode: dropout off (same loss)", le == lz);
    CHECK("eval mode: same gradients", !memcmp(gz, R.tm.p.g, Z.tm.p.n_floats * sizeof(float)));
    keel_lora_set_train(&R.lo, true, 3);
    float l3 = rig_step(&R, G, NULL, true);
    float *g3 = malloc(R.tm.p.n_floats * sizeof(float));
    memcpy(g3, R.tm.p.g, R.tm.p.n_floats * sizeof(float));
    float l3b = rig_step(&R, G, NULL, true);
    CHECK("same step: same mask (loss and gradients)",
          l3 == l3b && !memcmp(g3, R.tm.p.g, R.tm.p.n_floats * sizeof(float)));
    keel_lora_set_train(&R.lo, true, 4);
    float l4 = rig_step(&R, G, NULL, true);
    printf("dropout 0.3: loss eval %.6f, step 3 %.6f, step 4 %.6f\n", lz, l3, l4);
    CHECK("dropout changes the loss", l3 != lz);
    CHECK("next step: another mask", l4 != l3);
    free(gz), free(g3);
    rig_free(&R);
    rig_free(&Z);
}

// ---- 8. targets and config errors ----------------------------------------------------------------------

static int count_attach(const char *const *tg, size_t n, keel_status *st_out, keel_err *err) {
    keel_model *m = test_load_model("tests/data/tiny-llama-hf", n_threads);
    if (!m) return -1;
    keel_train_model tm;
    keel_lora lo;
    int cnt = -1;
    if (keel_train_model_init(&tm, m, test_sel_none, NULL, err) == KEEL_OK) {
        keel_lora_config c = keel_lora_default_config();
        c.r = 2, c.targets = tg, c.n_targets = n;
        *st_out = keel_lora_attach(&lo, &tm, &c, err);
        if (*st_out == KEEL_OK) {
            cnt = lo.n;
            CHECK("params: 2 per module", tm.p.n == 2 * lo.n);
            keel_lora_free(&lo);
        }
        keel_train_model_free(&tm);
    }
    keel_model_free(m);
    return cnt;
}

static void test_targets(void) {
    keel_err err;
    keel_status st = KEEL_OK;
    CHECK("default: q_proj, v_proj", count_attach(NULL, 0, &st, &err) == 4);
    const char *g1[1] = {"model.layers.1.*"};
    CHECK("glob: all of layer 1", count_attach(g1, 1, &st, &err) == 7);
    const char *g2[1] = {"model.layers.[01].self_attn.?_proj"};
    CHECK("glob: attention of both layers", count_attach(g2, 1, &st, &err) == 8);
    const char *g3[2] = {"self_attn.o_proj", "model.layers.0.mlp.up_proj"};
    CHECK("suffix names", count_attach(g3, 2, &st, &err) == 3);
    const char *g4[1] = {"proj"}; // PEFT's rule: whole dotted components only
    CHECK("a partial name matches nothing", count_attach(g4, 1, &st, &err) == -1 && st == KEEL_ERR_INVALID);
    CHECK("error names the target", strstr(err.msg, "\"proj\"") != NULL);
    const char *g5[1] = {"lm_head"};
    CHECK("lm_head is not a target", count_attach(g5, 1, &st, &err) == -1 && st == KEEL_ERR_INVALID);

    keel_model *m = test_load_model("tests/data/tiny-llama-hf", n_threads);
    if (!m) return;
    keel_train_model tm;
    keel_lora lo;
    CHECK("tm", keel_train_model_init(&tm, m, test_sel_none, NULL, &err) == KEEL_OK);
    keel_lora_config c = cfg7(4, 8);
    c.r = 0;
    CHECK("r = 0 rejected", keel_lora_attach(&lo, &tm, &c, &err) == KEEL_ERR_INVALID);
    c.r = 65;
    CHECK("r > n_in rejected", keel_lora_attach(&lo, &tm, &c, &err) == KEEL_ERR_INVALID && strstr(err.msg, "rank 65"));
    c = cfg7(4, 0);
    CHECK("alpha = 0 rejected", keel_lora_attach(&lo, &tm, &c, &err) == KEEL_ERR_INVALID);
    c = cfg7(4, 8);
    c.dropout = 1.0;
    CHECK("dropout = 1 rejected", keel_lora_attach(&lo, &tm, &c, &err) == KEEL_ERR_INVALID);
    CHECK("nothing appended by failures", tm.p.n == 0);
    c = cfg7(16, 8);
    c.use_rslora = true;
    CHECK("rsLoRA attach", keel_lora_attach(&lo, &tm, &c, &err) == KEEL_OK);
    CHECK("rsLoRA scale alpha / sqrt(r)", lo.scale == 2.0f);
    { // gaussian init: std 1/r
        keel_train_model tg;
        keel_lora lg;
        keel_lora_config cg = cfg7(8, 8);
        cg.init = KEEL_LORA_GAUSSIAN;
        CHECK("tm gaussian", keel_train_model_init(&tg, m, test_sel_none, NULL, &err) == KEEL_OK);
        CHECK("gaussian attach", keel_lora_attach(&lg, &tg, &cg, &err) == KEEL_OK);
        double s2 = 0, cnt = 0;
        for (int i = 0; i < lg.n; i++)
            for (int64_t k = 0; k < lg.r * lg.mods[i].n_in; k++) s2 += (double)keel_lora_A(&lg, i)[k] * keel_lora_A(&lg, i)[k], cnt++;
        printf("gaussian init: std %.4f (want 1/r = %.4f) over %.0f values\n", sqrt(s2 / cnt), 1.0 / 8, cnt);
        CHECK_CLOSE("gaussian init std 1/r", sqrt(s2 / cnt), 1.0 / 8, 0.005);
        keel_lora_free(&lg);
        keel_train_model_free(&tg);
        cg.init = (keel_lora_init)7;
        CHECK("tm bad init", keel_train_model_init(&tg, m, test_sel_none, NULL, &err) == KEEL_OK);
        CHECK("unknown init rejected", keel_lora_attach(&lg, &tg, &cg, &err) == KEEL_ERR_INVALID);
        keel_train_model_free(&tg);
    }
    keel_lora lo2;
    CHECK("second LoRA on the same linears rejected",
          keel_lora_attach(&lo2, &tm, &c, &err) == KEEL_ERR_INVALID && strstr(err.msg, "already has an adapter"));
    // partial targets save as full module names and load back the same modules
    keel_lora_free(&lo);
    CHECK("adapters unset by free", tm.layers[0].wq.adapter == NULL);
    keel_train_model_free(&tm);
    CHECK("tm again", keel_train_model_init(&tm, m, test_sel_none, NULL, &err) == KEEL_OK);
    const char *g6[1] = {"model.layers.1.self_attn.[qv]_proj"};
    c = cfg7(2, 4);
    c.targets = g6, c.n_targets = 1;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/partial", g_tmp);
    CHECK("partial attach", keel_lora_attach(&lo, &tm, &c, &err) == KEEL_OK && lo.n == 2);
    CHECK("partial save", keel_lora_save(&lo, dir, NULL, &err) == KEEL_OK);
    char p[256];
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    char *js = test_read_file(p, NULL);
    CHECK("full module names in target_modules", js && strstr(js, "\"model.layers.1.self_attn.q_proj\"") &&
                                                     strstr(js, "\"model.layers.1.self_attn.v_proj\""));
    free(js);
    keel_lora_free(&lo);
    keel_train_model_free(&tm);
    CHECK("tm 3", keel_train_model_init(&tm, m, test_sel_none, NULL, &err) == KEEL_OK);
    CHECK("partial load", keel_lora_load(&lo, &tm, dir, 0, &err) == KEEL_OK && lo.n == 2 &&
                              keel_lora_find(&lo, "model.layers.1.self_attn.v_proj") == 1 && lo.scale == 2.0f);
    keel_lora_free(&lo);
    keel_train_model_free(&tm);
    keel_model_free(m);
}

// ---- 9. bad adapter directories -------------------------------------------------------------------------

static keel_status try_load(const char *dir, keel_err *err) {
    keel_model *m = test_load_model("tests/data/tiny-llama-hf", n_threads);
    if (!m) return KEEL_ERR_IO;
    keel_train_model tm;
    keel_lora lo;
    keel_status st = keel_train_model_init(&tm, m, test_sel_none, NULL, err);
    if (!st) {
        st = keel_lora_load(&lo, &tm, dir, 0, err);
        if (!st) keel_lora_free(&lo);
        else CHECK("failed load sets no adapter", tm.layers[0].wq.adapter == NULL && tm.layers[1].w_down.adapter == NULL);
        keel_train_model_free(&tm);
    }
    keel_model_free(m);
    return st;
}

// Write a config text and tensors (names, (rows, cols)) with zero data into dir.
static void write_bad(const char *dir, const char *config, const char *const *names, const int64_t (*shape)[2], int n) {
    mkdir(dir, 0755);
    char p[256];
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(config, f);
        fclose(f);
    }
    static float zeros[160 * 8];
    keel_st_entry e[4];
    memset(e, 0, sizeof e);
    for (int i = 0; i < n; i++) {
        e[i].name = names[i], e[i].type = KEEL_DTYPE_F32, e[i].n_dims = 2;
        e[i].shape[0] = shape[i][0], e[i].shape[1] = shape[i][1], e[i].data = zeros;
    }
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    keel_err err;
    if (keel_st_write(p, e, (size_t)n, NULL, 0, &err)) fprintf(stderr, "%s\n", err.msg);
}

static void test_bad_dirs(void) {
    keel_err err;
    char dir[160];
    const char *ok_cfg = "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"bias\": \"none\"}";
    const char *qa = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
    const char *qb = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";
    const int64_t good[2][2] = {{4, 64}, {64, 4}};

    CHECK("missing directory: IO", try_load("tests/data/no-such-adapter", &err) == KEEL_ERR_IO);
    snprintf(dir, sizeof dir, "%s/good", g_tmp);
    const char *n2[2] = {qa, qb};
    write_bad(dir, ok_cfg, n2, good, 2);
    CHECK("hand-written minimal adapter loads", try_load(dir, &err) == KEEL_OK);

    snprintf(dir, sizeof dir, "%s/dora", g_tmp);
    write_bad(dir, "{\"r\": 4, \"lora_alpha\": 8, \"use_dora\": true}", n2, good, 2);
    CHECK("use_dora rejected", try_load(dir, &err) == KEEL_ERR_FORMAT && strstr(err.msg, "use_dora"));
    snprintf(dir, sizeof dir, "%s/rankpat", g_tmp);
    write_bad(dir, "{\"r\": 4, \"lora_alpha\": 8, \"rank_pattern\": {\"q_proj\": 2}}", n2, good, 2);
    CHECK("rank_pattern rejected", try_load(dir, &err) == KEEL_ERR_FORMAT && strstr(err.msg, "rank_pattern"));
    snprintf(dir, sizeof dir, "%s/nor", g_tmp);
    write_bad(dir, "{\"lora_alpha\": 8}", n2, good, 2);
    CHECK("missing r rejected", try_load(dir, &err) == KEEL_ERR_FORMAT && strstr(err.msg, "\"r\""));
    snprintf(dir, sizeof dir, "%s/badjson", g_tmp);
    write_bad(dir, "{\"r\": 4,", n2, good, 2);
    CHECK("bad JSON rejected", try_load(dir, &err) == KEEL_ERR_FORMAT);

    snprintf(dir, sizeof dir, "%s/shape", g_tmp);
    const int64_t bad[2][2] = {{4, 64}, {64, 3}};
    write_bad(dir, ok_cfg, n2, bad, 2);
    CHECK("wrong B shape rejected", try_load(dir, &err) == KEEL_ERR_FORMAT && strstr(err.msg, "lora_B") &&
                                        strstr(err.msg, "expected (64, 4)"));
    snprintf(dir, sizeof dir, "%s/onlyA", g_tmp);
    write_bad(dir, ok_cfg, n2, good, 1);
    CHECK("A without B rejected", try_load(dir, &err) == KEEL_ERR_FORMAT && strstr(err.msg, "no lora_B"));
    snprintf(dir, sizeof dir, "%s/layer9", g_tmp);
    const char *n3[2] = {"base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight", qb};
    write_bad(dir, ok_cfg, n3, good, 2);
    CHECK("layer out of range rejected", try_load(dir, &err) == KEEL_ERR_FORMAT && strstr(err.msg, "layers.9"));
    snprintf(dir, sizeof dir, "%s/embed", g_tmp);
    const char *n4[2] = {"base_model.model.model.embed_tokens.lora_embedding_A", qb};
    write_bad(dir, ok_cfg, n4, good, 2);
    CHECK("other tensors rejected", try_load(dir, &err) == KEEL_ERR_FORMAT && strstr(err.msg, "embed_tokens"));
    snprintf(dir, sizeof dir, "%s/empty", g_tmp);
    write_bad(dir, ok_cfg, n2, good, 0);
    CHECK("no tensors rejected", try_load(dir, &err) == KEEL_ERR_FORMAT);
}

// ---- 10. QLoRA-style frozen BF16 base ------------------------------------------------------------------------

static void test_frozen_bf16(const gold *G) {
    // Same bf16 weights: safetensors (HF rows) and GGUF (Meta q/k rows, tied head); both frozen in BF16.
    rig H, Q;
    keel_lora_config c = cfg7(4, 8);
    CHECK("bf16 HF rig", rig_init(&H, "tests/data/tiny-llama-hf-bf16", &c, NULL, G->B, G->T, NULL));
    if (!H.m) return;
    CHECK("base stays BF16 (QLoRA path)", H.tm.layers[0].wq.w == NULL && H.tm.layers[0].wq.base.type == KEEL_DTYPE_BF16);
    fill_B(&H.lo, 13, 0.2f);
    char dir[160];
    snprintf(dir, sizeof dir, "%s/bf16", g_tmp);
    keel_err err;
    CHECK("bf16 save", keel_lora_save(&H.lo, dir, NULL, &err) == KEEL_OK);
    float lh = rig_step(&H, G, NULL, true);
    CHECK("bf16 GGUF rig", rig_init(&Q, "tests/data/tiny-llama-bf16.gguf", NULL, dir, G->B, G->T, NULL));
    if (Q.m) {
        CHECK("GGUF base stays BF16", Q.tm.layers[1].w_down.base.type == KEEL_DTYPE_BF16);
        float lq = rig_step(&Q, G, NULL, true);
        double worst = 0;
        for (int i = 0; i < H.tm.p.n; i++) {
            const keel_tparam *p = &H.tm.p.t[i];
            const float *a = Q.tm.p.g + Q.tm.p.t[i].off;
            float *tmp = NULL;
            if (strstr(p->name, "lora_B") && (strstr(p->name, "q_proj") || strstr(p->name, "k_proj"))) {
                tmp = malloc(sizeof(float) * (size_t)(p->rows * p->cols));
                rows_to_hf(tmp, a, p->rows, p->cols, Q.m->head_dim);
                a = tmp;
            }
            worst = fmax(worst, rel_frob(a, H.tm.p.g + p->off, (size_t)(p->rows * p->cols)));
            free(tmp);
        }
        printf("frozen BF16 base, HF vs GGUF layout: loss %.7f vs %.7f, LoRA gradients worst rel %.2e\n", lh, lq, worst);
        CHECK_CLOSE("bf16: same loss in both layouts", lq, lh, 1e-5 * lh);
        CHECK("bf16: same LoRA gradients in both layouts (1e-4)", worst < 1e-4);
        rig_free(&Q);
    }
    rig_free(&H);
}

// ---- 11. allocation failures ------------------------------------------------------------------------------------

static void test_alloc_failures(void) {
    keel_model *m = test_load_model("tests/data/tiny-llama-hf", n_threads);
    if (!m) return;
    keel_err err;
    int fails = 0, oks = 0;
    bool clean = true;
    for (long n = 1; n < 40; n++) {
        keel_train_model tm;
        if (keel_train_model_init(&tm, m, test_sel_none, NULL, &err)) continue;
        keel_lora lo;
        keel_lora_config c = cfg7(2, 4);
        keel_mem_fail_after(n);
        keel_status st = keel_lora_attach(&lo, &tm, &c, &err);
        if (!st) st = keel_lora_reserve(&lo, 32, &err);
        if (!st) st = keel_lora_save(&lo, g_tmp, NULL, &err);
        keel_mem_fail_after(0);
        if (st == KEEL_OK) {
            oks++;
            keel_lora_free(&lo);
        } else {
            fails++;
            clean &= st == KEEL_ERR_NOMEM;
            if (lo.n == 0) clean &= tm.layers[0].wq.adapter == NULL; // attach failed: nothing attached
            else keel_lora_free(&lo);
        }
        keel_train_model_free(&tm);
    }
    int lfails = 0;
    int loks = 0;
    for (long n = 1; n < 400 && !loks; n++) {
        keel_train_model tm;
        if (keel_train_model_init(&tm, m, test_sel_none, NULL, &err)) continue;
        keel_lora lo;
        keel_mem_fail_after(n);
        keel_status st = keel_lora_load(&lo, &tm, g_tmp, 0, &err);
        keel_mem_fail_after(0);
        if (st == KEEL_OK) {
            keel_lora_free(&lo);
            loks++;
        } else {
            lfails++;
            clean &= st == KEEL_ERR_NOMEM && tm.layers[0].wq.adapter == NULL;
        }
        keel_train_model_free(&tm);
    }
    printf("allocation failures: attach/reserve/save %d failed cleanly, %d ok; load %d failed then succeeded\n", fails, oks, lfails);
    CHECK("every allocation failure is KEEL_ERR_NOMEM and attaches nothing", clean && fails > 3 && oks > 0 && lfails > 3 && loks == 1);
    keel_model_free(m);
}

int main(void) {
    keel_threads_set(n_threads);
    snprintf(g_tmp, sizeof g_tmp, "/tmp/keel_test_lora.XXXXXX");
    if (!mkdtemp(g_tmp)) {
        CHECK("mkdtemp", false);
        return test_report();
    }
    gold G;
    bool have = gold_load(&G);
    CHECK("golden tiny_lora loads", have);
    if (!have) return test_report();

    test_branch_fd(0.0);
    test_branch_fd(0.5);
    test_identity_and_merge(&G);
    test_peft(&G, "tests/data/tiny-llama-hf", false);
    test_peft(&G, "tests/data/tiny-llama.gguf", true);

    const char *keep = getenv("KEEL_LORA_KEEP");
    char root[256], dh[300], dg[300];
    snprintf(root, sizeof root, "%s", keep && *keep ? keep : g_tmp);
    if (keep && *keep) mkdir(root, 0755);
    snprintf(dh, sizeof dh, "%s/hf", root);
    snprintf(dg, sizeof dg, "%s/gguf", root);
    test_save_load(&G, "tests/data/tiny-llama-hf", "tests/data/tiny-llama.gguf", dh);
    test_save_load(&G, "tests/data/tiny-llama.gguf", "tests/data/tiny-llama-hf", dg);
    if (keep && *keep) printf("kept keel adapters in %s/{hf,gguf}: run tools/golden_lora.py --check %s\n", root, root);

    test_dropout(&G);
    test_threads(&G);
    test_targets();
    test_bad_dirs();
    test_frozen_bf16(&G);
    test_alloc_failures();
    printf("vs PEFT: worst logits max abs %.2e, worst lora_A/B gradient rel Frobenius %.2e\n", worst_logit, worst_grad_rel);
    gold_free(&G);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return test_report();
}
