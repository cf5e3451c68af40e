#!/usr/bin/env python3
# golden_tokenizer_hf.py — reference ids from Hugging Face `tokenizers` for the
# GPT-2 and Llama-2 tokenizer.json files in ../shared/models/tokenizers/, on a
# few texts beyond llama.cpp's 46 strings (special tokens inside text, odd
# whitespace, long runs). Writes tests/golden/hf_tokenizers_extra.json, read by
# tests/unit/test_tokenizer.c. Needs: pip install tokenizers
#   python3 tools/golden_tokenizer_hf.py [shared_dir]
import json
import os
import sys

import tokenizers
from tokenizers import Tokenizer

shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "shared")
texts = [
    "Hello <s> world</s>", "<s>", "</s>x", "  leading", "trailing  ", "a\tb\nc\r\nd", "ünïcödé ünicode",
    "1234567890", "<0x41> <unk>", "  <|endoftext|>  x<|endoftext|>", "I'm sure they'll've done it'S",
    "\u00a0nbsp\u2009thin", "x" * 300, " " * 50 + "end", "日本語のテキスト", "\U0001F600\U0001F600", "tab\t\tsep",
]
out = {"_about": "HF tokenizers %s encode(text, add_special_tokens=False/True); special tokens in the "
                  "text are always matched (keel: parse_special=true)" % tokenizers.__version__}
for name in ["gpt2", "llama2"]:
    tok = Tokenizer.from_file(os.path.join(shared, "models", "tokenizers", name, "tokenizer.json"))
    out[name] = [{"text": s,
                  "ids": tok.encode(s, add_special_tokens=False).ids,
                  "ids_add_special": tok.encode(s, add_special_tokens=True).ids} for s in texts]
dst = os.path.join(os.path.dirname(__file__), "..", "tests", "golden", "hf_tokenizers_extra.json")
with open(dst, "w", encoding="utf-8") as f:
    json.dump(out, f, ensure_ascii=True, indent=0)
print("wrote", dst)
