#!/usr/bin/env bash
# The demo: keel's main job on the bundled default. SmolLM2-135M-Instruct
# answers through its chat template (streaming, speeds at the end); then
# `keel train` fine-tunes stories260K on the bundled stories
# (examples/stories260k-full.yaml) into a fresh run directory, with its
# progress line, metrics.jsonl and HF-layout checkpoints.
set -euo pipefail
cd "$(dirname "$0")/.."
model=$(bash scripts/fetch-models.sh)
./keel info "$model" --no-tensors
echo
echo '$ keel generate -m SmolLM2-135M-Instruct.Q4_1.gguf --chat -p "Describe the water cycle in simple terms." -n 96'
./keel generate -m "$model" --chat -p "Describe the water cycle in simple terms." -n 96
echo
run=$(mktemp -d /tmp/keel-demo.XXXXXX)/stories260k-full
echo "\$ keel train examples/stories260k-full.yaml --set output.dir=$run"
./keel train examples/stories260k-full.yaml --set output.dir="$run"
ls "$run" "$run/checkpoints"
