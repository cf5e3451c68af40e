#!/usr/bin/env python3
"""check_train_hf.py -- do full fine-tuning checkpoints written by `keel train` load in transformers?

Runs `BUILD/tests/test_train` with KEEL_TRAIN_KEEP=DIR, which trains stories260K (GGUF base: the
checkpoint un-permutes the q_proj/k_proj rows) and the tiny HF Llama (tests/data/tiny-llama-hf) for 3
steps (and, when ~/.cache/keel has it, SmolLM2-135M-Instruct Q4_1: tied embeddings, 9/3 heads of 64;
embedding + last layer trained for 2 steps), saves a checkpoint (model.safetensors + config.json) and writes, per case, the token ids and the
logits of keel's in-memory trained weights (DIR/<case>-ids.txt, DIR/<case>-keel-logits.f32,
DIR/<case>-checkpoint.txt). Then loads each checkpoint with
LlamaForCausalLM.from_pretrained (fp32, eager attention), runs the same ids and compares the logits.
Exit status 1 if any max abs difference is > 1e-4 (relative to max(1, max |logit|)).

Optional (not part of `make test`): needs torch + transformers, e.g. the oracle venv:
  make BUILD=build build/tests/test_train
  /root/.cache/keel/venv-oracle/bin/python tools/check_train_hf.py [--build build] [--keep DIR]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from transformers import LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--keep", default=None, help="directory for the files (default: a temporary one)")
    a = ap.parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    keep = a.keep or tempfile.mkdtemp(prefix="keel-train-hf-")
    env = dict(os.environ, KEEL_TRAIN_KEEP=os.path.abspath(keep))
    r = subprocess.run([os.path.join(a.build, "tests", "test_train")], cwd=repo, env=env,
                       capture_output=True, text=True)
    print(r.stdout.strip())
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
        sys.exit("test_train failed")
    bad = 0
    for case in ("stories260k", "tiny-hf", "smollm2"):
        if not os.path.exists(os.path.join(keep, f"{case}-checkpoint.txt")):
            print(f"{case}: not run (model not cached)")
            continue
        ck = open(os.path.join(keep, f"{case}-checkpoint.txt")).read().strip()
        ids = [int(x) for x in open(os.path.join(keep, f"{case}-ids.txt")).read().split()]
        model = LlamaForCausalLM.from_pretrained(ck, torch_dtype=torch.float32, attn_implementation="eager")
        model.eval()
        with torch.no_grad():
            hf = model(torch.tensor([ids])).logits[0].numpy()
        kl = np.fromfile(os.path.join(keep, f"{case}-keel-logits.f32"), dtype="<f4").reshape(hf.shape)
        diff = float(np.abs(hf - kl).max())
        scale = max(1.0, float(np.abs(hf).max()))
        ok = diff <= 1e-4 * scale
        bad += not ok
        print(f"{case}: transformers vs keel logits max |diff| {diff:.3g} (max |logit| {scale:.3g}) "
              f"{'ok' if ok else 'FAIL'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
