// SPDX-License-Identifier: MIT
// loop.c — the training loop (loop.h) and keel_train_run (include/keel.h):
// run directory, data order, micro-batches, forward/backward
// (model/train.h), clipping, AdamW and the schedule (train/train.h),
// metrics.jsonl, validation, checkpoints (HF safetensors + config.json for
// full fine-tuning, optimizer state with the data position) and exact
// resume. Every choice that affects the numbers depends only on the job, the
// seed and the thread count, so runs repeat bit for bit. docs/train.md.
#include "train/loop.h"
#include "train/ledger.h"
#include "adapters/lora.h"
#include "registry/registry.h"
#include "model/train.h"
#include "train/train.h"
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

struct keel_trainer {
    keel_train_cfg cfg;
    char *job_path;
    bool resume;
    keel_model *model;
    bool base_is_dir;           // HF directory base: copy its tokenizer files
    keel_dataset *train, *val;  // val may be NULL
    int64_t n_train;
    int32_t B, T;
    keel_train_model tm;
    bool tm_ok;
    keel_lora lora;             // method lora/qlora
    bool lora_ok;
    keel_train_acts acts;
    keel_adamw opt;
    keel_sched sched;
    int64_t total_steps;
    int64_t step;               // optimizer steps done
    int64_t data_pos;           // next example of the stream (epoch = pos / n_train)
    int64_t shuffled_epoch;     // epoch the train order is currently shuffled for (-1: none)
    keel_rng rng;               // for stochastic methods (LoRA dropout); saved with checkpoints
    double elapsed_before;      // wall time of the steps before a resume
    int64_t tokens_total;
    int32_t *tok, *tgt;         // (B, T) batch buffers (a batch uses (B, T' <= T) of them)
    uint8_t *mask;
    int32_t *seg;               // (B, T) segment start of each position (packed rows)
    bool batch_packed;          // some row of the current batch holds several segments
    keel_example *exs;          // (B) the examples of the micro-batch being built
    bool *have;                 // (B) false: empty row
    FILE *metrics;
    char *resume_ckpt;          // checkpoint directory resumed from
    int64_t last_saved;         // step of the last checkpoint written (-1: none)
    // capability ledger (cfg.caps non-empty)
    bool ledger_on;
    keel_ledger ledger;
    int32_t attempt;            // adapt retries so far; checkpoints of attempt k > 0 are step-N-aK
    double lr_scale;            // product of monitor.lr_factor over the retries (1 before any)
    char good[1100];            // the last checkpoint that satisfied every bound ("" none)
    int saved_ok;               // bounds verdict of the checkpoint being saved (-1 unknown)
    int32_t resume_attempt;     // > 0: resuming a rolled-back run saves as this attempt
};

// ---- names and selection -------------------------------------------------------------

// GGUF name of an HF tensor name (for patterns written either way); false if unknown.
static bool hf_to_gguf(const char *hf, char *out, size_t cap) {
    static const char *const map[][2] = {
        {"input_layernorm", "attn_norm"},  {"self_attn.q_proj", "attn_q"},
        {"self_attn.k_proj", "attn_k"},    {"self_attn.v_proj", "attn_v"},
        {"self_attn.o_proj", "attn_output"}, {"post_attention_layernorm", "ffn_norm"},
        {"mlp.gate_proj", "ffn_gate"},     {"mlp.up_proj", "ffn_up"},
        {"mlp.down_proj", "ffn_down"},
    };
    if (!strcmp(hf, "model.embed_tokens.weight")) return snprintf(out, cap, "token_embd.weight") > 0;
    if (!strcmp(hf, "model.norm.weight")) return snprintf(out, cap, "output_norm.weight") > 0;
    if (!strcmp(hf, "lm_head.weight")) return snprintf(out, cap, "output.weight") > 0;
    int layer, n = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &n) != 1 || n == 0) return false;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        size_t l = strlen(map[i][0]);
        if (!strncmp(hf + n, map[i][0], l) && !strcmp(hf + n + l, ".weight"))
            return snprintf(out, cap, "blk.%d.%s.weight", layer, map[i][1]) > 0;
    }
    return false;
}

// Layer index of an HF name, or -1.
static int name_layer(const char *hf) {
    int layer, n = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &n) == 1 && n > 0) return layer;
    return -1;
}

static bool match_any(const char *const *pats, int32_t n, const char *hf, const char *gg) {
    for (int32_t i = 0; i < n; i++)
        if (!fnmatch(pats[i], hf, 0) || (*gg && !fnmatch(pats[i], gg, 0))) return true;
    return false;
}

// "0-3,7" contains layer? (validated by the job parser)
static bool in_ranges(const char *r, int layer) {
    while (r && *r) {
        char *end;
        long a = strtol(r, &end, 10), b = a;
        if (end == r) return false;
        r = end;
        if (*r == '-') {
            b = strtol(r + 1, &end, 10);
            r = end;
        }
        if (layer >= a && layer <= b) return true;
        while (*r == ',' || *r == ' ') r++;
    }
    return false;
}

static bool select_none(const char *hf, void *ud) {
    (void)hf, (void)ud;
    return false;
}

static const char *method_name(int m) { return m == 0 ? "full" : m == 1 ? "lora" : "qlora"; }

static bool select_full(const char *hf, void *ud) {
    const keel_train_cfg *c = ud;
    char gg[128] = "";
    hf_to_gguf(hf, gg, sizeof gg);
    if (!match_any(c->trainable, c->n_trainable, hf, gg)) return false;
    if (match_any(c->freeze, c->n_freeze, hf, gg)) return false;
    int l = name_layer(hf);
    if (l >= 0 && in_ranges(c->freeze_layers, l)) return false;
    return true;
}

// ---- small file helpers -----------------------------------------------------------------

static keel_status mkdir_p(const char *path, keel_err *err) {
    char *p = keel_strdup(path);
    if (!p) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || !*s) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                int e = errno;
                keel_status st = KEEL_FAIL(err, KEEL_ERR_IO, "%s: cannot create directory: %s", p, strerror(e));
                free(p);
                return st;
            }
            *s = c;
            if (!c) break;
        }
    }
    free(p);
    return keel_path_is_dir(path) ? KEEL_OK : KEEL_FAIL(err, KEEL_ERR_IO, "%s: not a directory", path);
}

static bool dir_is_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return true;
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) { empty = false; break; }
    closedir(d);
    return empty;
}

// Remove a directory of plain files (our own checkpoint directories).
static void rm_flat_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *f = keel_path_join(path, e->d_name);
        if (f) unlink(f);
        free(f);
    }
    closedir(d);
    rmdir(path);
}

static void fsync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static keel_status write_text(const char *path, const char *s, keel_err *err) {
    keel_iobuf b = {s, strlen(s)};
    return keel_atomic_write_bufs(path, &b, 1, err);
}

static keel_status copy_file_atomic(const char *src, const char *dst, keel_err *err) {
    char *data = NULL;
    size_t len = 0;
    keel_status st = keel_read_file(src, &data, &len, err);
    if (st) return st;
    keel_iobuf b = {data, len};
    st = keel_atomic_write_bufs(dst, &b, 1, err);
    free(data);
    return st;
}

// A checkpoint directory name: step-N (attempt 0) or step-N-aK (the K-th
// retry after an adapt rollback); false for anything else (step-N.tmp, ...).
static bool parse_ckpt_name(const char *name, long long *step, int *attempt) {
    int n = 0;
    *attempt = 0;
    if (sscanf(name, "step-%lld%n", step, &n) != 1 || *step < 0) return false;
    if (name[n] == 0) return true;
    int m = 0;
    return sscanf(name + n, "-a%d%n", attempt, &m) == 1 && name[n + m] == 0 && *attempt > 0;
}

// The latest complete checkpoint of run_dir (checkpoints/step-N or
// step-N-aK with trainer_state.json; leftovers are ignored), ordered by
// (attempt, step): heap path or NULL.
static char *latest_checkpoint(const char *run_dir, int64_t *step_out, int *attempt_out) {
    char *cdir = keel_path_join(run_dir, "checkpoints");
    if (!cdir) return NULL;
    DIR *d = opendir(cdir);
    char *best = NULL;
    int64_t best_step = -1;
    int best_attempt = -1;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            long long s;
            int att;
            if (!parse_ckpt_name(e->d_name, &s, &att)) continue;
            if (att < best_attempt || (att == best_attempt && s <= best_step)) continue;
            char *p = keel_path_join(cdir, e->d_name);
            char *ts = p ? keel_path_join(p, "trainer_state.json") : NULL;
            if (ts && keel_path_exists(ts)) {
                free(best);
                best = p, p = NULL, best_step = s, best_attempt = att;
            }
            free(ts);
            free(p);
        }
        closedir(d);
    }
    free(cdir);
    if (step_out) *step_out = best_step;
    if (attempt_out) *attempt_out = best_attempt;
    return best;
}

// A run that ended rolled back names its rollback target in RUN_DIR/rolled_back
// ("<checkpoint directory name> <attempt>\n"): a later --resume continues from
// that checkpoint (not from the newer one that broke a bound), saving as
// attempt <attempt> so nothing is overwritten. Once a checkpoint of that
// attempt exists the marker is outdated and ignored.
#define ROLLBACK_MARKER "rolled_back"

static char *rollback_target(const char *run_dir, int latest_attempt, int *attempt) {
    char *mp = keel_path_join(run_dir, ROLLBACK_MARKER), *text = NULL, *res = NULL;
    size_t len = 0;
    char name[256];
    if (mp && keel_path_exists(mp) && keel_read_file(mp, &text, &len, NULL) == KEEL_OK &&
        sscanf(text, "%255s %d", name, attempt) == 2 && *attempt > latest_attempt && !strchr(name, '/')) {
        char *cdir = keel_path_join(run_dir, "checkpoints");
        char *p = cdir ? keel_path_join(cdir, name) : NULL;
        char *ts = p ? keel_path_join(p, "trainer_state.json") : NULL;
        if (ts && keel_path_exists(ts)) res = p, p = NULL;
        free(ts);
        free(p);
        free(cdir);
    }
    free(text);
    free(mp);
    return res;
}

// ---- q/k row order ------------------------------------------------------------------------
// From a GGUF the q_proj/k_proj rows are in Meta order (keel_qk_rows_permute maps them).
// Heads of a q/k projection name that needs the row map, else 0 (a LoRA B
// (n_out, r) has the projection's rows; a LoRA A (r, n_in) does not).
static int64_t qk_heads(const keel_trainer *t, const char *hf) {
    if (t->model->rope != KEEL_ROPE_NORM || strstr(hf, ".lora_A.")) return 0;
    if (strstr(hf, ".self_attn.q_proj.")) return t->model->desc.n_head;
    if (strstr(hf, ".self_attn.k_proj.")) return t->model->desc.n_head_kv;
    return 0;
}

// ---- data ---------------------------------------------------------------------------------

static uint64_t epoch_seed(uint64_t seed, int64_t epoch) {
    return seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(epoch + 1));
}

static int32_t max_len(const keel_dataset *d) {
    int32_t m = 0;
    keel_example ex;
    for (int64_t i = 0; d && keel_dataset_get(d, i, &ex); i++)
        if (ex.n_tokens > m) m = ex.n_tokens;
    return m;
}

// Put example ex (or nothing) in row r of the (B, T) batch buffers. Returns its tokens.
static int64_t fill_row(keel_trainer *t, int r, int32_t T, const keel_example *ex) {
    int32_t *tok = t->tok + (size_t)r * T, *tgt = t->tgt + (size_t)r * T;
    uint8_t *mask = t->mask + (size_t)r * T;
    memset(tok, 0, (size_t)T * sizeof *tok);
    memset(tgt, 0, (size_t)T * sizeof *tgt);
    memset(mask, 0, (size_t)T);
    int32_t *seg = t->seg + (size_t)r * T;
    for (int32_t i = 0; i < T; i++) seg[i] = 0;
    if (!ex) return 0;
    int32_t n = ex->n_tokens < T ? ex->n_tokens : T;
    memcpy(tok, ex->tokens, (size_t)n * sizeof *tok);
    for (int32_t i = 0; i + 1 < n; i++) {
        tgt[i] = ex->tokens[i + 1];
        mask[i] = ex->loss_mask[i] ? 1 : 0;
    }
    if (ex->n_segments > 1) {
        // packed: each position's segment start, and no target across a
        // boundary (the dataset masks it already; kept here as the rule)
        t->batch_packed = true;
        for (int32_t sg = 0; sg < ex->n_segments; sg++) {
            int32_t a = ex->segments[sg], b = ex->segments[sg + 1] < n ? ex->segments[sg + 1] : n;
            for (int32_t i = a; i < b; i++) seg[i] = a;
            if (b > a) mask[b - 1] = 0;
        }
        for (int32_t i = n; i < T; i++) seg[i] = n; // padding: a segment of its own
    }
    return n;
}

// The example at stream position pos (epoch pos / n), reshuffling for a new epoch.
static bool stream_get(keel_trainer *t, int64_t pos, keel_example *ex) {
    int64_t n = t->n_train, epoch = pos / n;
    if (t->cfg.max_steps == 0 && epoch >= t->cfg.epochs) return false; // past the last epoch: padding
    if (t->cfg.shuffle && epoch != t->shuffled_epoch) {
        keel_dataset_shuffle(t->train, epoch_seed(t->cfg.seed, epoch));
        t->shuffled_epoch = epoch;
    }
    return keel_dataset_get(t->train, pos % n, ex);
}

// Lay out a batch of B examples (have[r] false: an empty row) at this batch's
// own row length, the longest of its examples (>= 2), so rows are padded only
// to that. The arena of t->acts was carved for (B, t->T) and holds every
// buffer of a (B, T' <= t->T) batch densely from the same pointers (train.c
// indexes each by N = B*T', P by (B, NH, T', T'), the RoPE table by
// position), so only acts.T changes. Returns the non-padding tokens; *N the
// batch's B*T'.
static int64_t fill_batch(keel_trainer *t, const keel_example *exs, const bool *have, size_t *N) {
    int32_t Tb = 2;
    for (int r = 0; r < t->B; r++)
        if (have[r] && exs[r].n_tokens > Tb) Tb = exs[r].n_tokens < t->T ? exs[r].n_tokens : t->T;
    t->acts.T = Tb;
    t->batch_packed = false;
    int64_t tokens = 0;
    for (int r = 0; r < t->B; r++) tokens += fill_row(t, r, Tb, have[r] ? &exs[r] : NULL);
    *N = (size_t)t->B * (size_t)Tb;
    return tokens;
}

static bool mask_any(const uint8_t *m, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (m[i]) return true;
    return false;
}

static size_t mask_count(const uint8_t *m, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += m[i] != 0;
    return c;
}

// ---- open / resume ------------------------------------------------------------------------

static keel_status restore(keel_trainer *t, const char *ckpt, keel_err *err);

keel_status keel_trainer_open(const char *job_path, const keel_train_opts *o, keel_trainer **out,
                              keel_err *err) {
    *out = NULL;
    keel_train_opts def = keel_train_default_opts();
    if (!o) o = &def;
    if (!job_path && !o->resume_dir)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel train: no job file (and no run directory to resume)");
    keel_trainer *t = keel_calloc(1, sizeof *t);
    if (!t) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "trainer: out of memory");
    t->shuffled_epoch = -1;
    t->last_saved = -1;
    t->lr_scale = 1;
    t->saved_ok = -1;
    keel_status st = KEEL_OK;
    char *resume_job = NULL;
    if (o->resume_dir) {
        t->resume = true;
        if (!keel_path_is_dir(o->resume_dir)) {
            st = KEEL_FAIL(err, KEEL_ERR_IO, "--resume %s: not a run directory", o->resume_dir);
            goto fail;
        }
        if (!job_path) {
            resume_job = keel_path_join(o->resume_dir, "job.yaml");
            if (!resume_job) { st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "trainer: out of memory"); goto fail; }
            if (!keel_path_exists(resume_job)) {
                st = KEEL_FAIL(err, KEEL_ERR_IO, "--resume %s: no job.yaml in it (not a keel run directory)", o->resume_dir);
                goto fail;
            }
            job_path = resume_job;
        }
    }
    t->job_path = keel_strdup(job_path);
    if (!t->job_path) { st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "trainer: out of memory"); goto fail; }
    if ((st = keel_train_cfg_load(&t->cfg, job_path, o->sets, o->n_sets, o->resume_dir, err))) goto fail;
    keel_train_cfg *c = &t->cfg;

    // The run directory: fresh runs need it absent or empty.
    if (!t->resume && keel_path_exists(c->out_dir) && !dir_is_empty(c->out_dir)) {
        st = KEEL_FAIL(err, KEEL_ERR_INVALID, "output.dir '%s' exists and is not empty: use --resume %s to continue "
                       "that run, or choose another output.dir (--set output.dir=...)", c->out_dir, c->out_dir);
        goto fail;
    }
    if (t->resume) {
        int64_t s;
        int latest_attempt = 0, marked;
        t->resume_ckpt = latest_checkpoint(c->out_dir, &s, &latest_attempt);
        if (!t->resume_ckpt) {
            st = KEEL_FAIL(err, KEEL_ERR_IO, "--resume %s: no complete checkpoint under %s/checkpoints", c->out_dir, c->out_dir);
            goto fail;
        }
        char *back = rollback_target(c->out_dir, latest_attempt, &marked);
        if (back) { // the run was rolled back: continue from its rollback target
            free(t->resume_ckpt);
            t->resume_ckpt = back;
            t->resume_attempt = marked;
        }
    }

    keel_model_params mp = keel_model_default_params();
    mp.n_threads = c->threads;
    if ((st = keel_model_load(c->model, &mp, &t->model, err))) goto fail;
    t->base_is_dir = keel_path_is_dir(c->model);
    const keel_model_desc *md = keel_model_describe(t->model);
    if (t->model->rope == KEEL_ROPE_NORM && md->n_rot != t->model->head_dim) {
        st = KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED, "%s: rotary dimension %d < head dimension %d has no Hugging Face "
                       "Llama equivalent to export to", c->model, (int)md->n_rot, (int)t->model->head_dim);
        goto fail;
    }

    // Data: load, split or load the validation file.
    keel_data_params dp = keel_data_default_params();
    dp.format = (keel_data_format)c->data_format;
    dp.max_seq_len = c->max_seq_len;
    const keel_tokenizer *tok = keel_model_tokenizer(t->model);
    keel_dataset *all = NULL;
    if ((st = keel_dataset_load(c->train_path, tok, &dp, &all, err))) goto fail;
    if (c->val_split > 0) {
        st = keel_dataset_split(all, c->val_split, c->seed, &t->train, &t->val, err);
        keel_dataset_free(all);
        if (st) goto fail;
    } else {
        t->train = all;
        if (c->val_path && (st = keel_dataset_load(c->val_path, tok, &dp, &t->val, err))) goto fail;
    }
    // Packing: examples (in file order, after the split) share rows of
    // max_seq_len tokens; segments keep them apart (keel_train_forward_seg).
    for (int i = 0; c->packing && i < 2; i++) {
        keel_dataset **dp2 = i == 0 ? &t->train : &t->val, *pk = NULL;
        if (!*dp2) continue;
        if ((st = keel_dataset_pack(*dp2, c->max_seq_len, &pk, err))) goto fail;
        keel_dataset_free(*dp2);
        *dp2 = pk;
    }
    t->n_train = keel_dataset_count(t->train);
    if (t->n_train == 0) {
        st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: no training examples", c->train_path);
        goto fail;
    }
    if (t->val && keel_dataset_count(t->val) == 0) {
        keel_dataset_free(t->val);
        t->val = NULL;
    }
    // The capability ledger: every capability's data is read and tokenized
    // now, so a bad path or line fails before the run directory is touched.
    if (c->caps && c->caps->n > 0) {
        if ((st = keel_ledger_init(&t->ledger, c->caps, c->monitor_sample, c->monitor_seed,
                                   (keel_cap_decide)c->decide, tok, err)))
            goto fail;
        t->ledger_on = true;
    }
    int32_t T = max_len(t->train), Tv = max_len(t->val);
    if (Tv > T) T = Tv;
    if (T < 2) T = 2;
    t->B = c->batch_size, t->T = T;

    // Schedule and step count.
    int64_t per_step = (int64_t)c->batch_size * c->grad_accum;
    t->total_steps = c->max_steps > 0 ? c->max_steps : ((int64_t)c->epochs * t->n_train + per_step - 1) / per_step;
    t->sched = (keel_sched){.kind = (keel_sched_kind)c->schedule, .lr = c->lr, .lr_min = 0,
                            .warmup_steps = c->warmup_steps, .total_steps = t->total_steps};
    if ((st = keel_sched_check(&t->sched, err))) goto fail;

    // Training state.
    // Full: the selected tensors train. LoRA/QLoRA: only the adapters; the base
    // stays frozen in its stored type (for lora too: the panels dequantize it
    // inside the matmul, so the numbers are those of an fp32 copy).
    if ((st = keel_train_model_init(&t->tm, t->model, c->method == 0 ? select_full : select_none, c, err))) goto fail;
    t->tm_ok = true;
    if (c->method != 0) {
        keel_lora_config lc = keel_lora_default_config();
        lc.r = c->lora_r;
        lc.alpha = c->lora_alpha;
        lc.dropout = c->lora_dropout;
        lc.targets = c->lora_targets;
        lc.n_targets = (size_t)c->n_lora_targets;
        lc.use_rslora = c->lora_rslora;
        lc.seed = c->seed;
        lc.init = c->lora_init == 1 ? KEEL_LORA_GAUSSIAN : KEEL_LORA_KAIMING;
        if ((st = keel_lora_attach(&t->lora, &t->tm, &lc, err))) goto fail;
        t->lora_ok = true;
        if ((st = keel_lora_reserve(&t->lora, (int64_t)c->batch_size * T, err))) goto fail;
    }
    if (t->tm.p.n_floats == 0) {
        st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: key 'full.trainable': no tensor is trainable after full.freeze and "
                       "full.freeze_layers", job_path);
        goto fail;
    }
    keel_adamw_params ap = {.beta1 = c->beta1, .beta2 = c->beta2, .eps = c->eps, .weight_decay = c->weight_decay};
    if ((st = keel_adamw_init(&t->opt, t->tm.p.n_floats, &ap, err))) goto fail;
    for (int i = 0; i < t->tm.p.n; i++) { // norm gains (1, C) take no weight decay
        const keel_tparam *p = &t->tm.p.t[i];
        if (p->rows == 1 && (st = keel_adamw_no_decay(&t->opt, p->off, p->off + (size_t)p->cols, err))) goto fail;
    }
    if ((st = keel_train_acts_init(&t->acts, &t->tm, t->B, t->T, err))) goto fail;
    size_t N = (size_t)t->B * t->T;
    t->tok = keel_malloc(N * sizeof *t->tok);
    t->tgt = keel_malloc(N * sizeof *t->tgt);
    t->mask = keel_malloc(N);
    t->seg = keel_malloc(N * sizeof *t->seg);
    t->exs = keel_calloc((size_t)t->B, sizeof *t->exs);
    t->have = keel_calloc((size_t)t->B, sizeof *t->have);
    if (!t->tok || !t->tgt || !t->mask || !t->seg || !t->exs || !t->have) { st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "trainer: out of memory"); goto fail; }
    keel_rng_seed(&t->rng, c->seed);
    if (t->resume && (st = restore(t, t->resume_ckpt, err))) goto fail;
    if (t->resume_attempt > 0) t->attempt = t->resume_attempt;
    free(resume_job);
    *out = t;
    return KEEL_OK;
fail:
    free(resume_job);
    keel_trainer_free(t);
    return st;
}

void keel_trainer_free(keel_trainer *t) {
    if (!t) return;
    if (t->metrics) fclose(t->metrics);
    if (t->ledger_on) keel_ledger_free(&t->ledger);
    keel_train_acts_free(&t->acts);
    keel_adamw_free(&t->opt);
    if (t->lora_ok) keel_lora_free(&t->lora);
    if (t->tm_ok) keel_train_model_free(&t->tm);
    keel_dataset_free(t->train);
    keel_dataset_free(t->val);
    keel_model_free(t->model);
    keel_train_cfg_free(&t->cfg);
    free(t->tok);
    free(t->tgt);
    free(t->mask);
    free(t->seg);
    free(t->exs);
    free(t->have);
    free(t->job_path);
    free(t->resume_ckpt);
    free(t);
}

int64_t keel_trainer_step_count(const keel_trainer *t) { return t->step; }
int64_t keel_trainer_total_steps(const keel_trainer *t) { return t->total_steps; }
void *keel_trainer_train_model(keel_trainer *t) { return &t->tm; }

// ---- run directory and metrics --------------------------------------------------------------

// Keep the lines of a JSONL log whose "step" is in [lo, keep] (a crash may
// have left later ones): metrics.jsonl (lo 1), ledger.jsonl (lo 0: the base).
static keel_status trim_log(const char *path, int64_t lo, int64_t keep, keel_err *err) {
    if (!keel_path_exists(path)) return KEEL_OK;
    char *data = NULL;
    size_t len = 0;
    keel_status st = keel_read_file(path, &data, &len, err);
    if (st) return st;
    keel_buf b = {0};
    bool ok = true;
    for (char *line = data; ok && *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
        long long s = -1;
        const char *k = strstr(line, "\"step\":");
        if (k && k < line + n) s = strtoll(k + 7, NULL, 10);
        if (s >= lo && s <= keep && nl) ok = keel_buf_append(&b, line, n);
        line += n;
    }
    free(data);
    if (!ok) {
        free(b.data);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    }
    keel_iobuf io = {b.data ? b.data : "", b.len};
    st = keel_atomic_write_bufs(path, &io, 1, err);
    free(b.data);
    return st;
}

keel_status keel_trainer_start(keel_trainer *t, keel_err *err) {
    const char *dir = t->cfg.out_dir;
    keel_status st = mkdir_p(dir, err);
    if (st) return st;
    char *job = keel_path_join(dir, "job.yaml");
    char *met = keel_path_join(dir, "metrics.jsonl");
    if (!job || !met) st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "trainer: out of memory");
    if (!st) st = write_text(job, t->cfg.yaml, err);
    if (!st) st = t->resume ? trim_log(met, 1, t->step, err) : KEEL_OK;
    if (!st) {
        t->metrics = fopen(met, t->resume ? "a" : "w");
        if (!t->metrics) st = KEEL_FAIL(err, KEEL_ERR_IO, "%s: cannot open: %s", met, strerror(errno));
    }
    free(job);
    free(met);
    if (st || !t->ledger_on) return st;
    char *led = keel_path_join(dir, "ledger.jsonl"), *base = keel_path_join(dir, "ledger_base.json");
    if (!led || !base) st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "trainer: out of memory");
    if (!st && t->resume) {
        // the base outcomes of the run's start: compare against the same base
        st = keel_ledger_load_base(&t->ledger, base, err);
        if (!st) st = trim_log(led, 0, t->step, err);
    }
    if (!st) {
        t->ledger.jsonl = fopen(led, t->resume ? "a" : "w");
        if (!t->ledger.jsonl) st = KEEL_FAIL(err, KEEL_ERR_IO, "%s: cannot open: %s", led, strerror(errno));
    }
    free(led);
    free(base);
    return st;
}

static void metrics_line(keel_trainer *t, const keel_train_event *ev, bool has_val, double val) {
    if (!t->metrics) return;
    fprintf(t->metrics,
            "{\"step\":%" PRId64 ",\"epoch\":%d,\"loss\":%.9g,\"lr\":%.17g,\"grad_norm\":%.17g,\"tokens\":%" PRId64
            ",\"tokens_per_s\":%.1f,\"elapsed\":%.3f",
            ev->step, (int)ev->epoch, ev->loss, ev->lr, isfinite(ev->grad_norm) ? ev->grad_norm : -1.0, ev->tokens,
            ev->tokens_per_s, ev->elapsed_s);
    if (has_val) fprintf(t->metrics, ",\"val_loss\":%.9g", val);
    if (t->attempt > 0) fprintf(t->metrics, ",\"attempt\":%d", (int)t->attempt);
    fputs("}\n", t->metrics);
    fflush(t->metrics);
}

// ---- one step -------------------------------------------------------------------------------

keel_status keel_trainer_step(keel_trainer *t, keel_train_event *ev, keel_err *err) {
    memset(ev, 0, sizeof *ev);
    ev->kind = KEEL_TRAIN_EV_STEP;
    ev->total_steps = t->total_steps;
    if (t->step >= t->total_steps) return KEEL_OK;
    double t0 = keel_time_s();
    keel_train_zero_grad(&t->tm);
    double loss_sum = 0;
    int n_used = 0;
    int64_t tokens = 0;
    size_t N = 0;
    for (int a = 0; a < t->cfg.grad_accum; a++) {
        for (int r = 0; r < t->B; r++) {
            t->have[r] = stream_get(t, t->data_pos, &t->exs[r]);
            if (t->have[r]) ev->epoch = (int32_t)(t->data_pos / t->n_train);
            t->data_pos++;
        }
        tokens += fill_batch(t, t->exs, t->have, &N);
        if (!mask_any(t->mask, N)) continue; // only padding (the end of the last epoch)
        // LoRA dropout masks: one stream per micro-batch, a function of the position only
        if (t->lora_ok) keel_lora_set_train(&t->lora, true, (uint64_t)(t->step * t->cfg.grad_accum + a));
        float loss = 0;
        keel_status st = keel_train_forward_seg(&t->tm, &t->acts, t->tok, t->tgt, t->mask, t->batch_packed ? t->seg : NULL, &loss, err);
        if (st) return st;
        keel_train_backward(&t->tm, &t->acts);
        loss_sum += loss;
        n_used++;
    }
    int64_t step = t->step; // 0-based index of this update
    double lr = keel_sched_lr(&t->sched, step);
    double norm = 0;
    if (n_used > 0) {
        if (n_used > 1) keel_grad_scale(t->tm.p.g, t->tm.p.n_floats, 1.0f / (float)n_used);
        norm = keel_grad_clip(t->tm.p.g, t->tm.p.n_floats, t->cfg.clip);
        if (isfinite(norm)) {
            keel_status st = keel_adamw_step(&t->opt, t->tm.p.w, t->tm.p.g, lr, err);
            if (st) return st;
        }
    }
    t->step++;
    t->tokens_total += tokens;
    double dt = keel_time_s() - t0;
    ev->step = t->step;
    ev->loss = n_used ? loss_sum / n_used : NAN;
    ev->lr = lr;
    ev->grad_norm = norm;
    ev->tokens = tokens;
    ev->tokens_per_s = dt > 0 ? (double)tokens / dt : 0;
    return KEEL_OK;
}

keel_status keel_trainer_eval(keel_trainer *t, bool *has_val, double *loss, keel_err *err) {
    *has_val = false;
    *loss = NAN;
    if (!t->val) return KEEL_OK;
    if (t->lora_ok) keel_lora_set_train(&t->lora, false, 0); // no dropout
    int64_t n = keel_dataset_count(t->val);
    double sum = 0, cnt = 0;
    size_t N = 0;
    for (int64_t i = 0; i < n; i += t->B) {
        for (int r = 0; r < t->B; r++) t->have[r] = i + r < n && keel_dataset_get(t->val, i + r, &t->exs[r]);
        fill_batch(t, t->exs, t->have, &N);
        size_t c = mask_count(t->mask, N);
        if (!c) continue;
        float l = 0;
        keel_status st = keel_train_forward_seg(&t->tm, &t->acts, t->tok, t->tgt, t->mask, t->batch_packed ? t->seg : NULL, &l, err);
        if (st) return st;
        sum += (double)l * (double)c;
        cnt += (double)c;
    }
    if (cnt > 0) {
        *has_val = true;
        *loss = sum / cnt;
    }
    return KEEL_OK;
}

// ---- checkpoints ----------------------------------------------------------------------------

static keel_status write_config(keel_trainer *t, const char *path, keel_err *err) {
    const keel_model_desc *d = keel_model_describe(t->model);
    const keel_tokenizer *tok = keel_model_tokenizer(t->model);
    cJSON *j = cJSON_CreateObject();
    cJSON *arch = cJSON_CreateArray();
    if (!j || !arch) {
        cJSON_Delete(j);
        cJSON_Delete(arch);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    }
    cJSON_AddItemToArray(arch, cJSON_CreateString("LlamaForCausalLM"));
    cJSON_AddItemToObject(j, "architectures", arch);
    cJSON_AddFalseToObject(j, "attention_bias");
    cJSON_AddNumberToObject(j, "attention_dropout", 0.0);
    if (keel_token_bos(tok) >= 0) cJSON_AddNumberToObject(j, "bos_token_id", keel_token_bos(tok));
    if (keel_token_eos(tok) >= 0) cJSON_AddNumberToObject(j, "eos_token_id", keel_token_eos(tok));
    cJSON_AddNumberToObject(j, "head_dim", t->model->head_dim);
    cJSON_AddStringToObject(j, "hidden_act", "silu");
    cJSON_AddNumberToObject(j, "hidden_size", d->n_embd);
    cJSON_AddNumberToObject(j, "initializer_range", 0.02);
    cJSON_AddNumberToObject(j, "intermediate_size", d->n_ff);
    cJSON_AddNumberToObject(j, "max_position_embeddings", d->n_ctx_train > 0 ? d->n_ctx_train : 2048);
    cJSON_AddFalseToObject(j, "mlp_bias");
    cJSON_AddStringToObject(j, "model_type", "llama");
    cJSON_AddNumberToObject(j, "num_attention_heads", d->n_head);
    cJSON_AddNumberToObject(j, "num_hidden_layers", d->n_layer);
    cJSON_AddNumberToObject(j, "num_key_value_heads", d->n_head_kv);
    cJSON_AddNumberToObject(j, "pretraining_tp", 1);
    // float hyper-parameters as the shortest decimal that reads back as the same float
    char s[32];
    snprintf(s, sizeof s, "%.7g", (double)d->norm_eps);
    cJSON_AddNumberToObject(j, "rms_norm_eps", strtod(s, NULL));
    cJSON_AddNullToObject(j, "rope_scaling");
    snprintf(s, sizeof s, "%.7g", (double)d->rope_theta);
    cJSON_AddNumberToObject(j, "rope_theta", strtod(s, NULL));
    if (d->tied_output) cJSON_AddTrueToObject(j, "tie_word_embeddings");
    else cJSON_AddFalseToObject(j, "tie_word_embeddings");
    cJSON_AddStringToObject(j, "torch_dtype", "float32");
    cJSON_AddTrueToObject(j, "use_cache");
    cJSON_AddNumberToObject(j, "vocab_size", d->n_vocab);
    char *txt = cJSON_Print(j);
    cJSON_Delete(j);
    if (!txt) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    keel_buf b = {0};
    keel_status st = KEEL_OK;
    if (!keel_buf_appends(&b, txt) || !keel_buf_appends(&b, "\n")) st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    else st = write_text(path, b.data, err);
    cJSON_free(txt);
    free(b.data);
    return st;
}

// Every tensor of the model in HF names and row order, fp32, into model.safetensors.
static keel_status write_model(keel_trainer *t, const char *path, keel_err *err) {
    const keel_model *m = t->model;
    const keel_train_model *tm = &t->tm;
    const keel_model_desc *d = &m->desc;
    int nl = d->n_layer, cap = 3 + nl * 9;
    keel_st_entry *e = keel_calloc((size_t)cap, sizeof *e);
    char (*names)[96] = keel_calloc((size_t)cap, sizeof *names);
    float **owned = keel_calloc((size_t)cap, sizeof *owned);
    keel_status st = KEEL_OK;
    int n = 0;
    if (!e || !names || !owned) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    // Add a linear layer: trainable values or the frozen stored matrix, dequantized; q/k rows to HF order.
    #define ADD_LIN(nm, L)                                                                             \
        do {                                                                                           \
            const keel_tlinear *l_ = (L);                                                              \
            snprintf(names[n], sizeof names[n], "%s", (nm));                                           \
            int64_t rows = l_->base.n_out, cols = l_->base.n_in, heads = qk_heads(t, names[n]);        \
            const float *src = l_->w;                                                                  \
            if (!src || heads) {                                                                       \
                float *buf = keel_malloc_aligned((size_t)(rows * cols) * sizeof(float) * (heads ? 2 : 1)); \
                if (!buf) { st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path); goto done; } \
                owned[n] = buf;                                                                        \
                if (!src) {                                                                            \
                    for (int64_t r_ = 0; r_ < rows; r_++)                                              \
                        keel_dequant_row(l_->base.type, l_->base.data + (size_t)r_ * l_->base.row_bytes,   \
                                         buf + r_ * cols, cols);                                       \
                    src = buf;                                                                         \
                }                                                                                      \
                if (heads) {                                                                           \
                    float *dst = buf + (src == buf ? rows * cols : 0);                                 \
                    keel_qk_rows_permute(dst, src, heads * m->head_dim, m->head_dim, cols, true);                            \
                    src = dst;                                                                         \
                }                                                                                      \
            }                                                                                          \
            e[n] = (keel_st_entry){.name = names[n], .type = KEEL_DTYPE_F32, .n_dims = 2,              \
                                   .shape = {rows, cols}, .data = src};                                \
            n++;                                                                                       \
        } while (0)
    #define ADD_VEC(nm, V)                                                                             \
        do {                                                                                           \
            snprintf(names[n], sizeof names[n], "%s", (nm));                                           \
            e[n] = (keel_st_entry){.name = names[n], .type = KEEL_DTYPE_F32, .n_dims = 1,              \
                                   .shape = {d->n_embd}, .data = (V)->w};                              \
            n++;                                                                                       \
        } while (0)
    ADD_LIN("model.embed_tokens.weight", &tm->tok_embd);
    char nm[96];
    for (int l = 0; l < nl; l++) {
        const keel_tlayer *L = &tm->layers[l];
        static const char *const proj[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                            "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
        const keel_tlinear *lin[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
        ADD_VEC(nm, &L->attn_norm);
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD_VEC(nm, &L->ffn_norm);
        for (int i = 0; i < 7; i++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, proj[i]);
            ADD_LIN(nm, lin[i]);
        }
    }
    ADD_VEC("model.norm.weight", &tm->output_norm);
    if (!tm->tied) ADD_LIN("lm_head.weight", &tm->output);
    #undef ADD_LIN
    #undef ADD_VEC
    keel_st_kv meta[] = {{"format", "pt"}};
    st = keel_st_write(path, e, (size_t)n, meta, 1, err);
done:
    for (int i = 0; owned && i < cap; i++) keel_free_aligned(owned[i]);
    free(owned);
    free(names);
    free(e);
    return st;
}

static void rng_hex(const keel_rng *r, char *out, size_t cap) {
    snprintf(out, cap, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64, r->s[0], r->s[1], r->s[2], r->s[3]);
}

static bool rng_parse(const char *s, keel_rng *r) {
    if (!s || strlen(s) != 64) return false;
    for (int i = 0; i < 4; i++) {
        char part[17];
        memcpy(part, s + 16 * i, 16);
        part[16] = 0;
        char *end;
        r->s[i] = strtoull(part, &end, 16);
        if (*end) return false;
    }
    return true;
}

keel_status keel_trainer_save(keel_trainer *t, char *dir_out, size_t cap, keel_err *err) {
    char name[64];
    if (t->attempt > 0) snprintf(name, sizeof name, "step-%" PRId64 "-a%d", t->step, (int)t->attempt);
    else snprintf(name, sizeof name, "step-%" PRId64, t->step);
    char *cdir = keel_path_join(t->cfg.out_dir, "checkpoints");
    char *final = cdir ? keel_path_join(cdir, name) : NULL;
    size_t tl = final ? strlen(final) + 5 : 0;
    char *tmp = final ? keel_malloc(tl) : NULL;
    keel_status st = KEEL_OK;
    char *f = NULL;
    if (!tmp) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "checkpoint: out of memory");
        goto done;
    }
    snprintf(tmp, tl, "%s.tmp", final);
    if ((st = mkdir_p(cdir, err))) goto done;
    rm_flat_dir(tmp); // a leftover of an interrupted save
    if (mkdir(tmp, 0777) != 0) {
        st = KEEL_FAIL(err, KEEL_ERR_IO, "%s: cannot create directory: %s", tmp, strerror(errno));
        goto done;
    }
#define FILE_IN(nm) (free(f), f = keel_path_join(tmp, nm), f ? KEEL_OK : KEEL_FAIL(err, KEEL_ERR_NOMEM, "checkpoint: out of memory"))
    if (t->lora_ok) {
        if ((st = keel_lora_save(&t->lora, tmp, t->cfg.model, err))) goto done;
    } else {
        if ((st = FILE_IN("model.safetensors")) || (st = write_model(t, f, err))) goto done;
        if ((st = FILE_IN("config.json")) || (st = write_config(t, f, err))) goto done;
    }
    if (!t->lora_ok && t->base_is_dir) { // PEFT adapters carry no tokenizer
        static const char *const toks[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                           "generation_config.json"};
        for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++) {
            char *src = keel_path_join(t->cfg.model, toks[i]);
            if (!src) { st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "checkpoint: out of memory"); goto done; }
            if (keel_path_exists(src) && !(st = FILE_IN(toks[i]))) st = copy_file_atomic(src, f, err);
            free(src);
            if (st) goto done;
        }
    }
    if (!t->lora_ok && !t->base_is_dir && keel_model_tokenizer(t->model)) {
        // GGUF base: export its tokenizer so the checkpoint reloads as a HF
        // directory. Vocabularies the writer cannot express (SentencePiece,
        // other pre-tokenizers) are skipped silently: the checkpoint is then
        // weights + config only, as before.
        keel_err e2;
        keel_status ts = keel_tokenizer_write_hf(keel_model_tokenizer(t->model), tmp, &e2);
        if (ts && ts != KEEL_ERR_UNSUPPORTED) {
            st = KEEL_FAIL(err, ts, "checkpoint: %s", e2.msg);
            goto done;
        }
    }
    char pos[32], rng[80], el[40], tk[32], stp[32];
    snprintf(pos, sizeof pos, "%" PRId64, t->data_pos);
    rng_hex(&t->rng, rng, sizeof rng);
    snprintf(el, sizeof el, "%.17g", t->elapsed_before);
    snprintf(tk, sizeof tk, "%" PRId64, t->tokens_total);
    snprintf(stp, sizeof stp, "%" PRId64, t->step);
    char att[16], lrs[40];
    snprintf(att, sizeof att, "%d", (int)t->attempt);
    snprintf(lrs, sizeof lrs, "%.17g", t->lr_scale);
    // keel.good: the last checkpoint that satisfied every bound as of this
    // one (itself when it did), so a resumed run rolls back to the right place
    const char *good = t->saved_ok == 1 ? final : t->good;
    keel_st_kv extra[] = {{"keel.data_pos", pos}, {"keel.rng", rng}, {"keel.elapsed", el},
                          {"keel.tokens", tk}, {"keel.trainer_step", stp}, {"keel.attempt", att},
                          {"keel.lr_scale", lrs}, {"keel.good", good}};
    if ((st = FILE_IN("optimizer.safetensors")) ||
        (st = keel_adamw_save(&t->opt, f, extra, sizeof extra / sizeof extra[0], err)))
        goto done;
    char js[1024];
    snprintf(js, sizeof js,
             "{\n  \"step\": %" PRId64 ",\n  \"total_steps\": %" PRId64 ",\n  \"data_pos\": %" PRId64
             ",\n  \"epoch\": %" PRId64 ",\n  \"tokens\": %" PRId64 ",\n  \"elapsed\": %.3f,\n  \"seed\": %" PRIu64
             ",\n  \"method\": \"%s\",\n  \"attempt\": %d,\n  \"lr_scale\": %.17g,\n  \"bounds_ok\": %s,\n"
             "  \"format\": \"keel-trainer-state\",\n  \"version\": 1\n}\n",
             t->step, t->total_steps, t->data_pos, t->data_pos / t->n_train, t->tokens_total, t->elapsed_before,
             t->cfg.seed, method_name(t->cfg.method), (int)t->attempt, t->lr_scale,
             t->saved_ok < 0 ? "null" : t->saved_ok ? "true" : "false");
    if ((st = FILE_IN("trainer_state.json")) || (st = write_text(f, js, err))) goto done;
#undef FILE_IN
    fsync_dir(tmp);
    if (keel_path_exists(final)) rm_flat_dir(final); // re-saving a step (a resumed run's first save)
    if (rename(tmp, final) != 0) {
        st = KEEL_FAIL(err, KEEL_ERR_IO, "%s: cannot rename to %s: %s", tmp, final, strerror(errno));
        goto done;
    }
    fsync_dir(cdir);
    t->last_saved = t->step;
    if (dir_out && cap) snprintf(dir_out, cap, "%s", final);
done:
    if (st && tmp) rm_flat_dir(tmp);
    free(f);
    free(tmp);
    free(final);
    free(cdir);
    return st;
}

// Load the trainable tensors, the optimizer state and the data position from ckpt.
static keel_status restore(keel_trainer *t, const char *ckpt, keel_err *err) {
    char *mp = keel_path_join(ckpt, t->lora_ok ? "adapter_model.safetensors" : "model.safetensors");
    char *op = keel_path_join(ckpt, "optimizer.safetensors");
    keel_safetensors *s = NULL, *o = NULL;
    keel_status st = KEEL_OK;
    if (!mp || !op) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "resume: out of memory");
        goto done;
    }
    if ((st = keel_st_open(mp, &s, err))) goto done;
    for (int i = 0; i < t->tm.p.n; i++) {
        const keel_tparam *p = &t->tm.p.t[i];
        const keel_tensor_info *ti = keel_st_find_tensor(s, p->name);
        if (!ti) { st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: no tensor %s", mp, p->name); goto done; }
        if (ti->type != KEEL_DTYPE_F32 || ti->ne[0] != p->cols || (ti->n_dims > 1 ? ti->ne[1] : 1) != p->rows) {
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tensor %s is not F32 (%lld, %lld)", mp, p->name,
                           (long long)p->rows, (long long)p->cols);
            goto done;
        }
        float *w = t->tm.p.w + p->off;
        int64_t heads = qk_heads(t, p->name);
        if (heads) {
            float *tmp = keel_malloc((size_t)(p->rows * p->cols) * sizeof(float));
            if (!tmp) { st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "resume: out of memory"); goto done; }
            memcpy(tmp, ti->data, ti->nbytes);
            keel_qk_rows_permute(w, tmp, heads * t->model->head_dim, t->model->head_dim, p->cols, false);
            free(tmp);
        } else {
            memcpy(w, ti->data, ti->nbytes);
        }
    }
    if ((st = keel_adamw_load(&t->opt, op, err))) goto done;
    if ((st = keel_st_open(op, &o, err))) goto done;
    const char *pos = keel_st_metadata(o, "keel.data_pos"), *rng = keel_st_metadata(o, "keel.rng");
    const char *el = keel_st_metadata(o, "keel.elapsed"), *tk = keel_st_metadata(o, "keel.tokens");
    const char *stp = keel_st_metadata(o, "keel.trainer_step");
    if (!pos || !rng || !el || !tk || !stp || !rng_parse(rng, &t->rng)) {
        st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: missing or bad keel.* metadata (data position, RNG state)", op);
        goto done;
    }
    const char *att = keel_st_metadata(o, "keel.attempt"), *lrs = keel_st_metadata(o, "keel.lr_scale");
    const char *good = keel_st_metadata(o, "keel.good");
    t->attempt = att ? (int32_t)strtol(att, NULL, 10) : 0; // absent in checkpoints before the ledger
    t->lr_scale = lrs ? strtod(lrs, NULL) : 1.0;
    snprintf(t->good, sizeof t->good, "%s", good ? good : "");
    if (t->attempt < 0 || !(t->lr_scale > 0 && t->lr_scale <= 1)) {
        st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: bad keel.attempt or keel.lr_scale", op);
        goto done;
    }
    t->sched.lr = t->cfg.lr * t->lr_scale;
    t->data_pos = strtoll(pos, NULL, 10);
    t->elapsed_before = strtod(el, NULL);
    t->tokens_total = strtoll(tk, NULL, 10);
    t->step = strtoll(stp, NULL, 10);
    t->last_saved = t->step;
    if (t->data_pos < 0 || t->step < 0) st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: negative data position or step", op);
    else if (t->step > t->total_steps)
        st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: checkpoint is at step %" PRId64 " but the job has only %" PRId64
                       " steps (raise train.max_steps with --set)", ckpt, t->step, t->total_steps);
done:
    keel_st_close(s);
    keel_st_close(o);
    free(mp);
    free(op);
    return st;
}

// ---- the public driver ------------------------------------------------------------------------

keel_train_opts keel_train_default_opts(void) {
    keel_train_opts o;
    memset(&o, 0, sizeof o);
    return o;
}

static void emit(const keel_train_callbacks *cb, const keel_train_event *ev) {
    if (cb && cb->on_event) cb->on_event(ev, cb->ud);
}

// ---- the ledger and the registry inside a run ----------------------------------------------
//
// Measurements happen before step 0 (all items), every monitor.every steps
// (on the monitor subset when monitor.sample is set) and after the last step
// (all items). Every measured point is saved as a checkpoint tagged with its
// verdict; the last one that satisfied every bound is t->good (the active
// version). A violation is handled as monitor.on_violation says.

typedef struct run_ctx {
    keel_trainer *t;
    const keel_train_callbacks *cb;
    keel_train_summary *sum;
    keel_registry *reg;     // NULL: no registry
    int64_t run_id;
    int64_t parent_id;      // registry id of the lineage's last checkpoint (-1: none)
    int64_t good_id;        // registry id of t->good (-1: none)
    double elapsed0;        // t->elapsed_before when this call started
    double t_start;
} run_ctx;

static double run_elapsed(const run_ctx *rc) { return rc->elapsed0 + (keel_time_s() - rc->t_start); }

// Save a checkpoint of the current step; ok: its bounds verdict (-1 not
// measured); phase: the measurement it carries (NULL: none).
static keel_status save_ckpt(run_ctx *rc, int ok, const char *phase, keel_err *err) {
    keel_trainer *t = rc->t;
    keel_train_summary *sum = rc->sum;
    t->saved_ok = ok;
    double keep = t->elapsed_before;
    t->elapsed_before = run_elapsed(rc); // the clock travels with the checkpoint
    keel_status st = keel_trainer_save(t, sum->checkpoint, sizeof sum->checkpoint, err);
    t->elapsed_before = keep;
    t->saved_ok = -1;
    if (st) return st;
    bool active = ok == 1 || !t->ledger_on;
    if (ok == 1) snprintf(t->good, sizeof t->good, "%s", sum->checkpoint);
    if (active) snprintf(sum->active, sizeof sum->active, "%s", sum->checkpoint);
    keel_train_event ce = {.kind = KEEL_TRAIN_EV_CHECKPOINT, .step = t->step, .total_steps = t->total_steps,
                           .path = sum->checkpoint, .elapsed_s = run_elapsed(rc)};
    emit(rc->cb, &ce);
    if (!rc->reg) return KEEL_OK;
    char sha[65], real[PATH_MAX];
    const char *path = realpath(sum->checkpoint, real) ? real : sum->checkpoint;
    int64_t id = -1;
    if ((st = keel_dir_sha256(path, sha, err))) return st;
    if ((st = keel_registry_add_checkpoint(rc->reg, rc->run_id, "step", t->step, path, sha, rc->parent_id, ok, &id, err)))
        return st;
    rc->parent_id = id;
    if (phase && (st = keel_registry_add_measurements(rc->reg, rc->run_id, id, t->step, phase, t->ledger.now_sampled,
                                                      t->ledger.now, t->ledger.now_base, t->ledger.n, err)))
        return st;
    if (ok == 1) rc->good_id = id;
    if (active) st = keel_registry_set_active(rc->reg, rc->run_id, id, err);
    return st;
}

// The last measurement to ledger.jsonl and to the caller (EV_LEDGER).
static void log_measure(run_ctx *rc, const char *phase, bool ok, const char *why) {
    keel_trainer *t = rc->t;
    keel_ledger_log_measure(&t->ledger, t->step, phase);
    keel_train_event ev = {.kind = KEEL_TRAIN_EV_LEDGER, .step = t->step, .total_steps = t->total_steps,
                           .caps = t->ledger.now, .caps_base = t->ledger.now_base, .n_caps = t->ledger.n,
                           .phase = phase, .sampled = t->ledger.now_sampled, .ok = ok, .reason = ok ? NULL : why,
                           .elapsed_s = run_elapsed(rc)};
    emit(rc->cb, &ev);
}

// Measure the capabilities now; *ok = every bound holds (why: the reasons).
static keel_status measure(run_ctx *rc, const char *phase, bool sampled, bool *ok, char *why, size_t cap,
                           keel_err *err) {
    keel_trainer *t = rc->t;
    keel_status st = keel_ledger_measure(&t->ledger, &t->tm, t->lora_ok ? &t->lora : NULL, sampled, err);
    if (st) return st;
    *ok = keel_ledger_check(&t->ledger, why, cap) == 0;
    log_measure(rc, phase, *ok, why);
    return KEEL_OK;
}

// Record a decision taken at step (the step of the measurement that caused it).
static keel_status decide(run_ctx *rc, int64_t step, const char *action, const char *reason, const char *path,
                          keel_err *err) {
    keel_trainer *t = rc->t;
    keel_ledger_log_decision(&t->ledger, step, action, reason, path);
    keel_train_event ev = {.kind = KEEL_TRAIN_EV_DECISION, .step = step, .total_steps = t->total_steps,
                           .action = action, .reason = reason, .path = path, .elapsed_s = run_elapsed(rc)};
    emit(rc->cb, &ev);
    if (!rc->reg) return KEEL_OK;
    return keel_registry_add_decision(rc->reg, rc->run_id, step, action, reason,
                                      path ? rc->good_id : -1, err);
}

// Restore t->good into the trainer (weights, optimizer, data position, RNG).
static keel_status roll_back(run_ctx *rc, keel_err *err) {
    keel_trainer *t = rc->t;
    double el = t->elapsed_before; // restore() reads the checkpoint's clock; the run's keeps going
    char good[sizeof t->good];
    snprintf(good, sizeof good, "%s", t->good);
    keel_status st = restore(t, good, err);
    if (st) return st;
    t->elapsed_before = el;
    rc->parent_id = rc->good_id; // the lineage continues from the good checkpoint
    snprintf(rc->sum->active, sizeof rc->sum->active, "%s", good);
    if (rc->reg && rc->good_id >= 0) st = keel_registry_set_active(rc->reg, rc->run_id, rc->good_id, err);
    return st;
}

// A measurement broke a bound: act as monitor.on_violation says. *end: the run stops.
static keel_status on_violation(run_ctx *rc, const char *why, bool *end, keel_err *err) {
    keel_trainer *t = rc->t;
    keel_train_cfg *c = &t->cfg;
    rc->sum->n_violations++;
    *end = false;
    const int64_t step = t->step; // before a rollback moves it
    char reason[4096];
    int pol = c->on_violation;
    if (pol == 3) { // warn
        snprintf(reason, sizeof reason, "%.2000s (on_violation warn: training goes on)", why);
        return decide(rc, step, "warn", reason, NULL, err);
    }
    if (pol == 0) { // stop
        snprintf(reason, sizeof reason, "%.2000s (on_violation stop: checkpoint saved, run stopped; the active version "
                 "stays the last one within bounds)", why);
        snprintf(rc->sum->status, sizeof rc->sum->status, "stopped");
        *end = true;
        return decide(rc, step, "stop", reason, NULL, err);
    }
    if (!t->good[0]) { // cannot happen: the base measurement saves a good step-0 checkpoint
        snprintf(rc->sum->status, sizeof rc->sum->status, "stopped");
        *end = true;
        snprintf(reason, sizeof reason, "%.2000s (no checkpoint within bounds to roll back to: stopped)", why);
        return decide(rc, step, "stop", reason, NULL, err);
    }
    int32_t attempt = t->attempt;
    double scale = t->lr_scale;
    const char *base_name = strrchr(t->good, '/') ? strrchr(t->good, '/') + 1 : t->good;
    keel_status st = roll_back(rc, err);
    if (st) return st;
    if (pol == 2 && attempt < c->max_retries) { // adapt
        t->attempt = attempt + 1;
        t->lr_scale = scale * c->lr_factor;
        t->sched.lr = c->lr * t->lr_scale;
        rc->sum->n_retries++;
        snprintf(reason, sizeof reason, "%.2000s -> rolled back to %s, learning rate x%g (peak now %.3g), retry %d of %d; "
                 "no preservation method configured to strengthen", why, base_name, c->lr_factor, t->sched.lr,
                 (int)t->attempt, (int)c->max_retries);
        return decide(rc, step, "adapt", reason, t->good, err);
    }
    snprintf(reason, sizeof reason, "%.2000s -> rolled back to %s and stopped%s", why, base_name,
             pol == 2 ? " (adapt: no retries left)" : "");
    snprintf(rc->sum->status, sizeof rc->sum->status, "rolled_back");
    *end = true;
    // a later --resume continues from the rollback target, as a new attempt
    t->attempt = attempt + 1;
    char mark[400];
    snprintf(mark, sizeof mark, "%.300s %d\n", base_name, (int)t->attempt);
    char *mp = keel_path_join(t->cfg.out_dir, ROLLBACK_MARKER);
    if (!mp) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "trainer: out of memory");
    keel_iobuf io = {mark, strlen(mark)};
    st = keel_atomic_write_bufs(mp, &io, 1, err);
    free(mp);
    if (st) return st;
    return decide(rc, step, pol == 2 ? "give_up" : "rollback", reason, t->good, err);
}

// Register the run (fresh: a new row; resumed: the row of its directory).
static keel_status registry_begin(run_ctx *rc, const char *path, keel_err *err) {
    keel_trainer *t = rc->t;
    keel_status st = keel_registry_open(path, &rc->reg, err);
    if (st) return st;
    char real[PATH_MAX];
    const char *dir = realpath(t->cfg.out_dir, real) ? real : t->cfg.out_dir;
    // run_begin on a directory already recorded continues its row (status
    // back to running): a resumed run stays one run.
    rc->run_id = -1;
    if (!t->resume && (st = keel_registry_run_retire_dir(rc->reg, dir, err))) return st;
    st = keel_registry_run_begin(rc->reg, dir, t->cfg.yaml, t->cfg.model, method_name(t->cfg.method), &rc->run_id, err);
    if (!st && t->resume) st = keel_registry_checkpoint_find(rc->reg, rc->run_id, t->resume_ckpt, &rc->parent_id, err);
    if (!st && t->resume && rc->parent_id < 0) {
        // killed between the checkpoint's rename and its record: record it now
        // (complete on disk: it has trainer_state.json), so the lineage goes on
        char sha[65], p2[PATH_MAX];
        const char *cp = realpath(t->resume_ckpt, p2) ? p2 : t->resume_ckpt;
        st = keel_dir_sha256(cp, sha, err);
        if (!st) st = keel_registry_add_checkpoint(rc->reg, rc->run_id, "step", t->step, cp, sha, -1,
                                                   t->ledger_on && !strcmp(t->good, t->resume_ckpt) ? 1 : -1,
                                                   &rc->parent_id, err);
    }
    if (!st && t->resume && t->good[0]) st = keel_registry_checkpoint_find(rc->reg, rc->run_id, t->good, &rc->good_id, err);
    rc->sum->run_id = rc->run_id;
    return st;
}

// Before step 0: the base model is measured (all items), recorded as the
// run's "base" checkpoint (the model file itself) and saved as step-0, the
// first rollback target.
static keel_status ledger_start(run_ctx *rc, keel_err *err) {
    keel_trainer *t = rc->t;
    keel_status st = keel_ledger_measure_base(&t->ledger, &t->tm, t->lora_ok ? &t->lora : NULL, err);
    if (st) return st;
    char *bp = keel_path_join(t->cfg.out_dir, "ledger_base.json");
    if (!bp) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "trainer: out of memory");
    st = keel_ledger_save_base(&t->ledger, bp, err);
    free(bp);
    if (st) return st;
    char why[2048];
    int32_t bad = keel_ledger_check(&t->ledger, why, sizeof why); // only min/max can fail here
    log_measure(rc, "base", bad == 0, why); // t->step is 0 on a fresh run
    if (bad) {
        char reason[2200];
        snprintf(reason, sizeof reason, "the base model is already outside its bounds: %.2040s (it stays the reference)", why);
        if ((st = decide(rc, 0, "warn", reason, NULL, err))) return st;
    }
    if (rc->reg) {
        char sha[65], real[PATH_MAX];
        const char *mp = realpath(t->cfg.model, real) ? real : t->cfg.model;
        st = t->base_is_dir ? keel_dir_sha256(mp, sha, err) : keel_file_sha256(mp, sha, err);
        if (st == KEEL_ERR_FORMAT && t->base_is_dir) { // e.g. an HF directory with subfolders: no digest
            sha[0] = 0;
            st = KEEL_OK;
        }
        if (!st) st = keel_registry_add_checkpoint(rc->reg, rc->run_id, "base", 0, mp, sha, -1, 1, &rc->parent_id, err);
        if (!st) st = keel_registry_add_measurements(rc->reg, rc->run_id, rc->parent_id, 0, "base", false,
                                                     t->ledger.base_full, t->ledger.base_full, t->ledger.n, err);
        if (st) return st;
        rc->good_id = rc->parent_id;
    }
    return save_ckpt(rc, 1, NULL, err);
}

keel_status keel_train_run(const char *job_path, const keel_train_opts *o, const keel_train_callbacks *cb,
                           keel_train_summary *out, keel_err *err) {
    keel_train_summary sum_local;
    keel_train_summary *sum = out ? out : &sum_local;
    memset(sum, 0, sizeof *sum);
    sum->final_loss = NAN;
    sum->val_loss = NAN;
    keel_train_opts def = keel_train_default_opts();
    if (!o) o = &def;
    if (o->n_sets < 0 || (o->n_sets && !o->sets) || o->eval_every < 0 || o->stop_after < 0)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_train_run: bad options");
    keel_trainer *t = NULL;
    keel_status st = keel_trainer_open(job_path, o, &t, err);
    if (st) return st;
    run_ctx rc = {.t = t, .cb = cb, .sum = sum, .parent_id = -1, .good_id = -1};
    snprintf(sum->run_dir, sizeof sum->run_dir, "%s", t->cfg.out_dir);
    snprintf(sum->status, sizeof sum->status, "done");
    if (t->resume && t->resume_ckpt) snprintf(sum->active, sizeof sum->active, "%s", t->ledger_on ? t->good : t->resume_ckpt);
    if ((st = keel_trainer_start(t, err))) goto done;
    if (o->registry && (st = registry_begin(&rc, o->registry, err))) goto done;

    keel_train_event ev = {.kind = KEEL_TRAIN_EV_START, .step = t->step, .total_steps = t->total_steps};
    emit(cb, &ev);
    rc.t_start = keel_time_s();
    rc.elapsed0 = t->elapsed_before;
    if (t->ledger_on && !t->resume && (st = ledger_start(&rc, err))) goto done;
    int64_t save_every = t->cfg.save_every, eval_every = o->eval_every, every = t->cfg.monitor_every;
    bool sampled = t->cfg.monitor_sample > 0;
    char why[2048];
    while (t->step < t->total_steps) {
        if ((st = keel_trainer_step(t, &ev, err))) goto done;
        double now = keel_time_s() - rc.t_start;
        sum->steps_run++;
        sum->tokens += ev.tokens;
        sum->final_loss = ev.loss;
        ev.elapsed_s = rc.elapsed0 + now;
        ev.eta_s = now / (double)sum->steps_run * (double)(t->total_steps - t->step);
        bool last = t->step == t->total_steps;
        bool stop = (o->stop_after > 0 && sum->steps_run >= o->stop_after) ||
                    (cb && cb->should_stop && cb->should_stop(cb->ud));
        bool monitor = t->ledger_on && (last || (every > 0 && t->step % every == 0));
        bool save = last || stop || monitor || (save_every > 0 && t->step % save_every == 0);
        bool do_eval = t->val && (last || (eval_every > 0 ? t->step % eval_every == 0 : save));
        emit(cb, &ev);
        bool has_val = false;
        double val = NAN;
        if (do_eval) {
            if ((st = keel_trainer_eval(t, &has_val, &val, err))) goto done;
            if (has_val) {
                sum->val_loss = val;
                keel_train_event ee = ev;
                ee.kind = KEEL_TRAIN_EV_EVAL;
                ee.val_loss = val;
                emit(cb, &ee);
            }
        }
        metrics_line(t, &ev, has_val, val);
        bool ok = true, end = false;
        const char *phase = last ? "final" : "monitor";
        if (monitor && (st = measure(&rc, phase, sampled && !last, &ok, why, sizeof why, err))) goto done;
        if (save && (st = save_ckpt(&rc, monitor ? (ok ? 1 : 0) : -1, monitor ? phase : NULL, err))) goto done;
        if (!ok && (st = on_violation(&rc, why, &end, err))) goto done;
        if (end) break;
        if (stop && !last) {
            sum->interrupted = true;
            snprintf(sum->status, sizeof sum->status, "interrupted");
            break;
        }
    }
    sum->wall_s = keel_time_s() - rc.t_start;
    sum->tokens_per_s = sum->wall_s > 0 ? (double)sum->tokens / sum->wall_s : 0;
    sum->steps = t->step;
    sum->ledger_s = t->ledger.seconds;
done:
    if (rc.reg) {
        keel_err e2;
        keel_status s2 = keel_registry_run_end(rc.reg, rc.run_id, st ? "failed" : sum->status, t->step, &e2);
        if (!st && s2) {
            st = s2;
            if (err) *err = e2;
        }
        keel_registry_close(rc.reg);
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) sum->peak_rss_bytes = (int64_t)ru.ru_maxrss * 1024;
    keel_trainer_free(t);
    return st;
}
