#!/usr/bin/env python3
"""golden_smollm2.py -- fp32 reference outputs of SmolLM2-135M-Instruct (Q4_1 GGUF) for keel's tests.

Loads the GGUF with HF transformers (which dequantizes every tensor to fp32 and un-permutes Q/K),
runs it in fp32 torch on the CPU and writes tests/golden/smollm2_ref.json plus one raw
little-endian f32 file of full-vocab last-position logits per prompt. See tests/golden/README.md.
Needs: torch, transformers, gguf, accelerate, numpy (venv outside the repo, e.g.
/root/.cache/keel/venv-oracle).
Usage: golden_smollm2.py [--model PATH.gguf] [--out-dir tests/golden] [--only-chat-long]
  --only-chat-long: compute only the "chat_long" case and merge it into the existing
  smollm2_ref.json (everything else kept as it is; a full run reproduces it byte for byte).
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch
import transformers
from tokenizers import pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = {
    # Short factual prompt: the next token should be " Paris".
    "short": "The capital of France is",
    # Longer text: digits (split one per token by the smollm pre-tokenizer), an apostrophe
    # contraction, a non-ASCII letter, punctuation and double spaces.
    "long": ("The capital of France is Paris. In 1889, Gustave Eiffel's tower was opened for the "
             "World's Fair, and it stayed the tallest structure on Earth for 41 years.  Today, "
             "about 7 million people visit it every year; many also see the Musée d'Orsay."),
}
CHAT_MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
# A second chat case that runs the full MAX_NEW_TOKENS without reaching EOS, so the decode
# path is checked over 32 steps. Picked among a few candidate questions for the largest
# smallest top-1/top-2 logit gap over the 32 steps (0.088 at step 5; a short robot story,
# "why is the sky blue", "three health tips", "benefits of reading" had 0.013..0.051).
CHAT_LONG_MESSAGES = [{"role": "user", "content": "Describe the water cycle in simple terms."}]
MAX_NEW_TOKENS = 32
TOPK = 20


def fix_pre_tokenizer(tok):
    """Make the GGUF-built HF tokenizer split digits one by one, like the real SmolLM2
    tokenizer.json and llama.cpp's 'smollm' pre-tokenizer (transformers' GGUF converter
    only installs the plain GPT-2 ByteLevel regex)."""
    bt = tok.backend_tokenizer
    bt.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])


def dump_json(obj, path):
    """JSON with one key per line but every list of scalars (or of short scalar lists) on one line."""
    def enc(o, ind):
        pad = " " * ind
        if isinstance(o, dict):
            items = [f'{pad} {json.dumps(k)}: {enc(v, ind + 1)}' for k, v in o.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(o, list) and o and isinstance(o[0], (list, dict)) and not all(
                isinstance(x, list) and all(not isinstance(y, (list, dict)) for y in x) for x in o):
            return "[\n" + ",\n".join(pad + " " + enc(x, ind + 1) for x in o) + "\n" + pad + "]"
        if isinstance(o, list) and o and isinstance(o[0], list):
            return "[\n" + ",\n".join(pad + " " + json.dumps(x, ensure_ascii=False) for x in o) + "\n" + pad + "]"
        return json.dumps(o, ensure_ascii=False)
    with open(path, "w", encoding="utf-8") as fp:
        fp.write(enc(obj, 0) + "\n")


def f8(x):
    """float32 value as a JSON number with enough digits (8 significant) to round-trip closely."""
    return float(f"{float(x):.8g}")


def chat_case(tok, model, messages):
    """Render messages with the GGUF's chat template, then greedy-generate like keel generate --chat."""
    rendered = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    chat_ids = tok(rendered, add_special_tokens=False).input_ids
    with torch.no_grad():
        gen = model.generate(torch.tensor([chat_ids]), attention_mask=torch.ones(1, len(chat_ids), dtype=torch.long),
                             do_sample=False, max_new_tokens=MAX_NEW_TOKENS, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id, output_scores=True, return_dict_in_generate=True)
    new_ids = gen.sequences[0, len(chat_ids):].tolist()
    # top1 - top2 logit gap per step: a tiny gap is where a correct but differently-rounded
    # implementation may legitimately pick another token.
    gaps = []
    for s in gen.scores:
        v = s[0].topk(2).values
        gaps.append(f8(v[0] - v[1]))
    return {
        "messages": messages,
        "add_generation_prompt": True,
        "rendered": rendered,
        "ids": chat_ids,
        "max_new_tokens": MAX_NEW_TOKENS,
        "eos_token_id": tok.eos_token_id,
        "generated_ids": new_ids,
        "generated_text": tok.decode(new_ids, skip_special_tokens=False),
        "stopped_at_eos": bool(new_ids and new_ids[-1] == tok.eos_token_id),
        "top1_top2_gap_per_step": gaps,
        "min_gap": min(gaps) if gaps else None,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="/root/.cache/keel/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--out-dir", default=os.path.join(os.path.dirname(__file__), "..", "tests", "golden"))
    ap.add_argument("--only-chat-long", action="store_true",
                    help="compute only chat_long and merge it into the existing smollm2_ref.json")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    d, f = os.path.split(os.path.abspath(args.model))

    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    fix_pre_tokenizer(tok)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    model.eval()

    out = {
        "model_file": os.path.basename(args.model),
        "model_sha256": hashlib.sha256(open(args.model, "rb").read()).hexdigest(),
        "reference": "HF transformers, GGUF dequantized to fp32, fp32 CPU forward",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "numpy": np.__version__, "python": sys.version.split()[0]},
        "add_bos": False,
        "prompts": {},
    }
    try:
        import gguf
        out["versions"]["gguf"] = gguf.__version__ if hasattr(gguf, "__version__") else \
            __import__("importlib.metadata").metadata.version("gguf")
    except Exception:  # pragma: no cover
        pass

    ref_path = os.path.join(args.out_dir, "smollm2_ref.json")
    if args.only_chat_long:
        with open(ref_path, encoding="utf-8") as fp:
            out = json.load(fp)
        out.pop("chat_long", None)
    for name, text in ({} if args.only_chat_long else PROMPTS).items():
        ids = tok(text, add_special_tokens=False).input_ids
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()   # [T, vocab]
        logp = torch.log_softmax(logits.double(), dim=-1)
        top = []
        for t in range(len(ids)):
            v, i = logits[t].topk(TOPK)
            top.append([[int(a), f8(b)] for a, b in zip(i.tolist(), v.tolist())])
        nll = [f8(-logp[t, ids[t + 1]].item()) for t in range(len(ids) - 1)]
        last = logits[-1].numpy().astype("<f4")
        bin_name = f"smollm2_{name}_last_logits.f32"
        last.tofile(os.path.join(args.out_dir, bin_name))
        out["prompts"][name] = {
            "text": text,
            "ids": ids,
            "tokens": tok.convert_ids_to_tokens(ids),
            "top20_per_position": top,
            "next_token_nll": nll,
            "mean_nll": f8(sum(nll) / len(nll)),
            "last_logits_file": bin_name,
            "last_logits_sha256": hashlib.sha256(last.tobytes()).hexdigest(),
            "last_logits_stats": {"max": f8(last.max()), "min": f8(last.min()),
                                  "mean": f8(last.astype(np.float64).mean()),
                                  "argmax": int(last.argmax())},
        }

    if not args.only_chat_long:
        out["chat"] = chat_case(tok, model, CHAT_MESSAGES)
    out["chat_long"] = chat_case(tok, model, CHAT_LONG_MESSAGES)
    dump_json(out, ref_path)
    print(json.dumps({k: out["prompts"][k]["ids"] for k in out["prompts"]}))
    for k in ("chat", "chat_long"):
        print(k, repr(out[k]["generated_text"]), len(out[k]["generated_ids"]), "tokens, min_gap", out[k]["min_gap"])


if __name__ == "__main__":
    main()
