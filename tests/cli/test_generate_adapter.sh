#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_generate_adapter.sh — `keel generate --adapter DIR` and `keel perplexity
# --adapter DIR` (the inference path with a PEFT LoRA adapter, src/eval/adapter.c):
# on the tiny Llama (tests/data/tiny-llama-hf, its GGUF twin tiny-llama.gguf) with
# tests/data/tiny-lora-peft, greedy generation runs, is deterministic, differs from
# the base model's, and is the same text on the HF directory and the GGUF file (the
# loader permutes B's q/k rows for GGUF); perplexity with the adapter differs from
# without; a missing directory, a directory without the tensors, an adapter made for
# another model and a missing value fail with one stderr line naming the file (exit
# 1) or a usage error (exit 2); --help lists the option. `keel generate --run REF`
# on two short real runs recorded in a registry (LoRA on stories260K, full
# fine-tuning of the tiny Llama): the run, RUN@step-N or the directory gives the
# text of -m BASE --adapter CKPT (or of -m CKPT for a full checkpoint); -m
# overrides an adapter's base; conflicting options exit 2; an unknown run or a
# missing registry (never created) exit 1; `keel perplexity --run` too. Run by tests/run.sh (BUILD says which
# build's keel); ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
. tests/cli/lib.sh
cli_tmp gen-adapter
cli_need_keel

HF=tests/data/tiny-llama-hf
GG=tests/data/tiny-llama.gguf
AD=tests/data/tiny-lora-peft
STORIES=${KEEL_SHARED:-../shared}/models/stories260K/stories260K.gguf
PROMPT="the cat sat on the mat"

# ---- generation ---------------------------------------------------------------------------------
run generate -m "$HF" -p "$PROMPT" -n 24 -t 2
base_out=$(cat "$tmp/out")
if [ "$rc" -eq 0 ] && sanitizer_clean; then ok; else bad "generate without adapter (exit $rc)" "want exit 0"; fi

run generate -m "$HF" --adapter "$AD" -p "$PROMPT" -n 24 -t 2
hf_out=$(cat "$tmp/out")
if [ "$rc" -eq 0 ] && sanitizer_clean && [ -n "$hf_out" ]; then ok; else bad "generate --adapter, HF base (exit $rc)" "want exit 0 and text"; fi
if grep -q "generated:" "$tmp/err"; then ok; else bad "generate --adapter speeds" "want the speed line on stderr"; fi

run generate -m "$HF" --adapter "$AD" -p "$PROMPT" -n 24 -t 1
if [ "$rc" -eq 0 ] && [ "$(cat "$tmp/out")" = "$hf_out" ]; then ok
else bad "generate --adapter, 1 thread (exit $rc)" "greedy text differs from the 2-thread run"; fi

if [ "$hf_out" != "$base_out" ]; then ok
else fail=$((fail + 1)); echo "FAIL generate --adapter: the same text as the base model ($hf_out)"; fi

run generate -m "$GG" --adapter "$AD" -p "$PROMPT" -n 24 -t 2
if [ "$rc" -eq 0 ] && sanitizer_clean && [ "$(cat "$tmp/out")" = "$hf_out" ]; then ok
else bad "generate --adapter, GGUF twin (exit $rc)" "want the HF base's text: $hf_out"; fi

# ---- perplexity ---------------------------------------------------------------------------------
for i in 1 2 3 4 5 6 7 8; do echo "the cat sat on the mat and the dog ran to the park with a ball"; done >"$tmp/text.txt"
run perplexity -m "$HF" -f "$tmp/text.txt" --ctx 32 -t 2
p0=$(grep -o 'PPL = [0-9.]*' "$tmp/out")
if [ "$rc" -eq 0 ] && [ -n "$p0" ]; then ok; else bad "perplexity without adapter (exit $rc)" "want a PPL line"; fi
run perplexity -m "$HF" --adapter "$AD" -f "$tmp/text.txt" --ctx 32 -t 2
p1=$(grep -o 'PPL = [0-9.]*' "$tmp/out")
if [ "$rc" -eq 0 ] && sanitizer_clean && [ -n "$p1" ] && [ "$p1" != "$p0" ]; then ok
else bad "perplexity --adapter (exit $rc)" "want a PPL line different from the base's ($p0 vs $p1)"; fi

# ---- errors ---------------------------------------------------------------------------------------
# expect_fail NAME FILE PROBLEM_REGEX ARGS...: exit 1, no stdout, one stderr line naming FILE
expect_fail() {
  local name=$1 file=$2 problem=$3
  shift 3
  run "$@"
  local why=""
  if ! sanitizer_clean; then why="sanitizer report"
  elif [ "$rc" -ne 1 ]; then why="exit $rc, want 1"
  elif [ -s "$tmp/out" ]; then why="wrote to stdout"
  elif [ "$(wc -l <"$tmp/err")" -ne 1 ]; then why="$(wc -l <"$tmp/err") stderr lines, want 1"
  elif ! grep -qF -- "$file" "$tmp/err"; then why="message does not name $file"
  elif ! grep -qiE -- "$problem" "$tmp/err"; then why="message does not say /$problem/"
  fi
  if [ -z "$why" ]; then ok; else bad "$name" "$why"; fi
}
mkdir "$tmp/no-tensors"
cp "$AD/adapter_config.json" "$tmp/no-tensors/"
for cmd in generate perplexity; do
  if [ "$cmd" = generate ]; then extra=(-p "$PROMPT" -n 2); else extra=(-f "$tmp/text.txt" --ctx 32); fi
  expect_fail "$cmd: missing adapter dir" "$tmp/nope" "not an adapter directory" \
    "$cmd" -m "$HF" --adapter "$tmp/nope" "${extra[@]}"
  expect_fail "$cmd: adapter without tensors" "$tmp/no-tensors/adapter_model.safetensors" "no such file" \
    "$cmd" -m "$HF" --adapter "$tmp/no-tensors" "${extra[@]}"
  if [ -f "$STORIES" ]; then
    expect_fail "$cmd: adapter of another model" "$AD/adapter_model.safetensors" "shape" \
      "$cmd" -m "$STORIES" --adapter "$AD" "${extra[@]}"
  fi
  run "$cmd" -m "$HF" --adapter
  if [ "$rc" -eq 2 ] && [ ! -s "$tmp/out" ] && [ -s "$tmp/err" ] && sanitizer_clean; then ok
  else bad "$cmd --adapter without a value (exit $rc)" "want exit 2"; fi
  run "$cmd" --help
  if [ "$rc" -eq 0 ] && grep -q -- "--adapter DIR" "$tmp/out"; then ok
  else bad "$cmd --help (exit $rc)" "want --adapter in the usage"; fi
done

# ---- --run REF: checkpoints from the registry ------------------------------------------------------
# Two short real runs recorded into one registry: LoRA on stories260K (q/v/down_proj, r 4) and full
# fine-tuning of the tiny Llama (an HF base, so its checkpoint carries the tokenizer files).
if [ -f "$STORIES" ] && "$KEEL" train --help 2>&1 | grep -q -- "--registry"; then
  REPO=$(pwd)
  SM=$(realpath "$STORIES")
  DB=$tmp/keel.db
  cat >"$tmp/lora.yaml" <<EOF
model: $SM
method: lora
lora: {r: 4, alpha: 8, target_modules: [q_proj, v_proj, down_proj]}
data: {train: $REPO/examples/data/noise-train.jsonl, format: text, max_seq_len: 64}
train: {lr: 5e-2, batch_size: 2, max_steps: 4, schedule: constant, seed: 3, threads: 1}
output: {dir: $tmp/lora, save_every: 2}
EOF
  cat >"$tmp/full.yaml" <<EOF
model: $REPO/$HF
method: full
data: {train: $REPO/examples/data/noise-train.jsonl, format: text, max_seq_len: 64}
train: {lr: 1e-3, batch_size: 2, max_steps: 2, schedule: constant, seed: 3, threads: 1}
output: {dir: $tmp/full, save_every: 2}
EOF
  run train "$tmp/lora.yaml" --registry "$DB" -q
  if [ "$rc" -eq 0 ]; then ok; else bad "keel train (LoRA run, exit $rc)" "want exit 0"; fi
  run train "$tmp/full.yaml" --registry "$DB" -q
  if [ "$rc" -eq 0 ]; then ok; else bad "keel train (full run, exit $rc)" "want exit 0"; fi
  CK=$tmp/lora/checkpoints/step-4
  SP="Once upon a time"

  run generate -m "$SM" -p "$SP" -n 24 -t 1
  sbase=$(cat "$tmp/out")
  run generate -m "$SM" --adapter "$CK" -p "$SP" -n 24 -t 1
  sad=$(cat "$tmp/out")
  if [ "$rc" -eq 0 ] && [ "$sad" != "$sbase" ]; then ok
  else bad "the trained adapter changes stories260K's text (exit $rc)" "same text as the base: $sad"; fi
  for ref in lora lora@step-4 "$CK"; do
    run generate --run "$ref" --registry "$DB" -p "$SP" -n 24 -t 1
    if [ "$rc" -eq 0 ] && sanitizer_clean && [ "$(cat "$tmp/out")" = "$sad" ] && grep -qF "adapter $CK" "$tmp/err"; then ok
    else bad "generate --run $ref (exit $rc)" "want the base + adapter text of -m/--adapter: $sad"; fi
  done
  run generate --run lora@step-2 --registry "$DB" -p "$SP" -n 24 -t 1
  if [ "$rc" -eq 0 ] && grep -qF "adapter $tmp/lora/checkpoints/step-2" "$tmp/err"; then ok
  else bad "generate --run lora@step-2 (exit $rc)" "want the step-2 adapter"; fi
  run generate --run lora -m "$SM" --registry "$DB" -p "$SP" -n 24 -t 1
  if [ "$rc" -eq 0 ] && [ "$(cat "$tmp/out")" = "$sad" ]; then ok
  else bad "generate --run lora -m BASE (exit $rc)" "want the same text"; fi
  KABS=$(realpath "$KEEL")
  (cd "$tmp" && "$KABS" generate --run lora -p "$SP" -n 24 -t 1 </dev/null >"$tmp/out" 2>"$tmp/err"); rc=$?
  if [ "$rc" -eq 0 ] && [ "$(cat "$tmp/out")" = "$sad" ]; then ok
  else bad "generate --run with ./keel.db (exit $rc)" "want the default registry used"; fi
  KEEL_REGISTRY=$DB "$KEEL" generate --run lora -p "$SP" -n 24 -t 1 </dev/null >"$tmp/out" 2>"$tmp/err"; rc=$?
  if [ "$rc" -eq 0 ] && [ "$(cat "$tmp/out")" = "$sad" ]; then ok
  else bad "generate --run with \$KEEL_REGISTRY (exit $rc)" "want that registry used"; fi

  # perplexity --run: the numbers of -m BASE --adapter CKPT
  for i in 1 2 3 4 5 6; do echo "Once upon a time, there was a little girl named Lily. She loved to play outside."; done >"$tmp/story.txt"
  run perplexity -m "$SM" --adapter "$CK" -f "$tmp/story.txt" --ctx 32 -t 1
  pa=$(grep -o 'PPL = .*' "$tmp/out")
  run perplexity --run lora --registry "$DB" -f "$tmp/story.txt" --ctx 32 -t 1
  if [ "$rc" -eq 0 ] && [ -n "$pa" ] && [ "$(grep -o 'PPL = .*' "$tmp/out")" = "$pa" ]; then ok
  else bad "perplexity --run lora (exit $rc)" "want the -m/--adapter result: $pa"; fi
  run perplexity --run lora --adapter "$AD" --registry "$DB" -f "$tmp/story.txt"
  if [ "$rc" -eq 2 ] && grep -q "both name an adapter" "$tmp/err"; then ok
  else bad "perplexity --run LORA --adapter (exit $rc)" "want exit 2"; fi

  FK=$tmp/full/checkpoints/step-2
  run generate -m "$FK" -p "$PROMPT" -n 24 -t 1
  fout=$(cat "$tmp/out")
  run generate --run full --registry "$DB" -p "$PROMPT" -n 24 -t 1
  if [ "$rc" -eq 0 ] && sanitizer_clean && [ "$(cat "$tmp/out")" = "$fout" ] && grep -qF "full: $FK" "$tmp/err"; then ok
  else bad "generate --run full (exit $rc)" "want the full checkpoint's own text: $fout"; fi

  # usage errors (exit 2) and failures (exit 1, one line naming the thing)
  run generate --run lora --adapter "$AD" --registry "$DB" -p "$SP" -n 2
  if [ "$rc" -eq 2 ] && [ ! -s "$tmp/out" ] && grep -q "both name an adapter" "$tmp/err"; then ok
  else bad "--run LORA --adapter (exit $rc)" "want exit 2: both name an adapter"; fi
  run generate --run full -m "$HF" --registry "$DB" -p "$SP" -n 2
  if [ "$rc" -eq 2 ] && [ ! -s "$tmp/out" ] && grep -q "both name the model" "$tmp/err"; then ok
  else bad "--run FULL -m (exit $rc)" "want exit 2: both name the model"; fi
  run generate --run
  if [ "$rc" -eq 2 ] && [ ! -s "$tmp/out" ]; then ok; else bad "--run without a value (exit $rc)" "want exit 2"; fi
  expect_fail "--run of an unknown run" "$DB" "nosuch" generate --run nosuch --registry "$DB" -p "$SP" -n 2
  expect_fail "--run without a registry" "$tmp/none.db" "no registry" generate --run lora --registry "$tmp/none.db" -p "$SP" -n 2
  if [ ! -e "$tmp/none.db" ]; then ok; else fail=$((fail + 1)); echo "FAIL --run created a registry"; fi
  expect_fail "--run with a missing base" "$tmp/nope.gguf" "not found" \
    generate --run lora -m "$tmp/nope.gguf" --registry "$DB" -p "$SP" -n 2
  for cmd in generate perplexity; do
    run "$cmd" --help
    if grep -q -- "--run REF" "$tmp/out" && grep -q -- "--registry PATH" "$tmp/out"; then ok
    else bad "$cmd --help" "want --run and --registry listed"; fi
  done
else
  echo "skipped: --run part ($STORIES absent or keel train without --registry)"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
