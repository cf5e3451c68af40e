#!/usr/bin/env python3
"""golden_lora.py -- LoRA on the tiny Llama with PyTorch + PEFT: the reference for keel's LoRA.

Default (writes goldens):
  Builds a PEFT LoRA (r=4, lora_alpha=8, lora_dropout=0, target_modules = the seven Llama
  projections) on tests/data/tiny-llama-hf, sets every lora_A / lora_B to fixed seeded values
  (B NONZERO, so the adapter changes the model and its A gradients are not zero), saves it with
  PEFT's save_pretrained to tests/data/tiny-lora-peft/ (fp32 adapter_model.safetensors +
  adapter_config.json), then casts the model to float64 and on a fixed batch (B=2, T=16, seeded
  ids, masked mean next-token cross-entropy, the batch of golden_grads.py) computes the loss,
  the logits and the gradient of every lora_A / lora_B. Writes tests/golden/:
    tiny_lora.json  ids, mask, loss (float64), scale, versions, and "tensors": [{name, shape,
                    offset}] -- name = the PEFT key in adapter_model.safetensors, offset in floats
                    into the .f32 file; the last entry "logits" (B, T, V) is PEFT's output
    tiny_lora.f32   the gradients then the logits, little-endian float32
  Consumed by tests/unit/test_lora.c (HF base and GGUF base tests/data/tiny-llama.gguf).

--check DIR (keel-written adapters load in PEFT):
  For each DIR/<case>/ with adapter_config.json + adapter_model.safetensors + keel_logits.f32
  (written by `KEEL_LORA_KEEP=DIR build/tests/test_lora`: case "hf" trained on the HF base, case
  "gguf" on the GGUF base with q/k rows in Meta order, saved un-permuted), loads the adapter with
  PeftModel.from_pretrained on the HF tiny model (fp32), runs the golden batch and compares PEFT's
  logits with keel's. Exit status 1 if any max abs difference is > 1e-4.

Usage: /root/.cache/keel/venv-oracle/bin/python tools/golden_lora.py [--repo DIR] [--check DIR]
See tests/golden/README.md section 6 ("LoRA").
"""
import argparse
import json
import os
import sys

import numpy as np
import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import LlamaForCausalLM

B, T, SEED = 2, 16, 7
R, ALPHA = 4, 8
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MODEL = "tests/data/tiny-llama-hf"


def batch(vocab):
    g = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, vocab, (B, T), generator=g)
    mask = torch.ones(B, T - 1, dtype=torch.float64)
    mask[0, :3] = 0
    mask[1, 6] = 0
    mask[1, 11] = 0
    return ids, mask


def loss_of(logits, ids, mask):
    lp = torch.log_softmax(logits[:, :-1].to(mask.dtype), dim=-1)
    nll = -lp.gather(-1, ids[:, 1:, None])[..., 0]
    return (nll * mask).sum() / mask.sum()


def saved_key(param_name):
    # named_parameters: base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight
    return param_name.replace(".default.weight", ".weight")


def make(repo):
    model = LlamaForCausalLM.from_pretrained(os.path.join(repo, MODEL), attn_implementation="eager")
    cfg = LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM")
    pm = get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_A" in name:
                bound = 1.0 / np.sqrt(p.shape[1])
                p.copy_((torch.rand(p.shape, generator=g, dtype=torch.float64) * 2 - 1) * bound)
            elif "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.2)
    out_dir = os.path.join(repo, "tests/data/tiny-lora-peft")
    pm.save_pretrained(out_dir)
    # keep the committed config free of machine paths
    cpath = os.path.join(out_dir, "adapter_config.json")
    with open(cpath) as f:
        c = json.load(f)
    c["base_model_name_or_path"] = MODEL
    c["target_modules"] = sorted(c["target_modules"])  # PEFT writes a set: order varies per run
    with open(cpath, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
    rd = os.path.join(out_dir, "README.md")
    if os.path.exists(rd):
        os.remove(rd)

    pm = pm.double()
    pm.train()
    ids, mask = batch(model.config.vocab_size)
    logits = pm(input_ids=ids).logits
    loss = loss_of(logits, ids, mask)
    loss.backward()

    tensors, chunks, off = [], [], 0
    for name, p in pm.named_parameters():
        if not p.requires_grad:
            continue
        gr = p.grad.detach().to(torch.float32).contiguous().numpy()
        tensors.append({"name": saved_key(name), "shape": list(gr.shape), "offset": off})
        chunks.append(gr.reshape(-1))
        off += gr.size
    lg = logits.detach().to(torch.float32).contiguous().numpy()
    tensors.append({"name": "logits", "shape": list(lg.shape), "offset": off})
    chunks.append(lg.reshape(-1))
    off += lg.size
    blob = np.concatenate(chunks).astype("<f4")
    gdir = os.path.join(repo, "tests/golden")
    with open(os.path.join(gdir, "tiny_lora.f32"), "wb") as f:
        f.write(blob.tobytes())
    meta = {
        "model": MODEL, "adapter": "tests/data/tiny-lora-peft",
        "r": R, "lora_alpha": ALPHA, "scale": ALPHA / R, "targets": TARGETS,
        "B": B, "T": T, "seed": SEED,
        "ids": ids.tolist(), "mask": mask.to(torch.int64).tolist(),
        "loss": loss.item(),
        "dtype": "adapter values fp32; float64 forward/backward; gradients and logits stored as float32",
        "n_floats": int(off),
        "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
        "tensors": tensors,
    }
    with open(os.path.join(gdir, "tiny_lora.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"loss {loss.item():.10f}, {len(tensors) - 1} LoRA tensors, {off} floats")


def check(repo, root):
    ok, n = True, 0
    for case in sorted(os.listdir(root)):
        d = os.path.join(root, case)
        if not os.path.exists(os.path.join(d, "adapter_config.json")):
            continue
        base = LlamaForCausalLM.from_pretrained(os.path.join(repo, MODEL), attn_implementation="eager")
        pm = PeftModel.from_pretrained(base, d)
        pm.eval()
        ids, _ = batch(base.config.vocab_size)
        with torch.no_grad():
            ref = pm(input_ids=ids).logits.numpy()
        keel = np.fromfile(os.path.join(d, "keel_logits.f32"), dtype="<f4").reshape(ref.shape)
        err = float(np.abs(ref - keel).max())
        # the adapter must matter: compare with the base alone
        with pm.disable_adapter(), torch.no_grad():
            base_lg = pm(input_ids=ids).logits.numpy()
        moved = float(np.abs(ref - base_lg).max())
        print(f"{case}: PEFT vs keel logits max abs {err:.3e} (adapter moves logits by up to {moved:.3f})")
        ok &= err <= 1e-4 and moved > 1e-2
        n += 1
    if n == 0:
        print(f"no adapters under {root}")
        ok = False
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default=os.path.join(os.path.dirname(__file__), ".."))
    ap.add_argument("--check", metavar="DIR")
    args = ap.parse_args()
    if args.check:
        sys.exit(0 if check(args.repo, args.check) else 1)
    make(args.repo)


if __name__ == "__main__":
    main()
