// SPDX-License-Identifier: MIT
// lora.h — LoRA (https://arxiv.org/abs/2106.09685) on the linear layers of
// the Llama training model (model/train.h): y += s * (dropout(x) · A^T) · B^T
// with A (r, n_in), B (n_out, r) trainable and the base weight frozen in its
// stored type (QLoRA when that type is quantized). s = alpha / r, or
// alpha / sqrt(r) with rsLoRA (https://arxiv.org/abs/2312.03732). A and B of
// every adapted layer are keel_tparam entries of the training model's ONE
// parameter buffer (tm->p), so clipping, AdamW, allreduce and checkpoints see
// one block whatever the method. Saves/loads PEFT's on-disk layout
// (adapter_model.safetensors + adapter_config.json, io/io.h). Sits above
// model/train.h, below train/ (the loop) and the CLI.
#ifndef KEEL_ADAPTERS_LORA_H
#define KEEL_ADAPTERS_LORA_H

#include "model/train.h"

// The seven projections of a Llama block, in HF order.
typedef enum keel_lora_proj {
    KEEL_LORA_Q = 0, KEEL_LORA_K, KEEL_LORA_V, KEEL_LORA_O,
    KEEL_LORA_GATE, KEEL_LORA_UP, KEEL_LORA_DOWN,
    KEEL_LORA_N_PROJ
} keel_lora_proj;

// Initialisation of A (B is always zero, so training starts at the base);
// the same values as job.h's keel_job_lora_init.
typedef enum keel_lora_init {
    KEEL_LORA_KAIMING = 0,  // PEFT's default: kaiming_uniform_(a = sqrt(5)) = U(-1/sqrt(n_in), 1/sqrt(n_in))
    KEEL_LORA_GAUSSIAN = 1, // PEFT's init_lora_weights="gaussian": N(0, (1/r)^2)
} keel_lora_init;

typedef struct keel_lora_config {
    int32_t r;         // rank, >= 1 (and <= min(n_in, n_out) of every target)
    double alpha;      // lora_alpha, > 0
    double dropout;    // lora_dropout in [0, 1): applied to x of the branch while training
    // Which linears get an adapter. Each entry is either
    //  - a plain name (no * ? [): matches a module whose full HF name equals it
    //    or ends with "." + it (PEFT's list rule), e.g. "q_proj",
    //    "self_attn.o_proj", "model.layers.0.mlp.up_proj";
    //  - a glob (fnmatch, '*' also crosses dots) over the full HF module name,
    //    e.g. "model.layers.1[0-9].*.q_proj".
    // Modules are "model.layers.<l>.self_attn.{q,k,v,o}_proj" and
    // "model.layers.<l>.mlp.{gate,up,down}_proj" (never embed/lm_head).
    // An entry that matches no module is KEEL_ERR_INVALID naming it.
    // n_targets == 0: PEFT's Llama default, q_proj and v_proj.
    const char *const *targets;
    size_t n_targets;
    bool use_rslora;   // s = alpha / sqrt(r) instead of alpha / r
    uint64_t seed;     // A's initialisation and the dropout masks
    keel_lora_init init;
} keel_lora_config;

// r 8, alpha 16, dropout 0, targets q_proj+v_proj, no rsLoRA, seed 0, Kaiming init.
KEEL_INTERNAL keel_lora_config keel_lora_default_config(void);

// The adapter hook of one linear (model/train.h keel_tadapter is the first
// member, so train.c's keel_tlinear.adapter points here).
typedef struct keel_lora_mod {
    keel_tadapter hook;
    struct keel_lora *lora;
    char module[80];       // full HF module name, "model.layers.3.self_attn.q_proj"
    int layer;             // block index
    keel_lora_proj proj;
    int64_t n_in, n_out;
    int pa, pb;            // indices of lora_A (r, n_in) and lora_B (n_out, r) in tm->p.t
    float *xa;             // (N_max, r) dropout(x) · A^T of the last forward (workspace)
    keel_tlinear *lin;     // the linear it is attached to
} keel_lora_mod;

typedef struct keel_lora {
    int32_t r;
    double alpha, dropout;
    bool use_rslora;
    uint64_t seed;
    float scale;           // alpha / r or alpha / sqrt(r)
    int n;                 // adapted linears, in HF order (layer, then q k v o gate up down)
    keel_lora_mod *mods;   // (n)
    keel_train_model *tm;  // not owned
    bool gguf_rows;        // base from GGUF: q/k rows in Meta order (see keel_lora_save)
    // dropout state: see keel_lora_set_train
    bool training;
    uint64_t step;
    // workspace for N_max rows (keel_lora_reserve): xa of every module, and
    // two temporaries shared by all (each call uses them then is done)
    int64_t n_max;
    float *ws;             // one aligned allocation
    float *xd;             // (N_max, max n_in) dropped-out x
    float *t;              // (N_max, r) dy · B, scaled
} keel_lora;

// Attach LoRA to tm as cfg says: for every targeted linear, append lora_A
// (r, n_in) and lora_B (n_out, r) to tm->p (names: PEFT's keys, e.g.
// "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"; HF order,
// A before B), initialise A as cfg->init says (module after module, from
// one keel_rng seeded with cfg->seed), B = 0,
// gradients 0, and set each linear's adapter. tm->p.w/g are reallocated
// (every view of tm is rebound; pointers taken before are stale). tm was
// made by keel_train_model_init with any selection (usually none: only LoRA
// trains; a trainable base linear may carry LoRA too) and must outlive lo.
// Errors (nothing attached then): KEEL_ERR_INVALID for bad r/alpha/dropout/
// init, r above a target's n_in or n_out, an unmatched target, a linear
// already adapted; KEEL_ERR_NOMEM.
// The A/B entries occupy tm->p.t[first .. first + 2n) in order
// A0, B0, A1, B1, ... (first = the number of entries tm->p had before).
KEEL_INTERNAL keel_status keel_lora_attach(keel_lora *lo, keel_train_model *tm,
                                           const keel_lora_config *cfg, keel_err *err);

// Size the branch workspace for N = B*T rows per forward (call once after
// attach/load, again only to grow it). The branch forward/backward never
// allocate; running them with more rows is a bug (KEEL_ASSERT).
KEEL_INTERNAL keel_status keel_lora_reserve(keel_lora *lo, int64_t N, keel_err *err);

// Training mode: dropout on (when lo->dropout > 0) with the masks of stream
// `step`. The mask of an element is a pure function of (seed, step, module,
// row, column): the same in a forward and its backward, independent of
// thread count, so a resumed run sees the same masks. Give every micro-batch
// its own step (e.g. optimizer step * accumulation + micro index) and call
// this before the forward of that micro-batch. training = false (the
// default after attach/load): no dropout (evaluation, inference).
KEEL_INTERNAL void keel_lora_set_train(keel_lora *lo, bool training, uint64_t step);

// Detach from tm (adapters unset) and free lo's memory. The A/B entries stay
// in tm->p (the buffer is freed with tm). NULL-safe.
KEEL_INTERNAL void keel_lora_free(keel_lora *lo);

// Index of the module named module (full HF name), or -1.
KEEL_INTERNAL int keel_lora_find(const keel_lora *lo, const char *module);
// Current A (r, n_in) and B (n_out, r) of module i (views of tm->p.w; rows of
// B in the model's row order, i.e. Meta order for q/k of a GGUF base).
KEEL_INTERNAL float *keel_lora_A(const keel_lora *lo, int i);
KEEL_INTERNAL float *keel_lora_B(const keel_lora *lo, int i);

// W (n_out, n_in) fp32, in the model's row order, += sign * s * B · A
// (sign +1: merge, -1: unmerge). For export and for inference with an adapter.
KEEL_INTERNAL void keel_lora_merge(const keel_lora *lo, int i, float *W, float sign);

// Save as PEFT: dir/adapter_model.safetensors (F32; PEFT keys; lora_A (r, n_in),
// lora_B (n_out, r)) and dir/adapter_config.json (r, lora_alpha,
// lora_dropout, use_rslora, target_modules: the plain names when every
// target was one of the seven short names, else the full module names
// adapted), each written atomically; dir is created if absent (parent must
// exist). For a GGUF base (Meta q/k row order) B's rows of q_proj/k_proj are
// un-permuted to HF order, so PEFT on the HF model computes the same function.
// base_model: base_model_name_or_path (NULL: JSON null).
KEEL_INTERNAL keel_status keel_lora_save(const keel_lora *lo, const char *dir, const char *base_model,
                                         keel_err *err);

// Load a PEFT LoRA adapter directory (as PEFT's save_pretrained writes it) onto
// tm: r, lora_alpha, lora_dropout, use_rslora from adapter_config.json; the
// adapted modules are those with lora_A/lora_B tensors in
// adapter_model.safetensors (F32, F16 or BF16). Like attach, the tensors are
// appended to tm->p and the adapters set; B's q/k rows are permuted to Meta
// order for a GGUF base. seed: the dropout masks' seed. Errors name the file
// and key/tensor: KEEL_ERR_IO, KEEL_ERR_FORMAT (bad JSON, a tensor name that
// is not a Llama projection's lora_A/lora_B, A without B, shapes that do not
// match the model and r, non-"none" bias, and the options keel does not
// implement when set: use_dora, fan_in_fan_out, rank_pattern, alpha_pattern,
// modules_to_save, lora_bias, layer_replication, trainable_token_indices,
// target_parameters), KEEL_ERR_NOMEM. A failed load leaves tm unchanged.
KEEL_INTERNAL keel_status keel_lora_load(keel_lora *lo, keel_train_model *tm, const char *dir,
                                         uint64_t seed, keel_err *err);

#endif // KEEL_ADAPTERS_LORA_H
