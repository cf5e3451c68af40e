#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_crash.sh — kill -9 at random moments of training, measuring and
# checkpointing must never corrupt the registry: after every kill `keel fsck`
# finds the registry consistent and every checkpoint it lists present,
# loadable and matching its SHA-256; the killed run resumes (--resume) from
# its latest complete checkpoint into the same registry row. stories260K with
# the capability ledger on (LoRA, monitor every 2 steps, a checkpoint per step).
# KEEL_CRASH_ROUNDS (default 12; 6 under the sanitizers) sets the number of kills.
# Run by tests/run.sh; ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
. tests/cli/lib.sh
MODEL=$SHARED/models/stories260K/stories260K.gguf
cli_need_file "$MODEL"
cli_need_keel
cli_tmp crash
DB=$tmp/keel.db
rounds=${KEEL_CRASH_ROUNDS:-12}
[ -n "${KEEL_SANITIZE:-}" ] && rounds=${KEEL_CRASH_ROUNDS:-6}

check() { # (lib.sh's check, showing the run's log instead)
  local name=$1; shift
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $name"; sed 's/^/    /' "$tmp/log" | tail -15; fi
}

cat >"$tmp/job.yaml" <<EOF
model: $MODEL
method: lora
lora: {r: 4, alpha: 8}
data: {train: examples/data/noise-train.jsonl, format: text, max_seq_len: 96}
train: {lr: 1e-4, batch_size: 4, max_steps: 40, schedule: constant, seed: 3, threads: 1}
output: {dir: $tmp/run, save_every: 1}
capabilities:
  - {name: stories_ppl, type: perplexity, task: text, data: examples/data/stories-heldout.txt, window: 64, max_drop: 50%}
  - {name: story_endings, type: multiple_choice, data: examples/data/stories-mc.jsonl}
monitor: {every: 2, on_violation: rollback}
EOF

# Random delays in [0.05, 1.5) s: the kill lands in the base measurement, a
# step, a measurement, a checkpoint write or a registry transaction.
RANDOM=4242
for i in $(seq 1 "$rounds"); do
  if [ -d "$tmp/run/checkpoints" ] && ls "$tmp/run/checkpoints" | grep -qv '\.tmp$'; then
    args=(train --resume "$tmp/run")
  else
    rm -rf "$tmp/run"; args=(train "$tmp/job.yaml")
  fi
  "$KEEL" "${args[@]}" --registry "$DB" -q >"$tmp/log" 2>&1 &
  pid=$!
  delay=$(printf '0.%03d' $((50 + RANDOM % 950)))
  [ $((RANDOM % 3)) = 0 ] && delay=1.$((RANDOM % 5))
  sleep "$delay"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  "$KEEL" fsck --registry "$DB" >"$tmp/log" 2>&1; rc=$?
  check "fsck after kill $i (delay $delay s)" [ "$rc" = 0 ]
done

# The run finishes after all the kills, in the same registry row, and fsck is clean.
if [ -d "$tmp/run/checkpoints" ]; then args=(train --resume "$tmp/run"); else rm -rf "$tmp/run"; args=(train "$tmp/job.yaml"); fi
"$KEEL" "${args[@]}" --registry "$DB" -q >"$tmp/log" 2>&1; rc=$?
check "the killed run completes" [ "$rc" = 0 ]
check "final measurement recorded" grep -q '"phase":"final"' "$tmp/run/ledger.jsonl"
"$KEEL" fsck --registry "$DB" >"$tmp/log" 2>&1; rc=$?
check "fsck after completion" [ "$rc" = 0 ]
"$KEEL" runs --registry "$DB" >"$tmp/log" 2>&1
check "one run row for all the restarts" [ "$(grep -c 'done' "$tmp/log")" = 1 ]
last=$(ls -d "$tmp"/run/checkpoints/step-40* 2>/dev/null | head -1)
"$KEEL" generate -m "$MODEL" --adapter "${last:-missing}" -p "Once" -n 4 -t 1 >"$tmp/log" 2>&1
check "the final adapter checkpoint loads and generates" [ $? = 0 ]

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
