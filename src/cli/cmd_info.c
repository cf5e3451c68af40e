// SPDX-License-Identifier: MIT
// cmd_info.c — `keel info MODEL`: architecture, dimensions, tokenizer, special
// tokens, chat template, and a tensor table with totals.
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: keel info MODEL [--no-tensors]\n\n"
               "Describe a model: a .gguf file or a Hugging Face directory (config.json,\n"
               "*.safetensors, tokenizer.json).\n\n"
               "  --no-tensors   omit the per-tensor table\n");
}

static void human_bytes(size_t b, char *out, size_t cap) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1024 && i < 4) { v /= 1024; i++; }
    snprintf(out, cap, i ? "%.2f %s" : "%.0f %s", v, u[i]);
}

static void print_token(const keel_tokenizer *t, const char *label, int32_t id) {
    if (id < 0) {
        printf("  %-14s (none)\n", label);
        return;
    }
    const char *s = keel_token_text(t, id);
    printf("  %-14s %d %s\n", label, id, s ? s : "?");
}

int keel_cmd_info(int argc, char **argv) {
    const char *path = NULL;
    bool tensors = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else if (!strcmp(argv[i], "--no-tensors")) tensors = false;
        else if (!strcmp(argv[i], "-m") && i + 1 < argc) path = argv[++i];
        else if (argv[i][0] == '-') { fprintf(stderr, "keel info: unknown option %s\n", argv[i]); usage(stderr); return 2; }
        else if (!path) path = argv[i];
        else { usage(stderr); return 2; }
    }
    if (!path) { usage(stderr); return 2; }
    keel_err err = {0};
    keel_model *m = NULL;
    keel_model_params mp = keel_model_default_params();
    if (keel_model_load(path, &mp, &m, &err) != KEEL_OK) return keel_cli_fail(&err, NULL);
    const keel_model_desc *d = keel_model_describe(m);
    const keel_tokenizer *t = keel_model_tokenizer(m);
    char hb[32];
    printf("model         %s\n", path);
    printf("format        %s\n", d->format);
    printf("architecture  %s\n", d->arch);
    printf("name          %s\n", d->name ? d->name : "");
    printf("layers        %d\n", d->n_layer);
    printf("embedding     %d\n", d->n_embd);
    printf("ffn           %d\n", d->n_ff);
    printf("heads         %d (kv %d, head dim %d)\n", d->n_head, d->n_head_kv, d->n_head ? d->n_embd / d->n_head : 0);
    printf("rope          dims %d, theta %g\n", d->n_rot, (double)d->rope_theta);
    printf("rms eps       %g\n", (double)d->norm_eps);
    printf("context       %d (training)\n", d->n_ctx_train);
    printf("vocab         %d\n", d->n_vocab);
    printf("lm head       %s\n", d->tied_output ? "tied to token embedding" : "separate");
    if (t) {
        printf("tokenizer     %s, %d tokens\n",
               keel_tokenizer_get_kind(t) == KEEL_TOKENIZER_SPM ? "SentencePiece BPE (llama)" : "byte-level BPE (gpt2)",
               keel_tokenizer_n_vocab(t));
        printf("special tokens\n");
        print_token(t, "bos", keel_token_bos(t));
        print_token(t, "eos", keel_token_eos(t));
        printf("chat template %s (%s)\n", keel_tokenizer_has_chat_template(t) ? "present" : "absent",
               keel_chat_format_name(keel_tokenizer_chat_format(t)));
    }
    int64_t n = keel_model_n_tensors(m);
    if (tensors) {
        printf("\n%-40s %-5s %-22s %12s\n", "tensor", "type", "shape (ne0, ne1, ...)", "bytes");
        for (int64_t i = 0; i < n; i++) {
            keel_tensor_desc td;
            if (!keel_model_tensor(m, i, &td)) break;
            char shape[64];
            int o = snprintf(shape, sizeof shape, "[");
            for (int k = 0; k < td.n_dims && o < (int)sizeof shape; k++)
                o += snprintf(shape + o, sizeof shape - (size_t)o, "%s%lld", k ? ", " : "", (long long)td.ne[k]);
            if (o < (int)sizeof shape) snprintf(shape + o, sizeof shape - (size_t)o, "]");
            printf("%-40s %-5s %-22s %12zu\n", td.name, keel_dtype_name(td.type), shape, td.nbytes);
        }
    }
    human_bytes(d->n_bytes, hb, sizeof hb);
    printf("\ntotal         %lld tensors, %lld parameters (%.1f M), %s\n", (long long)n,
           (long long)d->n_params, (double)d->n_params / 1e6, hb);
    keel_model_free(m);
    return 0;
}
