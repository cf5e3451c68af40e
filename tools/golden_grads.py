#!/usr/bin/env python3
"""golden_grads.py -- whole-model loss and gradients of the tiny Llama, by PyTorch autograd.

Loads tests/data/tiny-llama-hf (fp32, untied lm_head) with transformers, casts it to float64
(so the reference is exact to ~1e-15 and the comparison measures keel's fp32 error alone), runs
one batch of B=2 sequences of T=16 fixed token ids (seeded), and takes
    loss = sum(mask * CE(logits[:, t], ids[:, t+1])) / sum(mask)      over t = 0 .. T-2
with a mask that zeroes a few target positions. Writes into tests/golden/:
  tiny_grads.json  ids (B, T), mask (B, T-1), loss (float64), torch/transformers versions, and
                   "tensors": [{name, shape, offset}] -- offset in floats into the .f32 file
  tiny_grads.f32   the gradient of every parameter (named_parameters order, HF names),
                   little-endian float32, row-major, one after another
and the same for tests/data/tiny-llama-hf-bf16 (bf16 weights, exact in float64; lm_head TIED to
embed_tokens, so named_parameters has no lm_head and the embedding gradient holds both uses) as
tiny_grads_tied.json / tiny_grads_tied.f32, same batch.
Consumed by tests/unit/test_model_grad.c. See tests/golden/README.md section 4 ("Whole-model gradients").
Usage: /root/.cache/keel/venv-oracle/bin/python tools/golden_grads.py [--repo DIR]
"""
import argparse
import json
import os

import numpy as np
import torch
import transformers
from transformers import LlamaForCausalLM

B, T, SEED = 2, 16, 7


def run(repo, model_rel, out_name):
    model_dir = os.path.join(repo, model_rel)
    out_dir = os.path.join(repo, "tests/golden")
    model = LlamaForCausalLM.from_pretrained(model_dir, attn_implementation="eager")
    model = model.double()
    model.train()  # no dropout in this config (attention_dropout 0); train() only enables grads paths
    vocab = model.config.vocab_size

    g = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, vocab, (B, T), generator=g)
    mask = torch.ones(B, T - 1, dtype=torch.float64)
    mask[0, :3] = 0   # a "prompt" whose targets do not count
    mask[1, 6] = 0
    mask[1, 11] = 0

    logits = model(input_ids=ids).logits  # (B, T, V)
    lp = torch.log_softmax(logits[:, :-1], dim=-1)
    nll = -lp.gather(-1, ids[:, 1:, None])[..., 0]  # (B, T-1)
    loss = (nll * mask).sum() / mask.sum()
    loss.backward()

    tensors, chunks, off = [], [], 0
    for name, p in model.named_parameters():
        gr = p.grad.detach().to(torch.float32).contiguous().numpy()
        tensors.append({"name": name, "shape": list(gr.shape), "offset": off})
        chunks.append(gr.reshape(-1))
        off += gr.size
    blob = np.concatenate(chunks).astype("<f4")
    with open(os.path.join(out_dir, out_name + ".f32"), "wb") as f:
        f.write(blob.tobytes())
    meta = {
        "model": model_rel,
        "tied": bool(model.config.tie_word_embeddings),
        "B": B, "T": T, "seed": SEED,
        "ids": ids.tolist(),
        "mask": mask.to(torch.int64).tolist(),
        "loss": loss.item(),
        "dtype": "float64 forward/backward, gradients stored as float32",
        "n_floats": int(off),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "tensors": tensors,
    }
    with open(os.path.join(out_dir, out_name + ".json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{model_rel}: loss {loss.item():.10f}, {len(tensors)} tensors, {off} floats ({4 * off} bytes)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default=os.path.join(os.path.dirname(__file__), ".."))
    args = ap.parse_args()
    run(args.repo, "tests/data/tiny-llama-hf", "tiny_grads")
    run(args.repo, "tests/data/tiny-llama-hf-bf16", "tiny_grads_tied")


if __name__ == "__main__":
    main()
