#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_job_cli.sh — `keel job check`: a valid job (the shipped examples, with
# overrides) prints every key resolved and exits 0, and the output reads back
# as the same job; an invalid job or override exits 1 with one stderr line
# naming FILE:LINE:COL and the key; bad usage exits 2. Run by tests/run.sh;
# ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
. tests/cli/lib.sh
cli_tmp job-cli
cli_need_keel

for ex in examples/stories260k-full.yaml examples/smollm2-lora.yaml; do
  run job check "$ex"
  check "$ex valid" [ "$rc" -eq 0 ]
  check "$ex every section" has "output:"
  cp "$tmp/out" "$tmp/resolved.yaml"
  run job check "$tmp/resolved.yaml"
  check "$ex resolved reads back the same" cmp -s "$tmp/out" "$tmp/resolved.yaml"
done

run job check examples/smollm2-lora.yaml --set train.lr=3e-4 --set=lora.r=4
check "overrides exit 0" [ "$rc" -eq 0 ]
check "lr override" has "  lr: 0.0003"
check "r override" has "  r: 4"

run job check tests/data/jobs/bad_lr.yaml
check "bad lr exits 1" [ "$rc" -eq 1 ]
check "bad lr message" err_is "tests/data/jobs/bad_lr.yaml:6:7: key 'train.lr': must be in (0, 10], got -0.001"
run job check tests/data/jobs/typo.yaml
check "typo message" err_is "key 'data.max_seq_length': unknown key (did you mean 'max_seq_len'?)"
run job check tests/data/jobs/ledger.yaml
check "ledger exits 1" [ "$rc" -eq 1 ]
check "ledger message" err_is "tests/data/jobs/ledger.yaml:5:5: key 'capabilities[0].type': required"
run job check examples/smollm2-lora.yaml --set train.batch_size=many
check "bad override message" err_is "--set train.batch_size=many: key 'train.batch_size': expected an integer, got 'many'"
run job check tests/data/jobs/none.yaml
check "missing file" err_is "tests/data/jobs/none.yaml"
run job check
check "no file exits 2" [ "$rc" -eq 2 ]
run job
check "no subcommand exits 2" [ "$rc" -eq 2 ]
run job check --help
check "help exits 0" [ "$rc" -eq 0 ]

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
