// SPDX-License-Identifier: MIT
// test_optim.c — AdamW, gradient clipping and LR schedules (src/train/)
// against tests/golden/optim.json, made by tools/golden_optim.py with
// torch.optim.AdamW + clip_grad_norm_ + HF transformers schedules; plus
// thread-count independence (1 vs 2 threads bit-identical), the no-decay
// range bookkeeping, state save/load (resume is bit-identical) and errors.
#include "test.h"
#include "train/train.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static cJSON *load_json(const char *path) {
    char *text = NULL;
    size_t len = 0;
    if (keel_read_file(path, &text, &len, NULL) != KEEL_OK) return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    return j;
}

static cJSON *item(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

// Copy a JSON number array of length n into out (float); false on a mismatch.
static bool get_floats(const cJSON *a, float *out, size_t n) {
    if (!cJSON_IsArray(a) || (size_t)cJSON_GetArraySize(a) != n) return false;
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsNumber(e)) return false;
        out[i++] = (float)e->valuedouble;
    }
    return true;
}

static double rel_err(double got, double want) {
    return fabs(got - want) / fmax(fabs(want), 1e-6);
}

static double g_max_param_abs, g_max_param_err, g_max_lr_err, g_max_norm_err;

// ---- golden runs ------------------------------------------------------------------

static void test_golden_runs(const cJSON *gj) {
    const cJSON *layout = item(gj, "layout");
    size_t n = 0;
    const cJSON *t;
    // Offsets of the layout entries in the flat buffer, and which decay.
    size_t beg[16], end[16];
    bool decay[16];
    int nt = 0;
    cJSON_ArrayForEach(t, layout) {
        size_t cnt = 1;
        const cJSON *d;
        cJSON_ArrayForEach(d, item(t, "shape")) cnt *= (size_t)d->valuedouble;
        beg[nt] = n;
        end[nt] = n + cnt;
        decay[nt] = cJSON_IsTrue(item(t, "decay"));
        n += cnt;
        nt++;
    }
    CHECK("golden layout has 4 tensors, 147 params", nt == 4 && n == 147);
    const cJSON *grads = item(gj, "grads");
    int n_steps = cJSON_GetArraySize(grads);
    CHECK("golden has 10 steps", n_steps == 10);
    float *init = malloc(n * sizeof(float)), *p = malloc(n * sizeof(float));
    float *g = malloc(n * sizeof(float)), *want = malloc(n * sizeof(float));
    CHECK("init parses", get_floats(item(gj, "init"), init, n));

    const cJSON *run;
    cJSON_ArrayForEach(run, item(gj, "runs")) {
        const char *name = item(run, "name")->valuestring;
        keel_adamw_params hp = {
            .beta1 = cJSON_GetArrayItem(item(run, "betas"), 0)->valuedouble,
            .beta2 = cJSON_GetArrayItem(item(run, "betas"), 1)->valuedouble,
            .eps = item(run, "eps")->valuedouble,
            .weight_decay = item(run, "wd")->valuedouble,
        };
        keel_sched sc = {.lr = item(run, "lr")->valuedouble,
                         .lr_min = item(run, "lr_min")->valuedouble,
                         .warmup_steps = (int64_t)item(run, "warmup")->valuedouble,
                         .total_steps = (int64_t)item(run, "total")->valuedouble};
        CHECK("schedule name parses", keel_sched_parse(item(run, "sched")->valuestring, &sc.kind));
        CHECK("schedule checks", keel_sched_check(&sc, NULL) == KEEL_OK);
        double max_norm = item(run, "max_norm")->valuedouble;
        keel_adamw opt;
        keel_err err = {0};
        CHECK("adamw init", keel_adamw_init(&opt, n, &hp, &err) == KEEL_OK);
        for (int k = 0; k < nt; k++)
            if (!decay[k]) CHECK("no-decay range", keel_adamw_no_decay(&opt, beg[k], end[k], &err) == KEEL_OK);
        CHECK("moments not allocated before the first step", opt.m == NULL && opt.v == NULL);
        memcpy(p, init, n * sizeof(float));
        double run_param_err = 0, run_lr_err = 0, run_norm_err = 0;
        for (int s = 0; s < n_steps; s++) {
            CHECK("grad parses", get_floats(cJSON_GetArrayItem(grads, s), g, n));
            const cJSON *nj = cJSON_GetArrayItem(item(run, "norms"), s);
            if (max_norm > 0) {
                double norm = keel_grad_clip(g, n, max_norm);
                run_norm_err = fmax(run_norm_err, rel_err(norm, nj->valuedouble));
            } else {
                CHECK("no clipping: norm is null", cJSON_IsNull(nj));
            }
            double lr = keel_sched_lr(&sc, s);
            run_lr_err = fmax(run_lr_err, rel_err(lr, cJSON_GetArrayItem(item(run, "lrs"), s)->valuedouble));
            CHECK("adamw step", keel_adamw_step(&opt, p, g, lr, &err) == KEEL_OK);
            CHECK("params_after parses",
                  get_floats(cJSON_GetArrayItem(item(run, "params_after"), s), want, n));
            // Relative error with a floor of 1e-2: the parameters are O(0.5) and an
            // update O(lr), so a value that passes near zero carries the absolute
            // rounding of its earlier, larger values (PyTorch's kernels fuse
            // multiply-adds; keel does not), ~1e-9, which is not a relative error.
            for (size_t i = 0; i < n; i++) {
                double e_ = fabs((double)p[i] - want[i]);
                run_param_err = fmax(run_param_err, e_ / fmax(fabs((double)want[i]), 1e-2));
                g_max_param_abs = fmax(g_max_param_abs, e_);
            }
        }
        CHECK("step counter", opt.t == n_steps);
        printf("%-14s max rel err: params %.3g, lr %.3g, grad norm %.3g\n", name, run_param_err,
               run_lr_err, run_norm_err);
        CHECK("params match PyTorch to 1e-6 relative", run_param_err < 1e-6);
        CHECK("lrs match HF to 1e-12 relative", run_lr_err < 1e-12);
        CHECK("pre-clip norms match torch to 1e-6 relative", run_norm_err < 1e-6);
        g_max_param_err = fmax(g_max_param_err, run_param_err);
        g_max_lr_err = fmax(g_max_lr_err, run_lr_err);
        g_max_norm_err = fmax(g_max_norm_err, run_norm_err);
        keel_adamw_free(&opt);
    }
    free(init);
    free(p);
    free(g);
    free(want);
}

static void test_lr_tables(const cJSON *gj) {
    const cJSON *tb;
    int n_tables = 0;
    cJSON_ArrayForEach(tb, item(gj, "tables")) {
        keel_sched sc = {.lr = item(tb, "lr")->valuedouble,
                         .lr_min = item(tb, "lr_min")->valuedouble,
                         .warmup_steps = (int64_t)item(tb, "warmup")->valuedouble,
                         .total_steps = (int64_t)item(tb, "total")->valuedouble};
        CHECK("table kind parses", keel_sched_parse(item(tb, "kind")->valuestring, &sc.kind));
        double worst = 0;
        int s = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, item(tb, "lrs")) {
            double got = keel_sched_lr(&sc, s++);
            worst = fmax(worst, fabs(got - e->valuedouble) / fmax(fabs(e->valuedouble), 1e-300));
        }
        CHECK("LR table matches HF (1e-12 relative)", worst < 1e-12);
        if (worst >= 1e-12) fprintf(stderr, "  table %s W=%lld T=%lld: %g\n", keel_sched_name(sc.kind),
                                    (long long)sc.warmup_steps, (long long)sc.total_steps, worst);
        g_max_lr_err = fmax(g_max_lr_err, worst);
        n_tables++;
    }
    CHECK("7 LR tables", n_tables == 7);
}

// ---- determinism across thread counts ---------------------------------------------

#define BIG_N 300007 // odd size: the tails of every split are exercised

static void fill(float *x, size_t n, uint64_t seed, float scale) {
    keel_rng r;
    keel_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = keel_rng_normal(&r) * scale;
}

// Three steps with clipping and a no-decay range; returns the norms.
static void run_big(int threads, float *p, double norms[3]) {
    keel_threads_set(threads);
    keel_adamw_params hp = keel_adamw_default_params();
    hp.weight_decay = 0.1;
    keel_adamw opt;
    keel_adamw_init(&opt, BIG_N, &hp, NULL);
    keel_adamw_no_decay(&opt, 1000, 70001, NULL);
    keel_adamw_no_decay(&opt, BIG_N - 5, BIG_N, NULL);
    float *g = malloc(BIG_N * sizeof(float)), *g2 = malloc(BIG_N * sizeof(float));
    fill(p, BIG_N, 7, 0.5f);
    for (int s = 0; s < 3; s++) {
        // Two micro-batches accumulated, then averaged.
        fill(g, BIG_N, 100 + (uint64_t)s, 1.0f);
        fill(g2, BIG_N, 200 + (uint64_t)s, 2.0f);
        keel_grad_accumulate(g, g2, BIG_N);
        keel_grad_scale(g, BIG_N, 0.5f);
        norms[s] = keel_grad_clip(g, BIG_N, 1.0);
        keel_adamw_step(&opt, p, g, 1e-3 * (s + 1), NULL);
    }
    keel_adamw_free(&opt);
    free(g);
    free(g2);
}

static void test_threads(void) {
    int saved = keel_threads_get();
    float *p1 = malloc(BIG_N * sizeof(float)), *p2 = malloc(BIG_N * sizeof(float));
    double n1[3], n2[3];
    run_big(1, p1, n1);
    run_big(2, p2, n2);
    CHECK("1 vs 2 threads: bit-identical parameters", memcmp(p1, p2, BIG_N * sizeof(float)) == 0);
    CHECK("1 vs 2 threads: bit-identical norms", memcmp(n1, n2, sizeof n1) == 0);
#ifdef _OPENMP
    float *p3 = malloc(BIG_N * sizeof(float));
    double n3[3];
    run_big(3, p3, n3); // more threads than cores: still the same bits
    CHECK("1 vs 3 threads: bit-identical parameters", memcmp(p1, p3, BIG_N * sizeof(float)) == 0);
    free(p3);
#endif
    // The no-decay range really skipped the decay: with zero gradient, AdamW
    // leaves no-decay elements unchanged and shrinks the others by 1 - lr*wd.
    keel_adamw_params hp = keel_adamw_default_params();
    hp.weight_decay = 0.5;
    keel_adamw opt;
    keel_adamw_init(&opt, BIG_N, &hp, NULL);
    keel_adamw_no_decay(&opt, 10, 20, NULL);
    float *g = calloc(BIG_N, sizeof(float));
    fill(p1, BIG_N, 9, 1.0f);
    memcpy(p2, p1, BIG_N * sizeof(float));
    keel_adamw_step(&opt, p1, g, 0.1, NULL);
    bool nd_same = true, d_ok = true;
    for (size_t i = 0; i < BIG_N; i++) {
        if (i >= 10 && i < 20) nd_same &= p1[i] == p2[i];
        else d_ok &= p1[i] == p2[i] * (float)(1.0 - 0.1 * 0.5);
    }
    CHECK("zero grad: no-decay elements unchanged", nd_same);
    CHECK("zero grad: decayed elements scaled by 1 - lr*wd", d_ok);
    keel_adamw_free(&opt);
    free(g);
    free(p1);
    free(p2);
    keel_threads_set(saved);
}

// ---- state save / load: a resumed run continues bit for bit ------------------------------

static void test_state_io(void) {
    enum { N = 5000 };
    char dir[] = "/tmp/keel-optim-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK("mkdtemp", false);
        return;
    }
    char *path = keel_path_join(dir, "optimizer.safetensors");
    float *p = malloc(N * sizeof(float)), *g = malloc(N * sizeof(float)), *q = malloc(N * sizeof(float));
    keel_adamw_params hp = keel_adamw_default_params();
    keel_adamw a, b;
    keel_err err = {0};
    keel_adamw_init(&a, N, &hp, NULL);
    keel_adamw_no_decay(&a, 100, 200, NULL);
    fill(p, N, 1, 1.0f);
    // Saving before the first step writes zero moments and step 0.
    CHECK("save before any step", keel_adamw_save(&a, path, NULL, 0, &err) == KEEL_OK);
    for (int s = 0; s < 3; s++) {
        fill(g, N, 50 + (uint64_t)s, 1.0f);
        keel_adamw_step(&a, p, g, 1e-3, NULL);
    }
    keel_st_kv extra[2] = {{"data.epoch", "1"}, {"data.position", "12345"}};
    CHECK("save after 3 steps", keel_adamw_save(&a, path, extra, 2, &err) == KEEL_OK);
    memcpy(q, p, N * sizeof(float));
    keel_adamw_init(&b, N, &hp, NULL);
    keel_adamw_no_decay(&b, 100, 200, NULL);
    CHECK("load", keel_adamw_load(&b, path, &err) == KEEL_OK);
    CHECK("step restored", b.t == 3);
    CHECK("moments restored bit for bit", b.m && memcmp(a.m, b.m, N * sizeof(float)) == 0 &&
                                              memcmp(a.v, b.v, N * sizeof(float)) == 0);
    for (int s = 3; s < 6; s++) {
        fill(g, N, 50 + (uint64_t)s, 1.0f);
        keel_adamw_step(&a, p, g, 1e-3, NULL);
        keel_adamw_step(&b, q, g, 1e-3, NULL);
    }
    CHECK("resumed run == uninterrupted run (bit-identical)", memcmp(p, q, N * sizeof(float)) == 0);
    keel_safetensors *st = NULL;
    CHECK("state file opens", keel_st_open(path, &st, &err) == KEEL_OK);
    const char *pos = st ? keel_st_metadata(st, "data.position") : NULL;
    CHECK("extra metadata kept", pos && strcmp(pos, "12345") == 0);
    const char *b1 = st ? keel_st_metadata(st, "beta1") : NULL;
    CHECK("beta1 recorded", b1 && strtod(b1, NULL) == 0.9);
    keel_st_close(st);
    keel_adamw c;
    keel_adamw_init(&c, N + 1, &hp, NULL);
    CHECK("size mismatch rejected", keel_adamw_load(&c, path, &err) == KEEL_ERR_FORMAT);
    CHECK("message names the sizes", strstr(err.msg, "5000") != NULL && strstr(err.msg, "5001") != NULL);
    CHECK("failed load leaves state alone", c.m == NULL && c.t == 0);
    keel_adamw_free(&c);
    keel_adamw_init(&c, 147, &hp, NULL);
    CHECK("another safetensors file rejected",
          keel_adamw_load(&c, "tests/golden/st_write.safetensors", &err) == KEEL_ERR_FORMAT);
    CHECK("message says why", strstr(err.msg, "not a keel AdamW state") != NULL);
    CHECK("missing file is an I/O error", keel_adamw_load(&c, "/nonexistent/x", &err) == KEEL_ERR_IO);
    keel_st_kv dup = {"step", "7"};
    CHECK("extra key clashing with ours rejected", keel_adamw_save(&a, path, &dup, 1, &err) == KEEL_ERR_INVALID);
    keel_adamw_free(&c);
    keel_adamw_free(&a);
    keel_adamw_free(&b);
    unlink(path);
    rmdir(dir);
    free(path);
    free(p);
    free(g);
    free(q);
}

// ---- helpers and errors ---------------------------------------------------------------

static void test_ranges_and_errors(void) {
    keel_adamw_params hp = keel_adamw_default_params();
    keel_adamw opt;
    keel_err err = {0};
    CHECK("n = 0 rejected", keel_adamw_init(&opt, 0, &hp, &err) == KEEL_ERR_INVALID);
    hp.beta1 = 1.0;
    CHECK("beta1 = 1 rejected", keel_adamw_init(&opt, 10, &hp, &err) == KEEL_ERR_INVALID);
    CHECK("message names beta1", strstr(err.msg, "beta1") != NULL);
    hp = keel_adamw_default_params();
    hp.weight_decay = -1;
    CHECK("negative wd rejected", keel_adamw_init(&opt, 10, &hp, &err) == KEEL_ERR_INVALID);
    hp = keel_adamw_default_params();
    CHECK("init", keel_adamw_init(&opt, 100, &hp, &err) == KEEL_OK);
    CHECK("range past end rejected", keel_adamw_no_decay(&opt, 90, 101, &err) == KEEL_ERR_INVALID);
    CHECK("reversed range rejected", keel_adamw_no_decay(&opt, 50, 40, &err) == KEEL_ERR_INVALID);
    keel_adamw_no_decay(&opt, 50, 60, NULL);
    keel_adamw_no_decay(&opt, 10, 20, NULL);
    keel_adamw_no_decay(&opt, 30, 30, NULL); // empty: ignored
    keel_adamw_no_decay(&opt, 20, 25, NULL); // touches [10,20): merged
    keel_adamw_no_decay(&opt, 55, 70, NULL); // overlaps [50,60): merged
    keel_adamw_no_decay(&opt, 0, 5, NULL);
    CHECK("ranges sorted and merged", opt.n_no_decay == 3 && opt.no_decay[0].begin == 0 &&
                                          opt.no_decay[0].end == 5 && opt.no_decay[1].begin == 10 &&
                                          opt.no_decay[1].end == 25 && opt.no_decay[2].begin == 50 &&
                                          opt.no_decay[2].end == 70);
    keel_adamw_no_decay(&opt, 3, 60, NULL); // swallows everything up to 70
    CHECK("covering range merges all", opt.n_no_decay == 1 && opt.no_decay[0].begin == 0 &&
                                           opt.no_decay[0].end == 70);
    float p[100] = {0}, g[100] = {0};
    CHECK("negative lr rejected", keel_adamw_step(&opt, p, g, -1.0, &err) == KEEL_ERR_INVALID);
    CHECK("NaN lr rejected", keel_adamw_step(&opt, p, g, NAN, &err) == KEEL_ERR_INVALID);
    CHECK("rejected step did not count", opt.t == 0);
    keel_mem_fail_after(1);
    CHECK("moment allocation failure is NOMEM", keel_adamw_step(&opt, p, g, 1e-3, &err) == KEEL_ERR_NOMEM);
    keel_mem_fail_after(0);
    CHECK("failed step did not count", opt.t == 0 && opt.m == NULL);
    CHECK("step after failure works", keel_adamw_step(&opt, p, g, 1e-3, &err) == KEEL_OK && opt.t == 1);
    keel_adamw_free(&opt);
    keel_adamw_free(NULL);

    // Norm / clip / scale on small known values.
    float x[5] = {3, 4, 0, 0, 0};
    CHECK_CLOSE("norm of (3,4)", keel_grad_norm(x, 5), 5.0, 0);
    CHECK_CLOSE("norm of empty", keel_grad_norm(x, 0), 0.0, 0);
    double nn = keel_grad_clip(x, 5, 1.0);
    CHECK_CLOSE("clip returns pre-clip norm", nn, 5.0, 0);
    CHECK_CLOSE("clipped to max_norm / (norm + 1e-6)", x[0], 3.0f * (float)(1.0 / (5.0 + 1e-6)), 0);
    float y[2] = {0.3f, 0.4f};
    keel_grad_clip(y, 2, 1.0);
    CHECK("below max_norm: unchanged", y[0] == 0.3f && y[1] == 0.4f);
    keel_grad_clip(y, 2, 0.0);
    CHECK("max_norm 0 only measures", y[0] == 0.3f);
    keel_grad_scale(y, 2, 0.25f);
    CHECK("scale", y[0] == 0.3f * 0.25f && y[1] == 0.4f * 0.25f);
    keel_grad_zero(y, 2);
    CHECK("zero", y[0] == 0 && y[1] == 0);

    // Schedules: argument checks and edge values.
    keel_sched sc = {.kind = KEEL_SCHED_COSINE, .lr = 1e-3, .lr_min = 2e-3, .warmup_steps = 2, .total_steps = 10};
    CHECK("lr_min > lr rejected", keel_sched_check(&sc, &err) == KEEL_ERR_INVALID);
    CHECK("message names lr_min", strstr(err.msg, "lr_min") != NULL);
    sc.lr_min = 0;
    sc.warmup_steps = -1;
    CHECK("negative warmup rejected", keel_sched_check(&sc, &err) == KEEL_ERR_INVALID);
    sc.warmup_steps = 2;
    sc.kind = (keel_sched_kind)7;
    CHECK("unknown kind rejected", keel_sched_check(&sc, &err) == KEEL_ERR_INVALID);
    sc.kind = KEEL_SCHED_COSINE;
    CHECK("valid schedule", keel_sched_check(&sc, &err) == KEEL_OK);
    CHECK("warmup starts at 0", keel_sched_lr(&sc, 0) == 0.0);
    CHECK("peak right after warmup", keel_sched_lr(&sc, 2) == 1e-3);
    CHECK_CLOSE("cosine reaches 0 at total", keel_sched_lr(&sc, 10), 0.0, 1e-18);
    keel_sched_kind k;
    CHECK("parse unknown name fails", !keel_sched_parse("step", &k));
    CHECK("names", strcmp(keel_sched_name(KEEL_SCHED_LINEAR), "linear") == 0);
}

int main(void) {
    cJSON *gj = load_json("tests/golden/optim.json");
    CHECK("read tests/golden/optim.json", gj != NULL);
    if (gj) {
        test_golden_runs(gj);
        test_lr_tables(gj);
        cJSON_Delete(gj);
    }
    test_threads();
    test_state_io();
    test_ranges_and_errors();
    printf("max err vs PyTorch/HF: params %.3g relative (%.3g absolute), lr %.3g, grad norm %.3g\n",
           g_max_param_err, g_max_param_abs, g_max_lr_err, g_max_norm_err);
    return test_report();
}
