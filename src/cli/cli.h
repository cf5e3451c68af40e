// SPDX-License-Identifier: MIT
// cli.h — the CLI layer: a thin shell over keel.h. Only this layer prints
// for humans or calls exit().
#ifndef KEEL_CLI_H
#define KEEL_CLI_H
#include "keel.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int keel_cmd_data(int argc, char **argv);
int keel_cmd_eval(int argc, char **argv);
int keel_cmd_info(int argc, char **argv);
int keel_cmd_job(int argc, char **argv);
int keel_cmd_generate(int argc, char **argv);
int keel_cmd_perplexity(int argc, char **argv);
int keel_cmd_tokenize(int argc, char **argv);
int keel_cmd_train(int argc, char **argv);
int keel_cmd_runs(int argc, char **argv);
int keel_cmd_show(int argc, char **argv);
int keel_cmd_diff(int argc, char **argv);
int keel_cmd_rollback(int argc, char **argv);
int keel_cmd_fsck(int argc, char **argv);

// Print "keel: <message>" (+ a HINT line when hint is not NULL) and return 1.
int keel_cli_fail(const keel_err *err, const char *hint);
// Option parsing helpers: return false and print a message on bad values.
bool keel_cli_int(const char *opt, const char *val, long lo, long hi, long *out);
bool keel_cli_float(const char *opt, const char *val, double lo, double hi, double *out);
// Reads a whole file (or "-" for stdin) into a NUL-terminated heap string.
char *keel_cli_slurp(const char *path, size_t *len);
// Monotonic seconds (for speeds and elapsed times).
double keel_cli_now_s(void);
// --matmul fp32|bf16x3|bf16 -> keel_model_params.matmul_precision.
bool keel_cli_matmul(const char *opt, const char *val, keel_matmul_precision *out);
// --run REF [--registry PATH] (REF: keel_registry_resolve's references): the
// checkpoint's model and adapter (keel_checkpoint_model) replace *model and
// *adapter; a -m already in *model becomes an adapter checkpoint's base.
// Prints "REF: MODEL [+ adapter DIR]" on stderr. Returns 0, or an exit code
// after printing why: 1 (no registry at the path, which is never created;
// unknown reference; no base found), 2 (-m with a model checkpoint, --adapter
// with an adapter one). *own_model / *own_adapter: keel_free after use.
int keel_cli_run_model(const char *cmd, const char *run, const char *registry, const char **model,
                       const char **adapter, char **own_model, char **own_adapter);
#define KEEL_CLI_RUN_HELP                                                                          \
    "  --run REF          a checkpoint recorded in the registry: a run (its active\n"                \
    "                     checkpoint), RUN@step-N, RUN@base or a checkpoint directory;\n"           \
    "                     a LoRA checkpoint runs on its base model (-m overrides it)\n"             \
    "  --registry PATH    the registry for --run (default $KEEL_REGISTRY, else ./keel.db)\n"
#define KEEL_CLI_MATMUL_HELP                                                                       \
    "  --matmul P         prompt/batch matmul precision: fp32 (default), bf16x3 (needs AMX:\n"      \
    "                     logits within ~4e-5 of fp32, faster), bf16 (AMX: fastest, ~2e-2)\n"
#endif
