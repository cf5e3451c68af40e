// SPDX-License-Identifier: MIT
// lora.c — LoRA on the Llama training model (lora.h): choosing the adapted
// linears (PEFT's name rule or globs), A/B appended to the one parameter
// buffer with PEFT's initialisation, the branch forward/backward behind
// model/train.h's keel_tadapter hook (dropout masks from a counter-based hash,
// so forward and backward agree without storing them), merge/unmerge, and
// PEFT's on-disk layout both ways (with the GGUF q/k row permutation undone on
// save and redone on load). Reference: PEFT's peft/tuners/lora/layer.py
// (Linear.forward, reset_lora_parameters) read for the conventions only.
#include "adapters/lora.h"

#include "io/io.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>

static const char *const proj_name[KEEL_LORA_N_PROJ] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                        "gate_proj", "up_proj", "down_proj"};
static const char *const proj_parent[KEEL_LORA_N_PROJ] = {"self_attn", "self_attn", "self_attn",
                                                          "self_attn", "mlp", "mlp", "mlp"};

keel_lora_config keel_lora_default_config(void) {
    static const char *const dflt[2] = {"q_proj", "v_proj"};
    keel_lora_config c = {0};
    c.r = 8;
    c.alpha = 16;
    c.dropout = 0;
    c.targets = dflt;
    c.n_targets = 2;
    c.use_rslora = false;
    c.seed = 0;
    return c;
}

static keel_tlinear *layer_lin(keel_train_model *tm, int l, int p) {
    keel_tlayer *T = &tm->layers[l];
    keel_tlinear *lin[KEEL_LORA_N_PROJ] = {&T->wq, &T->wk, &T->wv, &T->wo, &T->w_gate, &T->w_up, &T->w_down};
    return lin[p];
}

static void module_name(char *out, size_t cap, int l, int p) {
    snprintf(out, cap, "model.layers.%d.%s.%s", l, proj_parent[p], proj_name[p]);
}

// PEFT's list rule, or a glob when the target has glob characters.
static bool target_matches(const char *target, const char *module) {
    if (strpbrk(target, "*?[")) return fnmatch(target, module, 0) == 0;
    size_t lt = strlen(target), lm = strlen(module);
    if (lt == lm) return !strcmp(target, module);
    return lm > lt && module[lm - lt - 1] == '.' && !strcmp(module + lm - lt, target);
}

static float lora_scale(int32_t r, double alpha, bool rs) {
    return (float)(rs ? alpha / sqrt((double)r) : alpha / (double)r);
}

float *keel_lora_A(const keel_lora *lo, int i) { return lo->tm->p.w + lo->tm->p.t[lo->mods[i].pa].off; }
float *keel_lora_B(const keel_lora *lo, int i) { return lo->tm->p.w + lo->tm->p.t[lo->mods[i].pb].off; }
static float *grad_A(const keel_lora *lo, int i) { return lo->tm->p.g + lo->tm->p.t[lo->mods[i].pa].off; }
static float *grad_B(const keel_lora *lo, int i) { return lo->tm->p.g + lo->tm->p.t[lo->mods[i].pb].off; }

int keel_lora_find(const keel_lora *lo, const char *module) {
    for (int i = 0; i < lo->n; i++)
        if (!strcmp(lo->mods[i].module, module)) return i;
    return -1;
}

// ---- dropout masks ----------------------------------------------------------------------

static uint64_t mix64(uint64_t z) { // splitmix64's finaliser
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// True when element (n, i) of module idx is kept at the current step.
static inline bool keep(uint64_t key, int64_t n, int64_t i, int64_t n_in, uint32_t thresh) {
    uint64_t h = mix64(key + (uint64_t)(n * n_in + i) * 0xd1b54a32d192ed03ull);
    return (uint32_t)(h >> 40) >= thresh; // 24-bit uniform vs p * 2^24
}

static uint64_t mask_key(const keel_lora *lo, int idx) {
    return mix64(mix64(lo->seed ^ 0x4c6f5241ull) ^ mix64(lo->step * 0x9e3779b97f4a7c15ull + (uint64_t)idx));
}

static bool dropping(const keel_lora *lo) { return lo->training && lo->dropout > 0; }

// xd (N, n_in) = mask * x / (1 - p)   (PyTorch's inverted dropout)
static void dropout_apply(const keel_lora *lo, int idx, float *xd, const float *x, int64_t N, int64_t n_in) {
    uint64_t key = mask_key(lo, idx);
    uint32_t th = (uint32_t)(lo->dropout * 16777216.0);
    float inv = (float)(1.0 / (1.0 - lo->dropout));
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < n_in; i++)
            xd[n * n_in + i] = keep(key, n, i, n_in, th) ? x[n * n_in + i] * inv : 0.0f;
}

// ---- the branch (keel_tadapter) ---------------------------------------------------------

static int mod_index(const keel_lora_mod *md) { return (int)(md - md->lora->mods); }

// y (N, n_out) += s * (xd A^T) B^T; keeps xs = s * xd A^T (N, r) for the backward.
static void lora_fwd(const keel_tadapter *ad, float *y, const float *x, int64_t N, const keel_ops_scratch *s) {
    const keel_lora_mod *md = (const keel_lora_mod *)ad;
    const keel_lora *lo = md->lora;
    const int i = mod_index(md);
    const int64_t r = lo->r, n_in = md->n_in, n_out = md->n_out;
    KEEL_ASSERT(N <= lo->n_max);
    const float *xd = x;
    if (dropping(lo)) {
        dropout_apply(lo, i, lo->xd, x, N, n_in);
        xd = lo->xd;
    }
    float *xs = md->xa;
    keel_gemm(false, true, N, r, n_in, xd, n_in, keel_lora_A(lo, i), n_in, 0.0f, xs, r, s->n_threads);
    for (int64_t k = 0; k < N * r; k++) xs[k] *= lo->scale;
    keel_gemm(false, true, N, n_out, r, xs, r, keel_lora_B(lo, i), r, 1.0f, y, n_out, s->n_threads);
}

// With u = xd A^T (N, r), y += s u B^T:
//   dB += s dy^T u = dy^T xs;  t = s dy B (N, r);  dA += t^T xd;  dxd = t A;  dx += mask/(1-p) * dxd.
static void lora_bwd(const keel_tadapter *ad, float *dx, const float *dy, const float *x, int64_t N,
                     const keel_ops_scratch *s) {
    const keel_lora_mod *md = (const keel_lora_mod *)ad;
    const keel_lora *lo = md->lora;
    const int i = mod_index(md);
    const int64_t r = lo->r, n_in = md->n_in, n_out = md->n_out;
    KEEL_ASSERT(N <= lo->n_max);
    float *t = lo->t;
    keel_gemm(true, false, n_out, r, N, dy, n_out, md->xa, r, 1.0f, grad_B(lo, i), r, s->n_threads);
    keel_gemm(false, false, N, r, n_out, dy, n_out, keel_lora_B(lo, i), r, 0.0f, t, r, s->n_threads);
    for (int64_t k = 0; k < N * r; k++) t[k] *= lo->scale;
    if (!dropping(lo)) {
        keel_gemm(true, false, r, n_in, N, t, r, x, n_in, 1.0f, grad_A(lo, i), n_in, s->n_threads);
        if (dx) keel_gemm(false, false, N, n_in, r, t, r, keel_lora_A(lo, i), n_in, 1.0f, dx, n_in, s->n_threads);
        return;
    }
    float *xd = lo->xd;
    dropout_apply(lo, i, xd, x, N, n_in);
    keel_gemm(true, false, r, n_in, N, t, r, xd, n_in, 1.0f, grad_A(lo, i), n_in, s->n_threads);
    if (!dx) return;
    keel_gemm(false, false, N, n_in, r, t, r, keel_lora_A(lo, i), n_in, 0.0f, xd, n_in, s->n_threads);
    uint64_t key = mask_key(lo, i);
    uint32_t th = (uint32_t)(lo->dropout * 16777216.0);
    float inv = (float)(1.0 / (1.0 - lo->dropout));
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < n_in; k++)
            if (keep(key, n, k, n_in, th)) dx[n * n_in + k] += xd[n * n_in + k] * inv;
}

// ---- attach / load ----------------------------------------------------------------------

// Allocate the module list for the (layer, proj) pairs on[] marks, in HF order.
static keel_status make_mods(keel_lora *lo, keel_train_model *tm, const bool *on, keel_err *err) {
    const int nl = tm->m->desc.n_layer;
    int n = 0;
    for (int k = 0; k < nl * KEEL_LORA_N_PROJ; k++) n += on[k];
    lo->mods = keel_calloc((size_t)(n ? n : 1), sizeof *lo->mods);
    if (!lo->mods) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "LoRA: out of memory");
    lo->n = n;
    int j = 0;
    for (int l = 0; l < nl; l++)
        for (int p = 0; p < KEEL_LORA_N_PROJ; p++) {
            if (!on[l * KEEL_LORA_N_PROJ + p]) continue;
            keel_lora_mod *md = &lo->mods[j++];
            md->hook.fwd = lora_fwd;
            md->hook.bwd = lora_bwd;
            md->lora = lo;
            module_name(md->module, sizeof md->module, l, p);
            md->layer = l;
            md->proj = (keel_lora_proj)p;
            md->lin = layer_lin(tm, l, p);
            md->n_in = md->lin->base.n_in;
            md->n_out = md->lin->base.n_out;
        }
    return KEEL_OK;
}

// Check the linears are free and r fits, append A/B to tm->p, set the hooks.
static keel_status bind_mods(keel_lora *lo, keel_train_model *tm, keel_err *err) {
    for (int i = 0; i < lo->n; i++) {
        const keel_lora_mod *md = &lo->mods[i];
        if (md->lin->adapter)
            return KEEL_FAIL(err, KEEL_ERR_INVALID, "LoRA: %s already has an adapter", md->module);
    }
    keel_tparam *add = keel_calloc((size_t)(2 * lo->n + 1), sizeof *add);
    if (!add) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "LoRA: out of memory");
    for (int i = 0; i < lo->n; i++) {
        const keel_lora_mod *md = &lo->mods[i];
        for (int ab = 0; ab < 2; ab++) {
            keel_tparam *p = &add[2 * i + ab];
            if (keel_peft_lora_key(p->name, sizeof p->name, md->module, ab ? 'B' : 'A') < 0) {
                keel_free(add);
                return KEEL_FAIL(err, KEEL_ERR_INVALID, "LoRA: parameter name for %s too long", md->module);
            }
            p->rows = ab ? md->n_out : lo->r;
            p->cols = ab ? lo->r : md->n_in;
        }
    }
    int first = tm->p.n;
    keel_status st = keel_train_params_append(tm, add, 2 * lo->n, err);
    keel_free(add);
    if (st) return st;
    for (int i = 0; i < lo->n; i++) {
        keel_lora_mod *md = &lo->mods[i];
        md->pa = first + 2 * i;
        md->pb = first + 2 * i + 1;
        md->lin->adapter = &md->hook;
    }
    lo->tm = tm;
    lo->gguf_rows = tm->m->rope == KEEL_ROPE_NORM;
    return KEEL_OK;
}

static keel_status check_hyper(int32_t r, double alpha, double dropout, const char *where, keel_err *err) {
    if (r < 1) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: LoRA rank r = %d (must be >= 1)", where, (int)r);
    if (!(alpha > 0) || !isfinite(alpha))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: lora_alpha = %g (must be > 0)", where, alpha);
    if (!(dropout >= 0 && dropout < 1))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: lora_dropout = %g (must be in [0, 1))", where, dropout);
    return KEEL_OK;
}

static keel_status check_rank(const keel_lora *lo, const char *where, keel_err *err) {
    for (int i = 0; i < lo->n; i++) {
        const keel_lora_mod *md = &lo->mods[i];
        if (lo->r > md->n_in || lo->r > md->n_out)
            return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: LoRA rank %d exceeds %s's shape (%lld, %lld)", where,
                             (int)lo->r, md->module, (long long)md->n_out, (long long)md->n_in);
    }
    return KEEL_OK;
}

keel_status keel_lora_attach(keel_lora *lo, keel_train_model *tm, const keel_lora_config *cfg, keel_err *err) {
    memset(lo, 0, sizeof *lo);
    keel_status st = check_hyper(cfg->r, cfg->alpha, cfg->dropout, "LoRA config", err);
    if (st) return st;
    if (cfg->init != KEEL_LORA_KAIMING && cfg->init != KEEL_LORA_GAUSSIAN)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "LoRA config: unknown init %d", (int)cfg->init);
    static const char *const dflt[2] = {"q_proj", "v_proj"};
    const char *const *tg = cfg->n_targets ? cfg->targets : dflt;
    size_t nt = cfg->n_targets ? cfg->n_targets : 2;
    const int nl = tm->m->desc.n_layer;
    bool *on = keel_calloc((size_t)nl * KEEL_LORA_N_PROJ + 1, sizeof *on);
    if (!on) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "LoRA: out of memory");
    char nm[80];
    for (size_t k = 0; k < nt; k++) {
        if (!tg[k] || !tg[k][0]) {
            keel_free(on);
            return KEEL_FAIL(err, KEEL_ERR_INVALID, "LoRA config: target_modules[%zu] is empty", k);
        }
        bool any = false;
        for (int l = 0; l < nl; l++)
            for (int p = 0; p < KEEL_LORA_N_PROJ; p++) {
                module_name(nm, sizeof nm, l, p);
                if (target_matches(tg[k], nm)) on[l * KEEL_LORA_N_PROJ + p] = any = true;
            }
        if (!any) {
            keel_free(on);
            return KEEL_FAIL(err, KEEL_ERR_INVALID,
                             "LoRA config: target_modules entry \"%s\" matches no linear layer (names are like "
                             "q_proj, mlp.down_proj, model.layers.0.self_attn.q_proj or a glob over those)",
                             tg[k]);
        }
    }
    lo->r = cfg->r, lo->alpha = cfg->alpha, lo->dropout = cfg->dropout;
    lo->use_rslora = cfg->use_rslora, lo->seed = cfg->seed;
    lo->scale = lora_scale(lo->r, lo->alpha, lo->use_rslora);
    st = make_mods(lo, tm, on, err);
    keel_free(on);
    if (!st) st = check_rank(lo, "LoRA config", err);
    if (!st) st = bind_mods(lo, tm, err);
    if (st) {
        keel_free(lo->mods);
        memset(lo, 0, sizeof *lo);
        return st;
    }
    // A in module order, B = 0 (already zero). Kaiming-uniform with a = sqrt(5):
    // gain sqrt(2 / (1 + 5)), std gain / sqrt(fan_in), bound sqrt(3) * std = 1 / sqrt(n_in).
    keel_rng rng;
    keel_rng_seed(&rng, cfg->seed);
    for (int i = 0; i < lo->n; i++) {
        float *A = keel_lora_A(lo, i);
        double bound = 1.0 / sqrt((double)lo->mods[i].n_in);
        for (int64_t k = 0; k < lo->r * lo->mods[i].n_in; k++)
            A[k] = cfg->init == KEEL_LORA_GAUSSIAN ? keel_rng_normal(&rng) / (float)lo->r
                                                   : (float)((2.0 * keel_rng_uniform_d(&rng) - 1.0) * bound);
    }
    return KEEL_OK;
}

keel_status keel_lora_reserve(keel_lora *lo, int64_t N, keel_err *err) {
    if (N <= lo->n_max) return KEEL_OK;
    if (N < 1 || N > (1 << 24)) return KEEL_FAIL(err, KEEL_ERR_INVALID, "LoRA workspace for %lld rows", (long long)N);
    int64_t max_in = 0;
    for (int i = 0; i < lo->n; i++)
        if (lo->mods[i].n_in > max_in) max_in = lo->mods[i].n_in;
    size_t per = ((size_t)N * (size_t)lo->r + 15) / 16 * 16;
    size_t nxd = lo->dropout > 0 ? ((size_t)N * (size_t)max_in + 15) / 16 * 16 : 0;
    size_t total = per * (size_t)(lo->n + 1) + nxd;
    float *ws = keel_malloc_aligned(total * sizeof(float));
    if (!ws)
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "LoRA workspace: out of memory (%.1f MiB)",
                         (double)total * sizeof(float) / 1048576.0);
    memset(ws, 0, total * sizeof(float));
    keel_free_aligned(lo->ws);
    lo->ws = ws;
    lo->n_max = N;
    for (int i = 0; i < lo->n; i++) lo->mods[i].xa = ws + per * (size_t)i;
    lo->t = ws + per * (size_t)lo->n;
    lo->xd = nxd ? ws + per * (size_t)(lo->n + 1) : NULL;
    return KEEL_OK;
}

void keel_lora_set_train(keel_lora *lo, bool training, uint64_t step) {
    lo->training = training;
    lo->step = step;
}

void keel_lora_free(keel_lora *lo) {
    if (!lo) return;
    for (int i = 0; i < lo->n; i++)
        if (lo->mods[i].lin && lo->mods[i].lin->adapter == &lo->mods[i].hook) lo->mods[i].lin->adapter = NULL;
    keel_free(lo->mods);
    keel_free_aligned(lo->ws);
    memset(lo, 0, sizeof *lo);
}

void keel_lora_merge(const keel_lora *lo, int i, float *W, float sign) {
    const keel_lora_mod *md = &lo->mods[i];
    const float *A = keel_lora_A(lo, i), *B = keel_lora_B(lo, i);
    const int64_t r = lo->r, n_in = md->n_in;
    const float c = sign * lo->scale;
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < md->n_out; o++)
        for (int64_t k = 0; k < r; k++) {
            float b = c * B[o * r + k];
            for (int64_t j = 0; j < n_in; j++) W[o * n_in + j] += b * A[k * n_in + j];
        }
}

// ---- GGUF row order -----------------------------------------------------------------------

static bool permuted(const keel_lora *lo, const keel_lora_mod *md) {
    return lo->gguf_rows && (md->proj == KEEL_LORA_Q || md->proj == KEEL_LORA_K);
}

// ---- save (PEFT) --------------------------------------------------------------------------

keel_status keel_lora_save(const keel_lora *lo, const char *dir, const char *base_model, keel_err *err) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return KEEL_FAIL(err, KEEL_ERR_IO, "%s: cannot create adapter directory: %s", dir, strerror(errno));
    if (!keel_path_is_dir(dir)) return KEEL_FAIL(err, KEEL_ERR_IO, "%s: not a directory", dir);
    const int n = lo->n;
    keel_st_entry *e = keel_calloc((size_t)(2 * n + 1), sizeof *e);
    char (*names)[128] = keel_calloc((size_t)(2 * n + 1), sizeof *names);
    float **tmp = keel_calloc((size_t)n + 1, sizeof *tmp);
    const char **tg = keel_calloc((size_t)n + KEEL_LORA_N_PROJ + 1, sizeof *tg);
    keel_status st = KEEL_OK;
    if (!e || !names || !tmp || !tg) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "LoRA save: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const keel_lora_mod *md = &lo->mods[i];
        const float *B = keel_lora_B(lo, i);
        if (permuted(lo, md)) {
            tmp[i] = keel_malloc((size_t)(md->n_out * lo->r) * sizeof(float));
            if (!tmp[i]) {
                st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "LoRA save: out of memory");
                goto done;
            }
            keel_qk_rows_permute(tmp[i], B, md->n_out, lo->tm->m->head_dim, lo->r, true);
            B = tmp[i];
        }
        for (int ab = 0; ab < 2; ab++) {
            keel_st_entry *t = &e[2 * i + ab];
            keel_peft_lora_key(names[2 * i + ab], sizeof names[0], md->module, ab ? 'B' : 'A');
            t->name = names[2 * i + ab];
            t->type = KEEL_DTYPE_F32;
            t->n_dims = 2;
            t->shape[0] = ab ? md->n_out : lo->r;
            t->shape[1] = ab ? lo->r : md->n_in;
            t->data = ab ? (const void *)B : (const void *)keel_lora_A(lo, i);
        }
    }
    // target_modules: the short names when each adapted projection is adapted in every layer.
    const int nl = lo->tm->m->desc.n_layer;
    int count[KEEL_LORA_N_PROJ] = {0};
    for (int i = 0; i < n; i++) count[lo->mods[i].proj]++;
    bool whole = true;
    for (int p = 0; p < KEEL_LORA_N_PROJ; p++) whole &= count[p] == 0 || count[p] == nl;
    size_t ntg = 0;
    if (whole) {
        for (int p = 0; p < KEEL_LORA_N_PROJ; p++)
            if (count[p]) tg[ntg++] = proj_name[p];
    } else {
        for (int i = 0; i < n; i++) tg[ntg++] = lo->mods[i].module;
    }
    char *sp = keel_path_join(dir, "adapter_model.safetensors"), *cp = keel_path_join(dir, "adapter_config.json");
    if (!sp || !cp) {
        keel_free(sp);
        keel_free(cp);
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "LoRA save: out of memory");
        goto done;
    }
    keel_st_kv meta = {"format", "pt"};
    st = keel_st_write(sp, e, (size_t)(2 * n), &meta, 1, err);
    if (!st) {
        keel_peft_lora_config c = keel_peft_lora_default_config();
        c.r = lo->r;
        c.lora_alpha = lo->alpha;
        c.lora_dropout = lo->dropout;
        c.target_modules = tg;
        c.n_target_modules = ntg;
        c.use_rslora = lo->use_rslora;
        c.base_model_name_or_path = base_model;
        st = keel_peft_write_config(cp, &c, err);
    }
    keel_free(sp);
    keel_free(cp);
done:
    if (tmp)
        for (int i = 0; i < n; i++) keel_free(tmp[i]);
    keel_free(tmp);
    keel_free(e);
    keel_free(names);
    keel_free(tg);
    return st;
}

// ---- load (PEFT) --------------------------------------------------------------------------

// "base_model.model.model.layers.<l>.<parent>.<proj>.lora_<A|B>.weight" -> (l, p, ab);
// false for any other name.
static bool parse_key(const char *name, int n_layer, int *layer, int *proj, int *ab) {
    static const char pre[] = "base_model.model.model.layers.";
    if (strncmp(name, pre, sizeof pre - 1)) return false;
    const char *s = name + sizeof pre - 1;
    if (*s < '0' || *s > '9') return false;
    long l = 0;
    while (*s >= '0' && *s <= '9') {
        l = l * 10 + (*s++ - '0');
        if (l >= n_layer) return false;
    }
    if (s - (name + sizeof pre - 1) > 1 && name[sizeof pre - 1] == '0') return false; // "01"
    for (int p = 0; p < KEEL_LORA_N_PROJ; p++)
        for (int k = 0; k < 2; k++) {
            char want[64];
            snprintf(want, sizeof want, ".%s.%s.lora_%c.weight", proj_parent[p], proj_name[p], k ? 'B' : 'A');
            if (!strcmp(s, want)) {
                *layer = (int)l, *proj = p, *ab = k;
                return true;
            }
        }
    return false;
}

static bool json_nonempty(const cJSON *j) {
    if (!j || cJSON_IsNull(j)) return false;
    if (cJSON_IsObject(j) || cJSON_IsArray(j)) return cJSON_GetArraySize(j) > 0;
    return true;
}

// r, alpha, dropout, rsLoRA from adapter_config.json; the unsupported options are errors.
static keel_status read_config(const char *path, int32_t *r, double *alpha, double *dropout, bool *rs,
                               keel_err *err) {
    char *txt = NULL;
    size_t len = 0;
    keel_status st = keel_read_file(path, &txt, &len, err);
    if (st) return st;
    cJSON *j = cJSON_ParseWithLength(txt, len);
    keel_free(txt);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: not a JSON object", path);
    }
    const cJSON *v;
    v = cJSON_GetObjectItemCaseSensitive(j, "peft_type");
    if (v && !(cJSON_IsString(v) && !strcmp(v->valuestring, "LORA"))) {
        st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: peft_type is not \"LORA\"", path);
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "r");
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 || v->valuedouble > 1e6) {
        st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: key \"r\" missing or not a positive integer", path);
        goto out;
    }
    *r = (int32_t)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(j, "lora_alpha");
    *alpha = 8; // PEFT's default
    if (v) {
        if (!cJSON_IsNumber(v)) {
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: key \"lora_alpha\" is not a number", path);
            goto out;
        }
        *alpha = v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "lora_dropout");
    *dropout = 0;
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v)) {
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: key \"lora_dropout\" is not a number", path);
            goto out;
        }
        *dropout = v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "use_rslora");
    *rs = cJSON_IsTrue(v);
    v = cJSON_GetObjectItemCaseSensitive(j, "bias");
    if (v && !(cJSON_IsString(v) && !strcmp(v->valuestring, "none"))) {
        st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: bias other than \"none\" is not supported", path);
        goto out;
    }
    static const char *const no[] = {"use_dora", "fan_in_fan_out", "rank_pattern", "alpha_pattern",
                                     "modules_to_save", "lora_bias", "layer_replication",
                                     "trainable_token_indices", "target_parameters"};
    for (size_t k = 0; k < sizeof no / sizeof *no; k++) {
        v = cJSON_GetObjectItemCaseSensitive(j, no[k]);
        if (json_nonempty(v) && !cJSON_IsFalse(v)) {
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: key \"%s\" is set; keel does not support it", path, no[k]);
            goto out;
        }
    }
    st = check_hyper(*r, *alpha, *dropout, path, err);
out:
    cJSON_Delete(j);
    return st;
}

keel_status keel_lora_load(keel_lora *lo, keel_train_model *tm, const char *dir, uint64_t seed, keel_err *err) {
    memset(lo, 0, sizeof *lo);
    char *cp = keel_path_join(dir, "adapter_config.json"), *sp = keel_path_join(dir, "adapter_model.safetensors");
    const int nl = tm->m->desc.n_layer;
    const int nslot = nl * KEEL_LORA_N_PROJ;
    const keel_tensor_info **ti = keel_calloc((size_t)nslot * 2 + 1, sizeof *ti);
    bool *on = keel_calloc((size_t)nslot + 1, sizeof *on);
    keel_safetensors *st_file = NULL;
    keel_status st = KEEL_OK;
    if (!cp || !sp || !ti || !on) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "LoRA load: out of memory");
        goto out;
    }
    int32_t r = 0;
    double alpha = 0, dropout = 0;
    bool rs = false;
    if ((st = read_config(cp, &r, &alpha, &dropout, &rs, err))) goto out;
    if ((st = keel_st_open(sp, &st_file, err))) goto out;
    for (int64_t k = 0; k < keel_st_n_tensors(st_file); k++) {
        const keel_tensor_info *t = keel_st_tensor(st_file, k);
        int l, p, ab;
        if (!parse_key(t->name, nl, &l, &p, &ab)) {
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT,
                           "%s: tensor \"%s\" is not the lora_A/lora_B weight of a projection of this %d-layer model",
                           sp, t->name, nl);
            goto out;
        }
        const keel_tlinear *lin = layer_lin(tm, l, p);
        int64_t want0 = ab ? r : lin->base.n_in, want1 = ab ? lin->base.n_out : r; // ne = {cols, rows}
        if (t->n_dims != 2 || t->ne[0] != want0 || t->ne[1] != want1) {
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tensor \"%s\" has shape (%lld, %lld); expected (%lld, %lld) for r = %d",
                           sp, t->name, (long long)t->ne[1], (long long)t->ne[0], (long long)want1,
                           (long long)want0, (int)r);
            goto out;
        }
        if (t->type != KEEL_DTYPE_F32 && t->type != KEEL_DTYPE_F16 && t->type != KEEL_DTYPE_BF16) {
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tensor \"%s\" is not F32, F16 or BF16", sp, t->name);
            goto out;
        }
        ti[(l * KEEL_LORA_N_PROJ + p) * 2 + ab] = t;
        on[l * KEEL_LORA_N_PROJ + p] = true;
    }
    for (int k = 0; k < nslot; k++) {
        if (!on[k]) continue;
        if (!ti[2 * k] || !ti[2 * k + 1]) {
            char nm[80];
            module_name(nm, sizeof nm, k / KEEL_LORA_N_PROJ, k % KEEL_LORA_N_PROJ);
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: %s has lora_%c but no lora_%c", sp, nm, ti[2 * k] ? 'A' : 'B',
                           ti[2 * k] ? 'B' : 'A');
            goto out;
        }
    }
    lo->r = r, lo->alpha = alpha, lo->dropout = dropout, lo->use_rslora = rs, lo->seed = seed;
    lo->scale = lora_scale(r, alpha, rs);
    if ((st = make_mods(lo, tm, on, err))) goto out;
    if (lo->n == 0) {
        st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: no LoRA tensors", sp);
        goto out;
    }
    if ((st = check_rank(lo, cp, err)) || (st = bind_mods(lo, tm, err))) goto out;
    for (int i = 0; i < lo->n; i++) {
        keel_lora_mod *md = &lo->mods[i];
        int k = md->layer * KEEL_LORA_N_PROJ + md->proj;
        const keel_tensor_info *ta = ti[2 * k], *tb = ti[2 * k + 1];
        keel_dequant_row(ta->type, ta->data, keel_lora_A(lo, i), r * md->n_in);
        float *B = keel_lora_B(lo, i);
        keel_dequant_row(tb->type, tb->data, B, r * md->n_out);
        if (permuted(lo, md)) { // HF rows -> Meta order, through the gradient slice as scratch (zero after)
            float *g = grad_B(lo, i);
            memcpy(g, B, (size_t)(r * md->n_out) * sizeof(float));
            keel_qk_rows_permute(B, g, md->n_out, tm->m->head_dim, r, false);
            memset(g, 0, (size_t)(r * md->n_out) * sizeof(float));
        }
    }
out:
    if (st && lo->mods) {
        if (lo->tm) { // bound: unset the hooks (the appended entries stay, zero-filled)
            for (int i = 0; i < lo->n; i++) lo->mods[i].lin->adapter = NULL;
        }
        keel_free(lo->mods);
        memset(lo, 0, sizeof *lo);
    }
    keel_st_close(st_file);
    keel_free(cp);
    keel_free(sp);
    keel_free(ti);
    keel_free(on);
    return st;
}
