#!/usr/bin/env bash
# Inference benchmark (not a test): keel against llama.cpp's llama-bench on the
# same GGUF file, in the same run, same thread count. Prints both and the
# ratios keel / llama.cpp for prompt processing (pp256) and decode (tg64).
#
#   make bench                      # SmolLM2-135M-Instruct Q4_1 from the cache
#   MODEL=path.gguf make bench      # another model
#   THREADS=2 REPS=5 make bench
#
# llama.cpp is built from the source that llama-cpp-python's PyPI sdist vendors
# (tools/build_llama_cpp.sh), into ${KEEL_CACHE:-~/.cache/keel}/llama.cpp-build.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
cache=${KEEL_CACHE:-$HOME/.cache/keel}
MODEL=${MODEL:-$(bash scripts/fetch-models.sh)}
THREADS=${THREADS:-$(nproc)}
REPS=${REPS:-5}
NP=${NP:-256}
NG=${NG:-64}
lb="$cache/llama.cpp-build/bin/llama-bench"
if [ ! -x "$lb" ]; then
  echo "bench: building llama.cpp's llama-bench (once) ..." >&2
  bash tools/build_llama_cpp.sh >&2
fi
echo "model: $MODEL  threads: $THREADS  reps: $REPS"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} (left as found)"
k=$("$BUILD/bench/bench_infer" "$MODEL" "$NP" "$NG" "$REPS" "$THREADS")
l=$("$lb" -m "$MODEL" -p "$NP" -n "$NG" -t "$THREADS" -r "$REPS" -o json 2>/dev/null)
python3 - "$k" "$l" "$NP" "$NG" <<'PY'
import json, sys
k = json.loads(sys.argv[1]); l = json.loads(sys.argv[2]); np_, ng = int(sys.argv[3]), int(sys.argv[4])
lpp = next(r for r in l if r.get("n_prompt") == np_ and r.get("n_gen") == 0)["avg_ts"]
ltg = next(r for r in l if r.get("n_gen") == ng and r.get("n_prompt") == 0)["avg_ts"]
print(f"{'':14}{'pp'+str(np_)+' tok/s':>14}{'tg'+str(ng)+' tok/s':>14}")
print(f"{'keel':14}{k['pp_tok_s']:14.1f}{k['tg_tok_s']:14.1f}")
print(f"{'llama.cpp':14}{lpp:14.1f}{ltg:14.1f}")
print(f"{'ratio':14}{k['pp_tok_s']/lpp:13.2f}x{k['tg_tok_s']/ltg:13.2f}x   (keel / llama.cpp; goal pp >= 1.5x)")
PY
