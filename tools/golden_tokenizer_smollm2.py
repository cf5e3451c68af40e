#!/usr/bin/env python3
# golden_tokenizer_smollm2.py — reference token ids for SmolLM2-135M-Instruct's
# tokenizer (byte-level BPE, 49152 tokens, ChatML), for tests/unit/test_tokenizer.c.
#
# Two independent oracles, which must agree before anything is written:
#   1. HF transformers' own GGUF tokenizer conversion:
#      AutoTokenizer.from_pretrained(dir, gguf_file=...)
#   2. HF `tokenizers` rebuilt from the GGUF's tokens/merges/token types with
#      SmolLM2's tokenizer.json pipeline: Digits(individual) + ByteLevel.
# Chat prompts come from transformers' apply_chat_template (the GGUF's Jinja
# template), both as text and tokenized.
# Writes tests/golden/smollm2_tokens.json.
# Needs: transformers, tokenizers, gguf, torch (e.g. the venv at
# ~/.cache/keel/venv-oracle).  Usage:
#   golden_tokenizer_smollm2.py [--model ~/.cache/keel/SmolLM2-135M-Instruct.Q4_1.gguf]
import argparse
import json
import os

import gguf
import tokenizers
import transformers
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoTokenizer

TEXTS = [
    "Hello world, 1234!",
    "The capital of France is",
    " leading space and trailing space ",
    "Numbers: 3.14159, 2025-11-29, 1,000,000 and 42nd.",
    "def f(x):\n    return x ** 2  # square\n\n\n",
    "Unicode: café, naïve, Führer, нещо на Български, 日本語, 🦙🚀😶\u200d🌫️",
    "I'm sure they'll've done it; WE'RE not.",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>plain <|im_end|>",
    "\t\ttabs\r\nand CRLF\r\n",
    "!!!???... ---=== ''' \"\"\"",
]

CHATS = [
    {"messages": [{"role": "user", "content": "What is the capital of France?"}], "add_generation_prompt": True},
    {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}],
     "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
                  {"role": "user", "content": "And 3+3?"}], "add_generation_prompt": False},
]



def rebuild(path):
    r = gguf.GGUFReader(path)
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    merges = r.fields["tokenizer.ggml.merges"].contents()
    vocab = {t: i for i, t in enumerate(tokens)}
    bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges], ignore_merges=False)
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == 3])
    return tok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/keel/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "golden",
                                                  "smollm2_tokens.json"))
    a = ap.parse_args()
    hf = AutoTokenizer.from_pretrained(os.path.dirname(a.model), gguf_file=os.path.basename(a.model))
    rb = rebuild(a.model)
    out = {"_about": "SmolLM2-135M-Instruct tokenizer ids from HF transformers %s (GGUF conversion) and "
                     "tokenizers %s rebuilt from the GGUF vocab/merges with Digits+ByteLevel (both agree). "
                     "Special tokens in texts are matched (keel parse_special=true); the tokenizer adds no "
                     "BOS. Made by tools/golden_tokenizer_smollm2.py."
                     % (transformers.__version__, tokenizers.__version__),
           "model": os.path.basename(a.model), "encode": [], "chat": []}
    for s in TEXTS:
        ids = hf(s, add_special_tokens=False)["input_ids"]
        ids2 = rb.encode(s, add_special_tokens=False).ids
        assert ids == ids2, (s, ids, ids2)
        out["encode"].append({"text": s, "ids": ids})
    for c in CHATS:
        text = hf.apply_chat_template(c["messages"], tokenize=False,
                                      add_generation_prompt=c["add_generation_prompt"])
        ids = hf.apply_chat_template(c["messages"], tokenize=True,
                                     add_generation_prompt=c["add_generation_prompt"])
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        assert ids == rb.encode(text, add_special_tokens=False).ids
        out["chat"].append(dict(c, text=text, ids=list(ids)))
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, indent=1)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
