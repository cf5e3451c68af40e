#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_train_cli.sh — `keel train` end to end on stories260K (a few steps of
# examples/stories260k-full.yaml with overrides): progress lines, summary,
# run directory (job.yaml, metrics.jsonl, checkpoints), --resume, Ctrl-C
# (SIGINT: finish the step, save, exit 130, resumable), refusing a non-empty
# output.dir, a bad job (exit 1, one line, nothing written), usage errors
# (exit 2). Run by tests/run.sh; ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
. tests/cli/lib.sh
MODEL=$SHARED/models/stories260K/stories260K.gguf
CLI_ERR_LINES=10
cli_need_file "$MODEL"
cli_tmp train-cli
export KEEL_REGISTRY=$tmp/keel.db # runs are recorded there, not in the repository
cli_need_keel
JOB=examples/stories260k-full.yaml
SETS=(--set "model=$MODEL" --set train.max_steps=6 --set output.save_every=3 --set train.threads=1
      --set data.max_seq_len=64 --set train.warmup_steps=2)

run train "$JOB" "${SETS[@]}" --set "output.dir=$tmp/a"
check "train exits 0" [ "$rc" -eq 0 ]
check "progress line" errhas "step 6/6  loss "
check "progress has tok/s and eta" errhas " tok/s  elapsed "
check "validation loss" errhas "val_loss"
check "summary" errhas "done: at step 6"
check "summary peak RSS" errhas "peak RSS"
check "job.yaml" [ -s "$tmp/a/job.yaml" ]
check "metrics: 6 lines" [ "$(wc -l <"$tmp/a/metrics.jsonl")" -eq 6 ]
check "metrics fields" grep -q '"step":6,.*"loss":.*"lr":.*"grad_norm":.*"tokens":.*"tokens_per_s":.*"elapsed":' "$tmp/a/metrics.jsonl"
for f in model.safetensors config.json optimizer.safetensors trainer_state.json; do
  check "checkpoint step-3/$f" [ -s "$tmp/a/checkpoints/step-3/$f" ]
  check "checkpoint step-6/$f" [ -s "$tmp/a/checkpoints/step-6/$f" ]
done
check "no temporaries left" [ -z "$(find "$tmp/a" -name '*.tmp*')" ]
jobok() { "$KEEL" job check "$1" >/dev/null 2>&1; }
check "resolved job.yaml is a valid job" jobok "$tmp/a/job.yaml"

run train "$JOB" "${SETS[@]}" --set "output.dir=$tmp/a"
check "non-empty output.dir refused" [ "$rc" -eq 1 ]
check "refusal names --resume" errhas "--resume"

# --stop-after then --resume: the uninterrupted metrics (time fields aside)
run train "$JOB" "${SETS[@]}" --set "output.dir=$tmp/b" --stop-after 3
check "stop-after exits 0" [ "$rc" -eq 0 ]
check "stop-after says how to resume" errhas "keel train --resume"
run train --resume "$tmp/b"
check "resume exits 0" [ "$rc" -eq 0 ]
check "resume message" errhas "resuming at step 3 of 6"
check "resumed metrics = uninterrupted" cmp -s <(cut -d, -f1-6 "$tmp/a/metrics.jsonl") <(cut -d, -f1-6 "$tmp/b/metrics.jsonl")

# Ctrl-C: a long run, SIGINT after the first step -> checkpoint, exit 130, resumable
"$KEEL" train "$JOB" --set "model=$MODEL" --set train.max_steps=100000 --set train.threads=1 \
  --set "output.dir=$tmp/c" </dev/null >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do grep -q "^step 1/" "$tmp/err" 2>/dev/null && break; sleep 0.1; done
kill -INT "$pid"; wait "$pid"; rc=$?
check "SIGINT exits 130" [ "$rc" -eq 130 ]
check "SIGINT: interrupted summary" errhas "interrupted:"
ck=$(ls -d "$tmp/c/checkpoints"/step-* 2>/dev/null | grep -v '\.tmp' | head -1)
check "SIGINT: checkpoint saved" [ -n "$ck" ] && [ -s "$ck/trainer_state.json" ]
run train --resume "$tmp/c" --stop-after 1
check "SIGINT: resumable" [ "$rc" -eq 0 ]

# bad job: exit 1, one line naming key and file, nothing written
printf 'model: %s\ndata:\n  train: examples/data/stories-train.jsonl\ntrain:\n  lr: -1\noutput:\n  dir: %s/d\n' "$MODEL" "$tmp" >"$tmp/bad.yaml"
run train "$tmp/bad.yaml"
check "bad job exits 1" [ "$rc" -eq 1 ]
check "bad job: one line naming the key" [ "$(wc -l <"$tmp/err")" -eq 1 ] && errhas "key 'train.lr'" && errhas "bad.yaml:5"
check "bad job: nothing written" [ ! -e "$tmp/d" ]
run train
check "no job: usage, exit 2" [ "$rc" -eq 2 ]
run train "$JOB" --bogus
check "unknown option: exit 2" [ "$rc" -eq 2 ]
run train --help
check "--help exits 0" [ "$rc" -eq 0 ] && grep -q -- "--resume RUN_DIR" "$tmp/out"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
