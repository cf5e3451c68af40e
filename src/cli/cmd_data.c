// SPDX-License-Identifier: MIT
// cmd_data.c — `keel data check FILE -m MODEL`: what a JSONL training file
// holds once tokenized the model's way (keel_data_check in src/data/check.c):
// counts, a length histogram, duplicates, over-length examples and every
// malformed line. Exit status 1 when any line is malformed.
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: keel data check FILE -m MODEL [options]\n\n"
               "Tokenize a JSONL training file with the model's tokenizer and report counts, a token-length\n"
               "histogram, exact duplicates, over-length examples and every malformed line.\n"
               "Exit status: 0 when every line is well-formed, 1 otherwise.\n\n"
               "  -m, --model PATH      .gguf file, tokenizer.json, or Hugging Face model directory\n"
               "  --format F            auto (default), text, prompt_completion, chat, alpaca\n"
               "  --max-seq-len N       sequence length examples are cut to (default 512)\n"
               "  --show N              line numbers to list per finding (default 10)\n");
}

static void print_lines(const int64_t *v, int64_t n, int64_t show) {
    for (int64_t i = 0; i < n && i < show; i++) printf("%s%lld", i ? ", " : "", (long long)v[i]);
    if (n > show) printf(", ... (%lld more)", (long long)(n - show));
    printf("\n");
}

static int data_check(int argc, char **argv) {
    const char *model = NULL, *file = NULL;
    keel_data_params p = keel_data_default_params();
    long show = 10;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc) model = argv[++i];
        else if (!strcmp(a, "--format") && i + 1 < argc) {
            const char *v = argv[++i];
            int f = 0;
            while (f <= KEEL_DATA_ALPACA && strcmp(v, keel_data_format_name((keel_data_format)f))) f++;
            if (f > KEEL_DATA_ALPACA) {
                fprintf(stderr, "keel: option --format: '%s' is not one of auto, text, prompt_completion, chat, alpaca\n", v);
                return 2;
            }
            p.format = (keel_data_format)f;
        } else if (!strcmp(a, "--max-seq-len") && i + 1 < argc) {
            long v;
            if (!keel_cli_int(a, argv[++i], 2, 1 << 20, &v)) return 2;
            p.max_seq_len = (int32_t)v;
        } else if (!strcmp(a, "--show") && i + 1 < argc) {
            if (!keel_cli_int(a, argv[++i], 1, 1000000, &show)) return 2;
        } else if (a[0] == '-' && a[1]) { fprintf(stderr, "keel data check: unknown option %s\n", a); usage(stderr); return 2; }
        else if (!file) file = a;
        else { usage(stderr); return 2; }
    }
    if (!model || !file) { usage(stderr); return 2; }

    keel_err err = {0};
    keel_tokenizer *tok = NULL;
    if (keel_tokenizer_load(model, &tok, &err) != KEEL_OK) return keel_cli_fail(&err, NULL);
    keel_data_report r;
    if (keel_data_check(file, tok, &p, &r, &err) != KEEL_OK) {
        keel_tokenizer_free(tok);
        return keel_cli_fail(&err, NULL);
    }
    printf("%s: format %s, max_seq_len %d\n", file, keel_data_format_name(r.format), (int)p.max_seq_len);
    printf("  lines          %lld (non-blank)\n", (long long)r.n_lines);
    printf("  examples       %lld\n", (long long)r.n_examples);
    printf("  malformed      %lld\n", (long long)r.n_malformed);
    printf("  tokens         %lld (after truncation)\n", (long long)r.n_tokens);
    printf("  trained        %lld (%.1f%% of tokens)\n", (long long)r.n_trained,
           r.n_tokens ? 100.0 * (double)r.n_trained / (double)r.n_tokens : 0.0);
    if (r.n_examples)
        printf("  length         min %d, mean %.1f, max %d tokens\n", (int)r.min_len, r.mean_len, (int)r.max_len);

    if (r.n_bins) {
        printf("\ntoken length histogram:\n");
        int64_t mx = 1;
        for (int32_t b = 0; b < r.n_bins; b++)
            if (r.hist_count[b] > mx) mx = r.hist_count[b];
        for (int32_t b = 0; b < r.n_bins; b++) {
            int bar = (int)((r.hist_count[b] * 40 + mx - 1) / mx);
            printf("  %6d-%-6d %8lld  ", (int)r.hist_lo[b], (int)r.hist_hi[b], (long long)r.hist_count[b]);
            for (int k = 0; k < bar; k++) fputc('#', stdout);
            fputc('\n', stdout);
        }
    }
    if (r.n_over) {
        printf("\nover-length (> %d tokens, truncated): %lld; lines ", (int)p.max_seq_len, (long long)r.n_over);
        print_lines(r.over_lines, r.n_over, show);
    }
    if (r.n_dup_groups) {
        printf("\nexact duplicates: %lld groups\n", (long long)r.n_dup_groups);
        for (int64_t g = 0; g < r.n_dup_groups && g < show; g++) {
            printf("  lines ");
            print_lines(r.dup_lines + r.dup_off[g], r.dup_off[g + 1] - r.dup_off[g], show);
        }
        if (r.n_dup_groups > show) printf("  ... (%lld more groups)\n", (long long)(r.n_dup_groups - show));
    }
    if (r.n_malformed) {
        printf("\nmalformed lines:\n");
        for (int64_t i = 0; i < r.n_malformed; i++) printf("  %s:%lld: %s\n", file, (long long)r.bad_lines[i], r.bad_msgs[i]);
    }
    int rc = r.n_malformed ? 1 : 0;
    keel_data_report_free(&r);
    keel_tokenizer_free(tok);
    return rc;
}

int keel_cmd_data(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "check")) return data_check(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "keel data: expected a subcommand: check\n\n");
    usage(stderr);
    return 2;
}
