#!/bin/sh
# check_lmeval_parity.sh -- keel eval vs lm-evaluation-harness on the full ARC-Easy and PIQA sets.
#
# Runs `keel eval` (0-shot multiple choice, scored as lm-eval scores it) on SmolLM2-135M-Instruct Q4_1
# over all 2376 ARC-Easy test and 1838 PIQA validation items, then compares acc and acc_norm with the
# lm-eval reference numbers in tests/golden/lmeval_smollm2.json (made by tools/lmeval_parity.py, lm-eval's
# `hf` model on the same weights dequantized to fp32). Exit 1 if any differs by more than TOL points
# (default 0.5), 2 on a setup error. Slow: the full sets are ~13k requests (minutes on 2 cores).
# Usage: tools/check_lmeval_parity.sh [KEEL_BIN]   (env: MODEL, DATA, TOL, THREADS, TASKS="arc_easy piqa")
set -eu
cd "$(dirname "$0")/.."
KEEL=${1:-./build/keel}
MODEL=${MODEL:-${KEEL_CACHE:-$HOME/.cache/keel}/SmolLM2-135M-Instruct.Q4_1.gguf}
DATA=${DATA:-/work/shared/datasets}
TOL=${TOL:-0.5}
TASKS=${TASKS:-"arc_easy piqa"}
GOLDEN=tests/golden/lmeval_smollm2.json
for f in "$KEEL" "$MODEL" "$GOLDEN"; do
    [ -e "$f" ] || { echo "check_lmeval_parity: missing $f" >&2; exit 2; }
done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
{
    echo "capabilities:"
    for t in $TASKS; do
        case $t in
            arc_easy) f=arc_easy_test.jsonl ;;   arc_challenge) f=arc_challenge_test.jsonl ;;
            piqa) f=piqa_validation.jsonl ;;      boolq) f=boolq_validation.jsonl ;;
            winogrande) f=winogrande_validation_lmeval_form.jsonl ;;
            *) echo "check_lmeval_parity: unknown task $t" >&2; exit 2 ;;
        esac
        [ -e "$DATA/$f" ] || { echo "check_lmeval_parity: missing $DATA/$f" >&2; exit 2; }
        echo "  - {name: $t, type: multiple_choice, task: $t, data: $DATA/$f}"
    done
} > "$tmp/suite.yaml"
start=$(date +%s)
"$KEEL" eval -m "$MODEL" ${THREADS:+-t "$THREADS"} "$tmp/suite.yaml" --json "$tmp/keel.json"
echo "keel eval wall: $(( $(date +%s) - start )) s"
python3 - "$tmp/keel.json" "$GOLDEN" "$TOL" <<'PY'
import json, sys
keel = {r["name"]: r for r in json.load(open(sys.argv[1]))}
ref = json.load(open(sys.argv[2]))["tasks"]
tol = float(sys.argv[3])
bad = 0
print(f"{'task':<14}{'metric':<10}{'keel':>9}{'lm-eval':>9}{'diff':>8}{'n':>7}  keel_s  lmeval_s")
for name, r in keel.items():
    g = ref.get(name)
    if g is None or "acc" not in g:
        print(f"{name}: no lm-eval reference in the golden file"); bad += 1; continue
    vals = {r["metric"]: r["value"]}
    if r.get("metric2"):
        vals[r["metric2"]] = r["value2"]
    for m in ("acc", "acc_norm"):
        if m not in g or m not in vals:
            continue
        d = 100 * (vals[m] - g[m])
        ok = abs(d) <= tol and r["n"] == g["n"]
        bad += not ok
        print(f"{name:<14}{m:<10}{100*vals[m]:>9.2f}{100*g[m]:>9.2f}{d:>+8.2f}{r['n']:>7}  "
              f"{r.get('seconds', 0):>6.0f}  {g['wall_s']:>8.0f}  {'ok' if ok else 'FAIL'}")
sys.exit(1 if bad else 0)
PY
