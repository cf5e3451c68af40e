#!/usr/bin/env bash
# The demo: keel's main job on the bundled default. SmolLM2-135M-Instruct
# answers through its chat template (streaming, speeds at the end); then
# `keel train` fine-tunes stories260K on the bundled stories
# (examples/stories260k-full.yaml) into a fresh run directory, with its
# progress line, metrics.jsonl and HF-layout checkpoints; then the capability
# ledger (examples/stories260k-ledger.yaml) catches a task that makes the model
# forget how to tell stories, rolls the run back, and `keel show` prints the
# ledger from the run registry.
set -euo pipefail
cd "$(dirname "$0")/.."
model=$(bash scripts/fetch-models.sh)
./keel info "$model" --no-tensors
echo
echo '$ keel generate -m SmolLM2-135M-Instruct.Q4_1.gguf --chat -p "Describe the water cycle in simple terms." -n 96'
./keel generate -m "$model" --chat -p "Describe the water cycle in simple terms." -n 96
echo
run=$(mktemp -d /tmp/keel-demo.XXXXXX)/stories260k-full
export KEEL_REGISTRY=$(dirname "$run")/keel.db # the demo's runs are recorded there, not in ./keel.db
echo "\$ keel train examples/stories260k-full.yaml --set output.dir=$run"
./keel train examples/stories260k-full.yaml --set output.dir="$run"
ls "$run" "$run/checkpoints"
echo
reg=$KEEL_REGISTRY
lrun=$(dirname "$run")/stories260k-ledger
echo "\$ keel train examples/stories260k-ledger.yaml --set output.dir=$lrun --registry $reg -q"
rc=0
./keel train examples/stories260k-ledger.yaml --set output.dir="$lrun" --registry "$reg" -q || rc=$?
[ "$rc" = 3 ] || { echo "demo: expected exit status 3 (rolled back), got $rc" >&2; exit 1; }
echo
echo "\$ keel show stories260k-ledger --registry $reg"
./keel show stories260k-ledger --registry "$reg"
