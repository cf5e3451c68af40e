// SPDX-License-Identifier: MIT
// hf_json.c — keel_tokenizer_from_hf: build a tokenizer from a Hugging Face
// tokenizers file (tokenizer.json) and, optionally, tokenizer_config.json.
// Supported subset (anything else is KEEL_ERR_UNSUPPORTED naming the part):
//   model          BPE: vocab, merges ("a b" strings or ["a", "b"] pairs),
//                  byte_fallback, fuse_unk, unk_token, ignore_merges
//   normalizer     null, or Prepend("▁") and/or Replace(" " -> "▁") (the
//                  SentencePiece-as-BPE layout of Llama-2's tokenizer.json)
//   pre_tokenizer  null, ByteLevel (use_regex -> the GPT-2 regex;
//                  add_prefix_space false), Split(Regex|String, Isolated),
//                  Digits, a Sequence of those; or Metaspace("▁", any
//                  prepend_scheme, split or not) alone
//   post_processor null, ByteLevel, TemplateProcessing (its "single"
//                  template decides the specials added with add_special)
//   added_tokens   special -> control tokens, others -> user-defined;
//                  lstrip / rstrip honoured
// The chat template comes from tokenizer_config.json "chat_template" (a string
// or a list of named templates: "default" wins), else from a
// chat_template.jinja file beside tokenizer.json (newer transformers).
// The decoder is implied by the rest (byte-level unmapping, or "▁" -> space,
// <0xNN> bytes and dropping the first leading space).
#include "tokenizer.h"

#include <cJSON.h>

#define MAX_VOCAB (1 << 24)

typedef struct hf_ctx {
    const char *path;
    keel_err *err;
} hf_ctx;

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool jbool(const cJSON *o, const char *key, bool def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return def;
}

// Escape a literal for use inside a PCRE2 pattern.
static char *regex_escape(const char *s) {
    keel_buf b = {0};
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x80 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
            if (c == '\n') { if (!keel_buf_appends(&b, "\\n")) goto fail; continue; }
            if (c == '\r') { if (!keel_buf_appends(&b, "\\r")) goto fail; continue; }
            if (c == '\t') { if (!keel_buf_appends(&b, "\\t")) goto fail; continue; }
            if (c == 0x20) { if (!keel_buf_appends(&b, "\\x20")) goto fail; continue; }
            if (!keel_buf_append(&b, "\\", 1)) goto fail;
        }
        if (!keel_buf_append(&b, s, 1)) goto fail;
    }
    if (!keel_buf_append(&b, "", 1)) goto fail;
    return b.data;
fail:
    free(b.data);
    return NULL;
}

// ---------------------------------------------------------------- pieces

static keel_status parse_normalizer(keel_tokenizer *t, const cJSON *n, hf_ctx *c) {
    if (!n || cJSON_IsNull(n)) return KEEL_OK;
    const char *type = jstr(n, "type");
    if (!type) return KEEL_FAIL(c->err, KEEL_ERR_FORMAT, "%s: normalizer without a type", c->path);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(n, "normalizers")) {
            keel_status st = parse_normalizer(t, it, c);
            if (st) return st;
        }
        return KEEL_OK;
    }
    if (strcmp(type, "Prepend") == 0) {
        const char *p = jstr(n, "prepend");
        if (!p || strcmp(p, "\xe2\x96\x81") != 0)
            return KEEL_FAIL(c->err, KEEL_ERR_UNSUPPORTED, "%s: normalizer Prepend(\"%s\"): only \"\xe2\x96\x81\" is supported",
                             c->path, p ? p : "?");
        t->spm_space = true;
        t->add_space_prefix = true;
        return KEEL_OK;
    }
    if (strcmp(type, "Replace") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        const char *from = jstr(pat, "String"), *to = jstr(n, "content");
        if (!from || !to || strcmp(from, " ") != 0 || strcmp(to, "\xe2\x96\x81") != 0)
            return KEEL_FAIL(c->err, KEEL_ERR_UNSUPPORTED,
                             "%s: normalizer Replace: only \" \" -> \"\xe2\x96\x81\" is supported", c->path);
        t->spm_space = true;
        return KEEL_OK;
    }
    return KEEL_FAIL(c->err, KEEL_ERR_UNSUPPORTED, "%s: normalizer %s is not supported", c->path, type);
}

static keel_status parse_pre(keel_tokenizer *t, const cJSON *p, hf_ctx *c) {
    if (!p || cJSON_IsNull(p)) return KEEL_OK;
    const char *type = jstr(p, "type");
    if (!type) return KEEL_FAIL(c->err, KEEL_ERR_FORMAT, "%s: pre_tokenizer without a type", c->path);
    keel_status st;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers")) {
            if ((st = parse_pre(t, it, c))) return st;
        }
        return KEEL_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        if (jbool(p, "add_prefix_space", false))
            return KEEL_FAIL(c->err, KEEL_ERR_UNSUPPORTED, "%s: pre_tokenizer ByteLevel with add_prefix_space", c->path);
        t->byte_level = true;
        if (jbool(p, "use_regex", true)) return keel_tok_set_pre_named(t, "gpt-2", c->err);
        return KEEL_OK;
    }
    if (strcmp(type, "Metaspace") == 0) {
        const char *rep = jstr(p, "replacement"), *scheme = jstr(p, "prepend_scheme");
        if (!rep || strcmp(rep, "\xe2\x96\x81") != 0)
            return KEEL_FAIL(c->err, KEEL_ERR_UNSUPPORTED, "%s: pre_tokenizer Metaspace: only replacement \"\xe2\x96\x81\" is supported",
                             c->path);
        if (!scheme) scheme = jbool(p, "add_prefix_space", true) ? "always" : "never"; // older files
        if (strcmp(scheme, "always") != 0 && strcmp(scheme, "first") != 0 && strcmp(scheme, "never") != 0)
            return KEEL_FAIL(c->err, KEEL_ERR_UNSUPPORTED, "%s: pre_tokenizer Metaspace: prepend_scheme %s", c->path, scheme);
        t->spm_space = true;
        t->add_space_prefix = strcmp(scheme, "never") != 0;
        t->spm_prefix_first = strcmp(scheme, "first") == 0;
        t->spm_split = jbool(p, "split", true);
        t->spm_metaspace = true;
        return KEEL_OK;
    }
    if (strcmp(type, "Digits") == 0)
        return keel_tok_add_pre(t, jbool(p, "individual_digits", false) ? "\\p{N}" : "\\p{N}+", c->path, c->err);
    if (strcmp(type, "Split") == 0) {
        const char *beh = jstr(p, "behavior");
        if (!beh || strcmp(beh, "Isolated") != 0 || jbool(p, "invert", false))
            return KEEL_FAIL(c->err, KEEL_ERR_UNSUPPORTED,
                             "%s: pre_tokenizer Split with behavior %s%s: only Isolated is supported", c->path,
                             beh ? beh : "?", jbool(p, "invert", false) ? " (inverted)" : "");
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *re = jstr(pat, "Regex"), *lit = jstr(pat, "String");
        if (re) return keel_tok_add_pre(t, re, c->path, c->err);
        if (lit) {
            char *e = regex_escape(lit);
            if (!e) return KEEL_FAIL(c->err, KEEL_ERR_NOMEM, "%s: out of memory", c->path);
            st = keel_tok_add_pre(t, e, c->path, c->err);
            free(e);
            return st;
        }
        return KEEL_FAIL(c->err, KEEL_ERR_FORMAT, "%s: pre_tokenizer Split without a pattern", c->path);
    }
    return KEEL_FAIL(c->err, KEEL_ERR_UNSUPPORTED, "%s: pre_tokenizer %s is not supported", c->path, type);
}

static bool ids_append(int32_t **v, int32_t *n, int32_t id) {
    int32_t *p = keel_realloc(*v, (size_t)(*n + 1) * sizeof *p);
    if (!p) return false;
    p[(*n)++] = id;
    *v = p;
    return true;
}

static keel_status parse_post(keel_tokenizer *t, const cJSON *p, hf_ctx *c) {
    if (!p || cJSON_IsNull(p)) return KEEL_OK;
    const char *type = jstr(p, "type");
    if (!type) return KEEL_FAIL(c->err, KEEL_ERR_FORMAT, "%s: post_processor without a type", c->path);
    if (strcmp(type, "ByteLevel") == 0) return KEEL_OK; // offsets only
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "processors")) {
            keel_status st = parse_post(t, it, c);
            if (st) return st;
        }
        return KEEL_OK;
    }
    if (strcmp(type, "TemplateProcessing") != 0)
        return KEEL_FAIL(c->err, KEEL_ERR_UNSUPPORTED, "%s: post_processor %s is not supported", c->path, type);
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
    bool seen_seq = false;
    t->has_post = true;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "single")) {
        if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) {
            seen_seq = true;
            continue;
        }
        const char *name = jstr(cJSON_GetObjectItemCaseSensitive(it, "SpecialToken"), "id");
        if (!name) return KEEL_FAIL(c->err, KEEL_ERR_FORMAT, "%s: post_processor.single: unknown item", c->path);
        // the special_tokens entry lists the ids; else the name is a token
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(specials, name), "ids");
        int32_t one = keel_tok_find(t, name, strlen(name));
        int32_t n = ids ? cJSON_GetArraySize(ids) : 1;
        for (int32_t k = 0; k < n; k++) {
            int32_t id = one;
            if (ids) {
                const cJSON *v = cJSON_GetArrayItem(ids, k);
                id = cJSON_IsNumber(v) ? (int32_t)v->valuedouble : -1;
            }
            if (id < 0 || id >= t->n_vocab)
                return KEEL_FAIL(c->err, KEEL_ERR_FORMAT, "%s: post_processor special token \"%s\" is not in the vocabulary",
                                 c->path, name);
            bool ok = seen_seq ? ids_append(&t->post_suf, &t->n_post_suf, id) : ids_append(&t->post_pre, &t->n_post_pre, id);
            if (!ok) return KEEL_FAIL(c->err, KEEL_ERR_NOMEM, "%s: out of memory", c->path);
        }
    }
    return KEEL_OK;
}

// bos_token etc. in tokenizer_config.json: a string or {"content": ...}
static int32_t config_token(const keel_tokenizer *t, const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : jstr(v, "content");
    return s ? keel_tok_find(t, s, strlen(s)) : -1;
}

static int32_t find_first(const keel_tokenizer *t, const char *const *names) {
    for (; *names; names++) {
        int32_t id = keel_tok_find(t, *names, strlen(*names));
        if (id >= 0) return id;
    }
    return -1;
}

// ---------------------------------------------------------------- main

static keel_status build(keel_tokenizer **out, const cJSON *root, const cJSON *cfg, hf_ctx *c) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *mtype = jstr(model, "type");
    if (!model) return KEEL_FAIL(c->err, KEEL_ERR_FORMAT, "%s: no \"model\" object", c->path);
    if (mtype && strcmp(mtype, "BPE") != 0)
        return KEEL_FAIL(c->err, KEEL_ERR_UNSUPPORTED, "%s: model type %s is not supported (BPE only)", c->path, mtype);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(vocab)) return KEEL_FAIL(c->err, KEEL_ERR_FORMAT, "%s: model.vocab is not an object", c->path);
    const char *sfx[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const char *v = jstr(model, sfx[i]);
        if (v && *v) return KEEL_FAIL(c->err, KEEL_ERR_UNSUPPORTED, "%s: model.%s is not supported", c->path, sfx[i]);
    }

    // vocabulary size: the largest id in vocab and added_tokens, plus one
    int64_t max_id = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= MAX_VOCAB)
            return KEEL_FAIL(c->err, KEEL_ERR_FORMAT, "%s: model.vocab[\"%.40s\"]: bad id", c->path, it->string);
        if ((int64_t)it->valuedouble > max_id) max_id = (int64_t)it->valuedouble;
    }
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= MAX_VOCAB || !jstr(it, "content"))
            return KEEL_FAIL(c->err, KEEL_ERR_FORMAT, "%s: added_tokens: entry without a valid id/content", c->path);
        if ((int64_t)id->valuedouble > max_id) max_id = (int64_t)id->valuedouble;
    }
    if (max_id < 0) return KEEL_FAIL(c->err, KEEL_ERR_FORMAT, "%s: empty vocabulary", c->path);
    keel_tokenizer *t = keel_tok_alloc((int32_t)(max_id + 1));
    if (!t) return KEEL_FAIL(c->err, KEEL_ERR_NOMEM, "%s: out of memory for the vocabulary", c->path);
    *out = t;
    for (int32_t i = 0; i < t->n_vocab; i++) t->tok[i].type = 0; // 0 = not yet set
    cJSON_ArrayForEach(it, vocab) {
        const char *s = it->string;
        if (!keel_tok_set(t, (int32_t)it->valuedouble, s, strlen(s), 0, KEEL_TOK_NORMAL))
            return KEEL_FAIL(c->err, KEEL_ERR_NOMEM, "%s: out of memory for the vocabulary", c->path);
    }
    cJSON_ArrayForEach(it, added) {
        const char *s = jstr(it, "content");
        int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble;
        if (!keel_tok_set(t, id, s, strlen(s), 0, jbool(it, "special", false) ? KEEL_TOK_CONTROL : KEEL_TOK_USER_DEFINED))
            return KEEL_FAIL(c->err, KEEL_ERR_NOMEM, "%s: out of memory for the vocabulary", c->path);
        t->tok[id].lstrip = jbool(it, "lstrip", false);
        t->tok[id].rstrip = jbool(it, "rstrip", false);
    }
    for (int32_t i = 0; i < t->n_vocab; i++) // holes in the id range
        if (t->tok[i].type == 0 && !keel_tok_set(t, i, "", 0, 0, KEEL_TOK_UNUSED))
            return KEEL_FAIL(c->err, KEEL_ERR_NOMEM, "%s: out of memory for the vocabulary", c->path);
    if (!keel_tok_build_hash(t)) return KEEL_FAIL(c->err, KEEL_ERR_NOMEM, "%s: out of memory", c->path);

    t->algo = KEEL_TOK_ALGO_RANK;
    t->byte_fallback = jbool(model, "byte_fallback", false);
    t->fuse_unk = jbool(model, "fuse_unk", false);
    t->ignore_merges = jbool(model, "ignore_merges", false);
    const char *unk = jstr(model, "unk_token");
    if (unk) {
        t->unk = keel_tok_find(t, unk, strlen(unk));
        if (t->unk >= 0 && t->tok[t->unk].type == KEEL_TOK_NORMAL) t->tok[t->unk].type = KEEL_TOK_UNKNOWN;
    }
    if (t->byte_fallback) { // <0xNN> pieces decode to their byte
        for (int b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            int32_t id = keel_tok_find(t, name, 6);
            if (id >= 0 && t->tok[id].type == KEEL_TOK_NORMAL) t->tok[id].type = KEEL_TOK_BYTE;
        }
    }

    // merges: rank = position in the list
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    int nm = cJSON_GetArraySize(merges);
    if (!keel_tok_merges_reserve(t, (size_t)(nm > 0 ? nm : 0)))
        return KEEL_FAIL(c->err, KEEL_ERR_NOMEM, "%s: out of memory for the merges", c->path);
    int32_t rank = 0;
    cJSON_ArrayForEach(it, merges) {
        int32_t a = -1, b = -1;
        if (cJSON_IsString(it)) {
            const char *s = it->valuestring;
            const char *sp = s[0] ? strchr(s + 1, ' ') : NULL;
            if (!sp) return KEEL_FAIL(c->err, KEEL_ERR_FORMAT, "%s: model.merges[%d] has no space", c->path, rank);
            a = keel_tok_find(t, s, (size_t)(sp - s));
            b = keel_tok_find(t, sp + 1, strlen(sp + 1));
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            const char *l = cJSON_GetArrayItem(it, 0)->valuestring, *r = cJSON_GetArrayItem(it, 1)->valuestring;
            a = keel_tok_find(t, l, strlen(l));
            b = keel_tok_find(t, r, strlen(r));
        } else {
            return KEEL_FAIL(c->err, KEEL_ERR_FORMAT, "%s: model.merges[%d] is neither \"a b\" nor [a, b]", c->path, rank);
        }
        bool skipped;
        if (!keel_tok_add_merge(t, a, b, rank, &skipped))
            return KEEL_FAIL(c->err, KEEL_ERR_NOMEM, "%s: out of memory for the merges", c->path);
        rank++;
    }

    keel_status st;
    if ((st = parse_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), c))) return st;
    if ((st = parse_pre(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), c))) return st;
    if (t->spm_space && (t->byte_level || t->n_pre))
        return KEEL_FAIL(c->err, KEEL_ERR_UNSUPPORTED,
                         "%s: a \"\xe2\x96\x81\" normalizer together with a pre-tokenizer is not supported", c->path);
    free(t->pre_name);
    t->pre_name = keel_strdup("tokenizer.json");
    if (!t->pre_name) return KEEL_FAIL(c->err, KEEL_ERR_NOMEM, "%s: out of memory", c->path);
    if ((st = parse_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), c))) return st;
    t->kind = t->byte_level ? KEEL_TOKENIZER_BPE : KEEL_TOKENIZER_SPM;

    // special ids: tokenizer_config.json first, then what TemplateProcessing
    // adds around a sequence, then the usual names
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<|endoftext|>", "<bos>", "<|bos|>", NULL};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "<|eos|>", NULL};
    static const char *const pad_names[] = {"<pad>", "<|pad|>", NULL};
    t->bos = config_token(t, cfg, "bos_token");
    t->eos = config_token(t, cfg, "eos_token");
    t->pad = config_token(t, cfg, "pad_token");
    if (t->bos < 0) t->bos = t->n_post_pre ? t->post_pre[0] : find_first(t, bos_names);
    if (t->eos < 0) t->eos = t->n_post_suf ? t->post_suf[t->n_post_suf - 1] : find_first(t, eos_names);
    if (t->pad < 0) t->pad = find_first(t, pad_names);
    int32_t u = config_token(t, cfg, "unk_token");
    if (t->unk < 0) t->unk = u;
    // add_special: the TemplateProcessing of tokenizer.json decides when there
    // is one; else tokenizer_config.json's add_bos_token / add_eos_token
    t->add_bos = jbool(cfg, "add_bos_token", false);
    t->add_eos = jbool(cfg, "add_eos_token", false);

    const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    const char *tpl_s = cJSON_IsString(tpl) ? tpl->valuestring : NULL;
    if (cJSON_IsArray(tpl)) { // [{"name": "default", "template": ...}, ...]
        cJSON_ArrayForEach(it, tpl) {
            const char *name = jstr(it, "name");
            if (!tpl_s || (name && strcmp(name, "default") == 0)) tpl_s = jstr(it, "template");
        }
    }
    if (tpl_s && !(t->chat_template = keel_strdup(tpl_s)))
        return KEEL_FAIL(c->err, KEEL_ERR_NOMEM, "%s: out of memory", c->path);
    if (!tpl_s) { // newer transformers save the template beside, as chat_template.jinja
        const char *slash = strrchr(c->path, '/');
        char *dir = slash ? keel_strndup(c->path, (size_t)(slash - c->path)) : keel_strdup(".");
        char *jp = dir ? keel_path_join(dir, "chat_template.jinja") : NULL;
        free(dir);
        if (!jp) return KEEL_FAIL(c->err, KEEL_ERR_NOMEM, "%s: out of memory", c->path);
        if (keel_path_exists(jp)) {
            size_t len;
            keel_status st2 = keel_read_file(jp, &t->chat_template, &len, c->err);
            free(jp);
            if (st2) return st2;
        } else {
            free(jp);
        }
    }
    return keel_tok_finish(t, c->path, c->err);
}

static keel_status parse_json_file(const char *path, cJSON **out, keel_err *err) {
    char *text = NULL;
    size_t len = 0;
    keel_status st = keel_read_file(path, &text, &len, err);
    if (st) return st;
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!*out) {
        size_t off = end && end >= text ? (size_t)(end - text) : 0;
        free(text);
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: invalid JSON near byte %zu", path, off);
    }
    free(text);
    return KEEL_OK;
}

keel_status keel_tokenizer_from_hf(const char *tokenizer_json_path, const char *tokenizer_config_json_path,
                                   keel_tokenizer **out, keel_err *err) {
    if (out) *out = NULL;
    if (!tokenizer_json_path || !out) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_tokenizer_from_hf: NULL argument");
    cJSON *root = NULL, *cfg = NULL;
    keel_status st = parse_json_file(tokenizer_json_path, &root, err);
    if (st) return st;
    if (tokenizer_config_json_path && (st = parse_json_file(tokenizer_config_json_path, &cfg, err))) {
        cJSON_Delete(root);
        return st;
    }
    hf_ctx c = {tokenizer_json_path, err};
    keel_tokenizer *t = NULL;
    st = build(&t, root, cfg, &c);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    if (st) {
        keel_tokenizer_free(t);
        return st;
    }
    *out = t;
    return KEEL_OK;
}
