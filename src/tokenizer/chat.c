// SPDX-License-Identifier: MIT
// chat.c — chat templates. We do not run Jinja: the template string from
// tokenizer.chat_template (GGUF) or tokenizer_config.json is only used to
// recognise the format, which is then rendered by hand exactly as the
// reference templates do:
//   ChatML  (HF "<|im_start|>" templates: SmolLM2, Qwen): per message
//           "<|im_start|>" role "\n" content "<|im_end|>\n"; the generation
//           prompt is "<|im_start|>assistant\n". Templates that write a
//           literal system turn when messages[0] is not a system message
//           (SmolLM2: "You are a helpful AI assistant named SmolLM, trained by
//           Hugging Face") get that turn too: its text is read from the template.
//   Llama-2 (Meta's "[INST]" template): system folded into the first user turn
//           as "<<SYS>>\n" sys "\n<</SYS>>\n\n"; user turns
//           bos "[INST] " strip(content) " [/INST]", assistant turns
//           " " strip(content) " " eos; roles must alternate user/assistant.
#include "tokenizer.h"

// Unescape a Jinja string-literal body s[0..n) into a heap string; NULL if it
// holds template code or an escape we do not know.
static char *jinja_literal(const char *s, size_t n) {
    keel_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '{' && i + 1 < n && (s[i + 1] == '{' || s[i + 1] == '%')) goto fail;
        if (c == '\'' || c == '"') goto fail; // end of the literal: the turn is not one constant
        if (c == '\\' && i + 1 < n) {
            char e = s[++i];
            c = e == 'n' ? '\n' : e == 't' ? '\t' : (e == '\\' || e == '\'' || e == '"') ? e : 0;
            if (!c) goto fail;
        }
        if (!keel_buf_append(&b, &c, 1)) goto fail;
    }
    if (!keel_buf_append(&b, "", 1)) goto fail;
    return b.data;
fail:
    free(b.data);
    return NULL;
}

keel_status keel_tok_detect_chat(keel_tokenizer *t, keel_err *err) {
    const char *tpl = t->chat_template;
    t->chat_fmt = KEEL_CHAT_NONE;
    free(t->chat_default_system);
    t->chat_default_system = NULL;
    if (!tpl) return KEEL_OK;
    if (strstr(tpl, "<|im_start|>")) {
        t->chat_fmt = KEEL_CHAT_CHATML;
        // a constant system turn: '<|im_start|>system' newline ... '<|im_end|>'
        static const char head[] = "<|im_start|>system";
        for (const char *p = strstr(tpl, head); p; p = strstr(p + 1, head)) {
            const char *q = p + sizeof head - 1;
            if (*q == '\n') q++;
            else if (q[0] == '\\' && q[1] == 'n') q += 2;
            else continue;
            const char *end = strstr(q, "<|im_end|>");
            if (!end || end == q) continue;
            char *sys = jinja_literal(q, (size_t)(end - q));
            if (sys) {
                t->chat_default_system = sys;
                break;
            }
        }
    } else if (strstr(tpl, "[INST]")) {
        t->chat_fmt = KEEL_CHAT_LLAMA2;
    }
    (void)err;
    return KEEL_OK;
}

keel_chat_format keel_tokenizer_chat_format(const keel_tokenizer *t) { return t ? t->chat_fmt : KEEL_CHAT_NONE; }
bool keel_tokenizer_has_chat_template(const keel_tokenizer *t) { return t && t->chat_template; }

const char *keel_chat_format_name(keel_chat_format f) {
    switch (f) {
    case KEEL_CHAT_NONE: return "none";
    case KEEL_CHAT_CHATML: return "chatml";
    case KEEL_CHAT_LLAMA2: return "llama2";
    }
    return "?";
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// Append s with leading and trailing whitespace removed (Python str.strip on ASCII).
static bool append_stripped(keel_buf *b, const char *s) {
    size_t n = strlen(s), a = 0;
    while (a < n && is_space(s[a])) a++;
    while (n > a && is_space(s[n - 1])) n--;
    return keel_buf_append(b, s + a, n - a);
}

static keel_status render_llama2(const keel_tokenizer *t, const keel_chat_msg *m, size_t n, keel_buf *b,
                                 keel_err *err) {
    const char *bos = t->bos >= 0 ? keel_tok_text(t, t->bos) : "<s>";
    const char *eos = t->eos >= 0 ? keel_tok_text(t, t->eos) : "</s>";
    const char *sys = NULL;
    size_t i0 = 0;
    if (n && strcmp(m[0].role, "system") == 0) {
        sys = m[0].content;
        i0 = 1;
    }
    bool ok = true;
    for (size_t i = i0; i < n && ok; i++) {
        bool user = strcmp(m[i].role, "user") == 0;
        bool expect_user = (i - i0) % 2 == 0;
        if (user != expect_user || (!user && strcmp(m[i].role, "assistant") != 0))
            return KEEL_FAIL(err, KEEL_ERR_INVALID,
                             "keel_chat_apply: message %zu has role \"%s\"; the Llama-2 template needs "
                             "[system,] user, assistant, user, ... alternating",
                             i, m[i].role);
        keel_buf content = {0};
        if (i == i0 && sys) {
            ok = keel_buf_appends(&content, "<<SYS>>\n") && keel_buf_appends(&content, sys) &&
                 keel_buf_appends(&content, "\n<</SYS>>\n\n");
        }
        ok = ok && keel_buf_appends(&content, m[i].content) && keel_buf_append(&content, "", 1);
        if (ok && user) {
            ok = keel_buf_appends(b, bos) && keel_buf_appends(b, "[INST] ") && append_stripped(b, content.data) &&
                 keel_buf_appends(b, " [/INST]");
        } else if (ok) {
            ok = keel_buf_appends(b, " ") && append_stripped(b, content.data) && keel_buf_appends(b, " ") &&
                 keel_buf_appends(b, eos);
        }
        free(content.data);
    }
    return ok ? KEEL_OK : KEEL_FAIL(err, KEEL_ERR_NOMEM, "keel_chat_apply: out of memory");
}

keel_status keel_chat_apply(const keel_tokenizer *t, const keel_chat_msg *msgs, size_t n, bool add_assistant,
                            char **out, keel_err *err) {
    if (out) *out = NULL;
    if (!t || !out || (n && !msgs)) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_chat_apply: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_chat_apply: message %zu has a NULL role or content", i);
    keel_buf b = {0};
    bool ok = true;
    keel_status st = KEEL_OK;
    switch (t->chat_fmt) {
    case KEEL_CHAT_CHATML:
        if (n && t->chat_default_system && strcmp(msgs[0].role, "system") != 0)
            ok = keel_buf_appends(&b, "<|im_start|>system\n") && keel_buf_appends(&b, t->chat_default_system) &&
                 keel_buf_appends(&b, "<|im_end|>\n");
        for (size_t i = 0; i < n && ok; i++)
            ok = keel_buf_appends(&b, "<|im_start|>") && keel_buf_appends(&b, msgs[i].role) &&
                 keel_buf_appends(&b, "\n") && keel_buf_appends(&b, msgs[i].content) &&
                 keel_buf_appends(&b, "<|im_end|>\n");
        if (ok && add_assistant) ok = keel_buf_appends(&b, "<|im_start|>assistant\n");
        break;
    case KEEL_CHAT_LLAMA2:
        st = render_llama2(t, msgs, n, &b, err);
        break;
    default:
        return KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED, "keel_chat_apply: %s",
                         t->chat_template ? "the model's chat template is not a known format (ChatML or Llama-2)"
                                          : "the model has no chat template");
    }
    if (ok && !st) ok = keel_buf_append(&b, "", 1);
    if (!ok && !st) st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "keel_chat_apply: out of memory");
    if (st) {
        free(b.data);
        return st;
    }
    *out = b.data;
    return KEEL_OK;
}
