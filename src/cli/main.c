// SPDX-License-Identifier: MIT
// main.c — `keel <command>`: dispatch only; each command lives in cmd_*.c.
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "keel %s — fine-tuning engine for LLMs\n\n"
            "usage: keel <command> [options]\n\n"
            "commands:\n"
            "  data        check a JSONL training file: counts, lengths, duplicates, malformed lines\n"
            "  eval        score a capability suite (YAML) on a model: value, 95%% CI, n\n"
            "  info        describe a model file: architecture, tokenizer, tensors\n"
            "  job         check a training job (YAML) and print it resolved\n"
            "  generate    generate text from a prompt (streaming)\n"
            "  perplexity  perplexity of a text file (llama.cpp's method)\n"
            "  tokenize    show the token ids of a text\n"
            "  train       run a training job (YAML): full/LoRA/QLoRA, checkpoints, resume, the\n"
            "              capability ledger (capabilities measured, bounds enforced)\n"
            "  runs        list the runs recorded in the registry (keel.db)\n"
            "  show        a run's ledger, decisions and checkpoints, or one checkpoint\n"
            "  diff        two checkpoints' capabilities side by side, with significance\n"
            "  rollback    make an earlier checkpoint of a run its active version\n"
            "  fsck        verify the registry against the checkpoint files\n\n"
            "Run 'keel <command> --help' for its options.\n",
            KEEL_VERSION);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("keel %s\n", KEEL_VERSION);
        return 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"data", keel_cmd_data},
        {"eval", keel_cmd_eval},
        {"info", keel_cmd_info},
        {"job", keel_cmd_job},
        {"generate", keel_cmd_generate},
        {"perplexity", keel_cmd_perplexity},
        {"tokenize", keel_cmd_tokenize},
        {"train", keel_cmd_train},
        {"runs", keel_cmd_runs},
        {"show", keel_cmd_show},
        {"diff", keel_cmd_diff},
        {"rollback", keel_cmd_rollback},
        {"fsck", keel_cmd_fsck},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "keel: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
