#!/usr/bin/env bash
# The demo: describe SmolLM2-135M-Instruct and let it answer a question through
# its chat template, streaming, with speeds at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
model=$(bash scripts/fetch-models.sh)
./keel info "$model" --no-tensors
echo
echo '$ keel generate -m SmolLM2-135M-Instruct.Q4_1.gguf --chat -p "What is the capital of France?" -n 64'
./keel generate -m "$model" --chat -p "What is the capital of France?" -n 64
