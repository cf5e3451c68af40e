#!/usr/bin/env bash
# Inference benchmark (not a test): keel against llama.cpp's llama-bench on the
# same GGUF file, in the same run, for each thread count. Prints both and the
# ratios keel / llama.cpp for prompt processing (pp256) and decode (tg64),
# with the load average and the share of the machine that other processes
# used while each figure was taken (this machine is shared: figures taken
# while others compile are not comparable, see /work/shared/PERF-NOTES.md).
#
#   make bench                        # SmolLM2-135M-Instruct Q4_1 from the cache
#   MODEL=path.gguf make bench        # another model
#   THREADS="2 1" REPS=5 make bench   # thread counts to measure, in order
#   KEEL_ONLY=1 make bench            # skip llama.cpp
#   PRECISIONS="fp32 bf16" make bench # keel's batched-matmul precisions to measure
#                                     # (default: fp32, plus bf16x3 and bf16 where the CPU has AMX)
#
# llama.cpp is built from the source that llama-cpp-python's PyPI sdist vendors
# (tools/build_llama_cpp.sh), into ${KEEL_CACHE:-~/.cache/keel}/llama.cpp-build.
# Both use OpenMP; OMP_WAIT_POLICY / GOMP_SPINCOUNT are passed through as found.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
cache=${KEEL_CACHE:-$HOME/.cache/keel}
MODEL=${MODEL:-$(bash scripts/fetch-models.sh)}
THREADS=${THREADS:-"$(nproc) 1"}
REPS=${REPS:-5}
NP=${NP:-256}
NG=${NG:-64}
KEEL_ONLY=${KEEL_ONLY:-0}
if [ -z "${PRECISIONS:-}" ]; then
  PRECISIONS=fp32
  grep -qw amx_bf16 /proc/cpuinfo 2>/dev/null && PRECISIONS="fp32 bf16x3 bf16"
fi
lb="$cache/llama.cpp-build/bin/llama-bench"
if [ "$KEEL_ONLY" != 1 ] && [ ! -x "$lb" ]; then
  echo "bench: building llama.cpp's llama-bench (once) ..." >&2
  bash tools/build_llama_cpp.sh >&2
fi
echo "model: $MODEL  reps: $REPS  cpus: $(nproc)"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset} GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-unset} (left as found)"
python3 - "$BUILD/bench/bench_infer" "$lb" "$MODEL" "$NP" "$NG" "$REPS" "$KEEL_ONLY" "$PRECISIONS" $THREADS <<'PY'
import json, os, resource, subprocess, sys, time
bench, lb, model, np_, ng, reps, keel_only, precs = sys.argv[1:9]
threads = [int(t) for t in sys.argv[9:]]
np_, ng = int(np_), int(ng)
ncpu = os.cpu_count() or 1
HZ = os.sysconf("SC_CLK_TCK")

def busy_s():
    f = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return (sum(f) - f[3] - f[4]) / HZ  # all but idle and iowait

def run(cmd):
    """Run cmd; return stdout, the load average before, and the share of the
    machine used by other processes while it ran."""
    load = os.getloadavg()[0]
    r0, b0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), busy_s(), time.monotonic()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    r1, b1, t1 = resource.getrusage(resource.RUSAGE_CHILDREN), busy_s(), time.monotonic()
    ours = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    other = max(0.0, (b1 - b0) - ours) / ((t1 - t0) * ncpu)
    return out, load, other

rows = []
for t in threads:
    row = {"t": t, "keel": []}
    for p in precs.split():
        k, kl, ko = run([bench, model, str(np_), str(ng), reps, str(t), p])
        k = json.loads(k)
        row["keel"].append({"p": p, "pp": k["pp_tok_s"], "tg": k["tg_tok_s"], "load": kl, "other": ko})
    if keel_only != "1":
        l, ll, lo = run([lb, "-m", model, "-p", str(np_), "-n", str(ng), "-t", str(t), "-r", reps, "-o", "json"])
        l = json.loads(l)
        row["lpp"] = next(r for r in l if r.get("n_prompt") == np_ and r.get("n_gen") == 0)["avg_ts"]
        row["ltg"] = next(r for r in l if r.get("n_gen") == ng and r.get("n_prompt") == 0)["avg_ts"]
        row["lload"], row["lother"] = ll, lo
    rows.append(row)

pp, tg = f"pp{np_} tok/s", f"tg{ng} tok/s"
print(f"{'system':18}{'threads':>8}{pp:>14}{tg:>14}{'load avg':>10}{'others':>8}{'pp ratio':>10}{'tg ratio':>10}")
for r in rows:
    if "lpp" in r:
        print(f"{'llama.cpp':18}{r['t']:>8}{r['lpp']:14.1f}{r['ltg']:14.1f}{r['lload']:10.2f}{r['lother']:7.0%}")
    for k in r["keel"]:
        ratios = f"{k['pp'] / r['lpp']:9.2f}x{k['tg'] / r['ltg']:9.2f}x" if "lpp" in r else ""
        print(f"{'keel ' + k['p']:18}{r['t']:>8}{k['pp']:14.1f}{k['tg']:14.1f}{k['load']:10.2f}{k['other']:7.0%} {ratios}")
print("(ratios = keel / llama.cpp in the same run, goal pp >= 1.5x; decode is fp32 in every keel row; 'others' = share of all CPUs used by other processes"
      " during the run: above ~5% the figures are not comparable)")
PY
