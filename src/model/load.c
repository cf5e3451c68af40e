// SPDX-License-Identifier: MIT
// load.c — keel_model_load: a Llama-family model from a GGUF file (llama.cpp
// key and tensor names, src/llama-arch.cpp LLM_ARCH_LLAMA) or a Hugging Face
// directory (config.json of transformers' LlamaConfig + model.safetensors or
// sharded model-*.safetensors with model.safetensors.index.json +
// tokenizer.json). Every tensor's shape is checked against the
// hyper-parameters before anything runs. Weights stay in the read-only
// mappings; only the small norm vectors are copied (to aligned floats).
// GGUF q/k rows are in Meta order (RoPE on adjacent pairs); HF rows are not
// permuted (RoPE on halves): see ops.h keel_rope_style.
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h>
#include <math.h>

// Upper bounds that keep every size computation far from overflow.
#define MAX_DIM (1 << 20)
#define MAX_LAYERS 4096
#define MAX_CTX (1 << 24)

typedef struct hparams {
    int64_t n_embd, n_layer, n_ff, n_head, n_head_kv, n_ctx_train, n_rot, head_dim, n_vocab;
    float theta, eps;
    bool tied;
} hparams;

// Tensor names per source format; %d is the layer.
typedef struct name_set {
    const char *tok_embd, *output_norm, *output;
    const char *attn_norm, *wq, *wk, *wv, *wo, *ffn_norm, *w_gate, *w_up, *w_down;
} name_set;

static const name_set gguf_names = {
    "token_embd.weight", "output_norm.weight", "output.weight",
    "blk.%d.attn_norm.weight", "blk.%d.attn_q.weight", "blk.%d.attn_k.weight",
    "blk.%d.attn_v.weight", "blk.%d.attn_output.weight", "blk.%d.ffn_norm.weight",
    "blk.%d.ffn_gate.weight", "blk.%d.ffn_up.weight", "blk.%d.ffn_down.weight",
};
static const name_set hf_names = {
    "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
    "model.layers.%d.input_layernorm.weight", "model.layers.%d.self_attn.q_proj.weight",
    "model.layers.%d.self_attn.k_proj.weight", "model.layers.%d.self_attn.v_proj.weight",
    "model.layers.%d.self_attn.o_proj.weight", "model.layers.%d.post_attention_layernorm.weight",
    "model.layers.%d.mlp.gate_proj.weight", "model.layers.%d.mlp.up_proj.weight",
    "model.layers.%d.mlp.down_proj.weight",
};

keel_model_params keel_model_default_params(void) {
    keel_model_params p = {0};
    p.n_threads = 0;
    return p;
}

// ---- tensors -----------------------------------------------------------------------

// Where the model's files are, for messages.
static const char *src_path(const keel_model *m) {
    if (m->gguf) return keel_gguf_path(m->gguf);
    return m->n_shards ? keel_st_path(m->shards[0]) : "?";
}

static const keel_tensor_info *find_tensor(const keel_model *m, const char *name) {
    if (m->gguf) return keel_gguf_find_tensor(m->gguf, name);
    for (int i = 0; i < m->n_shards; i++) {
        const keel_tensor_info *t = keel_st_find_tensor(m->shards[i], name);
        if (t) return t;
    }
    return NULL;
}

// True if t has exactly the shape {ne0, ne1} (ne1 == 1 for a vector), extra dims 1.
static bool shape_is(const keel_tensor_info *t, int64_t ne0, int64_t ne1) {
    return t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == 1 && t->ne[3] == 1;
}

static keel_status shape_error(const keel_model *m, const keel_tensor_info *t, int64_t ne0,
                               int64_t ne1, keel_err *err) {
    return KEEL_FAIL(err, KEEL_ERR_FORMAT,
                     "%s: tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld] "
                     "(ne0 = inputs first)",
                     src_path(m), t->name, (long long)t->ne[0], (long long)t->ne[1],
                     (long long)t->ne[2], (long long)t->ne[3], (long long)ne0, (long long)ne1);
}

// Bind the (n_out, n_in) weight `name` into w.
static keel_status bind_mat(const keel_model *m, const char *name, int64_t n_in, int64_t n_out,
                            keel_wmat *w, keel_err *err) {
    const keel_tensor_info *t = find_tensor(m, name);
    if (!t) return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: missing tensor %s", src_path(m), name);
    if (!shape_is(t, n_in, n_out)) return shape_error(m, t, n_in, n_out, err);
    if (!keel_wmat_init(w, t->type, n_in, n_out, t->data))
        return KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED, "%s: tensor %s: type %s with %lld inputs per row is not supported",
                         src_path(m), name, keel_dtype_name(t->type), (long long)n_in);
    return KEEL_OK;
}

// Copy the (n) vector `name` into dst as floats.
static keel_status bind_vec(const keel_model *m, const char *name, int64_t n, float *dst, keel_err *err) {
    const keel_tensor_info *t = find_tensor(m, name);
    if (!t) return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: missing tensor %s", src_path(m), name);
    if (!shape_is(t, n, 1)) return shape_error(m, t, n, 1, err);
    if (t->type != KEEL_DTYPE_F32 && t->type != KEEL_DTYPE_F16 && t->type != KEEL_DTYPE_BF16)
        return KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED, "%s: norm tensor %s has type %s (want F32, F16 or BF16)",
                         src_path(m), name, keel_dtype_name(t->type));
    keel_dequant_row(t->type, t->data, dst, n);
    return KEEL_OK;
}

static keel_status check_hparams(const char *path, const hparams *h, keel_err *err) {
#define RANGE(v, lo, hi, what)                                                                   \
    if ((v) < (lo) || (v) > (hi))                                                                \
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: %s = %lld is out of range [%lld, %lld]", path, \
                         what, (long long)(v), (long long)(lo), (long long)(hi));
    RANGE(h->n_embd, 1, MAX_DIM, "embedding length");
    RANGE(h->n_layer, 1, MAX_LAYERS, "block count");
    RANGE(h->n_ff, 1, MAX_DIM, "feed-forward length");
    RANGE(h->n_head, 1, 4096, "head count");
    RANGE(h->n_head_kv, 1, h->n_head, "kv head count");
    RANGE(h->head_dim, 2, 4096, "head dim");
    RANGE(h->n_rot, 2, h->head_dim, "rope dimension count");
    RANGE(h->n_ctx_train, 1, MAX_CTX, "context length");
#undef RANGE
    if (h->n_head % h->n_head_kv)
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: head count %lld is not a multiple of kv head count %lld",
                         path, (long long)h->n_head, (long long)h->n_head_kv);
    if (h->n_rot % 2)
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: rope dimension count %lld is odd", path, (long long)h->n_rot);
    if (h->n_head * h->head_dim > MAX_DIM)
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: %lld heads x %lld dims is too large", path,
                         (long long)h->n_head, (long long)h->head_dim);
    if (!(h->eps > 0.0f) || !isfinite(h->eps) || h->eps > 1.0f)
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: rms norm epsilon %g is invalid", path, (double)h->eps);
    if (!(h->theta > 0.0f) || !isfinite(h->theta))
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: rope theta %g is invalid", path, (double)h->theta);
    return KEEL_OK;
}

// Bind every weight by the names in ns; fills m->layers, m->norms, tok_embd, output.
static keel_status bind_all(keel_model *m, const name_set *ns, hparams *h, keel_err *err) {
    const int64_t C = h->n_embd, Q = h->n_head * h->head_dim, K = h->n_head_kv * h->head_dim, F = h->n_ff;
    char name[128];
    keel_status st;

    const keel_tensor_info *te = find_tensor(m, ns->tok_embd);
    if (!te) return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: missing tensor %s", src_path(m), ns->tok_embd);
    if (te->ne[0] != C || te->ne[1] < 1 || te->ne[1] > (1 << 24) || te->ne[2] != 1 || te->ne[3] != 1)
        return shape_error(m, te, C, h->n_vocab > 0 ? h->n_vocab : te->ne[1], err);
    if (h->n_vocab > 0 && te->ne[1] != h->n_vocab) return shape_error(m, te, C, h->n_vocab, err);
    h->n_vocab = te->ne[1];
    if ((st = bind_mat(m, ns->tok_embd, C, h->n_vocab, &m->tok_embd, err))) return st;

    if (!h->tied && find_tensor(m, ns->output)) {
        if ((st = bind_mat(m, ns->output, C, h->n_vocab, &m->output, err))) return st;
    } else if (!h->tied && !m->gguf) {
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: missing tensor %s (tie_word_embeddings is false)",
                         src_path(m), ns->output);
    } else {
        h->tied = true; // GGUF: no output.weight means the embedding is reused
        m->output = m->tok_embd;
    }

    m->norms = keel_malloc_aligned(sizeof(float) * (size_t)C * (size_t)(2 * h->n_layer + 1));
    m->layers = keel_calloc((size_t)h->n_layer, sizeof(keel_layer));
    if (!m->norms || !m->layers) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", src_path(m));
    float *on = m->norms + (size_t)C * (size_t)(2 * h->n_layer);
    if ((st = bind_vec(m, ns->output_norm, C, on, err))) return st;
    m->output_norm = on;

    for (int l = 0; l < (int)h->n_layer; l++) {
        keel_layer *L = &m->layers[l];
        float *an = m->norms + (size_t)C * (size_t)(2 * l), *fn = an + C;
#define NAME(fmt) (snprintf(name, sizeof name, (fmt), l), name)
        if ((st = bind_vec(m, NAME(ns->attn_norm), C, an, err))) return st;
        if ((st = bind_vec(m, NAME(ns->ffn_norm), C, fn, err))) return st;
        L->attn_norm = an;
        L->ffn_norm = fn;
        if ((st = bind_mat(m, NAME(ns->wq), C, Q, &L->wq, err))) return st;
        if ((st = bind_mat(m, NAME(ns->wk), C, K, &L->wk, err))) return st;
        if ((st = bind_mat(m, NAME(ns->wv), C, K, &L->wv, err))) return st;
        if ((st = bind_mat(m, NAME(ns->wo), Q, C, &L->wo, err))) return st;
        if ((st = bind_mat(m, NAME(ns->w_gate), C, F, &L->w_gate, err))) return st;
        if ((st = bind_mat(m, NAME(ns->w_up), C, F, &L->w_up, err))) return st;
        if ((st = bind_mat(m, NAME(ns->w_down), F, C, &L->w_down, err))) return st;
#undef NAME
    }
    return KEEL_OK;
}

// ---- GGUF ------------------------------------------------------------------------

static keel_status gguf_key_u(const keel_gguf *g, const char *arch, const char *key, bool optional,
                              int64_t *out, keel_err *err) {
    char k[160];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return keel_gguf_get_i64(g, k, optional, out, err);
}
static keel_status gguf_key_f(const keel_gguf *g, const char *arch, const char *key, float *out,
                              keel_err *err) {
    char k[160];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return keel_gguf_get_f32(g, k, true, out, err);
}

static keel_status load_gguf(keel_model *m, const char *path, hparams *h, keel_err *err) {
    keel_status st;
    if ((st = keel_gguf_open(path, &m->gguf, err))) return st;
    const keel_gguf *g = m->gguf;
    const char *s;
    size_t n;
    if ((st = keel_gguf_get_str(g, "general.architecture", false, &s, &n, err))) return st;
    m->arch = keel_strndup(s, n);
    if (!m->arch) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    if (strcmp(m->arch, "llama") != 0)
        return KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED,
                         "%s: architecture \"%s\" is not supported (only \"llama\": Llama 1-3, "
                         "TinyLlama, SmolLM, Mistral-7B as converted by llama.cpp)",
                         path, m->arch);
    const char *a = m->arch;
    if ((st = gguf_key_u(g, a, "embedding_length", false, &h->n_embd, err))) return st;
    if ((st = gguf_key_u(g, a, "block_count", false, &h->n_layer, err))) return st;
    if ((st = gguf_key_u(g, a, "feed_forward_length", false, &h->n_ff, err))) return st;
    if ((st = gguf_key_u(g, a, "attention.head_count", false, &h->n_head, err))) return st;
    h->n_head_kv = h->n_head;
    if ((st = gguf_key_u(g, a, "attention.head_count_kv", true, &h->n_head_kv, err))) return st;
    h->n_ctx_train = 2048;
    if ((st = gguf_key_u(g, a, "context_length", true, &h->n_ctx_train, err))) return st;
    if (h->n_head < 1 || h->n_embd % h->n_head)
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: embedding length %lld is not a multiple of head count %lld",
                         path, (long long)h->n_embd, (long long)h->n_head);
    h->head_dim = h->n_embd / h->n_head;
    int64_t kl = h->head_dim;
    if ((st = gguf_key_u(g, a, "attention.key_length", true, &kl, err))) return st;
    if (kl != h->head_dim)
        return KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED, "%s: attention.key_length %lld differs from embedding/heads %lld",
                         path, (long long)kl, (long long)h->head_dim);
    h->n_rot = h->head_dim;
    if ((st = gguf_key_u(g, a, "rope.dimension_count", true, &h->n_rot, err))) return st;
    h->theta = 10000.0f;
    if ((st = gguf_key_f(g, a, "rope.freq_base", &h->theta, err))) return st;
    h->eps = 1e-5f;
    if ((st = gguf_key_f(g, a, "attention.layer_norm_rms_epsilon", &h->eps, err))) return st;
    int64_t experts = 0;
    if ((st = gguf_key_u(g, a, "expert_count", true, &experts, err))) return st;
    if (experts > 0)
        return KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED, "%s: mixture-of-experts llama (%lld experts) is not supported",
                         path, (long long)experts);
    char k[160];
    snprintf(k, sizeof k, "%s.rope.scaling.type", a);
    s = NULL;
    if ((st = keel_gguf_get_str(g, k, true, &s, &n, err))) return st;
    float factor = 1.0f;
    if ((st = gguf_key_f(g, a, "rope.scaling.factor", &factor, err))) return st;
    if ((s && !(n == 4 && memcmp(s, "none", 4) == 0) && factor != 1.0f) || keel_gguf_find_tensor(g, "rope_freqs.weight"))
        return KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED, "%s: RoPE scaling (%.*s, factor %g / rope_freqs) is not supported yet",
                         path, s ? (int)n : 4, s ? s : "freq", (double)factor);
    if ((st = check_hparams(path, h, err))) return st;

    m->rope = KEEL_ROPE_NORM;
    s = NULL;
    if ((st = keel_gguf_get_str(g, "general.name", true, &s, &n, err))) return st;
    if (s) m->name = keel_strndup(s, n);
    else {
        const char *b = strrchr(path, '/');
        m->name = keel_strdup(b ? b + 1 : path);
    }
    char fmt[32];
    snprintf(fmt, sizeof fmt, "GGUF v%u", (unsigned)keel_gguf_version(g));
    m->format = keel_strdup(fmt);
    if (!m->name || !m->format) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);

    m->n_tensors = keel_gguf_n_tensors(g);
    m->tensors = keel_calloc((size_t)(m->n_tensors ? m->n_tensors : 1), sizeof *m->tensors);
    if (!m->tensors) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    for (int64_t i = 0; i < m->n_tensors; i++) m->tensors[i] = keel_gguf_tensor(g, i);

    h->n_vocab = 0; // from token_embd
    h->tied = false;
    if ((st = bind_all(m, &gguf_names, h, err))) return st;
    return keel_tokenizer_from_gguf(g, &m->tok, err);
}

// ---- Hugging Face directory -----------------------------------------------------------

// config.json integer: absent -> def (or an error when def < 0).
static keel_status cfg_int(const char *path, const cJSON *cfg, const char *key, int64_t def,
                           int64_t *out, keel_err *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!j || cJSON_IsNull(j)) {
        if (def < 0) return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: missing \"%s\"", path, key);
        *out = def;
        return KEEL_OK;
    }
    double d = j->valuedouble;
    if (!cJSON_IsNumber(j) || floor(d) != d || d < 0 || d > 1e12)
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: \"%s\" must be a non-negative integer", path, key);
    *out = (int64_t)d;
    return KEEL_OK;
}

static keel_status cfg_float(const char *path, const cJSON *cfg, const char *key, float def,
                             float *out, keel_err *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!j || cJSON_IsNull(j)) {
        *out = def;
        return KEEL_OK;
    }
    if (!cJSON_IsNumber(j)) return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: \"%s\" must be a number", path, key);
    *out = (float)j->valuedouble;
    return KEEL_OK;
}

static bool cfg_true(const cJSON *cfg, const char *key) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, key));
}

static keel_status parse_config(const char *path, const char *text, hparams *h, char **arch, keel_err *err) {
    keel_status st = KEEL_OK;
    cJSON *cfg = cJSON_Parse(text);
    if (!cfg || !cJSON_IsObject(cfg)) {
        st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: not a JSON object", path);
        goto done;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(cfg, "model_type");
    if (!cJSON_IsString(mt)) {
        st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: missing \"model_type\"", path);
        goto done;
    }
    if (!(*arch = keel_strdup(mt->valuestring))) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if (strcmp(mt->valuestring, "llama") != 0) {
        st = KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not supported (only \"llama\")",
                       path, mt->valuestring);
        goto done;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(cfg, "hidden_act");
    if (act && !(cJSON_IsString(act) && strcmp(act->valuestring, "silu") == 0)) {
        st = KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED, "%s: hidden_act must be \"silu\"", path);
        goto done;
    }
    if (cfg_true(cfg, "attention_bias") || cfg_true(cfg, "mlp_bias")) {
        st = KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED, "%s: attention_bias / mlp_bias are not supported", path);
        goto done;
    }
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
        st = KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED, "%s: rope_scaling is not supported yet (must be null)", path);
        goto done;
    }
    if ((st = cfg_int(path, cfg, "hidden_size", -1, &h->n_embd, err))) goto done;
    if ((st = cfg_int(path, cfg, "intermediate_size", -1, &h->n_ff, err))) goto done;
    if ((st = cfg_int(path, cfg, "num_hidden_layers", -1, &h->n_layer, err))) goto done;
    if ((st = cfg_int(path, cfg, "num_attention_heads", -1, &h->n_head, err))) goto done;
    if ((st = cfg_int(path, cfg, "num_key_value_heads", h->n_head, &h->n_head_kv, err))) goto done;
    if ((st = cfg_int(path, cfg, "max_position_embeddings", 2048, &h->n_ctx_train, err))) goto done;
    if ((st = cfg_int(path, cfg, "vocab_size", -1, &h->n_vocab, err))) goto done;
    if (h->n_head < 1) {
        st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: num_attention_heads must be positive", path);
        goto done;
    }
    if ((st = cfg_int(path, cfg, "head_dim", h->n_embd / h->n_head, &h->head_dim, err))) goto done;
    h->n_rot = h->head_dim;
    if ((st = cfg_float(path, cfg, "rms_norm_eps", 1e-6f, &h->eps, err))) goto done;
    if ((st = cfg_float(path, cfg, "rope_theta", 10000.0f, &h->theta, err))) goto done;
    h->tied = cfg_true(cfg, "tie_word_embeddings");
    if (h->n_vocab < 1) st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: vocab_size must be positive", path);
done:
    cJSON_Delete(cfg);
    return st;
}

// The shard file names listed in model.safetensors.index.json (weight_map values).
static keel_status open_shards(keel_model *m, const char *dir, keel_err *err) {
    char *single = keel_path_join(dir, "model.safetensors");
    char *index = keel_path_join(dir, "model.safetensors.index.json");
    char *text = NULL;
    cJSON *js = NULL;
    keel_status st = KEEL_OK;
    if (!single || !index) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    if (keel_path_exists(single)) {
        m->shards = keel_calloc(1, sizeof *m->shards);
        if (!m->shards) {
            st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", dir);
            goto done;
        }
        if ((st = keel_st_open(single, &m->shards[0], err))) goto done;
        m->n_shards = 1;
        goto done;
    }
    if (!keel_path_exists(index)) {
        st = KEEL_FAIL(err, KEEL_ERR_IO, "%s: neither model.safetensors nor model.safetensors.index.json found", dir);
        goto done;
    }
    if ((st = keel_read_file(index, &text, NULL, err))) goto done;
    js = cJSON_Parse(text);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(js, "weight_map");
    if (!cJSON_IsObject(wm)) {
        st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: missing \"weight_map\" object", index);
        goto done;
    }
    int n_entries = cJSON_GetArraySize(wm);
    m->shards = keel_calloc((size_t)(n_entries ? n_entries : 1), sizeof *m->shards);
    const char **names = keel_calloc((size_t)(n_entries ? n_entries : 1), sizeof *names);
    if (!m->shards || !names) {
        keel_free(names);
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", index);
        goto done;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || e->valuestring[0] == '.' || !*e->valuestring) {
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: weight_map entry \"%s\" is not a plain file name", index,
                           e->string ? e->string : "?");
            break;
        }
        bool seen = false;
        for (int i = 0; i < m->n_shards && !seen; i++) seen = strcmp(names[i], e->valuestring) == 0;
        if (seen) continue;
        char *p = keel_path_join(dir, e->valuestring);
        if (!p) {
            st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", index);
            break;
        }
        st = keel_st_open(p, &m->shards[m->n_shards], err);
        keel_free(p);
        if (st) break;
        names[m->n_shards++] = e->valuestring;
    }
    keel_free(names);
    if (!st && m->n_shards == 0) st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: weight_map is empty", index);
done:
    cJSON_Delete(js);
    keel_free(text);
    keel_free(single);
    keel_free(index);
    return st;
}

static keel_status load_hf(keel_model *m, const char *dir, hparams *h, keel_err *err) {
    keel_status st;
    char *cfg_path = keel_path_join(dir, "config.json");
    char *tok_path = keel_path_join(dir, "tokenizer.json");
    char *tcfg_path = keel_path_join(dir, "tokenizer_config.json");
    char *text = NULL;
    if (!cfg_path || !tok_path || !tcfg_path) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    if ((st = keel_read_file(cfg_path, &text, NULL, err))) goto done;
    if ((st = parse_config(cfg_path, text, h, &m->arch, err))) goto done;
    if ((st = check_hparams(cfg_path, h, err))) goto done;
    if ((st = open_shards(m, dir, err))) goto done;
    m->rope = KEEL_ROPE_NEOX;

    int64_t nt = 0;
    for (int i = 0; i < m->n_shards; i++) nt += keel_st_n_tensors(m->shards[i]);
    m->tensors = keel_calloc((size_t)(nt ? nt : 1), sizeof *m->tensors);
    const char *b = dir + strlen(dir);
    while (b > dir && b[-1] == '/') b--;
    const char *e = b;
    while (b > dir && b[-1] != '/') b--;
    m->name = keel_strndup(b, (size_t)(e - b));
    m->format = keel_strdup("safetensors");
    if (!m->tensors || !m->name || !m->format) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    for (int i = 0; i < m->n_shards; i++)
        for (int64_t j = 0; j < keel_st_n_tensors(m->shards[i]); j++)
            m->tensors[m->n_tensors++] = keel_st_tensor(m->shards[i], j);

    if ((st = bind_all(m, &hf_names, h, err))) goto done;
    st = keel_tokenizer_from_hf(tok_path, keel_path_exists(tcfg_path) ? tcfg_path : NULL, &m->tok, err);
done:
    keel_free(text);
    keel_free(cfg_path);
    keel_free(tok_path);
    keel_free(tcfg_path);
    return st;
}

// ---- public ----------------------------------------------------------------------------

void keel_model_free(keel_model *m) {
    if (!m) return;
    keel_tokenizer_free(m->tok);
    keel_free(m->layers);
    keel_free_aligned(m->norms);
    keel_free(m->tensors);
    keel_gguf_close(m->gguf);
    for (int i = 0; i < m->n_shards; i++) keel_st_close(m->shards[i]);
    keel_free(m->shards);
    keel_free(m->arch);
    keel_free(m->name);
    keel_free(m->format);
    keel_free(m);
}

static bool ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

keel_status keel_model_load(const char *path, const keel_model_params *p, keel_model **out, keel_err *err) {
    if (out) *out = NULL;
    if (!path || !out) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_model_load: path and out must not be NULL");
    keel_model_params dp = keel_model_default_params();
    if (!p) p = &dp;
    if ((int)p->matmul_precision < KEEL_MATMUL_FP32 || (int)p->matmul_precision > KEEL_MATMUL_BF16)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_model_load: unknown matmul_precision %d",
                         (int)p->matmul_precision);
    keel_model *m = keel_calloc(1, sizeof *m);
    if (!m) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    hparams h = {0};
    keel_status st;
    if (keel_path_is_dir(path)) {
        st = load_hf(m, path, &h, err);
    } else if (!keel_path_exists(path)) {
        st = KEEL_FAIL(err, KEEL_ERR_IO, "%s: no such file or directory", path);
    } else if (ends_with(path, ".gguf")) {
        st = load_gguf(m, path, &h, err);
    } else {
        // not named .gguf: accept it only if it starts with the GGUF magic
        char magic[4] = {0};
        FILE *f = fopen(path, "rb");
        size_t got = f ? fread(magic, 1, 4, f) : 0;
        if (f) fclose(f);
        if (got == 4 && memcmp(magic, "GGUF", 4) == 0) st = load_gguf(m, path, &h, err);
        else
            st = KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED,
                           "%s: not a model: expected a .gguf file or a Hugging Face directory "
                           "(config.json + *.safetensors + tokenizer.json)",
                           path);
    }
    if (st == KEEL_OK) {
        int32_t tv = keel_tokenizer_n_vocab(m->tok);
        if (tv > h.n_vocab)
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tokenizer has %d tokens but the embedding only %lld rows",
                           path, (int)tv, (long long)h.n_vocab);
    }
    if (st != KEEL_OK) {
        keel_model_free(m);
        return st;
    }
    m->head_dim = (int32_t)h.head_dim;
    m->n_threads = p->n_threads > 0 ? p->n_threads : keel_threads_get();
    m->prec = p->matmul_precision == KEEL_MATMUL_BF16X3 ? KEEL_PREC_BF16X3
              : p->matmul_precision == KEEL_MATMUL_BF16 ? KEEL_PREC_BF16
                                                         : KEEL_PREC_FP32;
    keel_model_desc *d = &m->desc;
    d->arch = m->arch;
    d->name = m->name;
    d->format = m->format;
    d->n_vocab = (int32_t)h.n_vocab;
    d->n_embd = (int32_t)h.n_embd;
    d->n_layer = (int32_t)h.n_layer;
    d->n_head = (int32_t)h.n_head;
    d->n_head_kv = (int32_t)h.n_head_kv;
    d->n_ff = (int32_t)h.n_ff;
    d->n_ctx_train = (int32_t)h.n_ctx_train;
    d->n_rot = (int32_t)h.n_rot;
    d->rope_theta = h.theta;
    d->norm_eps = h.eps;
    d->tied_output = h.tied;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const keel_tensor_info *t = m->tensors[i];
        d->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        d->n_bytes += t->nbytes;
    }
    *out = m;
    return KEEL_OK;
}

const keel_model_desc *keel_model_describe(const keel_model *m) { return m ? &m->desc : NULL; }

int64_t keel_model_n_tensors(const keel_model *m) { return m ? m->n_tensors : 0; }

bool keel_model_tensor(const keel_model *m, int64_t i, keel_tensor_desc *out) {
    if (!m || !out || i < 0 || i >= m->n_tensors) return false;
    const keel_tensor_info *t = m->tensors[i];
    out->name = t->name;
    out->type = t->type;
    out->n_dims = t->n_dims;
    memcpy(out->ne, t->ne, sizeof out->ne);
    out->nbytes = t->nbytes;
    return true;
}

const keel_tokenizer *keel_model_tokenizer(const keel_model *m) { return m ? m->tok : NULL; }
