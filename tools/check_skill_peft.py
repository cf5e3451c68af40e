#!/usr/bin/env python3
"""Does a LoRA adapter that keel trained on SmolLM2-135M-Instruct (GGUF base)
load unchanged in PEFT and do the same job there?

Loads the same Q4_1 GGUF with transformers (dequantized to fp32, Q/K rows
un-permuted to HF's layout), applies keel's checkpoint directory with
peft.PeftModel.from_pretrained, and greedily answers the held-out chat items
of examples/data/skill-test.jsonl (the skill test's cipher, make test-long).
Prints base and adapter exact match; exits 1 if the adapter scores < 90%.

  /root/.cache/keel/venv-oracle/bin/python tools/check_skill_peft.py RUN/checkpoints/step-120 [-n 60]
"""
import argparse, json, os, sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from golden_smollm2 import fix_pre_tokenizer  # SmolLM2's digit split, as llama.cpp/keel do


def score(model, tok, items, max_new):
    ok = 0
    for msgs in items:
        prompt = tok.apply_chat_template(msgs[:-1], add_generation_prompt=True, tokenize=False)
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=max_new, do_sample=False,
                                 eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"))
        text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
        ok += text == msgs[-1]["content"].strip()
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("adapter")
    ap.add_argument("--model", default="/root/.cache/keel/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--data", default=os.path.join(here, "..", "examples", "data", "skill-test.jsonl"))
    ap.add_argument("-n", type=int, default=60)
    args = ap.parse_args()
    torch.set_num_threads(2)
    d, f = os.path.split(os.path.abspath(args.model))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    fix_pre_tokenizer(tok)
    base = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    items = [json.loads(l)["messages"] for l in open(args.data) if l.strip()][: args.n]
    b = score(base, tok, items, 16)
    model = PeftModel.from_pretrained(base, args.adapter).eval()
    a = score(model, tok, items, 16)
    print(f"held-out exact match: base {b}/{len(items)}, with keel's adapter in PEFT {a}/{len(items)}")
    sys.exit(0 if a >= 0.9 * len(items) else 1)


if __name__ == "__main__":
    main()
