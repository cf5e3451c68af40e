// SPDX-License-Identifier: MIT
// gguf_vocab.c — keel_tokenizer_from_gguf: build a tokenizer from the
// tokenizer.ggml.* keys of a GGUF file (ggml docs/gguf.md, "Tokenizer"):
//   model "llama" -> SentencePiece BPE over tokens + scores (+ token_type),
//   model "gpt2"  -> byte-level BPE over tokens + merges, regex by "pre".
// Defaults follow llama.cpp: SPM adds BOS and a space prefix; GPT-2-style
// vocabularies add neither unless the file says so.
#include "tokenizer.h"

// Index of an array-valued key of the wanted element type, or -1 (absent).
// A present key of the wrong shape is an error.
static keel_status find_array(const keel_gguf *g, const char *key, keel_gguf_type want, bool optional,
                              int64_t *idx, keel_err *err) {
    *idx = keel_gguf_find_key(g, key);
    if (*idx < 0) {
        if (optional) return KEEL_OK;
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: missing key %s", keel_gguf_path(g), key);
    }
    if (keel_gguf_kv_type(g, *idx) != KEEL_GGUF_ARRAY || keel_gguf_arr_type(g, *idx) != want)
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: key %s is not an array of the expected type (%d)",
                         keel_gguf_path(g), key, (int)want);
    return KEEL_OK;
}

static keel_status get_id(const keel_gguf *g, const char *key, int32_t *out, keel_err *err) {
    int64_t v = -1;
    if (keel_gguf_find_key(g, key) < 0) return KEEL_OK;
    // some writers store "none" as UINT32_MAX or -1; both become -1 later
    keel_status st = keel_gguf_get_i64(g, key, true, &v, err);
    if (st) return st;
    *out = (v < 0 || v > INT32_MAX) ? -1 : (int32_t)v;
    return KEEL_OK;
}

static keel_status get_flag(const keel_gguf *g, const char *key, bool *out, keel_err *err) {
    if (keel_gguf_find_key(g, key) < 0) return KEEL_OK;
    return keel_gguf_get_bool(g, key, true, out, err);
}

keel_status keel_tokenizer_from_gguf(const keel_gguf *g, keel_tokenizer **out, keel_err *err) {
    if (out) *out = NULL;
    if (!g || !out) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_tokenizer_from_gguf: NULL argument");
    const char *path = keel_gguf_path(g);
    const char *model;
    size_t model_len;
    keel_status st = keel_gguf_get_str(g, "tokenizer.ggml.model", false, &model, &model_len, err);
    if (st) return st;
    bool spm;
    if (model_len == 5 && memcmp(model, "llama", 5) == 0) spm = true;
    else if (model_len == 4 && memcmp(model, "gpt2", 4) == 0) spm = false;
    else
        return KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED,
                         "%s: tokenizer.ggml.model = \"%.*s\" is not supported (llama, gpt2)", path,
                         (int)(model_len > 64 ? 64 : model_len), model);

    int64_t k_tok, k_score, k_type, k_merges = -1;
    if ((st = find_array(g, "tokenizer.ggml.tokens", KEEL_GGUF_STRING, false, &k_tok, err))) return st;
    if ((st = find_array(g, "tokenizer.ggml.scores", KEEL_GGUF_FLOAT32, true, &k_score, err))) return st;
    if ((st = find_array(g, "tokenizer.ggml.token_type", KEEL_GGUF_INT32, true, &k_type, err))) return st;
    if (!spm && (st = find_array(g, "tokenizer.ggml.merges", KEEL_GGUF_STRING, false, &k_merges, err))) return st;
    uint64_t n = keel_gguf_arr_n(g, k_tok);
    if (n == 0 || n > INT32_MAX / 2)
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries", path,
                         (unsigned long long)n);
    if (k_score >= 0 && keel_gguf_arr_n(g, k_score) != n)
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tokenizer.ggml.scores has %llu entries, tokens has %llu",
                         path, (unsigned long long)keel_gguf_arr_n(g, k_score), (unsigned long long)n);
    if (k_type >= 0 && keel_gguf_arr_n(g, k_type) != n)
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tokenizer.ggml.token_type has %llu entries, tokens has %llu",
                         path, (unsigned long long)keel_gguf_arr_n(g, k_type), (unsigned long long)n);

    keel_tokenizer *t = keel_tok_alloc((int32_t)n);
    if (!t) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory for the vocabulary", path);
    const uint8_t *scores = k_score >= 0 ? keel_gguf_arr_data(g, k_score) : NULL;
    const uint8_t *types = k_type >= 0 ? keel_gguf_arr_data(g, k_type) : NULL;
    for (uint64_t i = 0; i < n; i++) {
        size_t len;
        const char *s = keel_gguf_arr_str(g, k_tok, i, &len);
        float score = 0;
        int32_t ty = KEEL_TOK_NORMAL;
        if (scores) memcpy(&score, scores + 4 * i, 4);
        if (types) memcpy(&ty, types + 4 * i, 4);
        if (ty < KEEL_TOK_NORMAL || ty > KEEL_TOK_BYTE) ty = KEEL_TOK_NORMAL; // 0 = undefined
        if (!s || !keel_tok_set(t, (int32_t)i, s, len, score, ty)) {
            keel_tokenizer_free(t);
            return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory for the vocabulary", path);
        }
    }
    if (!keel_tok_build_hash(t)) {
        keel_tokenizer_free(t);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory for the vocabulary", path);
    }

    if (spm) {
        t->kind = KEEL_TOKENIZER_SPM;
        t->algo = KEEL_TOK_ALGO_SCORE;
        t->spm_space = true;
        t->add_space_prefix = true;
        t->byte_fallback = true;
        t->add_bos = true;
        if (!scores) {
            keel_tokenizer_free(t);
            return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: SentencePiece vocabulary without tokenizer.ggml.scores",
                             path);
        }
    } else {
        t->kind = KEEL_TOKENIZER_BPE;
        t->algo = KEEL_TOK_ALGO_RANK;
        t->byte_level = true;
        uint64_t nm = keel_gguf_arr_n(g, k_merges);
        if (nm > INT32_MAX || !keel_tok_merges_reserve(t, (size_t)nm)) {
            keel_tokenizer_free(t);
            return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory for %llu merges", path,
                             (unsigned long long)nm);
        }
        for (uint64_t i = 0; i < nm; i++) {
            size_t len;
            const char *s = keel_gguf_arr_str(g, k_merges, i, &len);
            // "left right": split at the first space after the first byte
            const char *sp = s && len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
            if (!sp) {
                keel_tokenizer_free(t);
                return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tokenizer.ggml.merges[%llu] has no space: \"%.*s\"",
                                 path, (unsigned long long)i, (int)(len > 40 ? 40 : len), s ? s : "");
            }
            int32_t a = keel_tok_find(t, s, (size_t)(sp - s));
            int32_t b = keel_tok_find(t, sp + 1, len - (size_t)(sp - s) - 1);
            bool skipped;
            if (!keel_tok_add_merge(t, a, b, (int32_t)i, &skipped)) {
                keel_tokenizer_free(t);
                return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory for the merges", path);
            }
            // a merge naming tokens the vocabulary lacks can never apply: skipped
        }
        const char *pre = "default";
        size_t pre_len = 7;
        if (keel_gguf_find_key(g, "tokenizer.ggml.pre") >= 0 &&
            (st = keel_gguf_get_str(g, "tokenizer.ggml.pre", true, &pre, &pre_len, err))) {
            keel_tokenizer_free(t);
            return st;
        }
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(pre_len > 63 ? 63 : pre_len), pre);
        keel_err e2;
        if ((st = keel_tok_set_pre_named(t, name, &e2))) {
            keel_tokenizer_free(t);
            return KEEL_FAIL(err, st, "%s: %s", path, e2.msg);
        }
    }

    if ((st = get_id(g, "tokenizer.ggml.bos_token_id", &t->bos, err)) ||
        (st = get_id(g, "tokenizer.ggml.eos_token_id", &t->eos, err)) ||
        (st = get_id(g, "tokenizer.ggml.unknown_token_id", &t->unk, err)) ||
        (st = get_id(g, "tokenizer.ggml.padding_token_id", &t->pad, err)) ||
        (st = get_id(g, "tokenizer.ggml.eot_token_id", &t->eot, err)) ||
        (st = get_id(g, "tokenizer.ggml.eom_token_id", &t->eom, err)) ||
        (st = get_flag(g, "tokenizer.ggml.add_bos_token", &t->add_bos, err)) ||
        (st = get_flag(g, "tokenizer.ggml.add_eos_token", &t->add_eos, err)) ||
        (st = get_flag(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err))) {
        keel_tokenizer_free(t);
        return st;
    }
    if (keel_gguf_find_key(g, "tokenizer.chat_template") >= 0) {
        const char *tpl;
        size_t tl;
        if ((st = keel_gguf_get_str(g, "tokenizer.chat_template", true, &tpl, &tl, err))) {
            keel_tokenizer_free(t);
            return st;
        }
        t->chat_template = keel_strndup(tpl, tl);
        if (!t->chat_template) {
            keel_tokenizer_free(t);
            return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    if ((st = keel_tok_finish(t, path, err))) {
        keel_tokenizer_free(t);
        return st;
    }
    *out = t;
    return KEEL_OK;
}
