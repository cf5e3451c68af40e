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
// --matmul fp32|bf16x3|bf16 -> keel_model_params.matmul_precision.
bool keel_cli_matmul(const char *opt, const char *val, keel_matmul_precision *out);
#define KEEL_CLI_MATMUL_HELP                                                                       \
    "  --matmul P         prompt/batch matmul precision: fp32 (default), bf16x3 (needs AMX:\n"      \
    "                     logits within ~4e-5 of fp32, faster), bf16 (AMX: fastest, ~2e-2)\n"
#endif
