// SPDX-License-Identifier: MIT
// cmd_tokenize.c — `keel tokenize -m MODEL TEXT`: token ids and their pieces.
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: keel tokenize -m MODEL [options] TEXT\n\n"
               "Print the token ids of TEXT (one per line with its piece, or --ids for one line).\n\n"
               "  -m, --model PATH    .gguf file, tokenizer.json, or Hugging Face model directory\n"
               "  -f, --file PATH     read the text from a file ('-' = stdin) instead\n"
               "  --no-special        do not add BOS/EOS\n"
               "  --parse-special     recognise special tokens written in the text (e.g. <|im_start|>)\n"
               "  --ids               print only the ids, space-separated, on one line\n");
}

int keel_cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *file = NULL;
    bool add_special = true, parse_special = false, ids_only = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc) model = argv[++i];
        else if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && i + 1 < argc) file = argv[++i];
        else if (!strcmp(a, "--no-special")) add_special = false;
        else if (!strcmp(a, "--parse-special")) parse_special = true;
        else if (!strcmp(a, "--ids")) ids_only = true;
        else if (a[0] == '-' && a[1]) { fprintf(stderr, "keel tokenize: unknown option %s\n", a); usage(stderr); return 2; }
        else if (!text) text = a;
        else { usage(stderr); return 2; }
    }
    if (!model || (!text && !file)) { usage(stderr); return 2; }
    char *owned = NULL;
    size_t len = 0;
    if (file) {
        if (!(owned = keel_cli_slurp(file, &len))) return 1;
        text = owned;
    } else len = strlen(text);

    keel_err err = {0};
    keel_model *m = NULL;
    keel_tokenizer *tok_owned = NULL;
    const keel_tokenizer *tok = NULL;
    size_t ml = strlen(model);
    bool json = ml > 5 && !strcmp(model + ml - 5, ".json");
    keel_status st;
    if (json) {
        st = keel_tokenizer_load(model, &tok_owned, &err);
        tok = tok_owned;
    } else {
        keel_model_params mp = keel_model_default_params();
        st = keel_model_load(model, &mp, &m, &err);
        if (st == KEEL_OK) tok = keel_model_tokenizer(m);
    }
    int rc = 0;
    int32_t *ids = NULL;
    size_t n = 0;
    if (st != KEEL_OK) {
        rc = keel_cli_fail(&err, NULL);
    } else if (keel_tokenize(tok, text, len, add_special, parse_special, &ids, &n, &err) != KEEL_OK) {
        // name the file: the tokenizer only knows the byte offset
        if (file) fprintf(stderr, "keel: %s: %s\n", file, err.msg), rc = 1;
        else rc = keel_cli_fail(&err, NULL);
    } else if (ids_only) {
        for (size_t i = 0; i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
        printf("\n");
    } else {
        for (size_t i = 0; i < n; i++) {
            const char *p = keel_token_text(tok, ids[i]);
            printf("%6d  '%s'\n", ids[i], p ? p : "");
        }
        fprintf(stderr, "%zu tokens\n", n);
    }
    keel_free(ids);
    keel_tokenizer_free(tok_owned);
    keel_model_free(m);
    free(owned);
    return rc;
}
