// SPDX-License-Identifier: MIT
// test_golden_smollm2.c — SmolLM2-135M-Instruct Q4_1 against the reference
// tools (tests/golden/README.md sections 1 and 2; skipped when the model is
// not in the cache folder):
//   logits      prompts.short / prompts.long of smollm2_ref.json (transformers
//               fp32 on the dequantized GGUF): keel's ids == golden ids; the
//               full last-position logits vs the .f32 files element by
//               element, |keel - ref| <= 1e-3 * max(1, |ref|); at every
//               position the golden top-20 ids' logits within the same bound,
//               the same argmax, and the next-token NLL.
//   chat        keel_chat_apply == the rendered ChatML string, same ids, greedy
//               KV-cache decoding (prompt batch, then one token at a time,
//               stopping at end-of-generation) == transformers' generate():
//               "chat" (stops at EOS after 8) and "chat_long" (32 tokens, no EOS).
//   perplexity  the BoolQ text rebuilt as tools/make_ppl_text.py does, n_ctx 512:
//               per-chunk NLL sums vs transformers fp32, final PPL within 0.5 %
//               of llama.cpp's llama-perplexity (smollm2_ppl.json).
// With KEEL_SANITIZE set (make asan) it runs the short prompt's logits and the
// first two perplexity chunks only.
#include "keel.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) { free(s); s = NULL; }
    if (s) s[n] = 0;
    if (s && len) *len = (size_t)n;
    fclose(f);
    return s;
}

static cJSON *load_json(const char *path) {
    char *s = read_all(path, NULL);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    free(s);
    return j;
}

static const cJSON *jget(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

// A JSON array of integers as a malloc'd int32 array; NULL on a type mismatch.
static int32_t *json_ids(const cJSON *a, int *n) {
    *n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
    if (*n < 0) return NULL;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(*n + 1));
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a) {
        if (!cJSON_IsNumber(x)) { free(ids); return NULL; }
        ids[i++] = (int32_t)x->valueint;
    }
    return ids;
}

static bool same_ids(const int32_t *a, size_t na, const int32_t *b, int nb) {
    return a && b && na == (size_t)nb && !memcmp(a, b, sizeof(int32_t) * na);
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "%s:", label);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

// The README's intended bound for fp32 keel vs the fp32 reference.
static double logit_tol(double ref) { return 1e-3 * fmax(1.0, fabs(ref)); }

// ---- logits -----------------------------------------------------------------------------

static void test_prompt(keel_model *m, const cJSON *prompts, const char *name) {
    const cJSON *p = jget(prompts, name);
    const cJSON *jtext = jget(p, "text"), *jfile = jget(p, "last_logits_file");
    const cJSON *top = jget(p, "top20_per_position"), *jnll = jget(p, "next_token_nll");
    int ng = 0;
    int32_t *gids = json_ids(jget(p, "ids"), &ng);
    char what[1024];
    snprintf(what, sizeof what, "%s: golden prompt entry", name);
    CHECK(what, cJSON_IsString(jtext) && cJSON_IsString(jfile) && gids && ng > 0 && cJSON_GetArraySize(top) == ng &&
                    cJSON_GetArraySize(jnll) == ng - 1);
    if (!cJSON_IsString(jtext) || !cJSON_IsString(jfile) || !gids || ng <= 0 || cJSON_GetArraySize(top) != ng ||
        cJSON_GetArraySize(jnll) != ng - 1) {
        free(gids);
        return;
    }
    const keel_tokenizer *tok = keel_model_tokenizer(m);
    const int V = keel_model_describe(m)->n_vocab;
    keel_err err;
    int32_t *ids = NULL;
    size_t n = 0;
    // add_special: no BOS for this GGUF (add_bos_token false), as the golden
    bool ok = keel_tokenize(tok, jtext->valuestring, strlen(jtext->valuestring), true, false, &ids, &n, &err) == KEEL_OK;
    snprintf(what, sizeof what, "%s: keel's %zu ids == the golden %d ids", name, n, ng);
    CHECK(what, ok && same_ids(ids, n, gids, ng));
    if (ok && !same_ids(ids, n, gids, ng)) print_ids("keel", ids, n), print_ids("gold", gids, (size_t)ng);

    // evaluate the golden ids so a tokenizer mismatch does not hide the logits check
    keel_context *c = NULL;
    float *lg = malloc(sizeof(float) * (size_t)ng * (size_t)V);
    double t0 = now_s();
    ok = lg && keel_context_init(m, ng, &c, &err) == KEEL_OK &&
         keel_eval(c, gids, ng, 0, lg, KEEL_LOGITS_ALL, &err) == KEEL_OK;
    double t_eval = now_s() - t0;
    if (!ok) fprintf(stderr, "%s: %s\n", name, err.msg);
    snprintf(what, sizeof what, "%s: eval %d tokens", name, ng);
    CHECK(what, ok);
    if (!ok) goto done;

    // full last-position logits vs the raw f32 file (little-endian, as x86 stores floats)
    char path[512];
    snprintf(path, sizeof path, "tests/golden/%s", jfile->valuestring);
    size_t nb = 0;
    float *ref = (float *)read_all(path, &nb);
    snprintf(what, sizeof what, "%s: read %s (%d floats)", name, path, V);
    CHECK(what, ref && nb == sizeof(float) * (size_t)V);
    if (ref && nb == sizeof(float) * (size_t)V) {
        const float *kl = lg + (size_t)(ng - 1) * (size_t)V;
        double max_abs = 0.0, max_rel = 0.0;
        int n_bad = 0, worst_v = -1;
        for (int v = 0; v < V; v++) {
            double e = fabs((double)kl[v] - (double)ref[v]);
            double r = e / fmax(1.0, fabs((double)ref[v]));
            if (!(e <= max_abs)) max_abs = e, worst_v = v;
            if (!(r <= max_rel)) max_rel = r;
            if (!(e <= logit_tol(ref[v]))) n_bad++;
        }
        printf("%-6s last-position logits (%d): max abs err %.3g (token %d), max rel err %.3g; %.2f s eval\n", name, V,
               max_abs, worst_v, max_rel, t_eval);
        snprintf(what, sizeof what, "%s: all %d last-position logits within 1e-3*max(1,|ref|) (%d outside)", name, V,
                 n_bad);
        CHECK(what, n_bad == 0);
    }
    free(ref);

    // every position: the golden top-20 logits, the argmax, the next-token NLL
    double top_abs = 0.0, nll_abs = 0.0;
    int top_bad = 0, arg_bad = 0, nll_bad = 0;
    for (int t = 0; t < ng; t++) {
        const float *kl = lg + (size_t)t * (size_t)V;
        const cJSON *row = cJSON_GetArrayItem(top, t);
        int nt = 0;
        const cJSON *pair;
        cJSON_ArrayForEach(pair, row) {
            const cJSON *jid = cJSON_GetArrayItem(pair, 0), *jl = cJSON_GetArrayItem(pair, 1);
            if (!cJSON_IsNumber(jid) || !cJSON_IsNumber(jl) || jid->valueint < 0 || jid->valueint >= V) {
                top_bad++;
                continue;
            }
            double e = fabs((double)kl[jid->valueint] - jl->valuedouble);
            if (!(e <= top_abs)) top_abs = e;
            if (!(e <= logit_tol(jl->valuedouble))) top_bad++;
            nt++;
        }
        if (nt != 20) top_bad++;
        int ka = 0;
        for (int v = 1; v < V; v++) ka = kl[v] > kl[ka] ? v : ka;
        const cJSON *g0 = cJSON_GetArrayItem(cJSON_GetArrayItem(row, 0), 0);
        if (!cJSON_IsNumber(g0) || ka != g0->valueint) {
            arg_bad++;
            fprintf(stderr, "%s: position %d argmax keel %d, transformers %d\n", name, t, ka,
                    cJSON_IsNumber(g0) ? g0->valueint : -1);
        }
        if (t + 1 < ng) { // NLL of the next golden token: log-softmax in double
            double mx = kl[0], s = 0.0;
            for (int v = 1; v < V; v++) mx = fmax(mx, kl[v]);
            for (int v = 0; v < V; v++) s += exp((double)kl[v] - mx);
            double nll = mx + log(s) - (double)kl[gids[t + 1]];
            const cJSON *jn = cJSON_GetArrayItem(jnll, t);
            double e = cJSON_IsNumber(jn) ? fabs(nll - jn->valuedouble) : INFINITY;
            if (!(e <= nll_abs)) nll_abs = e;
            if (!(e <= 1e-3)) nll_bad++;
        }
    }
    printf("%-6s all %d positions: top-20 logits max abs err %.3g, next-token NLL max abs err %.3g\n", name, ng,
           top_abs, nll_abs);
    snprintf(what, sizeof what, "%s: golden top-20 logits of every position within tolerance (%d outside)", name,
             top_bad);
    CHECK(what, top_bad == 0);
    snprintf(what, sizeof what, "%s: argmax of every position == transformers (%d differ)", name, arg_bad);
    CHECK(what, arg_bad == 0);
    snprintf(what, sizeof what, "%s: next-token NLL within 1e-3 nats at every position (%d outside)", name, nll_bad);
    CHECK(what, nll_bad == 0);
done:
    free(lg);
    keel_context_free(c);
    keel_free(ids);
    free(gids);
}

// ---- chat: template, ids, greedy decoding -----------------------------------------------

static void test_chat(keel_model *m, const cJSON *chat, const char *name) {
    const cJSON *msgs = jget(chat, "messages"), *jr = jget(chat, "rendered"), *jmax = jget(chat, "max_new_tokens");
    int ng = 0, nw = 0;
    int32_t *gids = json_ids(jget(chat, "ids"), &ng), *want = json_ids(jget(chat, "generated_ids"), &nw);
    int nm = cJSON_GetArraySize(msgs);
    char what[256];
    bool shape = cJSON_IsString(jr) && cJSON_IsNumber(jmax) && gids && want && nm > 0 && nm <= 8 && nw > 0;
    snprintf(what, sizeof what, "%s: golden chat entry", name);
    CHECK(what, shape);
    if (!shape) {
        free(gids), free(want);
        return;
    }
    keel_chat_msg cm[8];
    for (int i = 0; i < nm; i++) {
        const cJSON *r = jget(cJSON_GetArrayItem(msgs, i), "role"), *t = jget(cJSON_GetArrayItem(msgs, i), "content");
        cm[i].role = cJSON_IsString(r) ? r->valuestring : "";
        cm[i].content = cJSON_IsString(t) ? t->valuestring : "";
    }
    const keel_tokenizer *tok = keel_model_tokenizer(m);
    const int V = keel_model_describe(m)->n_vocab, n_max = jmax->valueint;
    keel_err err;
    char *rendered = NULL;
    bool ok = keel_chat_apply(tok, cm, (size_t)nm, true, &rendered, &err) == KEEL_OK;
    if (!ok) fprintf(stderr, "%s: %s\n", name, err.msg);
    snprintf(what, sizeof what, "%s: keel_chat_apply == the template's rendering", name);
    CHECK(what, ok && !strcmp(rendered, jr->valuestring));
    if (ok && strcmp(rendered, jr->valuestring)) fprintf(stderr, "keel: [%s]\ngold: [%s]\n", rendered, jr->valuestring);
    int32_t *ids = NULL;
    size_t n = 0;
    // as `keel generate --chat` does: add_special (no BOS here), special tokens parsed
    ok = ok && keel_tokenize(tok, rendered, strlen(rendered), true, true, &ids, &n, &err) == KEEL_OK;
    snprintf(what, sizeof what, "%s: %zu prompt ids == the golden %d", name, n, ng);
    CHECK(what, ok && same_ids(ids, n, gids, ng));

    // greedy from the golden prompt ids: one batch, then one token at a time
    keel_context *c = NULL;
    float *lg = malloc(sizeof(float) * (size_t)V);
    int32_t *out = malloc(sizeof(int32_t) * (size_t)(n_max + 1));
    int no = 0;
    double t0 = now_s();
    keel_status st = lg && out ? keel_context_init(m, ng + n_max, &c, &err) : KEEL_ERR_NOMEM;
    if (!st) st = keel_eval(c, gids, ng, 0, lg, KEEL_LOGITS_LAST, &err);
    while (!st && no < n_max) {
        int b = 0;
        for (int v = 1; v < V; v++) b = lg[v] > lg[b] ? v : b;
        out[no++] = b;
        if (keel_token_is_eog(tok, b)) break;
        if (no < n_max) st = keel_eval(c, &out[no - 1], 1, ng + no - 1, lg, KEEL_LOGITS_LAST, &err);
    }
    double dt = now_s() - t0;
    if (st) fprintf(stderr, "%s: %s\n", name, err.msg);
    char *text = NULL;
    if (out && keel_detokenize(tok, out, (size_t)no, true, &text, &err) == KEEL_OK)
        printf("%-10s greedy %d tokens in %.2f s: %s\n", name, no, dt, text);
    snprintf(what, sizeof what, "%s: greedy ids == transformers generate() (%d vs %d tokens)", name, no, nw);
    CHECK(what, !st && same_ids(out, (size_t)no, want, nw));
    if (!same_ids(out, (size_t)no, want, nw)) print_ids("keel", out, (size_t)no), print_ids("gold", want, (size_t)nw);
    keel_free(text);
    keel_free(rendered);
    keel_free(ids);
    keel_context_free(c);
    free(lg), free(out), free(gids), free(want);
}

// ---- perplexity ---------------------------------------------------------------------------

// The text of tools/make_ppl_text.py: the "passage" of the first n_pass lines of
// the jsonl, joined with "\n\n", no trailing newline. NULL when unreadable.
static char *boolq_text(const char *path, int n_pass, size_t *len) {
    size_t flen = 0;
    char *all = read_all(path, &flen);
    if (!all) return NULL;
    size_t cap = flen + 1, n = 0;
    char *out = malloc(cap);
    int got = 0;
    char *line = all;
    while (out && got < n_pass && line < all + flen) {
        char *nl = memchr(line, '\n', (size_t)(all + flen - line));
        if (nl) *nl = 0;
        cJSON *j = cJSON_Parse(line);
        const cJSON *p = jget(j, "passage");
        if (!cJSON_IsString(p)) {
            cJSON_Delete(j);
            break;
        }
        size_t pl = strlen(p->valuestring);
        if (got) memcpy(out + n, "\n\n", 2), n += 2;
        memcpy(out + n, p->valuestring, pl); // each passage is shorter than its JSON line
        n += pl;
        got++;
        cJSON_Delete(j);
        line = nl ? nl + 1 : all + flen;
    }
    free(all);
    if (!out || got != n_pass) {
        free(out);
        return NULL;
    }
    out[n] = 0;
    *len = n;
    return out;
}

typedef struct ppl_log {
    double running[64];
    int n;
} ppl_log;

static void on_chunk(int32_t chunk, int32_t n_chunks, double ppl, void *ud) {
    ppl_log *l = ud;
    if (chunk >= 0 && chunk < 64) l->running[chunk] = ppl, l->n = chunk + 1;
}

static void test_perplexity(keel_model *m, bool reduced) {
    const cJSON *ppl = NULL;
    cJSON *pj = load_json("tests/golden/smollm2_ppl.json");
    CHECK("read and parse tests/golden/smollm2_ppl.json", pj != NULL);
    if (!pj) return;
    const cJSON *jbytes = jget(jget(pj, "text"), "bytes"), *jtoks = jget(pj, "tokens");
    const cJSON *jcount = jget(jtoks, "count");
    const cJSON *lc = jget(jget(pj, "llama_cpp"), "512"), *hf = jget(jget(pj, "transformers_fp32"), "512");
    const cJSON *chunks = jget(hf, "per_chunk");
    ppl = jget(lc, "ppl");
    const cJSON *hf_ppl = jget(hf, "ppl");
    int n_first = 0, n_last = 0;
    int32_t *first = json_ids(jget(jtoks, "first_32"), &n_first), *last = json_ids(jget(jtoks, "last_32"), &n_last);
    bool shape = cJSON_IsNumber(jbytes) && cJSON_IsNumber(jcount) && cJSON_IsNumber(ppl) && cJSON_IsNumber(hf_ppl) &&
                 cJSON_GetArraySize(chunks) == 10 && n_first == 32 && n_last == 32;
    CHECK("golden perplexity entries", shape);
    char path[512], what[1024];
    size_t len = 0;
    char *text = shape ? boolq_text(test_shared_path(path, sizeof path, "datasets/boolq_validation.jsonl"), 40, &len)
                       : NULL;
    snprintf(what, sizeof what, "%s: 40 passages", path);
    CHECK(what, text != NULL);
    if (!text) goto done;
    snprintf(what, sizeof what, "perplexity text is %zu bytes (golden %d)", len, jbytes->valueint);
    CHECK(what, len == (size_t)jbytes->valueint);

    keel_err err;
    int32_t *ids = NULL;
    size_t n = 0;
    double t0 = now_s();
    bool ok = keel_tokenize(keel_model_tokenizer(m), text, len, true, false, &ids, &n, &err) == KEEL_OK;
    double t_tok = now_s() - t0;
    if (!ok) fprintf(stderr, "%s\n", err.msg);
    snprintf(what, sizeof what, "perplexity text: %zu tokens (golden %d, llama-tokenize)", n, jcount->valueint);
    CHECK(what, ok && n == (size_t)jcount->valueint);
    CHECK("first 32 and last 32 ids == llama-tokenize", ok && n >= 32 && same_ids(ids, 32, first, 32) &&
                                                            same_ids(ids + n - 32, 32, last, 32));
    if (!ok || n < 1024) goto done;

    // 10 windows of 512 (2550 scored tokens); the reduced run takes the first 2
    const int n_ctx = 512, n_chunks = reduced ? 2 : (int)(n / (size_t)n_ctx);
    keel_context *c = NULL;
    keel_ppl_result r;
    ppl_log plog = {{0}, 0};
    t0 = now_s();
    ok = keel_context_init(m, n_ctx, &c, &err) == KEEL_OK &&
         keel_perplexity(c, ids, (size_t)n_chunks * (size_t)n_ctx, n_ctx, on_chunk, &plog, &r, &err) == KEEL_OK;
    double t_ppl = now_s() - t0;
    keel_context_free(c);
    if (!ok) fprintf(stderr, "%s\n", err.msg);
    CHECK("keel_perplexity n_ctx 512", ok && r.n_chunks == n_chunks && plog.n == n_chunks &&
                                           r.n_scored == (int64_t)n_chunks * 255);
    if (!ok || plog.n != n_chunks) goto done;

    // per-chunk NLL sums, from the running PPL after each chunk:
    // sum_k = count_k * log(ppl_k) - count_{k-1} * log(ppl_{k-1})
    double worst = 0.0, prev = 0.0;
    for (int k = 0; k < n_chunks; k++) {
        double cum = 255.0 * (k + 1) * log(plog.running[k]), sum = cum - prev;
        prev = cum;
        const cJSON *ref = jget(cJSON_GetArrayItem(chunks, k), "nll_sum");
        double rel = cJSON_IsNumber(ref) ? fabs(sum - ref->valuedouble) / fabs(ref->valuedouble) : INFINITY;
        if (!(rel <= worst)) worst = rel;
        snprintf(what, sizeof what, "chunk %d: NLL sum %.6f within 1e-4 relative of transformers fp32 %.6f", k, sum,
                 cJSON_IsNumber(ref) ? ref->valuedouble : NAN);
        CHECK(what, rel <= 1e-4);
    }
    printf("perplexity: %d chunks of 512 in %.2f s (tokenize %.3f s); per-chunk NLL sum vs fp32: max rel err %.3g\n",
           n_chunks, t_ppl, t_tok, worst);
    if (reduced) {
        const cJSON *rp = jget(cJSON_GetArrayItem(chunks, 1), "running_ppl");
        printf("perplexity after 2 chunks: keel %.4f, transformers fp32 %.4f\n", r.ppl,
               cJSON_IsNumber(rp) ? rp->valuedouble : NAN);
    } else {
        double d_lc = (r.ppl - ppl->valuedouble) / ppl->valuedouble;
        double d_hf = (r.ppl - hf_ppl->valuedouble) / hf_ppl->valuedouble;
        printf("perplexity n_ctx 512: keel %.4f +/- %.5f, llama.cpp %.4f (%+.3f %%), transformers fp32 %.4f (%+.4f %%)\n",
               r.ppl, r.ppl * r.nll_stderr, ppl->valuedouble, 100.0 * d_lc, hf_ppl->valuedouble, 100.0 * d_hf);
        CHECK("PPL within 0.5 % of llama.cpp's llama-perplexity", fabs(d_lc) <= 5e-3);
        CHECK("PPL within 1e-4 relative of transformers fp32", fabs(d_hf) <= 1e-4);
        const cJSON *pm = jget(hf, "ppl_pm");
        CHECK("PPL +/- within 1e-3 relative of transformers fp32",
              cJSON_IsNumber(pm) && fabs(r.ppl * r.nll_stderr - pm->valuedouble) <= 1e-3 * pm->valuedouble);
    }
done:
    keel_free(ids);
    free(text), free(first), free(last);
    cJSON_Delete(pj);
}

int main(void) {
    char path[512];
    test_cache_path(path, sizeof path, "SmolLM2-135M-Instruct.Q4_1.gguf");
    FILE *f = fopen(path, "rb");
    if (!f) TEST_SKIP("SmolLM2-135M-Instruct.Q4_1.gguf not in the cache folder");
    fclose(f);
    const char *san = getenv("KEEL_SANITIZE");
    const bool reduced = san && *san && strcmp(san, "0");
    double t_start = now_s();

    cJSON *ref = load_json("tests/golden/smollm2_ref.json");
    CHECK("read and parse tests/golden/smollm2_ref.json", ref != NULL);
    keel_err err;
    keel_model *m = NULL;
    keel_model_params mp = keel_model_default_params();
    // One thread: on this shared 2-core machine two OpenMP threads competing
    // with other jobs run the perplexity 3x slower than one (measured).
    mp.n_threads = 1;
    if (keel_model_load(path, &mp, &m, &err) != KEEL_OK) {
        fprintf(stderr, "%s\n", err.msg);
        CHECK("load SmolLM2", 0);
        cJSON_Delete(ref);
        return test_report();
    }
    if (ref) {
        const cJSON *prompts = jget(ref, "prompts");
        test_prompt(m, prompts, "short");
        if (!reduced) test_prompt(m, prompts, "long");
        if (!reduced) {
            test_chat(m, jget(ref, "chat"), "chat");
            const cJSON *story = jget(ref, "chat_long");
            int ns = cJSON_GetArraySize(jget(story, "generated_ids"));
            CHECK("chat_long: golden has 32 tokens without EOS", ns == 32 && cJSON_IsFalse(jget(story, "stopped_at_eos")));
            test_chat(m, story, "chat_long");
        }
    }
    test_perplexity(m, reduced);
    keel_model_free(m);
    cJSON_Delete(ref);
    printf("%s run: %.1f s\n", reduced ? "reduced (KEEL_SANITIZE)" : "full", now_s() - t_start);
    return test_report();
}
