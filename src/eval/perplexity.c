// SPDX-License-Identifier: MIT
// perplexity.c — keel_perplexity, the method of llama.cpp's llama-perplexity
// (tools/perplexity/perplexity.cpp, perplexity()): the token stream is cut
// into floor(n / n_window) windows evaluated independently from position 0;
// each window's first token becomes BOS when the tokenizer adds one; only
// positions j in [n_window/2, n_window-1) are scored, each predicting token
// j+1, so every scored token sees at least half a window of context. NLL via
// log-softmax in double; ppl = exp(mean NLL); the uncertainty is the standard
// error of the mean NLL, sqrt((E[nll^2] - E[nll]^2) / (N - 1)).
#include "eval/eval.h"

#include <math.h>

// Whether the tokenizer puts BOS in front of text when add_special is set.
static bool adds_bos(const keel_tokenizer *tok) {
    int32_t bos = keel_token_bos(tok);
    if (bos < 0) return false;
    int32_t *ids = NULL;
    size_t n = 0;
    bool yes = keel_tokenize(tok, "", 0, true, false, &ids, &n, NULL) == KEEL_OK && n > 0 && ids[0] == bos;
    keel_free(ids);
    return yes;
}

keel_status keel_perplexity(keel_context *c, const int32_t *tokens, size_t n, int32_t n_window,
                            keel_ppl_progress cb, void *ud, keel_ppl_result *out, keel_err *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!c || !tokens || !out)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_perplexity: context, tokens and out must not be NULL");
    if (n_window < 3)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_perplexity: window of %d tokens is too small (need >= 3)",
                         (int)n_window);
    if (n_window > keel_context_n_ctx(c))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_perplexity: window of %d tokens exceeds the context (%d)",
                         (int)n_window, (int)keel_context_n_ctx(c));
    if (n / (size_t)n_window < 1)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_perplexity: %zu tokens is less than one window of %d", n,
                         (int)n_window);
    if (n / (size_t)n_window > INT32_MAX)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_perplexity: too many windows");
    const keel_model *m = keel_context_model(c);
    const int32_t V = m->desc.n_vocab;
    const int32_t n_chunks = (int32_t)(n / (size_t)n_window);
    const int32_t first = n_window / 2, n_score = n_window - 1 - first;
    const bool bos = adds_bos(m->tok);
    const int32_t bos_id = keel_token_bos(m->tok);

    int32_t *win = keel_malloc(sizeof(int32_t) * (size_t)n_window);
    float *logits = keel_malloc(sizeof(float) * (size_t)(n_window - first) * (size_t)V);
    if (!win || !logits) {
        keel_free(win);
        keel_free(logits);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "keel_perplexity: out of memory (%d x %d logits)",
                         (int)(n_window - first), (int)V);
    }
    keel_status st = KEEL_OK;
    double nll = 0.0, nll2 = 0.0;
    int64_t count = 0;
    for (int32_t ch = 0; ch < n_chunks && !st; ch++) {
        memcpy(win, tokens + (size_t)ch * (size_t)n_window, sizeof(int32_t) * (size_t)n_window);
        if (bos) win[0] = bos_id;
        // the unscored first half needs no logits
        st = keel_eval(c, win, first, 0, NULL, KEEL_LOGITS_LAST, err);
        if (!st) st = keel_eval(c, win + first, n_window - first, first, logits, KEEL_LOGITS_ALL, err);
        if (st) break;
        for (int32_t r = 0; r < n_score; r++) {
            const float *lg = logits + (size_t)r * (size_t)V;
            int32_t target = win[first + r + 1];
            float mx = lg[0];
            for (int32_t v = 1; v < V; v++)
                if (lg[v] > mx) mx = lg[v];
            double sum = 0.0;
            for (int32_t v = 0; v < V; v++) sum += exp((double)lg[v] - mx);
            double x = (double)mx + log(sum) - (double)lg[target];
            nll += x;
            nll2 += x * x;
            count++;
        }
        if (cb) cb(ch, n_chunks, exp(nll / (double)count), ud);
    }
    keel_free(win);
    keel_free(logits);
    if (st) return st;
    double mean = nll / (double)count, var = nll2 / (double)count - mean * mean;
    out->nll_mean = mean;
    out->ppl = exp(mean);
    out->nll_stderr = count > 1 && var > 0.0 ? sqrt(var / (double)(count - 1)) : 0.0;
    out->n_scored = count;
    out->n_chunks = n_chunks;
    return KEEL_OK;
}
