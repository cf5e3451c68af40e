// SPDX-License-Identifier: MIT
// test_packing.c — packed training rows (several examples in one row, kept
// apart by segments): (1) the segment-aware kernels of ops/grad.h —
// keel_op_rope_train_seg equals plain RoPE applied to each segment alone, and
// keel_op_attention_train_fwd_seg / _bwd_seg against a double-precision
// block-diagonal causal reference and central finite differences (method and
// tolerance as tests/unit/test_grad.c); (2) the key property, on stories260K
// (GGUF, Meta-order RoPE) and the tiny HF Llama (NeoX-order RoPE): a packed
// batch gives each example the loss it has alone, and the gradient equals the
// sum of the examples' own gradients weighted by their share of the counted
// tokens (packed loss = sum over all counted tokens / their count), to 1e-5
// relative; (3) keel_train_run with data.packing: true trains (loss falls),
// and stop + --resume reproduces the uninterrupted run's metrics.
#include "model/train.h"
#include "ops/grad.h"
#include "test.h"
#include "test_fs.h"
#include "train/loop.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#define FD_H 1e-6
#define TOL 3e-5

static keel_rng rng;

static float rnd(void) { return 2.0f * keel_rng_uniform(&rng) - 1.0f; }
static void fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * rnd();
}
static double *to_d(const float *x, size_t n) {
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

// max |a - ref| / max |ref|
static double rel_max(const float *a, const double *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        num = d > num ? d : num;
        den = fabs(ref[i]) > den ? fabs(ref[i]) : den;
    }
    return den > 0 ? num / den : num;
}

// ---- (1) kernels ------------------------------------------------------------------------------

// Segment starts of two rows of T = 7: row 0 {0, 3, 7}, row 1 {0, 1, 4, 7}.
static const int32_t SEG0[2 * 7] = {0, 0, 0, 3, 3, 3, 3, 0, 1, 1, 1, 4, 4, 4};

static void test_rope_seg(keel_rope_style st) {
    const int64_t B = 2, T = 7;
    const int nh = 3, hd = 6, n_rot = 4;
    const size_t n = (size_t)(B * T * nh * hd);
    float *x = malloc(n * 4), *y = malloc(n * 4), *ref = malloc(n * 4), *cs = malloc(sizeof(float) * (size_t)T * n_rot);
    fill(x, n, 1.0f);
    keel_rope_table(cs, 0, (int32_t)T, n_rot, 10000.0f);
    for (int inv = 0; inv < 2; inv++) {
        memcpy(y, x, n * 4);
        keel_op_rope_train_seg(y, cs, SEG0, B, T, nh, hd, n_rot, st, inv);
        // reference: each segment rotated alone as a row of its own length
        memcpy(ref, x, n * 4);
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < T; t++) {
                int64_t a = SEG0[b * T + t];
                if (a != t) continue; // a segment start
                int64_t e = t + 1;
                while (e < T && SEG0[b * T + e] == a) e++;
                keel_op_rope_train(ref + (size_t)(b * T + a) * nh * hd, cs, 1, e - a, nh, hd, n_rot, st, inv);
            }
        char msg[96];
        snprintf(msg, sizeof msg, "rope seg (%s, %s) = RoPE per segment", st == KEEL_ROPE_NORM ? "norm" : "neox",
                 inv ? "inverse" : "forward");
        CHECK(msg, !memcmp(y, ref, n * 4));
    }
    memcpy(y, x, n * 4);
    memcpy(ref, x, n * 4);
    keel_op_rope_train_seg(y, cs, NULL, B, T, nh, hd, n_rot, st, false);
    keel_op_rope_train(ref, cs, B, T, nh, hd, n_rot, st, false);
    CHECK("rope seg NULL = rope", !memcmp(y, ref, n * 4));
    free(x), free(y), free(ref), free(cs);
}

typedef struct att_ctx {
    int64_t B, T;
    int NH, NKV, hd;
    double *q, *k, *v, *dy;
    const int32_t *seg0;
} att_ctx;

// out (B, T, NH*hd) in double: softmax over j in [seg0[i], i].
static void att_ref(double *out, const att_ctx *c) {
    const int64_t Qd = (int64_t)c->NH * c->hd, Kd = (int64_t)c->NKV * c->hd;
    double *p = malloc((size_t)c->T * sizeof *p);
    for (int64_t b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++) {
            int g = h / (c->NH / c->NKV);
            for (int64_t i = 0; i < c->T; i++) {
                int64_t lo = c->seg0[b * c->T + i];
                const double *qi = c->q + (b * c->T + i) * Qd + h * c->hd;
                double mx = -INFINITY, sum = 0;
                for (int64_t j = lo; j <= i; j++) {
                    const double *kj = c->k + (b * c->T + j) * Kd + g * c->hd;
                    double s = 0;
                    for (int d = 0; d < c->hd; d++) s += qi[d] * kj[d];
                    p[j] = s / sqrt((double)c->hd);
                    mx = p[j] > mx ? p[j] : mx;
                }
                for (int64_t j = lo; j <= i; j++) sum += (p[j] = exp(p[j] - mx));
                double *o = out + (b * c->T + i) * Qd + h * c->hd;
                for (int d = 0; d < c->hd; d++) {
                    double s = 0;
                    for (int64_t j = lo; j <= i; j++) s += p[j] / sum * c->v[(b * c->T + j) * Kd + g * c->hd + d];
                    o[d] = s;
                }
            }
        }
    free(p);
}

static double att_loss(void *p) {
    att_ctx *c = p;
    size_t n = (size_t)(c->B * c->T * c->NH * c->hd);
    double *o = malloc(n * sizeof(double)), L = 0;
    att_ref(o, c);
    for (size_t i = 0; i < n; i++) L += o[i] * c->dy[i];
    free(o);
    return L;
}

static void fd(double *x, size_t n, att_ctx *c, double *g) {
    for (size_t i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + FD_H;
        double lp = att_loss(c);
        x[i] = x0 - FD_H;
        double lm = att_loss(c);
        x[i] = x0;
        g[i] = (lp - lm) / (2 * FD_H);
    }
}

static void test_attention_seg(int NH, int NKV, int nt) {
    const int64_t B = 2, T = 7;
    const int hd = 5;
    const size_t nq = (size_t)(B * T * NH * hd), nk = (size_t)(B * T * NKV * hd), np = (size_t)(B * NH * T * T);
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *dy = malloc(nq * 4);
    float *out = malloc(nq * 4), *P = malloc(np * 4), *out0 = malloc(nq * 4), *P0 = malloc(np * 4);
    float *dq = malloc(nq * 4), *dk = malloc(nk * 4), *dv = malloc(nk * 4);
    float *dq0 = malloc(nq * 4), *dk0 = malloc(nk * 4), *dv0 = malloc(nk * 4);
    fill(q, nq, 1.5f);
    fill(k, nk, 1.5f);
    fill(v, nk, 1.0f);
    fill(dy, nq, 1.0f);
    att_ctx c = {B, T, NH, NKV, hd, to_d(q, nq), to_d(k, nk), to_d(v, nk), to_d(dy, nq), SEG0};
    keel_op_attention_train_fwd_seg(out, P, q, k, v, SEG0, B, T, NH, NKV, hd, nt);
    double *od = malloc(nq * sizeof(double));
    att_ref(od, &c);
    char msg[96];
    double e = rel_max(out, od, nq);
    snprintf(msg, sizeof msg, "attention seg %d/%d forward (rel err %.2e)", NH, NKV, e);
    CHECK(msg, e <= TOL);
    bool block = true; // P_ij = 0 unless seg0[i] <= j <= i
    for (int64_t r = 0; r < B * NH * T; r++) {
        int64_t b = r / (NH * T), i = r % T;
        for (int64_t j = 0; j < T; j++)
            if (j < SEG0[b * T + i] || j > i) block &= P[r * T + j] == 0.0f;
    }
    CHECK("attention seg: P block-diagonal causal", block);
    keel_err err;
    keel_ops_scratch s;
    keel_ops_scratch_init(&s, nt, keel_grad_scratch_floats(8, T), 0, &err);
    fill(dk, nk, 7.0f); // must be overwritten
    keel_op_attention_bwd_seg(dq, dk, dv, dy, P, q, k, v, SEG0, B, T, NH, NKV, hd, &s);
    double *gq = malloc(nq * 8), *gk = malloc(nk * 8), *gv = malloc(nk * 8);
    fd(c.q, nq, &c, gq);
    fd(c.k, nk, &c, gk);
    fd(c.v, nk, &c, gv);
    double eq = rel_max(dq, gq, nq), ek = rel_max(dk, gk, nk), ev = rel_max(dv, gv, nk);
    snprintf(msg, sizeof msg, "attention seg %d/%d dq dk dv vs FD (%d threads; %.1e %.1e %.1e)", NH, NKV, nt, eq, ek, ev);
    printf("%s\n", msg);
    CHECK(msg, eq <= TOL && ek <= TOL && ev <= TOL);
    // NULL segments: the plain causal kernels, bit for bit
    keel_op_attention_train_fwd(out0, P0, q, k, v, B, T, NH, NKV, hd, nt);
    keel_op_attention_train_fwd_seg(out, P, q, k, v, NULL, B, T, NH, NKV, hd, nt);
    CHECK("attention seg NULL = causal forward", !memcmp(out, out0, nq * 4) && !memcmp(P, P0, np * 4));
    keel_op_attention_bwd(dq0, dk0, dv0, dy, P0, q, k, v, B, T, NH, NKV, hd, &s);
    keel_op_attention_bwd_seg(dq, dk, dv, dy, P, q, k, v, NULL, B, T, NH, NKV, hd, &s);
    CHECK("attention seg NULL = causal backward",
          !memcmp(dq, dq0, nq * 4) && !memcmp(dk, dk0, nk * 4) && !memcmp(dv, dv0, nk * 4));
    keel_ops_scratch_free(&s);
    free(q), free(k), free(v), free(dy), free(out), free(P), free(out0), free(P0);
    free(dq), free(dk), free(dv), free(dq0), free(dk0), free(dv0);
    free(c.q), free(c.k), free(c.v), free(c.dy), free(od), free(gq), free(gk), free(gv);
}

// ---- (2) packed batch = examples alone ---------------------------------------------------------

// Two rows of T = 16: row 0 packs examples of 5, 7 and 4 tokens; row 1 packs 6
// and 8 tokens and 2 padding positions.
#define PB 2
#define PT 16
#define PE 5
static const int32_t EX_ROW[PE] = {0, 0, 0, 1, 1}, EX_AT[PE] = {0, 5, 12, 0, 6}, EX_LEN[PE] = {5, 7, 4, 6, 8};

static void test_model_packed(const char *path, const char *label) {
    keel_model_params mp = keel_model_default_params();
    mp.n_threads = 1;
    keel_model *m = NULL;
    keel_err err = {0};
    if (keel_model_load(path, &mp, &m, &err) != KEEL_OK) {
        fprintf(stderr, "%s: %s\n", label, err.msg);
        CHECK("model loads", false);
        return;
    }
    keel_train_model tm;
    if (keel_train_model_init(&tm, m, NULL, NULL, &err) != KEEL_OK) {
        CHECK("train model", false);
        keel_model_free(m);
        return;
    }
    const int64_t V = m->desc.n_vocab, N = PB * PT;
    const size_t nf = tm.p.n_floats;
    // tokens, targets, mask, segment starts of the packed batch
    int32_t tok[PB * PT], tgt[PB * PT], seg[PB * PT];
    uint8_t mask[PB * PT];
    for (int64_t n = 0; n < N; n++) tok[n] = (int32_t)(keel_rng_u64(&rng) % (uint64_t)V), tgt[n] = 0, mask[n] = 0;
    for (int64_t n = 0; n < N; n++) seg[n] = (int32_t)(n % PT); // padding: a segment per position
    for (int e = 0; e < PE; e++) {
        int32_t *t = tok + EX_ROW[e] * PT + EX_AT[e];
        for (int i = 0; i < EX_LEN[e]; i++) {
            int64_t n = EX_ROW[e] * PT + EX_AT[e] + i;
            seg[n] = EX_AT[e];
            if (i + 1 < EX_LEN[e]) tgt[n] = t[i + 1], mask[n] = 1;
        }
        // example 1 trains on its second half only (a prompt/completion mask)
        if (e == 1)
            for (int i = 0; i < 3; i++) mask[EX_ROW[e] * PT + EX_AT[e] + i] = 0;
    }
    keel_train_acts a;
    CHECK("packed acts", keel_train_acts_init(&a, &tm, PB, PT, &err) == KEEL_OK);
    float loss = 0;
    keel_train_zero_grad(&tm);
    CHECK("packed forward", keel_train_forward_seg(&tm, &a, tok, tgt, mask, seg, &loss, &err) == KEEL_OK);
    double lp[PE] = {0}, cnt[PE] = {0}, ctot = 0;
    for (int e = 0; e < PE; e++)
        for (int i = 0; i < EX_LEN[e]; i++) {
            int64_t n = EX_ROW[e] * PT + EX_AT[e] + i;
            if (!mask[n]) continue;
            lp[e] += (double)a.lse[n] - (double)a.logits[n * V + tgt[n]];
            cnt[e]++, ctot++;
        }
    keel_train_backward(&tm, &a);
    float *g_packed = malloc(nf * sizeof(float));
    memcpy(g_packed, tm.p.g, nf * sizeof(float));
    // the same examples alone, unpacked: losses, and gradients weighted by cnt_e / ctot
    double *g_ref = calloc(nf, sizeof(double)), worst_loss = 0;
    for (int e = 0; e < PE; e++) {
        keel_train_acts a1;
        int32_t L = EX_LEN[e];
        if (keel_train_acts_init(&a1, &tm, 1, L, &err) != KEEL_OK) {
            CHECK("alone acts", false);
            continue;
        }
        int64_t o = EX_ROW[e] * PT + EX_AT[e];
        float l1 = 0;
        keel_train_zero_grad(&tm);
        CHECK("alone forward", keel_train_forward(&tm, &a1, tok + o, tgt + o, mask + o, &l1, &err) == KEEL_OK);
        keel_train_backward(&tm, &a1);
        double w = cnt[e] / ctot, pe = lp[e] / cnt[e];
        double d = fabs(pe - (double)l1) / fabs((double)l1);
        worst_loss = d > worst_loss ? d : worst_loss;
        for (size_t i = 0; i < nf; i++) g_ref[i] += w * (double)tm.p.g[i];
        keel_train_acts_free(&a1);
    }
    double e = rel_max(g_packed, g_ref, nf);
    double lsum = 0;
    for (int i = 0; i < PE; i++) lsum += lp[i];
    char msg[160];
    snprintf(msg, sizeof msg, "%s: per-example losses packed = alone (worst rel %.2e)", label, worst_loss);
    printf("%s\n", msg);
    CHECK(msg, worst_loss <= 1e-5);
    snprintf(msg, sizeof msg, "%s: packed loss = mean over counted tokens", label);
    CHECK(msg, fabs((double)loss - lsum / ctot) <= 1e-5 * fabs(lsum / ctot));
    snprintf(msg, sizeof msg, "%s: packed gradient = weighted sum of alone gradients (rel %.2e)", label, e);
    printf("%s\n", msg);
    CHECK(msg, e <= 1e-5);
    // the packing must matter: without segments the same batch attends across examples
    keel_train_zero_grad(&tm);
    float leak = 0;
    keel_train_forward(&tm, &a, tok, tgt, mask, &leak, &err);
    snprintf(msg, sizeof msg, "%s: without segments the loss differs (%.6f vs %.6f)", label, leak, loss);
    printf("%s\n", msg);
    CHECK(msg, fabs((double)leak - (double)loss) > 1e-4);
    // one segment per row through the segment path = the plain forward/backward, bit for bit
    int32_t seg1[PB * PT] = {0};
    float l0 = 0, l1 = 0;
    keel_train_zero_grad(&tm);
    keel_train_forward(&tm, &a, tok, tgt, mask, &l0, &err);
    keel_train_backward(&tm, &a);
    memcpy(g_packed, tm.p.g, nf * sizeof(float));
    keel_train_zero_grad(&tm);
    keel_train_forward_seg(&tm, &a, tok, tgt, mask, seg1, &l1, &err);
    keel_train_backward(&tm, &a);
    snprintf(msg, sizeof msg, "%s: one segment per row = unpacked, bit for bit", label);
    CHECK(msg, l0 == l1 && !memcmp(g_packed, tm.p.g, nf * sizeof(float)));
    // invalid segments are refused
    seg1[3] = 5; // start after the position
    CHECK("bad segment start refused", keel_train_forward_seg(&tm, &a, tok, tgt, mask, seg1, &l1, &err) ==
                                           KEEL_ERR_INVALID && strstr(err.msg, "segment"));
    seg1[3] = 0, seg1[5] = 2; // not contiguous (2 is neither the previous start nor 5)
    CHECK("non-contiguous segment refused", keel_train_forward_seg(&tm, &a, tok, tgt, mask, seg1, &l1, &err) ==
                                                KEEL_ERR_INVALID);
    free(g_packed);
    free(g_ref);
    keel_train_acts_free(&a);
    keel_train_model_free(&tm);
    keel_model_free(m);
}

// ---- (3) a packed training run ------------------------------------------------------------------

// metrics.jsonl of a run: each line up to "tokens_per_s" (step, loss, lr, grad norm: deterministic)
static int read_det(const char *run_dir, char det[][200], int cap) {
    char p[256], line[1024];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run_dir);
    FILE *f = fopen(p, "r");
    int n = 0;
    while (f && n < cap && fgets(line, sizeof line, f)) {
        const char *e = strstr(line, ",\"tokens_per_s\"");
        if (!e || !strstr(line, "\"loss\":")) continue;
        size_t len = (size_t)(e - line) < 199 ? (size_t)(e - line) : 199;
        memcpy(det[n], line, len);
        det[n][len] = 0;
        n++;
    }
    if (f) fclose(f);
    return n;
}

static void test_packed_run(const char *model) {
    char dir[64] = "/tmp/keel-pack-XXXXXX", data[128], job[128], rd[128], mpath[160];
    if (!mkdtemp(dir)) {
        CHECK("mkdtemp", false);
        return;
    }
    snprintf(data, sizeof data, "%s/train.jsonl", dir);
    snprintf(job, sizeof job, "%s/job.yaml", dir);
    snprintf(rd, sizeof rd, "%s/run", dir);
    // 40 short stories (10-25 tokens): several share each 96-token row
    static const char *const who[] = {"Tom", "Lily", "Sam", "Mia", "Ben"};
    static const char *const what[] = {"a red ball", "a big dog", "a small cat", "a blue kite"};
    FILE *f = fopen(data, "w");
    for (int i = 0; f && i < 40; i++)
        fprintf(f, "{\"text\": \"%s had %s. %s was happy.\"}\n", who[i % 5], what[i % 4], who[i % 5]);
    if (f) fclose(f);
    f = fopen(job, "w");
    if (f) {
        fprintf(f,
                "model: %s\nmethod: full\n"
                "data:\n  train: %s\n  format: text\n  validation_split: 0.1\n  max_seq_len: 96\n  packing: true\n"
                "train:\n  lr: 3e-3\n  batch_size: 2\n  max_steps: 12\n  schedule: constant\n"
                "  warmup_steps: 0\n  clip_grad_norm: 1.0\n  seed: 7\n  threads: 1\n"
                "output:\n  dir: %s\n  save_every: 0\n",
                model, data, rd);
        fclose(f);
    }
    keel_train_opts o = keel_train_default_opts();
    keel_train_summary s;
    keel_err err = {0};
    keel_status st = keel_train_run(job, &o, NULL, &s, &err);
    if (st) fprintf(stderr, "packed run: %s\n", err.msg);
    CHECK("packed run: ok", st == KEEL_OK && s.steps == 12);
    // the loss of each step, from metrics.jsonl
    double loss[16];
    int n = 0;
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", rd);
    f = fopen(mpath, "r");
    char line[1024];
    while (f && n < 16 && fgets(line, sizeof line, f)) {
        const char *l = strstr(line, "\"loss\":");
        if (l && strstr(line, "\"step\":")) loss[n++] = strtod(l + 7, NULL);
    }
    if (f) fclose(f);
    char msg[160];
    double last = n >= 3 ? (loss[n - 1] + loss[n - 2] + loss[n - 3]) / 3 : NAN;
    snprintf(msg, sizeof msg, "packed run: loss falls (%d steps, first %.3f, last three %.3f)", n, n ? loss[0] : NAN, last);
    printf("%s\n", msg);
    CHECK(msg, n >= 12 && last < 0.8 * loss[0]);
    snprintf(msg, sizeof msg, "packed run: validation loss finite (%.3f)", s.val_loss);
    CHECK(msg, isfinite(s.val_loss));
    // stop after 5 steps + --resume: the uninterrupted run's metrics, bit for bit
    char rd2[160], det1[16][200], det2[16][200];
    snprintf(rd2, sizeof rd2, "%s/run2", dir);
    char over[200];
    snprintf(over, sizeof over, "output.dir=%s", rd2);
    const char *sets[] = {over};
    o.sets = sets;
    o.n_sets = 1;
    o.stop_after = 5;
    st = keel_train_run(job, &o, NULL, &s, &err);
    CHECK("packed run: stop after 5", st == KEEL_OK && s.interrupted && s.steps == 5);
    keel_train_opts o2 = keel_train_default_opts();
    o2.resume_dir = rd2;
    st = keel_train_run(NULL, &o2, NULL, &s, &err);
    if (st) fprintf(stderr, "packed resume: %s\n", err.msg);
    int n1 = read_det(rd, det1, 16), n2 = read_det(rd2, det2, 16);
    bool same = n1 == 12 && n2 == 12;
    for (int i = 0; same && i < n1; i++) same = !strcmp(det1[i], det2[i]);
    CHECK("packed run: resume = uninterrupted (metrics bit for bit)", st == KEEL_OK && same);
    // the packing packed: 36 training stories in rows of <= 96 tokens
    keel_model *m = NULL;
    keel_model_params mp = keel_model_default_params();
    keel_dataset *d = NULL, *p = NULL;
    keel_data_params dp = keel_data_default_params();
    dp.max_seq_len = 96;
    if (keel_model_load(model, &mp, &m, &err) == KEEL_OK &&
        keel_dataset_load(data, keel_model_tokenizer(m), &dp, &d, &err) == KEEL_OK &&
        keel_dataset_pack(d, 96, &p, &err) == KEEL_OK) {
        keel_example ex;
        keel_dataset_get(p, 0, &ex);
        snprintf(msg, sizeof msg, "packing packs (%lld examples -> %lld rows, %d in the first)",
                 (long long)keel_dataset_count(d), (long long)keel_dataset_count(p), (int)ex.n_segments);
        printf("%s\n", msg);
        CHECK(msg, ex.n_segments >= 3 && keel_dataset_count(p) * 3 <= keel_dataset_count(d));
    } else {
        CHECK("packing: dataset", false);
    }
    keel_dataset_free(p);
    keel_dataset_free(d);
    keel_model_free(m);
    test_rm_rf(dir);
}

int main(void) {
    keel_rng_seed(&rng, 20260);
    test_rope_seg(KEEL_ROPE_NORM);
    test_rope_seg(KEEL_ROPE_NEOX);
    test_attention_seg(4, 2, 1);
    test_attention_seg(3, 3, 2);
    char model[512];
    test_shared_path(model, sizeof model, "models/stories260K/stories260K.gguf");
    if (access("tests/data/tiny-llama-hf", R_OK) == 0) test_model_packed("tests/data/tiny-llama-hf", "tiny-hf");
    else CHECK("tests/data/tiny-llama-hf present", false);
    if (access(model, R_OK) == 0) {
        double t0 = keel_time_s();
        test_model_packed(model, "stories260K");
        double t1 = keel_time_s();
        test_packed_run(model);
        printf("stories260K packed batch %.1f s, packed run %.1f s\n", t1 - t0, keel_time_s() - t1);
    } else {
        printf("stories260K.gguf not found: its packed-batch and training-run checks skipped\n");
    }
    return test_report();
}
