#!/usr/bin/env bash
# golden_train_curve.sh — regenerate tests/golden/stories260k_train_curve.json:
# builds test_train and runs it with KEEL_TRAIN_GOLDEN_OUT, which writes the
# 20-step loss curve of its stories260K full fine-tuning job (threads 1, seed
# 1234; the job is in tests/unit/test_train.c). The tolerance (0.02 per step)
# allows other CPUs' float rounding (AVX-512 vs AVX2 kernels); on one machine
# runs are bit-identical. Run from anywhere: tools/golden_train_curve.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
make -s BUILD="$BUILD" "$BUILD/tests/test_train"
KEEL_TRAIN_GOLDEN_OUT=tests/golden/stories260k_train_curve.json "$BUILD/tests/test_train" || true
cat tests/golden/stories260k_train_curve.json
