#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_registry_cli.sh — the registry commands on real runs: two short
# stories260K trainings with the capability ledger record into one keel.db
# (an aggressive one whose perplexity bound breaks and stops it, a gentle one
# within bounds); then `keel runs`, `keel show RUN|CHECKPOINT`, `keel diff`,
# `keel rollback` (last ok, --to, another run's checkpoint refused), `keel
# fsck` (clean, then a modified checkpoint file: exit 1), the default registry
# (./keel.db, $KEEL_REGISTRY), usage errors (exit 2) and failures (exit 1).
# Run by tests/run.sh; ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
. tests/cli/lib.sh
MODEL=$SHARED/models/stories260K/stories260K.gguf
CLI_OUT_LINES=30 CLI_ERR_LINES=10
cli_need_file "$MODEL"
cli_need_keel
if ! "$KEEL" train --help 2>&1 | grep -q -- "--registry"; then
  echo "skipped: keel train does not record into a registry (--registry) in this build"; echo "0 passed, 0 failed"; exit 0
fi
cli_tmp registry-cli
MODEL=$(realpath "$MODEL")
REPO=$(pwd)
KEEL=$(realpath "$KEEL")
DB=$tmp/keel.db

job() { # name lr steps on_violation
  cat >"$tmp/$1.yaml" <<EOF
model: $MODEL
method: full
full: {trainable: ["*"], freeze: [token_embd.weight]}
data: {train: $REPO/examples/data/noise-train.jsonl, format: text, max_seq_len: 96}
train: {lr: $2, batch_size: 4, max_steps: $3, schedule: constant, seed: 3, threads: 1}
output: {dir: $tmp/$1, save_every: 2}
capabilities:
  - {name: stories_ppl, type: perplexity, task: text, data: $REPO/examples/data/stories-heldout.txt, window: 64, max_drop: 50%}
  - {name: story_endings, type: multiple_choice, data: $REPO/examples/data/stories-mc.jsonl}
monitor: {every: 2, on_violation: $4}
EOF
}
job aggr 1e-3 6 stop
job gentle 1e-6 4 stop
run train "$tmp/aggr.yaml" --registry "$DB" -q
check "aggressive run stops on its bound (exit 3)" [ "$rc" -eq 3 ]
run train "$tmp/gentle.yaml" --registry "$DB" -q
check "gentle run" [ "$rc" -eq 0 ]

run runs --registry "$DB"
check "runs exits 0" [ "$rc" -eq 0 ]
check "runs: both" eval 'outhas " aggr " && outhas " gentle "'
check "runs: statuses" eval 'outhas "stopped" && outhas "done"'
check "runs: aggr active is its last good checkpoint" grep -q "aggr .* step-0 " "$tmp/out"
check "runs: gentle active is its last" grep -q "gentle .* step-4 " "$tmp/out"

run show aggr --registry "$DB"
check "show run exits 0" [ "$rc" -eq 0 ]
check "show: header" eval 'outhas "run 1: aggr" && outhas "status     stopped"'
check "show: ledger with CIs" eval 'outhas "stories_ppl" && grep -q "stories_ppl .*ppl .*\[.*\] .*\[.*\] @2" "$tmp/out"'
check "show: bound broken" grep -q "max_drop 50% (point) .*BROKEN" "$tmp/out"
check "show: decision" grep -q "stop .*rose .* from base" "$tmp/out"
check "show: checkpoints with lineage" grep -q "aggr@step-2 .* no .* aggr@step-0" "$tmp/out"
check "show: active marked" grep -q "^  \* .*aggr@step-0 " "$tmp/out"
run show 2 --registry "$DB"
check "show by number" outhas "run 2: gentle"
run show "$tmp/gentle" --registry "$DB"
check "show by directory" outhas "run 2: gentle"
run show aggr@step-2 --registry "$DB"
check "show checkpoint" eval '[ "$rc" -eq 0 ] && outhas "checkpoint aggr@step-2"'
check "show checkpoint lineage" outhas "aggr@step-2 <- aggr@step-0 <- aggr@base"
check "show checkpoint scores" eval 'outhas "stories_ppl" && outhas "monitor"'
check "show checkpoint sha256" grep -qE "sha256     [0-9a-f]{64}" "$tmp/out"
run show "$tmp/aggr/checkpoints/step-2" --registry "$DB"
check "show checkpoint by path" outhas "checkpoint aggr@step-2"

run diff aggr@base aggr@step-2 --registry "$DB"
check "diff exits 0" [ "$rc" -eq 0 ]
check "diff: perplexity significantly worse" grep -q "stories_ppl .*yes (B worse)" "$tmp/out"
check "diff: test named" outhas "unpaired"
run diff aggr gentle --registry "$DB"
check "diff of runs (active checkpoints)" eval '[ "$rc" -eq 0 ] && outhas "A = aggr@step-0" && outhas "B = gentle@step-4"'

run rollback aggr --to step-2 --registry "$DB"
check "rollback --to exits 0" eval '[ "$rc" -eq 0 ] && outhas "checkpoints/step-2"'
run runs --registry "$DB"
check "runs reflects the rollback" grep -q "aggr .* step-2 " "$tmp/out"
run rollback aggr --registry "$DB"
check "rollback to the last ok" eval '[ "$rc" -eq 0 ] && outhas "checkpoints/step-0"'
run show aggr --registry "$DB"
check "manual rollback recorded" outhas "manual rollback (keel rollback)"
run rollback aggr --to gentle@step-4 --registry "$DB"
check "another run's checkpoint refused" eval '[ "$rc" -eq 1 ] && errhas "belongs to run 2"'
run rollback aggr --to step-99 --registry "$DB"
check "unknown checkpoint" eval '[ "$rc" -eq 1 ] && errhas "step-99"'

run fsck --registry "$DB"
check "fsck clean" eval '[ "$rc" -eq 0 ] && outhas " 0 problems"'
printf '{"tampered": true}\n' >"$tmp/gentle/checkpoints/step-2/trainer_state.json"
run fsck --registry "$DB"
check "fsck finds the modified checkpoint" eval '[ "$rc" -eq 1 ] && outhas "SHA-256 mismatch" && outhas "gentle@step-2"'

# Default registry: ./keel.db, or $KEEL_REGISTRY.
(cd "$tmp" && "$KEEL" runs >"$tmp/out" 2>"$tmp/err"); rc=$?
check "default ./keel.db" eval '[ "$rc" -eq 0 ] && outhas " gentle "'
KEEL_REGISTRY=$DB "$KEEL" runs >"$tmp/out" 2>"$tmp/err"; rc=$?
check "KEEL_REGISTRY" eval '[ "$rc" -eq 0 ] && outhas " gentle "'

# Failures (1) and usage errors (2).
run runs --registry "$tmp/none.db"
check "missing registry" eval '[ "$rc" -eq 1 ] && errhas "no registry at $tmp/none.db"'
check "missing registry not created" [ ! -e "$tmp/none.db" ]
run show nope --registry "$DB"
check "unknown run" eval '[ "$rc" -eq 1 ] && errhas "nope"'
run diff aggr --registry "$DB"
check "diff needs two" [ "$rc" -eq 2 ]
run show --bogus --registry "$DB"
check "unknown option" eval '[ "$rc" -eq 2 ] && errhas "--bogus"'
run runs --registry
check "--registry needs a value" [ "$rc" -eq 2 ]
for c in runs show diff rollback fsck; do
  run "$c" --help
  check "$c --help" eval '[ "$rc" -eq 0 ] && outhas "usage: keel $c" && outhas "--registry PATH"'
done

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
