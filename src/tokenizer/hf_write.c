// SPDX-License-Identifier: MIT
// hf_write.c — keel_tokenizer_write_hf: save a byte-level BPE tokenizer (a
// GGUF "gpt2" vocabulary) as a Hugging Face tokenizer.json +
// tokenizer_config.json, so that a checkpoint of a GGUF base reloads with
// keel_model_load (hf_json.c reads the files back) and with transformers'
// AutoTokenizer. Layout follows the tokenizers serialization (model BPE with
// vocab and merges in rank order, pre_tokenizer, decoder ByteLevel,
// post_processor TemplateProcessing / ByteLevel, added_tokens).
// Supported pre-tokenizers (tokenizer.ggml.pre): the GPT-2 family (gpt-2,
// gpt2, mpt, olmo) -> ByteLevel(use_regex); digits-first families (smollm,
// starcoder, refact) -> Sequence[Digits(individual), ByteLevel(use_regex)].
// SentencePiece vocabularies and other pre-tokenizers: KEEL_ERR_UNSUPPORTED.
#include "tokenizer.h"

#include <cJSON.h>

typedef struct merge_rec {
    int32_t rank, a, b;
} merge_rec;

static int merge_cmp(const void *pa, const void *pb) {
    const merge_rec *a = pa, *b = pb;
    return (a->rank > b->rank) - (a->rank < b->rank);
}

// HF pre_tokenizer for a llama.cpp pre-tokenizer name; NULL when unsupported.
static cJSON *make_pre(const char *name) {
    static const char *const gpt2[] = {"gpt-2", "gpt2", "mpt", "olmo", NULL};
    static const char *const digits[] = {"smollm", "starcoder", "refact", NULL};
    int fam = 0;
    for (int i = 0; gpt2[i]; i++) if (strcmp(name, gpt2[i]) == 0) fam = 1;
    for (int i = 0; digits[i]; i++) if (strcmp(name, digits[i]) == 0) fam = 2;
    if (!fam) return NULL;
    cJSON *bl = cJSON_CreateObject();
    if (!bl) return NULL;
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddBoolToObject(bl, "add_prefix_space", false);
    cJSON_AddBoolToObject(bl, "trim_offsets", true);
    cJSON_AddBoolToObject(bl, "use_regex", true);
    if (fam == 1) return bl;
    cJSON *seq = cJSON_CreateObject(), *arr = cJSON_CreateArray(), *dg = cJSON_CreateObject();
    if (!seq || !arr || !dg) {
        cJSON_Delete(bl), cJSON_Delete(seq), cJSON_Delete(arr), cJSON_Delete(dg);
        return NULL;
    }
    cJSON_AddStringToObject(dg, "type", "Digits");
    cJSON_AddBoolToObject(dg, "individual_digits", true);
    cJSON_AddItemToArray(arr, dg);
    cJSON_AddItemToArray(arr, bl);
    cJSON_AddStringToObject(seq, "type", "Sequence");
    cJSON_AddItemToObject(seq, "pretokenizers", arr);
    return seq;
}

static cJSON *byte_level(bool prefix, bool trim) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", prefix);
    cJSON_AddBoolToObject(o, "trim_offsets", trim);
    cJSON_AddBoolToObject(o, "use_regex", true);
    return o;
}

// {"SpecialToken": {"id": name, "type_id": 0}} or {"Sequence": {"id": "A", ...}}
static void tpl_item(cJSON *arr, const char *kind, const char *id) {
    cJSON *o = cJSON_CreateObject(), *in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "id", id);
    cJSON_AddNumberToObject(in, "type_id", 0);
    cJSON_AddItemToObject(o, kind, in);
    cJSON_AddItemToArray(arr, o);
}

// TemplateProcessing adding bos / eos around a sequence (and a pair).
static cJSON *make_post(const keel_tokenizer *t) {
    bool b = t->add_bos && t->bos >= 0, e = t->add_eos && t->eos >= 0;
    if (!b && !e) return byte_level(true, false);
    cJSON *p = cJSON_CreateObject(), *single = cJSON_CreateArray(), *pair = cJSON_CreateArray(),
          *sp = cJSON_CreateObject();
    const char *bn = b ? keel_tok_text(t, t->bos) : NULL, *en = e ? keel_tok_text(t, t->eos) : NULL;
    cJSON_AddStringToObject(p, "type", "TemplateProcessing");
    if (b) tpl_item(single, "SpecialToken", bn);
    tpl_item(single, "Sequence", "A");
    if (e) tpl_item(single, "SpecialToken", en);
    for (int s = 0; s < 2; s++) {
        if (b) tpl_item(pair, "SpecialToken", bn);
        tpl_item(pair, "Sequence", s ? "B" : "A");
        if (e) tpl_item(pair, "SpecialToken", en);
    }
    cJSON_AddItemToObject(p, "single", single);
    cJSON_AddItemToObject(p, "pair", pair);
    for (int k = 0; k < 2; k++) {
        int32_t id = k ? t->eos : t->bos;
        if (!(k ? e : b) || (k && b && t->bos == t->eos)) continue;
        const char *nm = keel_tok_text(t, id);
        cJSON *o = cJSON_CreateObject(), *ids = cJSON_CreateArray(), *toks = cJSON_CreateArray();
        cJSON_AddStringToObject(o, "id", nm);
        cJSON_AddItemToArray(ids, cJSON_CreateNumber(id));
        cJSON_AddItemToArray(toks, cJSON_CreateString(nm));
        cJSON_AddItemToObject(o, "ids", ids);
        cJSON_AddItemToObject(o, "tokens", toks);
        cJSON_AddItemToObject(sp, nm, o);
    }
    cJSON_AddItemToObject(p, "special_tokens", sp);
    return p;
}

static keel_status write_json(const char *dir, const char *name, const cJSON *root, keel_err *err) {
    char *path = keel_path_join(dir, name);
    char *text = path ? cJSON_PrintUnformatted(root) : NULL;
    keel_status st;
    if (!text) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s/%s: out of memory", dir, name);
    } else {
        keel_iobuf b[2] = {{text, strlen(text)}, {"\n", 1}};
        st = keel_atomic_write_bufs(path, b, 2, err);
    }
    cJSON_free(text);
    free(path);
    return st;
}

static void add_token_name(cJSON *cfg, const keel_tokenizer *t, const char *key, int32_t id) {
    if (id >= 0 && id < t->n_vocab) cJSON_AddStringToObject(cfg, key, keel_tok_text(t, id));
}

keel_status keel_tokenizer_write_hf(const keel_tokenizer *t, const char *dir, keel_err *err) {
    if (!t->byte_level || t->algo != KEEL_TOK_ALGO_RANK || t->spm_space)
        return KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED,
                         "%s: writing tokenizer.json is supported for byte-level BPE (GGUF \"gpt2\") vocabularies "
                         "only, not SentencePiece",
                         dir);
    const char *pre_name = t->pre_name ? t->pre_name : "";
    cJSON *pre = make_pre(pre_name);
    if (!pre)
        return KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED,
                         "%s: writing tokenizer.json for pre-tokenizer \"%s\" is not supported (gpt-2, gpt2, mpt, "
                         "olmo, smollm, starcoder, refact are)",
                         dir, pre_name);
    keel_status st = KEEL_OK;
    cJSON *root = cJSON_CreateObject(), *cfg = cJSON_CreateObject();
    merge_rec *mr = keel_malloc(((size_t)t->n_merges + 1) * sizeof *mr);
    if (!root || !cfg || !mr) goto oom;

    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");

    // added_tokens: control and user-defined tokens (special = control)
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int32_t i = 0; added && i < t->n_vocab; i++) {
        int ty = t->tok[i].type;
        if (ty != KEEL_TOK_CONTROL && ty != KEEL_TOK_USER_DEFINED) continue;
        const char *s = keel_tok_text(t, i);
        if (!*s || keel_tok_find(t, s, strlen(s)) != i) continue; // duplicate text: unreachable
        cJSON *a = cJSON_CreateObject();
        if (!a) goto oom;
        cJSON_AddNumberToObject(a, "id", i);
        cJSON_AddStringToObject(a, "content", s);
        cJSON_AddBoolToObject(a, "single_word", false);
        cJSON_AddBoolToObject(a, "lstrip", t->tok[i].lstrip);
        cJSON_AddBoolToObject(a, "rstrip", t->tok[i].rstrip);
        cJSON_AddBoolToObject(a, "normalized", ty != KEEL_TOK_CONTROL);
        cJSON_AddBoolToObject(a, "special", ty == KEEL_TOK_CONTROL);
        cJSON_AddItemToArray(added, a);
    }
    cJSON_AddNullToObject(root, "normalizer");
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    pre = NULL;
    cJSON *post = make_post(t);
    if (!post) goto oom;
    cJSON_AddItemToObject(root, "post_processor", post);
    cJSON *dec = byte_level(true, true);
    if (!dec) goto oom;
    cJSON_AddItemToObject(root, "decoder", dec);

    cJSON *model = cJSON_AddObjectToObject(root, "model");
    if (!model) goto oom;
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", false);
    cJSON_AddBoolToObject(model, "byte_fallback", false);
    cJSON_AddBoolToObject(model, "ignore_merges", t->ignore_merges);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    if (!vocab) goto oom;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        const char *s = keel_tok_text(t, i);
        // an id whose text repeats an earlier id's is dropped (a JSON object
        // cannot hold the key twice; keel's lookup already ignores it)
        if (!*s || keel_tok_find(t, s, strlen(s)) != i) continue;
        cJSON *v = cJSON_CreateNumber(i);
        if (!v) goto oom;
        cJSON_AddItemToObject(vocab, s, v);
    }
    // merges in rank order, as [left, right] pairs
    int32_t nm = 0;
    for (size_t k = 0; k < t->mcap; k++) {
        if (t->mkey[k] == UINT64_MAX || nm >= t->n_merges + 1) continue;
        mr[nm].rank = t->mrank[k];
        mr[nm].a = (int32_t)(t->mkey[k] >> 32);
        mr[nm].b = (int32_t)(t->mkey[k] & 0xffffffffu);
        nm++;
    }
    qsort(mr, (size_t)nm, sizeof *mr, merge_cmp);
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    if (!merges) goto oom;
    for (int32_t k = 0; k < nm; k++) {
        cJSON *pr = cJSON_CreateArray();
        if (!pr) goto oom;
        cJSON_AddItemToArray(pr, cJSON_CreateString(keel_tok_text(t, mr[k].a)));
        cJSON_AddItemToArray(pr, cJSON_CreateString(keel_tok_text(t, mr[k].b)));
        cJSON_AddItemToArray(merges, pr);
    }

    // tokenizer_config.json
    cJSON_AddBoolToObject(cfg, "add_bos_token", t->add_bos);
    cJSON_AddBoolToObject(cfg, "add_eos_token", t->add_eos);
    add_token_name(cfg, t, "bos_token", t->bos);
    add_token_name(cfg, t, "eos_token", t->eos);
    add_token_name(cfg, t, "pad_token", t->pad);
    add_token_name(cfg, t, "unk_token", t->unk);
    if (t->chat_template) cJSON_AddStringToObject(cfg, "chat_template", t->chat_template);
    cJSON_AddBoolToObject(cfg, "clean_up_tokenization_spaces", false);
    cJSON_AddStringToObject(cfg, "tokenizer_class", "PreTrainedTokenizerFast");

    if ((st = write_json(dir, "tokenizer.json", root, err)) == KEEL_OK)
        st = write_json(dir, "tokenizer_config.json", cfg, err);
    goto done;
oom:
    st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory writing tokenizer.json", dir);
done:
    cJSON_Delete(pre);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    free(mr);
    return st;
}
