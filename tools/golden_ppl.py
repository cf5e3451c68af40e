#!/usr/bin/env python3
"""golden_ppl.py -- reference perplexity of SmolLM2-135M-Instruct (Q4_1 GGUF) on the BoolQ text.

Writes tests/golden/smollm2_ppl.json with, for n_ctx 512 and 256:
  * llama.cpp's own `llama-perplexity` result (built by tools/build_llama_cpp.sh), parsed from
    its output: final PPL and its +/- value, per-chunk running PPL, chunk count;
  * the same method recomputed with HF transformers in fp32 on the dequantized GGUF (exact
    per-chunk NLL sums, so a C test can check only the first chunks);
  * the token ids the text tokenizes to (llama-tokenize, compared with the HF tokenizer).
The text is built by tools/make_ppl_text.py (first 40 BoolQ validation passages).
Usage: golden_ppl.py [--model GGUF] [--bin DIR] [--ctx 512 256] [--skip-llama]
"""
import argparse
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from golden_smollm2 import fix_pre_tokenizer  # noqa: E402

CACHE = os.environ.get("KEEL_CACHE", "/root/.cache/keel")


def llama_perplexity(binary, model, text_path, n_ctx, threads, batch):
    cmd = [binary, "-m", model, "-f", text_path, "-c", str(n_ctx), "-t", str(threads), "-b", str(batch)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    log = p.stdout + p.stderr
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{log[-3000:]}")
    m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", log)
    chunks = re.search(r"calculating perplexity over (\d+) chunks, n_ctx=(\d+), batch_size=(\d+), n_seq=(\d+)", log)
    ntok = re.search(r"tokenization took", log)
    running = [float(x) for x in re.findall(r"\[\d+\]([0-9.]+),", log)]
    ver = subprocess.run([binary, "--version"], capture_output=True, text=True)
    version = " ".join((ver.stdout + ver.stderr).split())
    sysinfo = re.search(r"system_info: (.*)", log)
    assert m and chunks and ntok, log[-3000:]
    return {
        "command": " ".join(["llama-perplexity"] + cmd[1:]).replace(model, os.path.basename(model))
                                                               .replace(text_path, os.path.basename(text_path)),
        "n_ctx": int(chunks.group(2)),
        "n_chunks": int(chunks.group(1)),
        "batch_size": int(chunks.group(3)),
        "n_seq": int(chunks.group(4)),
        "ppl": float(m.group(1)),
        "ppl_pm": float(m.group(2)),
        "running_ppl_per_chunk": running,
        "scored_tokens": int(chunks.group(1)) * (n_ctx - n_ctx // 2 - 1),
        "version": version,
        "system_info": sysinfo.group(1).strip() if sysinfo else None,
    }


def llama_tokenize(binary, model, text_path):
    p = subprocess.run([binary, "-m", model, "-f", text_path, "--ids", "--no-escape", "--log-disable"],
                       capture_output=True, text=True, check=True)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("[")][-1]
    return json.loads(line)


def llama_cpp_commit(bin_dir):
    """Full commit of the llama.cpp tree the binaries were built from (see build_llama_cpp.sh)."""
    src = os.path.join(CACHE, "src", "llama_cpp_python-0.3.36", "vendor", "llama.cpp")
    p = subprocess.run(["git", "-C", src, "log", "-1", "--format=%H %cd"], capture_output=True, text=True)
    return (f"llama.cpp {p.stdout.strip()} (vendored in the llama-cpp-python 0.3.36 sdist)"
            if p.returncode == 0 else "llama-cpp-python 0.3.36 sdist")


def hf_perplexity(model, tokens, n_ctx, add_bos, bos_id):
    """llama.cpp's perplexity() method, in fp32 torch: chunks of n_ctx tokens, fresh context each,
    first token replaced by BOS if add_bos, score positions n_ctx/2 .. n_ctx-2 on the next token."""
    n_chunk = len(tokens) // n_ctx
    first = n_ctx // 2
    nll_sum = 0.0
    nll2_sum = 0.0
    count = 0
    per_chunk = []
    for c in range(n_chunk):
        chunk = list(tokens[c * n_ctx:(c + 1) * n_ctx])
        if add_bos:
            chunk[0] = bos_id
        with torch.no_grad():
            logits = model(torch.tensor([chunk])).logits[0].double()        # [n_ctx, vocab]
        logp = torch.log_softmax(logits[first:n_ctx - 1], dim=-1)
        target = torch.tensor(tokens[c * n_ctx + first + 1:(c + 1) * n_ctx])
        nll = -logp.gather(1, target[:, None])[:, 0]
        s, s2 = float(nll.sum()), float((nll * nll).sum())
        nll_sum += s
        nll2_sum += s2
        count += len(nll)
        per_chunk.append({"nll_sum": s, "count": len(nll), "running_ppl": math.exp(nll_sum / count)})
    mean = nll_sum / count
    var = nll2_sum / count - mean * mean
    ppl = math.exp(mean)
    return {
        "n_ctx": n_ctx, "n_chunks": n_chunk, "scored_tokens": count,
        "mean_nll": mean, "ppl": ppl, "ppl_pm": math.sqrt(var / (count - 1)) * ppl,
        "per_chunk": per_chunk,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(CACHE, "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--bin", default=os.path.join(CACHE, "llama.cpp-build", "bin"))
    ap.add_argument("--jsonl", default="/work/shared/datasets/boolq_validation.jsonl")
    ap.add_argument("--ctx", type=int, nargs="+", default=[512, 256])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "golden", "smollm2_ppl.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    tmp = tempfile.mkdtemp(prefix="keel-ppl-")
    text_path = os.path.join(tmp, "boolq40.txt")
    subprocess.run([sys.executable, os.path.join(HERE, "make_ppl_text.py"), text_path, "--jsonl", args.jsonl],
                   check=True)
    data = open(text_path, "rb").read()
    text = data.decode("utf-8")

    d, f = os.path.split(os.path.abspath(args.model))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    fix_pre_tokenizer(tok)
    hf_ids = tok(text, add_special_tokens=False).input_ids
    lc_ids = llama_tokenize(os.path.join(args.bin, "llama-tokenize"), args.model, text_path)
    add_bos = False   # tokenizer.ggml.add_bos_token = false in this GGUF (checked below via llama.cpp)
    if lc_ids != hf_ids:
        first_diff = next((i for i, (a, b) in enumerate(zip(lc_ids, hf_ids)) if a != b), min(len(lc_ids), len(hf_ids)))
        raise SystemExit(f"llama.cpp and HF tokenizations differ at {first_diff}: "
                         f"{lc_ids[first_diff - 3:first_diff + 3]} vs {hf_ids[first_diff - 3:first_diff + 3]}")
    ids = lc_ids
    ids_bytes = np.asarray(ids, dtype="<i4").tobytes()

    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()

    out = {
        "model_file": os.path.basename(args.model),
        "text": {"source": "first 40 'passage' fields of shared/datasets/boolq_validation.jsonl, "
                           "joined with \"\\n\\n\", no trailing newline, UTF-8 (tools/make_ppl_text.py)",
                 "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        "tokens": {"count": len(ids), "add_bos": add_bos,
                   "ids_sha256_int32le": hashlib.sha256(ids_bytes).hexdigest(),
                   "first_32": ids[:32], "last_32": ids[-32:],
                   "llama_cpp_equals_hf": True},
        "method": "llama.cpp perplexity(): n_chunk = floor(n_tokens/n_ctx) windows of n_ctx tokens, "
                  "fresh KV cache each, first token -> BOS only if add_bos (not here), NLL of token "
                  "j+1 from logits at j for j = n_ctx/2 .. n_ctx-2; PPL = exp(mean NLL); "
                  "+/- = PPL*sqrt((mean(NLL^2)-mean(NLL)^2)/(count-1))",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "llama_cpp": llama_cpp_commit(args.bin)},
        "llama_cpp": {},
        "transformers_fp32": {},
    }
    for n_ctx in args.ctx:
        lc = llama_perplexity(os.path.join(args.bin, "llama-perplexity"), args.model, text_path,
                              n_ctx, args.threads, 512)
        out["llama_cpp"][str(n_ctx)] = lc
        print("llama.cpp", n_ctx, lc["ppl"], lc["ppl_pm"], lc["n_chunks"], flush=True)
        hf = hf_perplexity(model, ids, n_ctx, add_bos, tok.bos_token_id)
        out["transformers_fp32"][str(n_ctx)] = hf
        print("transformers", n_ctx, hf["ppl"], hf["ppl_pm"], hf["n_chunks"], flush=True)
    with open(args.out, "w") as fp:
        json.dump(out, fp, indent=1)
        fp.write("\n")


if __name__ == "__main__":
    main()
