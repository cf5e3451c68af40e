// SPDX-License-Identifier: MIT
// tasks.c — a capability's data file -> items and tokenized scoring requests
// (src/cap/cap.h, "tasks.c"). Multiple choice follows lm-evaluation-harness
// 0-shot rules (context templates, " " target delimiter, trailing context
// whitespace moved to the continuation, continuation tokens = tok(ctx + cont)
// minus len(tok(ctx))); see ../shared/datasets/README.md section 6 and
// docs/eval.md. Formats: ARC, PIQA, BoolQ, WinoGrande (lm-eval request form),
// HellaSwag (klosax preprocessed form, approximated: see hellaswag_query) and
// the generic JSONL of each kind; perplexity also reads plain text.
#include "cap/cap.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>

// ---- growable arrays ----------------------------------------------------------

typedef struct loader {
    keel_cap_data *d;
    const keel_cap_spec *spec;
    const keel_tokenizer *tok;
    const char *path;      // expanded path (messages)
    int64_t line;          // current line (messages)
    int64_t cap_items, cap_req;
    // the last tokenized context (items share it across their choices)
    char *last_ctx;
    int32_t *last_ctx_ids;
    size_t n_last_ctx;
} loader;

static keel_status nomem(keel_err *err) { return KEEL_FAIL(err, KEEL_ERR_NOMEM, "out of memory"); }

static keel_status bad(loader *L, keel_err *err, const char *field, const char *problem) {
    return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s:%lld: field '%s': %s", L->path, (long long)L->line, field, problem);
}

static keel_cap_item *new_item(loader *L, keel_err *err) {
    keel_cap_data *d = L->d;
    if (d->n_items == L->cap_items) {
        int64_t nc = L->cap_items ? L->cap_items * 2 : 64;
        keel_cap_item *v = keel_realloc(d->items, (size_t)nc * sizeof *v);
        if (!v) {
            nomem(err);
            return NULL;
        }
        d->items = v;
        L->cap_items = nc;
    }
    keel_cap_item *it = &d->items[d->n_items++];
    memset(it, 0, sizeof *it);
    it->line = L->line;
    it->req0 = (int32_t)d->n_req;
    return it;
}

static keel_status grow_req(loader *L, keel_err *err) {
    keel_cap_data *d = L->d;
    if (d->n_req < L->cap_req) return KEEL_OK;
    if (d->n_req >= INT32_MAX - 1) return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: too many requests", L->path);
    int64_t nc = L->cap_req ? L->cap_req * 2 : 256;
    keel_cap_request *v = keel_realloc(d->req, (size_t)nc * sizeof *v);
    if (!v) return nomem(err);
    d->req = v;
    int32_t *cl = keel_realloc(d->choice_len, (size_t)nc * sizeof *cl);
    if (!cl) return nomem(err);
    d->choice_len = cl;
    L->cap_req = nc;
    return KEEL_OK;
}

// ---- tokenization ---------------------------------------------------------------

static keel_status tokenize(loader *L, const char *s, size_t n, bool add_special, bool parse_special,
                            int32_t **ids, size_t *n_ids, keel_err *err) {
    keel_err e;
    keel_status st = keel_tokenize(L->tok, s, n, add_special, parse_special, ids, n_ids, &e);
    if (st == KEEL_ERR_NOMEM) return nomem(err);
    if (st)
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s:%lld: cannot tokenize: %s", L->path, (long long)L->line, e.msg);
    return KEEL_OK;
}

static bool is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int32_t code_points(const char *s) {
    int32_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

static int32_t *dup_ids(const int32_t *v, size_t n) {
    int32_t *o = keel_malloc((n ? n : 1) * sizeof *o);
    if (o && n) memcpy(o, v, n * sizeof *o);
    return o;
}

// One lm-eval log-likelihood request (context, continuation); choice (the
// choice text without the delimiter) gives choice_len.
static keel_status add_request(loader *L, const char *context, const char *continuation, const char *choice,
                               const char *field, keel_err *err) {
    keel_status st = grow_req(L, err);
    if (st) return st;
    size_t nc = strlen(context), nk = strlen(continuation);
    // trailing whitespace of the context goes to the front of the continuation
    size_t cut = nc;
    while (cut > 0 && is_space((unsigned char)context[cut - 1])) cut--;
    if (nk == 0 && cut == nc) return bad(L, err, field, "empty continuation");
    char *whole = keel_malloc(nc + nk + 1);
    if (!whole) return nomem(err);
    memcpy(whole, context, nc);
    memcpy(whole + nc, continuation, nk + 1);
    int32_t *ctx = NULL, *all = NULL;
    size_t n_ctx = 0, n_all = 0;
    if (cut == 0) {
        // lm-eval (api/model.py loglikelihood): an empty context is the prefix
        // token (BOS, else EOS) and the continuation is encoded alone, without
        // special tokens. (A whitespace-only context lands here too; lm-eval
        // would give it an empty context, which cannot be scored.)
        int32_t pre = keel_token_bos(L->tok) >= 0 ? keel_token_bos(L->tok) : keel_token_eos(L->tok);
        if (pre < 0) {
            keel_free(whole);
            return bad(L, err, field, "empty context and the tokenizer has no BOS/EOS token");
        }
        ctx = dup_ids(&pre, 1);
        if (!ctx) {
            keel_free(whole);
            return nomem(err);
        }
        n_ctx = 1;
        st = tokenize(L, whole, nc + nk, false, false, &all, &n_all, err);
        if (!st && n_all > 0 && all[0] == pre) {
            // lm-eval: the continuation already starts with the prefix token
        } else if (!st) {
            // all = [pre] + cont so the split below is uniform
            int32_t *v = keel_malloc((n_all + 1) * sizeof *v);
            if (!v) st = nomem(err);
            else {
                v[0] = pre;
                memcpy(v + 1, all, n_all * sizeof *v);
                keel_free(all);
                all = v;
                n_all++;
            }
        }
    } else {
        if (L->last_ctx && strlen(L->last_ctx) == cut && memcmp(L->last_ctx, context, cut) == 0) {
            ctx = dup_ids(L->last_ctx_ids, L->n_last_ctx);
            n_ctx = L->n_last_ctx;
            if (!ctx) st = nomem(err);
        } else {
            st = tokenize(L, context, cut, true, false, &ctx, &n_ctx, err);
            if (!st) {
                char *lc = keel_strndup(context, cut);
                int32_t *li = dup_ids(ctx, n_ctx);
                if (!lc || !li) {
                    keel_free(lc);
                    keel_free(li);
                    st = nomem(err);
                } else {
                    keel_free(L->last_ctx);
                    keel_free(L->last_ctx_ids);
                    L->last_ctx = lc;
                    L->last_ctx_ids = li;
                    L->n_last_ctx = n_ctx;
                }
            }
        }
        if (!st) st = tokenize(L, whole, nc + nk, true, false, &all, &n_all, err);
    }
    keel_free(whole);
    if (!st && n_all <= n_ctx) st = bad(L, err, field, "the continuation adds no tokens to the context");
    if (!st && n_ctx > INT32_MAX / 2) st = bad(L, err, field, "context too long");
    int32_t *cont = NULL;
    if (!st) {
        cont = dup_ids(all + n_ctx, n_all - n_ctx);
        if (!cont) st = nomem(err);
    }
    keel_free(all);
    if (st) {
        keel_free(ctx);
        return st;
    }
    keel_cap_data *d = L->d;
    keel_cap_request *r = &d->req[d->n_req];
    r->ctx = ctx;
    r->n_ctx = (int32_t)n_ctx;
    r->cont = cont;
    r->n_cont = (int32_t)(n_all - n_ctx);
    d->choice_len[d->n_req] = code_points(choice);
    d->n_req++;
    return KEEL_OK;
}

// ---- JSON field access ------------------------------------------------------------

static keel_status get_str(loader *L, const cJSON *o, const char *key, const char **out, keel_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return bad(L, err, key, "missing");
    if (!cJSON_IsString(v) || !v->valuestring) return bad(L, err, key, "expected a string");
    *out = v->valuestring;
    return KEEL_OK;
}

// An index: a JSON integer, a boolean (false 0, true 1) or a string of digits
// (HF HellaSwag's "0".."3").
static keel_status get_index(loader *L, const cJSON *o, const char *key, int64_t *out, keel_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return bad(L, err, key, "missing");
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v) ? 1 : 0;
        return KEEL_OK;
    }
    if (cJSON_IsNumber(v)) {
        double x = v->valuedouble;
        if (!(x >= 0 && x <= 1e9) || x != (double)(int64_t)x)
            return bad(L, err, key, "expected a non-negative integer");
        *out = (int64_t)x;
        return KEEL_OK;
    }
    if (cJSON_IsString(v) && v->valuestring && v->valuestring[0]) {
        const char *s = v->valuestring;
        int64_t x = 0;
        for (; *s; s++) {
            if (!isdigit((unsigned char)*s) || x > 100000000) return bad(L, err, key, "expected an integer");
            x = x * 10 + (*s - '0');
        }
        *out = x;
        return KEEL_OK;
    }
    return bad(L, err, key, "expected an integer");
}

// An array of strings (at least min of them).
static keel_status get_strs(loader *L, const cJSON *o, const char *key, int min, const cJSON **arr, int *n,
                            keel_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return bad(L, err, key, "missing");
    if (!cJSON_IsArray(v)) return bad(L, err, key, "expected an array");
    int k = 0;
    for (const cJSON *e = v->child; e; e = e->next, k++)
        if (!cJSON_IsString(e) || !e->valuestring) return bad(L, err, key, "expected an array of strings");
    if (k < min) {
        char m[64];
        snprintf(m, sizeof m, "expected at least %d entries, got %d", min, k);
        return bad(L, err, key, m);
    }
    *arr = v;
    *n = k;
    return KEEL_OK;
}

static keel_status check_gold(loader *L, const char *key, int64_t g, int n, keel_err *err) {
    if (g < 0 || g >= n) {
        char m[96];
        snprintf(m, sizeof m, "index %lld out of range for %d choices", (long long)g, n);
        return bad(L, err, key, m);
    }
    return KEEL_OK;
}

// ---- multiple choice --------------------------------------------------------------

// Choices " " + text for one shared context.
static keel_status add_choices(loader *L, keel_cap_item *it, const char *context, const cJSON *arr, const char *field,
                               keel_err *err) {
    keel_buf b = {0};
    keel_status st = KEEL_OK;
    for (const cJSON *e = arr->child; e && !st; e = e->next) {
        b.len = 0;
        if (!keel_buf_appends(&b, " ") || !keel_buf_appends(&b, e->valuestring) || !keel_buf_append(&b, "", 1)) {
            st = nomem(err);
            break;
        }
        st = add_request(L, context, b.data, e->valuestring, field, err);
        if (!st) it->n_req++;
    }
    keel_free(b.data);
    return st;
}

static keel_status question_context(const char *q, keel_buf *ctx, keel_err *err) {
    if (!keel_buf_appends(ctx, "Question: ") || !keel_buf_appends(ctx, q) || !keel_buf_appends(ctx, "\nAnswer:") ||
        !keel_buf_append(ctx, "", 1))
        return nomem(err);
    return KEEL_OK;
}

// Python's str.strip() + lm-eval's hellaswag preprocess (README section 6):
// strip, " [title]" -> ". ", delete every \[.*?\] span, one left-to-right pass
// of "  " -> " ". Writes a NUL-terminated string into b.
static keel_status hs_preprocess(const char *s, keel_buf *b, keel_err *err) {
    size_t n = strlen(s);
    while (n && is_space((unsigned char)s[n - 1])) n--;
    while (n && is_space((unsigned char)*s)) s++, n--;
    keel_buf t = {0};
    keel_status st = KEEL_OK;
    // step 2: " [title]" -> ". "
    for (size_t i = 0; i < n && !st;) {
        if (n - i >= 8 && memcmp(s + i, " [title]", 8) == 0) {
            if (!keel_buf_append(&t, ". ", 2)) st = nomem(err);
            i += 8;
        } else {
            if (!keel_buf_append(&t, s + i, 1)) st = nomem(err);
            i++;
        }
    }
    // step 3: delete [ ... ] (shortest; an unclosed '[' stays)
    keel_buf u = {0};
    for (size_t i = 0; i < t.len && !st;) {
        if (t.data[i] == '[') {
            const char *c = memchr(t.data + i + 1, ']', t.len - i - 1);
            // \[.*?\] : '.' does not match a newline
            const char *nl = memchr(t.data + i + 1, '\n', t.len - i - 1);
            if (c && (!nl || nl > c)) {
                i = (size_t)(c - t.data) + 1;
                continue;
            }
        }
        if (!keel_buf_append(&u, t.data + i, 1)) st = nomem(err);
        i++;
    }
    // step 4: one pass of "  " -> " "
    b->len = 0;
    for (size_t i = 0; i < u.len && !st;) {
        if (i + 1 < u.len && u.data[i] == ' ' && u.data[i + 1] == ' ') {
            if (!keel_buf_append(b, " ", 1)) st = nomem(err);
            i += 2;
        } else {
            if (!keel_buf_append(b, u.data + i, 1)) st = nomem(err);
            i++;
        }
    }
    if (!st && !keel_buf_append(b, "", 1)) st = nomem(err);
    if (!st) b->len--; // keep NUL, len excludes it
    keel_free(t.data);
    keel_free(u.data);
    return st;
}

// HellaSwag query from the klosax form "<activity_label>: <ctx>": lm-eval's
// preprocess applied to the whole text (as tools/lmeval_tasks/keel_utils.py
// does for the lm-eval reference run). An approximation of lm-eval's
// hellaswag (datasets README section 4): klosax's text lost ctx_b's
// capitalisation (lm-eval: "... on a roof. He", here "... on a roof. he") and
// was cleaned a little differently. Guessing ctx_b (the text after the last
// sentence end) and capitalising it was tried (commit 9e093bd) but dropped so
// keel's numbers compare exactly with that reference run.
static keel_status hellaswag_query(const char *text, keel_buf *out, keel_err *err) {
    return hs_preprocess(text, out, err);
}

static keel_status load_mc(loader *L, const cJSON *o, keel_err *err) {
    keel_cap_task task = L->spec->task;
    keel_buf ctx = {0}, tmp = {0};
    keel_status st = KEEL_OK;
    keel_cap_item *it = NULL;
    const cJSON *arr = NULL;
    int n = 0;
    int64_t gold = 0;
    switch (task) {
    case KEEL_CAP_TASK_JSONL:
    case KEEL_CAP_TASK_ARC_EASY:
    case KEEL_CAP_TASK_ARC_CHALLENGE: {
        const char *q;
        st = get_str(L, o, "question", &q, err);
        if (!st) st = get_strs(L, o, "choices", 1, &arr, &n, err);
        if (!st && task == KEEL_CAP_TASK_JSONL) {
            st = get_index(L, o, "answer", &gold, err);
            if (!st) st = check_gold(L, "answer", gold, n, err);
        } else if (!st) {
            const cJSON *labels;
            int nl;
            const char *key;
            st = get_strs(L, o, "labels", 1, &labels, &nl, err);
            if (!st && nl != n) st = bad(L, err, "labels", "not as many labels as choices");
            if (!st) st = get_str(L, o, "answerKey", &key, err);
            if (!st) {
                gold = -1;
                int k = 0;
                for (const cJSON *e = labels->child; e; e = e->next, k++)
                    if (strcmp(e->valuestring, key) == 0) {
                        gold = k;
                        break;
                    }
                if (gold < 0) st = bad(L, err, "answerKey", "not one of the labels");
            }
        }
        if (!st) st = question_context(q, &ctx, err);
        if (!st && !(it = new_item(L, err))) st = KEEL_ERR_NOMEM;
        if (!st) st = add_choices(L, it, ctx.data, arr, "choices", err);
        break;
    }
    case KEEL_CAP_TASK_PIQA: {
        const char *goal, *s1, *s2;
        st = get_str(L, o, "goal", &goal, err);
        if (!st) st = get_str(L, o, "sol1", &s1, err);
        if (!st) st = get_str(L, o, "sol2", &s2, err);
        if (!st) st = get_index(L, o, "label", &gold, err);
        if (!st) st = check_gold(L, "label", gold, 2, err);
        if (!st) st = question_context(goal, &ctx, err);
        if (!st && !(it = new_item(L, err))) st = KEEL_ERR_NOMEM;
        const char *sol[2] = {s1, s2};
        for (int k = 0; k < 2 && !st; k++) {
            tmp.len = 0;
            if (!keel_buf_appends(&tmp, " ") || !keel_buf_appends(&tmp, sol[k]) || !keel_buf_append(&tmp, "", 1))
                st = nomem(err);
            if (!st) st = add_request(L, ctx.data, tmp.data, sol[k], k ? "sol2" : "sol1", err);
            if (!st) it->n_req++;
        }
        break;
    }
    case KEEL_CAP_TASK_BOOLQ: {
        const char *p, *q;
        st = get_str(L, o, "passage", &p, err);
        if (!st) st = get_str(L, o, "question", &q, err);
        if (!st) st = get_index(L, o, "label", &gold, err);
        if (!st) st = check_gold(L, "label", gold, 2, err);
        if (!st && (!keel_buf_appends(&ctx, p) || !keel_buf_appends(&ctx, "\nQuestion: ") ||
                    !keel_buf_appends(&ctx, q) || !keel_buf_appends(&ctx, "?\nAnswer:") ||
                    !keel_buf_append(&ctx, "", 1)))
            st = nomem(err);
        if (!st && !(it = new_item(L, err))) st = KEEL_ERR_NOMEM;
        static const char *const yn[2] = {"no", "yes"};
        for (int k = 0; k < 2 && !st; k++) {
            char c[8];
            snprintf(c, sizeof c, " %s", yn[k]);
            st = add_request(L, ctx.data, c, yn[k], "label", err);
            if (!st) it->n_req++;
        }
        break;
    }
    case KEEL_CAP_TASK_WINOGRANDE: {
        // multiple-input: one request per context option, shared continuation;
        // choice_len is the continuation's (acc_norm is not a WinoGrande metric)
        const char *cont;
        st = get_strs(L, o, "context_options", 2, &arr, &n, err);
        if (!st) st = get_str(L, o, "continuation", &cont, err);
        if (!st) st = get_index(L, o, "label", &gold, err);
        if (!st) st = check_gold(L, "label", gold, n, err);
        if (!st) {
            size_t a = 0, z = strlen(cont);
            while (a < z && is_space((unsigned char)cont[a])) a++;
            while (z > a && is_space((unsigned char)cont[z - 1])) z--;
            if (z == a) st = bad(L, err, "continuation", "empty");
            else if (!keel_buf_appends(&tmp, " ") || !keel_buf_append(&tmp, cont + a, z - a) ||
                     !keel_buf_append(&tmp, "", 1))
                st = nomem(err);
        }
        if (!st && !(it = new_item(L, err))) st = KEEL_ERR_NOMEM;
        for (const cJSON *e = arr ? arr->child : NULL; e && !st; e = e->next) {
            st = add_request(L, e->valuestring, tmp.data, tmp.data + 1, "continuation", err);
            if (!st) it->n_req++;
        }
        break;
    }
    case KEEL_CAP_TASK_HELLASWAG: {
        const char *text;
        st = get_str(L, o, "text", &text, err);
        if (!st) st = get_strs(L, o, "endings", 1, &arr, &n, err);
        if (!st) st = get_index(L, o, "label", &gold, err);
        if (!st) st = check_gold(L, "label", gold, n, err);
        if (!st) st = hellaswag_query(text, &ctx, err);
        if (!st && !(it = new_item(L, err))) st = KEEL_ERR_NOMEM;
        keel_buf ch = {0};
        for (const cJSON *e = arr ? arr->child : NULL; e && !st; e = e->next) {
            st = hs_preprocess(e->valuestring, &ch, err);
            tmp.len = 0;
            if (!st && (!keel_buf_appends(&tmp, " ") || !keel_buf_appends(&tmp, ch.data) ||
                        !keel_buf_append(&tmp, "", 1)))
                st = nomem(err);
            if (!st) st = add_request(L, ctx.data, tmp.data, ch.data, "endings", err);
            if (!st) it->n_req++;
        }
        keel_free(ch.data);
        break;
    }
    default:
        st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: task not valid for multiple_choice", L->path);
    }
    if (!st) it->gold = (int32_t)gold;
    keel_free(ctx.data);
    keel_free(tmp.data);
    return st;
}

// ---- exact_match / probe / perplexity ------------------------------------------------

static keel_status prompt_tokens(loader *L, keel_cap_item *it, const char *prompt, keel_err *err) {
    int chat = L->spec->chat;
    bool use = chat == 1 || (chat == -1 && keel_tokenizer_has_chat_template(L->tok));
    int32_t *ids = NULL;
    size_t n = 0;
    keel_status st;
    if (use) {
        keel_chat_msg m = {"user", prompt};
        char *text = NULL;
        keel_err e;
        st = keel_chat_apply(L->tok, &m, 1, true, &text, &e);
        if (st == KEEL_ERR_NOMEM) return nomem(err);
        if (st)
            return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s:%lld: chat template: %s", L->path, (long long)L->line, e.msg);
        // the rendered text carries its own BOS where the template has one
        st = tokenize(L, text, strlen(text), false, true, &ids, &n, err);
        keel_free(text);
    } else {
        st = tokenize(L, prompt, strlen(prompt), true, false, &ids, &n, err);
    }
    if (st) return st;
    if (n == 0 || n > INT32_MAX / 2) {
        keel_free(ids);
        return bad(L, err, "prompt", n ? "too long" : "tokenizes to nothing");
    }
    it->prompt = ids;
    it->n_prompt = (int32_t)n;
    return KEEL_OK;
}

static keel_status add_answer(loader *L, keel_cap_item *it, const cJSON *v, const char *field, keel_err *err) {
    char *s;
    // a number answer is kept as cJSON prints it (shortest text that reads back)
    if (cJSON_IsString(v) && v->valuestring) s = keel_strdup(v->valuestring);
    else if (cJSON_IsNumber(v)) {
        char *t = cJSON_PrintUnformatted(v);
        s = t ? keel_strdup(t) : NULL;
        cJSON_free(t);
    } else return bad(L, err, field, "expected a string (or a number)");
    if (!s) return nomem(err);
    char **a = keel_realloc(it->answers, (size_t)(it->n_answers + 1) * sizeof *a);
    if (!a) {
        keel_free(s);
        return nomem(err);
    }
    it->answers = a;
    a[it->n_answers] = s;
    keel_cap_normalize(L->spec, a[it->n_answers]);
    it->n_answers++;
    return KEEL_OK;
}

static keel_status load_gen(loader *L, const cJSON *o, keel_err *err) {
    const char *prompt;
    keel_status st = get_str(L, o, "prompt", &prompt, err);
    if (st) return st;
    keel_cap_item *it = new_item(L, err);
    if (!it) return KEEL_ERR_NOMEM;
    it->req0 = 0;
    if (L->spec->kind == KEEL_CAP_EXACT_MATCH) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "answer");
        const cJSON *as = cJSON_GetObjectItemCaseSensitive(o, "answers");
        if (a && as) return bad(L, err, "answers", "give either 'answer' or 'answers', not both");
        if (!a && !as) return bad(L, err, "answer", "missing");
        if (a) st = add_answer(L, it, a, "answer", err);
        else if (!cJSON_IsArray(as) || !as->child) st = bad(L, err, "answers", "expected a non-empty array");
        else
            for (const cJSON *e = as->child; e && !st; e = e->next) st = add_answer(L, it, e, "answers", err);
        if (st) return st;
    }
    return prompt_tokens(L, it, prompt, err);
}

static keel_status add_document(loader *L, const char *text, size_t n, keel_err *err) {
    keel_cap_item *it = new_item(L, err);
    if (!it) return KEEL_ERR_NOMEM;
    it->req0 = 0;
    int32_t *ids = NULL;
    size_t k = 0;
    keel_status st = tokenize(L, text, n, true, false, &ids, &k, err);
    if (st) return st;
    if (k > INT32_MAX / 2) {
        keel_free(ids);
        return bad(L, err, "text", "document too long");
    }
    it->tokens = ids;
    it->n_tokens = (int32_t)k;
    return KEEL_OK;
}

// Plain text: documents are separated by blank lines (a "\n\n", possibly
// with "\r" or more newlines), so the bootstrap has documents to resample;
// whitespace-only lines around a document and whitespace-only chunks are
// skipped; the text of a document is otherwise verbatim. items[].line is 0 (contract).
static keel_status load_text(loader *L, const char *buf, size_t len, keel_err *err) {
    size_t bad_at;
    if (!keel_utf8_valid(buf, len, &bad_at))
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: invalid UTF-8 at byte %zu", L->path, bad_at);
    L->line = 0;
    size_t i = 0;
    while (i < len) {
        if (L->spec->limit > 0 && L->d->n_items >= L->spec->limit) break;
        // skip whitespace-only lines before the document
        for (size_t k = i; k < len && is_space((unsigned char)buf[k]); k++)
            if (buf[k] == '\n') i = k + 1;
        // the document runs to the next blank line
        size_t j = i, end = len;
        while (j < len) {
            const char *nl = memchr(buf + j, '\n', len - j);
            if (!nl) break;
            size_t k = (size_t)(nl - buf) + 1;
            size_t m = k;
            while (m < len && (buf[m] == '\r' || buf[m] == ' ' || buf[m] == '\t')) m++;
            if (m < len && buf[m] == '\n') {
                end = (size_t)(nl - buf);
                j = m;
                break;
            }
            j = k;
        }
        if (end == len) j = len;
        while (end > i && buf[end - 1] == '\r') end--;
        bool blank = true;
        for (size_t k = i; k < end && blank; k++) blank = is_space((unsigned char)buf[k]);
        if (!blank) {
            keel_status st = add_document(L, buf + i, end - i, err);
            if (st) return st;
        }
        i = j > i ? j : len;
    }
    return KEEL_OK;
}

// ---- entry point ---------------------------------------------------------------------

void keel_cap_data_free(keel_cap_data *d) {
    if (!d) return;
    for (int64_t i = 0; i < d->n_items; i++) {
        keel_cap_item *it = &d->items[i];
        keel_free(it->prompt);
        for (int32_t k = 0; k < it->n_answers; k++) keel_free(it->answers[k]);
        keel_free(it->answers);
        keel_free(it->tokens);
    }
    for (int64_t i = 0; i < d->n_req; i++) {
        keel_free(d->req[i].ctx);
        keel_free(d->req[i].cont);
    }
    keel_free(d->items);
    keel_free(d->req);
    keel_free(d->choice_len);
    memset(d, 0, sizeof *d);
}

static bool task_fits(keel_cap_kind k, keel_cap_task t) {
    switch (k) {
    case KEEL_CAP_PERPLEXITY: return t == KEEL_CAP_TASK_JSONL || t == KEEL_CAP_TASK_TEXT;
    case KEEL_CAP_EXACT_MATCH:
    case KEEL_CAP_PROBE: return t == KEEL_CAP_TASK_JSONL;
    case KEEL_CAP_MULTIPLE_CHOICE: return t != KEEL_CAP_TASK_TEXT && (int)t >= 0 && t <= KEEL_CAP_TASK_HELLASWAG;
    }
    return false;
}

static keel_status load_lines(loader *L, char *buf, size_t len, keel_err *err) {
    char *p = buf, *end = buf + len;
    int64_t line = 0;
    keel_status st = KEEL_OK;
    while (p < end && !st) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        line++;
        L->line = line;
        char *next = nl ? nl + 1 : end;
        size_t n = (size_t)(e - p);
        while (n && (p[n - 1] == '\r' || is_space((unsigned char)p[n - 1]))) n--;
        size_t lead = 0;
        while (lead < n && is_space((unsigned char)p[lead])) lead++;
        if (lead == n) {
            p = next;
            continue;
        }
        if (L->spec->limit > 0 && L->d->n_items >= L->spec->limit) break;
        size_t bad_at;
        if (!keel_utf8_valid(p, n, &bad_at)) {
            char m[64];
            snprintf(m, sizeof m, "invalid UTF-8 at column %zu", bad_at + 1);
            return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s:%lld: %s", L->path, (long long)line, m);
        }
        cJSON *o = cJSON_ParseWithLength(p, n);
        if (!o) {
            const char *at = cJSON_GetErrorPtr();
            if (at && at >= p && at <= p + n)
                return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s:%lld: not valid JSON (at column %zu)", L->path,
                                 (long long)line, (size_t)(at - p) + 1);
            return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s:%lld: not valid JSON", L->path, (long long)line);
        }
        if (!cJSON_IsObject(o))
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s:%lld: expected a JSON object", L->path, (long long)line);
        else if (L->spec->kind == KEEL_CAP_MULTIPLE_CHOICE) st = load_mc(L, o, err);
        else if (L->spec->kind == KEEL_CAP_PERPLEXITY) {
            const char *t;
            st = get_str(L, o, "text", &t, err);
            if (!st && !t[0]) st = bad(L, err, "text", "empty");
            if (!st) st = add_document(L, t, strlen(t), err);
        } else st = load_gen(L, o, err);
        cJSON_Delete(o);
        p = next;
    }
    return st;
}

keel_status keel_cap_data_load(keel_cap_data *d, const keel_cap_spec *spec, const keel_tokenizer *tok, keel_err *err) {
    memset(d, 0, sizeof *d);
    if (!spec || !tok) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_cap_data_load: no spec or tokenizer");
    const char *name = spec->name ? spec->name : "?";
    if (!spec->data || !spec->data[0])
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "capability '%s': no data file", name);
    if (!task_fits(spec->kind, spec->task))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "capability '%s': task does not fit its type", name);
    // ~/ is the home directory
    char *path = NULL;
    const char *home = getenv("HOME");
    if (spec->data[0] == '~' && spec->data[1] == '/' && home && home[0]) path = keel_path_join(home, spec->data + 2);
    else path = keel_strdup(spec->data);
    if (!path) return nomem(err);
    char *buf = NULL;
    size_t len = 0;
    keel_status st = KEEL_OK;
    if (!keel_path_exists(path))
        st = KEEL_FAIL(err, KEEL_ERR_IO, "capability '%s': data file %s not found", name, path);
    else if (keel_path_is_dir(path))
        st = KEEL_FAIL(err, KEEL_ERR_IO, "capability '%s': data %s is a directory", name, path);
    else {
        keel_err e;
        st = keel_read_file(path, &buf, &len, &e);
        if (st == KEEL_ERR_NOMEM) st = nomem(err);
        else if (st) st = KEEL_FAIL(err, KEEL_ERR_IO, "capability '%s': cannot read %s: %s", name, path, e.msg);
    }
    if (!st) {
        loader L = {.d = d, .spec = spec, .tok = tok, .path = path};
        d->spec = spec;
        if (spec->task == KEEL_CAP_TASK_TEXT) st = load_text(&L, buf, len, err);
        else st = load_lines(&L, buf, len, err);
        if (!st && d->n_items == 0) st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: no items", path);
        keel_free(L.last_ctx);
        keel_free(L.last_ctx_ids);
    }
    keel_free(buf);
    keel_free(path);
    if (st) keel_cap_data_free(d);
    return st;
}
