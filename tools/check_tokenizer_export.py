#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# check_tokenizer_export.py — optional check (not in the default suite) that
# HF tokenizers and transformers read what keel_tokenizer_write_hf
# (src/tokenizer/hf_write.c) writes and encode as the original GGUF does.
#   KEEL_TOKEXPORT_KEEP=/tmp/tokexport build/tests/test_tokenizer_export
#   /root/.cache/keel/venv-oracle/bin/python tools/check_tokenizer_export.py /tmp/tokexport
# gpt-2/: tokenizers.Tokenizer and AutoTokenizer against llama.cpp's
# ggml-vocab-gpt-2.gguf.inp/.out (ids made by HF from GPT-2's own tokenizer);
# smollm2/: against tests/golden/smollm2_tokens.json (encodings, and the chat
# prompts via apply_chat_template). Exit status 1 on any mismatch.
import json, os, sys
from tokenizers import Tokenizer
from transformers import AutoTokenizer

keep = sys.argv[1]
shared = os.environ.get("KEEL_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
bad = total = 0

def check(what, got, want):
    global bad, total
    total += 1
    if list(got) != list(want):
        bad += 1
        print(f"MISMATCH {what}: got {list(got)[:12]} want {list(want)[:12]}")

def load(d):
    return Tokenizer.from_file(os.path.join(d, "tokenizer.json")), AutoTokenizer.from_pretrained(d)

d = os.path.join(keep, "gpt-2")
if os.path.isdir(d):
    tk, at = load(d)
    base = os.path.join(shared, "models/llama.cpp-vocab/ggml-vocab-gpt-2.gguf")
    texts = open(base + ".inp", encoding="utf-8").read().split("\n__ggml_vocab_test__\n")[:-1]
    outs = open(base + ".out").read().split("\n")
    for text, line in zip(texts, outs):
        want = [int(x) for x in line.split()]
        check(f"gpt-2 tokenizers {text[:30]!r}", tk.encode(text, add_special_tokens=False).ids, want)
        check(f"gpt-2 AutoTokenizer {text[:30]!r}", at(text, add_special_tokens=False)["input_ids"], want)
    print(f"gpt-2: {len(texts)} strings checked")

d = os.path.join(keep, "smollm2")
if os.path.isdir(d):
    tk, at = load(d)
    g = json.load(open(os.path.join(os.path.dirname(__file__), "..", "tests/golden/smollm2_tokens.json")))
    for c in g["encode"]:
        check(f"smollm2 tokenizers {c['text'][:30]!r}", tk.encode(c["text"]).ids, c["ids"])
        check(f"smollm2 AutoTokenizer {c['text'][:30]!r}", at(c["text"])["input_ids"], c["ids"])
    for c in g["chat"]:
        gen = c["add_generation_prompt"]
        s = at.apply_chat_template(c["messages"], tokenize=False, add_generation_prompt=gen)
        total += 1
        if s != c["text"]:
            bad += 1
            print(f"MISMATCH smollm2 chat text: {s!r}")
        check("smollm2 chat ids", at(s, add_special_tokens=False)["input_ids"], c["ids"])
    print(f"smollm2: {len(g['encode'])} texts, {len(g['chat'])} chat prompts checked")

print(f"{total - bad}/{total} checks passed")
sys.exit(1 if bad or not total else 0)
