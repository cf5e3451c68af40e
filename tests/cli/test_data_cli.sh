#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_data_cli.sh — `keel data check` end to end on stories260K's tokenizer:
# a clean file exits 0 with its counts, histogram, over-length and duplicate
# lines; a file with malformed lines exits 1 and lists each as FILE:LINE:
# reason; a missing file or model is one stderr line; bad usage exits 2.
# Run by tests/run.sh (BUILD says which build's keel); ends with
# "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
. tests/cli/lib.sh
MODEL=$SHARED/models/stories260K/stories260K.gguf
CLI_OUT_LINES=30
cli_tmp data-cli
cli_need_keel

run data check tests/data/jsonl/dups.jsonl -m "$MODEL" --max-seq-len 6
check "clean exits 0" [ "$rc" -eq 0 ]
check "counts" has "examples       6"
check "malformed 0" has "malformed      0"
check "histogram" has "token length histogram:"
check "over-length lines" has "over-length (> 6 tokens, truncated): 6; lines 1, 2, 3, 4, 5, 6"
check "duplicate groups" has "exact duplicates: 2 groups"
check "cat group" has "lines 1, 3, 6"
check "dog group" has "lines 2, 5"
check "no stderr" [ ! -s "$tmp/err" ]

run data check tests/data/jsonl/bad.jsonl -m "$MODEL"
check "malformed exits 1" [ "$rc" -eq 1 ]
check "bad json line" has "tests/data/jsonl/bad.jsonl:2: invalid JSON at byte 11"
check "missing field line" has "tests/data/jsonl/bad.jsonl:4: missing field \"text\""
check "wrong type line" has "tests/data/jsonl/bad.jsonl:5: field \"text\" must be a string, got a number"
check "utf-8 line" has "tests/data/jsonl/bad.jsonl:6: invalid UTF-8 at byte 15"
check "7 malformed" [ "$(grep -c 'bad.jsonl:[0-9]*:' "$tmp/out")" -eq 7 ]
check "sanitizer clean" sanitizer_clean

run data check tests/data/jsonl/text.jsonl -m "$MODEL" --format chat
check "chat without template exits 1" [ "$rc" -eq 1 ]
check "one stderr line" [ "$(wc -l <"$tmp/err")" -eq 1 ]
check "names the template" grep -qF "chat template" "$tmp/err"

run data check tests/data/jsonl/none.jsonl -m "$MODEL"
check "missing file exits 1" [ "$rc" -eq 1 ]
check "missing file named" grep -qF "tests/data/jsonl/none.jsonl" "$tmp/err"

run data check tests/data/jsonl/text.jsonl -m "$tmp/no-model.gguf"
check "missing model exits 1" [ "$rc" -eq 1 ]

run data check tests/data/jsonl/text.jsonl -m "$MODEL" --format csv
check "bad format exits 2" [ "$rc" -eq 2 ]
run data
check "no subcommand exits 2" [ "$rc" -eq 2 ]
run data check --help
check "help exits 0" [ "$rc" -eq 0 ]
check "help on stdout" has "usage: keel data check"
run --help
check "listed in keel --help" has "  data "

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
