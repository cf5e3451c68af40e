// SPDX-License-Identifier: MIT
// cmd_perplexity.c — `keel perplexity -m MODEL -f FILE`: perplexity by
// llama.cpp's llama-perplexity method, so the numbers compare directly.
// --adapter scores the model with a PEFT LoRA adapter applied; --run REF
// scores a registry checkpoint (keel_cli_run_model).
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: keel perplexity -m MODEL -f FILE [options]\n"
            "       keel perplexity --run REF -f FILE [options]\n\n"
            "Perplexity of a text file, computed the way llama.cpp's llama-perplexity does:\n"
            "the whole file is tokenized (with BOS when the model adds one), cut into\n"
            "floor(n_tokens / ctx) windows of ctx tokens, the first token of each window is\n"
            "replaced by BOS (when the model uses one), and only the second half of each\n"
            "window is scored (every token there predicted from at least ctx/2 tokens of\n"
            "context). Prints the running estimate per window and the final PPL with its\n"
            "standard error.\n\n"
            "  -m, --model PATH   .gguf file or Hugging Face model directory\n"
            "  -f, --file PATH    UTF-8 text ('-' = stdin)\n"
            "  --adapter DIR      apply a PEFT LoRA adapter (adapter_config.json +\n"
            "                     adapter_model.safetensors, e.g. a keel LoRA checkpoint)\n"
            KEEL_CLI_RUN_HELP
            "  --ctx N            window size in tokens (default 512)\n"
            "  -t, --threads N    threads (default: all cores)\n"
            KEEL_CLI_MATMUL_HELP);
}

static void progress(int32_t chunk, int32_t n_chunks, double ppl, void *ud) {
    (void)ud;
    fprintf(stderr, "[%d/%d] %.4f\n", chunk + 1, n_chunks, ppl);
}

int keel_cmd_perplexity(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *adapter = NULL, *run = NULL, *registry = NULL;
    long n_ctx = 512, threads = 0;
    keel_model_params mp = keel_model_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v) { model = v; i++; }
        else if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && v) { file = v; i++; }
        else if (!strcmp(a, "--adapter") && v) { adapter = v; i++; }
        else if (!strcmp(a, "--run") && v) { run = v; i++; }
        else if (!strcmp(a, "--registry") && v) { registry = v; i++; }
        else if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) { if (!keel_cli_int(a, v, 4, 1 << 20, &n_ctx)) return 2; i++; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { if (!keel_cli_int(a, v, 0, 1024, &threads)) return 2; i++; }
        else if (!strcmp(a, "--matmul")) { if (!keel_cli_matmul(a, v, &mp.matmul_precision)) return 2; i++; }
        else { fprintf(stderr, "keel perplexity: unknown option or missing value: %s\n", a); usage(stderr); return 2; }
    }
    if ((!model && !run) || !file) { usage(stderr); return 2; }
    char *run_model = NULL, *run_adapter = NULL;
    if (run) {
        int code = keel_cli_run_model("perplexity", run, registry, &model, &adapter, &run_model, &run_adapter);
        if (code) return code;
    }
    size_t len = 0;
    char *text = keel_cli_slurp(file, &len);
    if (!text) {
        keel_free(run_model);
        keel_free(run_adapter);
        return 1;
    }

    int rc = 1;
    keel_err err = {0};
    keel_model *m = NULL;
    keel_context *ctx = NULL;
    keel_adapter *ad = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    mp.n_threads = (int32_t)threads;
    if (keel_model_load(model, &mp, &m, &err) != KEEL_OK) { keel_cli_fail(&err, NULL); goto done; }
    if (adapter && keel_adapter_load(m, adapter, &ad, &err) != KEEL_OK) {
        keel_cli_fail(&err, NULL);
        goto done;
    }
    if (keel_tokenize(keel_model_tokenizer(m), text, len, true, false, &ids, &n, &err) != KEEL_OK) {
        // name the file: the tokenizer only knows the byte offset
        fprintf(stderr, "keel: %s: %s\n", file, err.msg);
        goto done;
    }
    if (n < (size_t)n_ctx * 1) {
        fprintf(stderr, "keel perplexity: %s has %zu tokens, fewer than one window of %ld; use a smaller --ctx\n",
                file, n, n_ctx);
        goto done;
    }
    if (keel_context_init(m, (int32_t)n_ctx, &ctx, &err) != KEEL_OK) { keel_cli_fail(&err, NULL); goto done; }
    if (ad && keel_context_set_adapter(ctx, ad, &err) != KEEL_OK) { keel_cli_fail(&err, NULL); goto done; }
    fprintf(stderr, "%s: %zu tokens, %zu windows of %ld, scoring the second half of each\n", file, n,
            n / (size_t)n_ctx, n_ctx);
    keel_ppl_result r;
    if (keel_perplexity(ctx, ids, n, (int32_t)n_ctx, progress, NULL, &r, &err) != KEEL_OK) { keel_cli_fail(&err, NULL); goto done; }
    printf("Final estimate: PPL = %.4f +/- %.5f  (%lld tokens scored in %d windows, mean NLL %.5f)\n", r.ppl,
           r.ppl * r.nll_stderr, (long long)r.n_scored, r.n_chunks, r.nll_mean);
    rc = 0;
done:
    keel_free(ids);
    keel_context_free(ctx);
    keel_adapter_free(ad);
    keel_model_free(m);
    keel_free(run_model);
    keel_free(run_adapter);
    free(text);
    return rc;
}
