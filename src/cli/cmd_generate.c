// SPDX-License-Identifier: MIT
// cmd_generate.c — `keel generate`: prompt (optionally through the model's
// chat template), KV-cache decoding, streamed output, tokens/s at the end.
// --adapter applies a PEFT LoRA directory (keel_adapter_load) to the model;
// --run REF takes the model (and adapter) from a checkpoint in the registry
// (keel_registry_resolve, then keel_checkpoint_model).
#include "cli.h"


static void usage(FILE *f) {
    fprintf(f,
            "usage: keel generate -m MODEL -p TEXT [options]\n"
            "       keel generate --run REF -p TEXT [options]\n\n"
            "Generate text, streaming it to stdout; speeds go to stderr at the end.\n\n"
            "  -m, --model PATH   .gguf file or Hugging Face model directory (with --run: the\n"
            "                     base for an adapter checkpoint, instead of the one it names)\n"
            "  --adapter DIR      apply a PEFT LoRA adapter (adapter_config.json +\n"
            "                     adapter_model.safetensors, e.g. a keel LoRA checkpoint)\n"
            KEEL_CLI_RUN_HELP
            "  -p, --prompt TEXT  the prompt ('' = start from BOS alone)\n"
            "  --chat             wrap the prompt as a user turn in the model's chat template\n"
            "  --system TEXT      system message for --chat (default: the template's own)\n"
            "  -n N               tokens to generate (default 128); stops early at end-of-generation\n"
            "  --temp T           temperature (default 0 = greedy)\n"
            "  --top-k K          keep the K most likely tokens (default 0 = off)\n"
            "  --top-p P          nucleus sampling mass (default 1 = off)\n"
            "  --seed S           sampling seed (default 42)\n"
            "  --ctx N            context size (default: prompt + n, at most the model's)\n"
            "  -t, --threads N    threads (default: all cores)\n"
            KEEL_CLI_MATMUL_HELP);
}

typedef struct {
    const keel_tokenizer *tok;
    int32_t *ids;     // prompt + generated
    size_t n, cap;
    size_t n_prompt;
    size_t printed;   // bytes of generated text already written
    size_t prompt_len;// bytes the prompt decodes to
} stream_state;

// Print what the new token adds to the decoded text. Decoding the whole
// sequence each time keeps every tokenizer rule (leading-space stripping,
// byte tokens forming one UTF-8 character) correct; an incomplete UTF-8
// character at the end is held back until it completes.
static void stream_emit(stream_state *s, bool final) {
    char *text = NULL;
    keel_err err;
    if (keel_detokenize(s->tok, s->ids, s->n, false, &text, &err) != KEEL_OK) return;
    size_t len = strlen(text);
    size_t end = len;
    if (!final) { // hold back a trailing partial UTF-8 sequence
        size_t k = len, back = 0;
        while (k > 0 && back < 4 && ((unsigned char)text[k - 1] & 0xc0) == 0x80) { k--; back++; }
        if (k > 0) {
            unsigned char c = (unsigned char)text[k - 1];
            size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
            if (need > back + 1) end = k - 1;
        }
    }
    size_t start = s->prompt_len + s->printed;
    if (end > start) {
        fwrite(text + start, 1, end - start, stdout);
        fflush(stdout);
        s->printed += end - start;
    }
    keel_free(text);
}

int keel_cmd_generate(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *system = NULL, *adapter = NULL, *run = NULL, *registry = NULL;
    bool chat = false;
    long n_gen = 128, top_k = 0, seed = 42, n_ctx = 0, threads = 0;
    double temp = 0, top_p = 1;
    keel_model_params mp = keel_model_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { if (!v) goto missing; model = v; i++; }
        else if (!strcmp(a, "--adapter")) { if (!v) goto missing; adapter = v; i++; }
        else if (!strcmp(a, "--run")) { if (!v) goto missing; run = v; i++; }
        else if (!strcmp(a, "--registry")) { if (!v) goto missing; registry = v; i++; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { if (!v) goto missing; prompt = v; i++; }
        else if (!strcmp(a, "--system")) { if (!v) goto missing; system = v; i++; }
        else if (!strcmp(a, "--chat")) chat = true;
        else if (!strcmp(a, "-n")) { if (!keel_cli_int(a, v, 0, 1 << 20, &n_gen)) return 2; i++; }
        else if (!strcmp(a, "--temp")) { if (!keel_cli_float(a, v, 0, 100, &temp)) return 2; i++; }
        else if (!strcmp(a, "--top-k")) { if (!keel_cli_int(a, v, 0, 1 << 30, &top_k)) return 2; i++; }
        else if (!strcmp(a, "--top-p")) { if (!keel_cli_float(a, v, 0, 1, &top_p)) return 2; i++; }
        else if (!strcmp(a, "--seed")) { if (!keel_cli_int(a, v, 0, 0x7fffffffL, &seed)) return 2; i++; }
        else if (!strcmp(a, "--ctx")) { if (!keel_cli_int(a, v, 1, 1 << 24, &n_ctx)) return 2; i++; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { if (!keel_cli_int(a, v, 0, 1024, &threads)) return 2; i++; }
        else if (!strcmp(a, "--matmul")) { if (!keel_cli_matmul(a, v, &mp.matmul_precision)) return 2; i++; }
        else { fprintf(stderr, "keel generate: unknown option %s\n", a); usage(stderr); return 2; }
        continue;
    missing:
        fprintf(stderr, "keel generate: option %s needs a value\n", a);
        return 2;
    }
    if ((!model && !run) || !prompt) { usage(stderr); return 2; }

    int rc = 1;
    keel_err err = {0};
    char *run_model = NULL, *run_adapter = NULL;
    if (run) {
        int code = keel_cli_run_model("generate", run, registry, &model, &adapter, &run_model, &run_adapter);
        if (code) return code;
    }
    keel_model *m = NULL;
    keel_context *ctx = NULL;
    keel_adapter *ad = NULL;
    keel_sampler *smp = NULL;
    char *rendered = NULL;
    float *logits = NULL;
    stream_state s = {0};

    mp.n_threads = (int32_t)threads;
    if (keel_model_load(model, &mp, &m, &err) != KEEL_OK) { keel_cli_fail(&err, NULL); goto done; }
    const keel_model_desc *d = keel_model_describe(m);
    s.tok = keel_model_tokenizer(m);
    if (adapter && keel_adapter_load(m, adapter, &ad, &err) != KEEL_OK) {
        keel_cli_fail(&err, NULL);
        goto done;
    }

    const char *text = prompt;
    bool parse_special = false;
    if (chat) {
        keel_chat_msg msgs[2];
        size_t nm = 0;
        if (system) msgs[nm++] = (keel_chat_msg){"system", system};
        msgs[nm++] = (keel_chat_msg){"user", prompt};
        if (keel_chat_apply(s.tok, msgs, nm, true, &rendered, &err) != KEEL_OK) {
            keel_cli_fail(&err, "this model has no chat template keel knows; drop --chat");
            goto done;
        }
        text = rendered;
        parse_special = true;
    }
    int32_t *pids = NULL;
    size_t np = 0;
    // Add BOS by the tokenizer's rules, unless the rendered template already
    // starts with the BOS token's text (Llama-2's template writes "<s>").
    bool add_special = true;
    if (chat) {
        int32_t bos = keel_token_bos(s.tok);
        const char *bt = bos >= 0 ? keel_token_text(s.tok, bos) : NULL;
        if (bt && *bt && !strncmp(text, bt, strlen(bt))) add_special = false;
    }
    if (keel_tokenize(s.tok, text, strlen(text), add_special, parse_special, &pids, &np, &err) != KEEL_OK) {
        keel_cli_fail(&err, NULL);
        goto done;
    }
    if (np == 0) {
        int32_t bos = keel_token_bos(s.tok);
        if (bos < 0) { fprintf(stderr, "keel generate: empty prompt and no BOS token\n"); keel_free(pids); goto done; }
        keel_free(pids);
        pids = malloc(sizeof *pids);
        if (!pids) goto done;
        pids[0] = bos;
        np = 1;
    }
    long want_ctx = n_ctx ? n_ctx : (long)np + n_gen;
    if (!n_ctx && d->n_ctx_train > 0 && want_ctx > d->n_ctx_train) want_ctx = d->n_ctx_train;
    if ((long)np >= want_ctx) {
        fprintf(stderr, "keel generate: the prompt has %zu tokens, the context only %ld\n", np, want_ctx);
        free(pids);
        goto done;
    }
    s.cap = (size_t)want_ctx;
    s.ids = malloc(sizeof *s.ids * s.cap);
    if (!s.ids) { free(pids); goto done; }
    memcpy(s.ids, pids, np * sizeof *pids);
    s.n = s.n_prompt = np;
    keel_free(pids);
    {
        char *pt = NULL;
        if (keel_detokenize(s.tok, s.ids, s.n, false, &pt, &err) != KEEL_OK) { keel_cli_fail(&err, NULL); goto done; }
        s.prompt_len = strlen(pt);
        keel_free(pt);
    }

    if (keel_context_init(m, (int32_t)want_ctx, &ctx, &err) != KEEL_OK) { keel_cli_fail(&err, NULL); goto done; }
    if (ad && keel_context_set_adapter(ctx, ad, &err) != KEEL_OK) { keel_cli_fail(&err, NULL); goto done; }
    keel_sampler_params sp = keel_sampler_default_params();
    sp.temp = (float)temp;
    sp.top_k = (int32_t)top_k;
    sp.top_p = (float)top_p;
    sp.seed = (uint64_t)seed;
    smp = keel_sampler_init(&sp);
    logits = malloc(sizeof *logits * (size_t)d->n_vocab);
    if (!smp || !logits) { fprintf(stderr, "keel generate: out of memory\n"); goto done; }

    double t0, t1, t2;
    t0 = keel_cli_now_s();
    if (keel_eval(ctx, s.ids, (int32_t)s.n, 0, logits, KEEL_LOGITS_LAST, &err) != KEEL_OK) { keel_cli_fail(&err, NULL); goto done; }
    t1 = keel_cli_now_s();
    long produced = 0;
    while (produced < n_gen && s.n < s.cap) {
        int32_t id = keel_sampler_sample(smp, logits, d->n_vocab);
        if (keel_token_is_eog(s.tok, id)) break;
        s.ids[s.n++] = id;
        produced++;
        stream_emit(&s, false);
        if (produced == n_gen || s.n == s.cap) break;
        if (keel_eval(ctx, &id, 1, (int32_t)s.n - 1, logits, KEEL_LOGITS_LAST, &err) != KEEL_OK) { keel_cli_fail(&err, NULL); goto done; }
    }
    stream_emit(&s, true);
    printf("\n");
    t2 = keel_cli_now_s();
    fprintf(stderr, "\nprompt: %zu tokens in %.3f s (%.1f tok/s); generated: %ld tokens in %.3f s (%.1f tok/s)\n",
            s.n_prompt, t1 - t0, (double)s.n_prompt / (t1 - t0 > 0 ? t1 - t0 : 1e-9), produced, t2 - t1,
            (double)produced / (t2 - t1 > 0 ? t2 - t1 : 1e-9));
    rc = 0;
done:
    free(logits);
    free(s.ids);
    keel_free(rendered);
    keel_sampler_free(smp);
    keel_context_free(ctx);
    keel_adapter_free(ad);
    keel_model_free(m);
    keel_free(run_model);
    keel_free(run_adapter);
    return rc;
}
