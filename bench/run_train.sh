#!/usr/bin/env bash
# Training benchmark (not a test): keel's bench_train against the plain-PyTorch
# peer tools/bench_pytorch_train.py, same model (SmolLM2-135M-Instruct GGUF),
# same step (forward + backward + AdamW, B x T tokens), in the same run. Each
# configuration runs in its own process (its peak RSS is its own). Prints
# tokens/s, peak RSS, the load average and the share of the machine other
# processes used during each figure, and the ratios keel / PyTorch (goal:
# LoRA >= 3x, full >= 1.5x tokens/s at <= 0.4x peak RSS; PERF-NOTES.md).
#
#   make bench-train                          # both systems, LoRA and full
#   MODES="lora full" THREADS=2 STEPS=3 B=4 T=256 make bench-train
#   KEEL_ONLY=1 make bench-train              # skip PyTorch
#   PYTHON=/path/to/python make bench-train   # the venv with torch + gguf
#
# PyTorch gets its best settings (PERF-NOTES.md): OMP_WAIT_POLICY=PASSIVE,
# torch.set_num_threads(THREADS), tcmalloc via LD_PRELOAD when
# libgoogle-perftools4 is installed. keel runs with OMP_WAIT_POLICY=PASSIVE too
# (bench/README.md: spinning OpenMP workers collapse on a shared machine).
# Modes: lora = LoRA r=16 on all seven projections over the file's Q4_1 base
# (QLoRA-style; PyTorch's base is fp32), lora-f32 = keel LoRA over an fp32
# copy of the base, full = every tensor trained in fp32; MODE+bf16x3 (opt-in,
# e.g. MODES="lora lora+bf16x3") runs keel's forward linears on AMX bf16x3.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
cache=${KEEL_CACHE:-$HOME/.cache/keel}
MODEL=${MODEL:-$cache/SmolLM2-135M-Instruct.Q4_1.gguf}
PYTHON=${PYTHON:-$cache/venv-oracle/bin/python}
MODES=${MODES:-"lora lora-f32 full"}
THREADS=${THREADS:-$(nproc)}
STEPS=${STEPS:-3}
WARMUP=${WARMUP:-1}
B=${B:-4}
T=${T:-256}
KEEL_ONLY=${KEEL_ONLY:-0}
TCMALLOC=${TCMALLOC:-/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4}
[ -f "$TCMALLOC" ] || { echo "bench-train: no tcmalloc ($TCMALLOC); apt-get install libgoogle-perftools4 for PyTorch's best setting" >&2; TCMALLOC=; }
echo "model: $MODEL  B=$B T=$T threads=$THREADS steps=$STEPS (median) warmup=$WARMUP  cpus: $(nproc)"
python3 - "$BUILD/bench/bench_train" "$PYTHON" "$MODEL" "$THREADS" "$B" "$T" "$STEPS" "$WARMUP" "$KEEL_ONLY" "$TCMALLOC" $MODES <<'PY'
import os, resource, subprocess, sys, time
bench, py, model, threads, B, T, steps, warmup, keel_only, tcmalloc = sys.argv[1:11]
modes = sys.argv[11:]
ncpu = os.cpu_count() or 1
HZ = os.sysconf("SC_CLK_TCK")

def busy_s():
    f = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return (sum(f) - f[3] - f[4]) / HZ  # all but idle and iowait

def run(cmd, env):
    load = os.getloadavg()[0]
    r0, b0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), busy_s(), time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    r1, b1, t1 = resource.getrusage(resource.RUSAGE_CHILDREN), busy_s(), time.monotonic()
    if p.returncode != 0:
        sys.exit(f"bench-train: {' '.join(cmd)} failed:\n{p.stderr}")
    ours = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    other = max(0.0, (b1 - b0) - ours) / ((t1 - t0) * ncpu)
    kv = dict(x.split("=", 1) for x in p.stdout.split() if "=" in x)
    kv["load"], kv["other"] = load, other
    return kv

base = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
tenv = dict(base)
if tcmalloc:
    tenv["LD_PRELOAD"] = tcmalloc
args = [threads, B, T, steps, warmup]
res = {}
for m in modes:
    res[("keel", m)] = run([bench, model, m] + args, base)
    print(f"  keel    {m:9} {float(res[('keel', m)]['tok_s']):8.1f} tok/s", file=sys.stderr, flush=True)
    pm = "lora" if m.startswith("lora") else "full"
    if keel_only != "1" and ("pytorch", pm) not in res:
        res[("pytorch", pm)] = run([py, "tools/bench_pytorch_train.py", model, pm] + args, tenv)
        print(f"  pytorch {pm:9} {float(res[('pytorch', pm)]['tok_s']):8.1f} tok/s", file=sys.stderr, flush=True)

print(f"{'system':9}{'mode':10}{'tok/s':>9}{'step s':>8}{'fwd s':>7}{'bwd s':>7}{'opt s':>7}"
      f"{'peak RSS MiB':>13}{'load':>6}{'others':>8}{'tok/s ratio':>12}{'RSS ratio':>10}")
for (sysname, m), r in res.items():
    ratio = rss = ""
    peer = res.get(("pytorch", "lora" if m.startswith("lora") else "full"))
    if sysname == "keel" and peer:
        ratio = f"{float(r['tok_s']) / float(peer['tok_s']):.2f}x"
        rss = f"{float(r['peak_rss_mib']) / float(peer['peak_rss_mib']):.2f}x"
    print(f"{sysname:9}{m:10}{float(r['tok_s']):9.1f}{float(r['step_s']):8.2f}{float(r['fwd_s']):7.2f}"
          f"{float(r['bwd_s']):7.2f}{float(r['opt_s']):7.2f}{float(r['peak_rss_mib']):13.0f}"
          f"{r['load']:6.2f}{100 * r['other']:7.0f}%{ratio:>12}{rss:>10}")
print("goal: lora >= 3x tok/s, full >= 1.5x tok/s, both at <= 0.4x peak RSS")
PY
