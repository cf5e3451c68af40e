// SPDX-License-Identifier: MIT
// format.c — one JSONL object → token ids + target flags, per format:
//   text               BOS? + text + EOS, every token a target
//   prompt_completion  BOS? + prompt + completion + EOS, targets: completion + EOS
//   alpaca             the Stanford Alpaca prompt (with or without "### Input:")
//                      as the prompt, output as the completion
//   chat               the model's chat template (keel_chat_apply); targets:
//                      each assistant turn's content through its end-of-turn token
// Where the trained part starts is found by tokenizing the prefix alone and
// taking the longest common prefix with the full tokenization, so a merge
// across the boundary never misplaces the mask. For chat, message j (an
// assistant turn) spans [a, b): a from the render of messages[0..j) with the
// assistant opening added, b from the render of messages[0..j]; targets run
// from a to the first end-of-generation token in [a, b) inclusive (else b).
// When the prefix render is not a prefix of the whole (a template that adds a
// default system turn only to non-empty conversations, with the assistant
// speaking first), a comes from messages[0..j] with message j's content
// emptied instead.
// Normalized content for duplicate detection: each field trimmed, whitespace
// runs collapsed to one space, fields separated, hashed with 64-bit FNV-1a.
#include "data/data.h"

// ---------------------------------------------------------------- helpers

void keel_data_seq_free(keel_data_seq *s) {
    free(s->tok);
    free(s->tgt);
    memset(s, 0, sizeof *s);
}

static bool seq_push(keel_data_seq *s, int32_t t, uint8_t tgt) {
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        int32_t *a = keel_realloc(s->tok, nc * sizeof *a);
        if (!a) return false;
        s->tok = a;
        uint8_t *b = keel_realloc(s->tgt, nc);
        if (!b) return false;
        s->tgt = b;
        s->cap = nc;
    }
    s->tok[s->n] = t;
    s->tgt[s->n] = tgt;
    s->n++;
    return true;
}

#define FNV_OFF 1469598103934665603ull
#define FNV_PRIME 1099511628211ull

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * FNV_PRIME;
    return h;
}

// Hash the field name and its value trimmed, with whitespace runs as one space.
static uint64_t hash_field(uint64_t h, const char *name, const char *v) {
    h = fnv(h, name, strlen(name));
    h = fnv(h, "\x1f", 1);
    bool space = false, any = false;
    for (const char *p = v; *p; p++) {
        bool ws = *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v';
        if (ws) {
            space = any;
            continue;
        }
        if (space) h = fnv(h, " ", 1);
        space = false;
        any = true;
        h = fnv(h, p, 1);
    }
    return fnv(h, "\x1e", 1);
}

static const char *json_type(const cJSON *j) {
    return cJSON_IsArray(j) ? "an array" : cJSON_IsObject(j) ? "an object" : cJSON_IsNumber(j) ? "a number"
           : cJSON_IsNull(j) ? "null" : cJSON_IsBool(j) ? "a boolean" : "a string";
}

// A required (or optional, when opt) string field; NULL + error otherwise.
static keel_status get_str(const cJSON *obj, const char *name, bool opt, const char **out, keel_err *err) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = NULL;
    if (!f) return opt ? KEEL_OK : KEEL_FAIL(err, KEEL_ERR_FORMAT, "missing field \"%s\"", name);
    if (!cJSON_IsString(f) || !f->valuestring)
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "field \"%s\" must be a string, got %s", name, json_type(f));
    *out = f->valuestring;
    return KEEL_OK;
}

keel_data_format keel_data_detect(const cJSON *obj) {
    if (cJSON_GetObjectItemCaseSensitive(obj, "messages")) return KEEL_DATA_CHAT;
    if (cJSON_GetObjectItemCaseSensitive(obj, "prompt") || cJSON_GetObjectItemCaseSensitive(obj, "completion"))
        return KEEL_DATA_PROMPT_COMPLETION;
    if (cJSON_GetObjectItemCaseSensitive(obj, "instruction")) return KEEL_DATA_ALPACA;
    if (cJSON_GetObjectItemCaseSensitive(obj, "text")) return KEEL_DATA_TEXT;
    return KEEL_DATA_AUTO;
}

static keel_status tokenize(const keel_tokenizer *tok, const char *text, bool add_special, bool parse_special,
                            int32_t **ids, size_t *n, keel_err *err) {
    keel_status st = keel_tokenize(tok, text, strlen(text), add_special, parse_special, ids, n, err);
    // tokenizer errors here come from the example's text (e.g. a \ud800 escape
    // that cJSON turned into invalid UTF-8): they make the line malformed
    if (st == KEEL_ERR_INVALID) st = KEEL_ERR_FORMAT;
    return st;
}

static size_t common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    size_t k = 0;
    while (k < na && k < nb && a[k] == b[k]) k++;
    return k;
}

// Render messages[0..n) (add_assistant: plus the opening of an assistant
// turn), tokenize, and give how many leading tokens it shares with full
// (*shared) and its own length (*n_part).
static keel_status rendered_prefix(const keel_tokenizer *tok, const keel_chat_msg *m, size_t n, bool add_assistant,
                                   const int32_t *full, size_t nf, size_t *shared, size_t *n_part, keel_err *err) {
    char *text = NULL;
    int32_t *part = NULL;
    keel_status st = keel_chat_apply(tok, m, n, add_assistant, &text, err);
    if (!st) st = tokenize(tok, text, false, true, &part, n_part, err);
    if (!st) *shared = common_prefix(full, nf, part, *n_part);
    keel_free(text);
    keel_free(part);
    return st;
}

static keel_status nomem(keel_err *err) { return KEEL_FAIL(err, KEEL_ERR_NOMEM, "out of memory"); }

// BOS? + prompt + completion + EOS with targets from the completion on.
static keel_status render_pc(const keel_tokenizer *tok, const char *prompt, const char *completion,
                             keel_data_seq *s, keel_err *err) {
    size_t lp = strlen(prompt), lc = strlen(completion);
    char *full = keel_malloc(lp + lc + 1);
    if (!full) return nomem(err);
    memcpy(full, prompt, lp);
    memcpy(full + lp, completion, lc + 1);
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    keel_status st = tokenize(tok, full, true, false, &a, &na, err);
    if (!st) st = tokenize(tok, prompt, true, false, &b, &nb, err);
    if (!st) {
        int32_t eos = keel_token_eos(tok);
        // a tokenizer that appends EOS itself: drop it, we add it once below
        if (eos >= 0 && na && a[na - 1] == eos) na--;
        if (eos >= 0 && nb && b[nb - 1] == eos) nb--;
        size_t k = common_prefix(a, na, b, nb);
        for (size_t i = 0; i < na && !st; i++)
            if (!seq_push(s, a[i], i >= k)) st = nomem(err);
        if (!st && eos >= 0 && !seq_push(s, eos, 1)) st = nomem(err);
    }
    keel_free(a);
    keel_free(b);
    free(full);
    return st;
}

// ---------------------------------------------------------------- alpaca

char *keel_data_alpaca_prompt(const char *instruction, const char *input) {
    keel_buf b = {0};
    bool ok;
    if (input && *input)
        ok = keel_buf_printf(&b,
                             "Below is an instruction that describes a task, paired with an input that provides "
                             "further context. Write a response that appropriately completes the request.\n\n"
                             "### Instruction:\n%s\n\n### Input:\n%s\n\n### Response:\n",
                             instruction, input);
    else
        ok = keel_buf_printf(&b,
                             "Below is an instruction that describes a task. Write a response that appropriately "
                             "completes the request.\n\n### Instruction:\n%s\n\n### Response:\n",
                             instruction);
    if (!ok || !keel_buf_append(&b, "", 1)) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

// ---------------------------------------------------------------- chat

static keel_status render_chat(const keel_tokenizer *tok, const cJSON *obj, keel_data_seq *s, keel_err *err) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, "messages");
    if (!arr) return KEEL_FAIL(err, KEEL_ERR_FORMAT, "missing field \"messages\"");
    if (!cJSON_IsArray(arr)) return KEEL_FAIL(err, KEEL_ERR_FORMAT, "field \"messages\" must be an array, got %s", json_type(arr));
    int n = cJSON_GetArraySize(arr);
    if (n == 0) return KEEL_FAIL(err, KEEL_ERR_FORMAT, "field \"messages\" is empty");
    keel_chat_msg *m = keel_calloc((size_t)n, sizeof *m);
    if (!m) return nomem(err);
    keel_status st = KEEL_OK;
    int i = 0, n_asst = 0;
    uint64_t h = FNV_OFF;
    for (const cJSON *e = arr->child; e && !st; e = e->next, i++) {
        if (!cJSON_IsObject(e)) {
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "messages[%d] must be an object, got %s", i, json_type(e));
            break;
        }
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(e, "role"), *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!r || !c) st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "messages[%d]: missing field \"%s\"", i, r ? "content" : "role");
        else if (!cJSON_IsString(r) || !r->valuestring)
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "messages[%d]: field \"role\" must be a string, got %s", i, json_type(r));
        else if (!cJSON_IsString(c) || !c->valuestring)
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "messages[%d]: field \"content\" must be a string, got %s", i, json_type(c));
        else if (strcmp(r->valuestring, "system") && strcmp(r->valuestring, "user") && strcmp(r->valuestring, "assistant"))
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "messages[%d]: role \"%.40s\" is not system, user or assistant", i,
                           r->valuestring);
        if (st) break;
        m[i].role = r->valuestring;
        m[i].content = c->valuestring;
        n_asst += !strcmp(m[i].role, "assistant");
        h = hash_field(h, m[i].role, m[i].content);
    }
    if (!st && n_asst == 0) st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "no assistant message (nothing to train on)");

    char *text = NULL;
    int32_t *full = NULL;
    size_t nf = 0;
    if (!st) st = keel_chat_apply(tok, m, (size_t)n, false, &text, err);
    if (st == KEEL_ERR_INVALID) st = KEEL_ERR_FORMAT; // e.g. Llama-2 roles that do not alternate
    if (!st) st = tokenize(tok, text, false, true, &full, &nf, err);
    keel_free(text);
    text = NULL;
    uint8_t *tgt = NULL;
    if (!st && !(tgt = keel_calloc(nf ? nf : 1, 1))) st = nomem(err);
    for (int j = 0; j < n && !st; j++) {
        if (strcmp(m[j].role, "assistant")) continue;
        size_t a, b, np;
        st = rendered_prefix(tok, m, (size_t)j, true, full, nf, &a, &np, err);
        if (!st && a < np) {
            // the prefix is not rendered as a prefix of the whole (SmolLM2's
            // template adds its default system turn only when there are
            // messages): render messages[0..j] with message j emptied instead
            const char *content = m[j].content;
            m[j].content = "";
            st = rendered_prefix(tok, m, (size_t)j + 1, false, full, nf, &a, &np, err);
            m[j].content = content;
        }
        if (!st) st = rendered_prefix(tok, m, (size_t)j + 1, false, full, nf, &b, &np, err);
        if (st) break;
        size_t e = b;
        for (size_t t = a; t < b; t++)
            if (keel_token_is_eog(tok, full[t])) {
                e = t + 1;
                break;
            }
        for (size_t t = a; t < e; t++) tgt[t] = 1;
    }
    if (st == KEEL_ERR_INVALID) st = KEEL_ERR_FORMAT;
    for (size_t t = 0; t < nf && !st; t++)
        if (!seq_push(s, full[t], tgt[t])) st = nomem(err);
    s->hash = h;
    free(tgt);
    keel_free(full);
    free(m);
    return st;
}

// ---------------------------------------------------------------- entry

keel_status keel_data_render(const keel_tokenizer *tok, keel_data_format fmt, const cJSON *obj, keel_data_seq *s,
                             keel_err *err) {
    s->n = 0;
    s->hash = FNV_OFF;
    const char *a = NULL, *b = NULL, *c = NULL;
    keel_status st;
    switch (fmt) {
    case KEEL_DATA_TEXT: {
        if ((st = get_str(obj, "text", false, &a, err))) return st;
        if (!*a) return KEEL_FAIL(err, KEEL_ERR_FORMAT, "field \"text\" is empty");
        int32_t *ids = NULL;
        size_t n = 0;
        if ((st = tokenize(tok, a, true, false, &ids, &n, err))) return st;
        int32_t eos = keel_token_eos(tok);
        for (size_t i = 0; i < n && !st; i++)
            if (!seq_push(s, ids[i], 1)) st = nomem(err);
        if (!st && eos >= 0 && (n == 0 || ids[n - 1] != eos) && !seq_push(s, eos, 1)) st = nomem(err);
        keel_free(ids);
        s->hash = hash_field(FNV_OFF, "text", a);
        return st;
    }
    case KEEL_DATA_PROMPT_COMPLETION:
        if ((st = get_str(obj, "prompt", false, &a, err)) || (st = get_str(obj, "completion", false, &b, err))) return st;
        if (!*b) return KEEL_FAIL(err, KEEL_ERR_FORMAT, "field \"completion\" is empty");
        st = render_pc(tok, a, b, s, err);
        s->hash = hash_field(hash_field(FNV_OFF, "prompt", a), "completion", b);
        return st;
    case KEEL_DATA_ALPACA: {
        if ((st = get_str(obj, "instruction", false, &a, err)) || (st = get_str(obj, "input", true, &b, err)) ||
            (st = get_str(obj, "output", false, &c, err)))
            return st;
        if (!*c) return KEEL_FAIL(err, KEEL_ERR_FORMAT, "field \"output\" is empty");
        char *prompt = keel_data_alpaca_prompt(a, b);
        if (!prompt) return nomem(err);
        st = render_pc(tok, prompt, c, s, err);
        free(prompt);
        s->hash = hash_field(hash_field(hash_field(FNV_OFF, "instruction", a), "input", b ? b : ""), "output", c);
        return st;
    }
    case KEEL_DATA_CHAT: return render_chat(tok, obj, s, err);
    case KEEL_DATA_AUTO: break;
    }
    return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_data_render: no format");
}
