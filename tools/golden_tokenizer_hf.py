#!/usr/bin/env python3
# golden_tokenizer_hf.py — reference ids from Hugging Face `tokenizers` for the
# GPT-2 and Llama-2 tokenizer.json files in ../shared/models/tokenizers/, on a
# few texts beyond llama.cpp's 46 strings (special tokens inside text, odd
# whitespace, long runs). Also trains a tiny byte-level BPE with the less
# common tokenizer.json features (merges as [a, b] pairs, Split(String),
# Digits, added tokens with lstrip/rstrip, non-special added tokens,
# TemplateProcessing with BOS+EOS, ignore_merges) and saves it to
# tests/data/tiny_bpe_tokenizer.json (+ _ignore_merges variant), and a tiny
# tokenizer with Llama-3's pre-tokenizer (tests/data/tiny_llama3_tokenizer.json
# and, with `pip install gguf`, tests/data/tiny_llama3.gguf).
# Writes tests/golden/hf_tokenizers_extra.json, read by
# tests/unit/test_tokenizer.c. Needs: pip install tokenizers
#   python3 tools/golden_tokenizer_hf.py [shared_dir]
import json
import os
import sys

import tokenizers
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

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
# ---- the Llama-2 vocabulary behind a Metaspace pre-tokenizer (the layout newer
# transformers write for SentencePiece models); the C test builds the same json
with open(os.path.join(shared, "models", "tokenizers", "llama2", "tokenizer.json"), encoding="utf-8") as f:
    l2 = json.load(f)
for scheme, split in [("first", False), ("always", True)]:
    j = dict(l2, normalizer=None,
             pre_tokenizer={"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme, "split": split})
    tk = Tokenizer.from_str(json.dumps(j))
    out["llama2_metaspace_%s_%s" % (scheme, "split" if split else "nosplit")] = [
        {"text": s, "ids": tk.encode(s, add_special_tokens=False).ids,
         "ids_add_special": tk.encode(s, add_special_tokens=True).ids} for s in texts]

# ---- tiny trained tokenizer
here = os.path.dirname(os.path.abspath(__file__))
tiny = Tokenizer(models.BPE())
tiny.pre_tokenizer = pre_tokenizers.Sequence([
    pre_tokenizers.Split("-", behavior="isolated"),
    pre_tokenizers.Digits(individual_digits=True),
    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
tiny.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|bos|>", "<|eos|>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
tiny.train_from_iterator(["the quick brown fox jumps over the lazy dog 0123456789 " * 20,
                          "Once upon a time, there was a little girl named Lily. She loved to play outside. " * 20,
                          "state-of-the-art well-known co-operate 2024-01-02"], trainer)
tiny.add_special_tokens([AddedToken("<|user|>", special=True, lstrip=True, rstrip=True, normalized=False)])
tiny.add_tokens([AddedToken("[[x]]", special=False, normalized=False)])
tiny.post_processor = processors.TemplateProcessing(
    single="<|bos|> $A <|eos|>", special_tokens=[("<|bos|>", tiny.token_to_id("<|bos|>")),
                                                 ("<|eos|>", tiny.token_to_id("<|eos|>"))])
tiny_texts = ["Once upon a time, Lily saw a fox.", "state-of-the-art 2024-01-02!", "hi   <|user|>   there",
              "x[[x]]y <|user|>", "the lazy dog's 3 toys", "naïve café 😀", "", "   "]
data_dir = os.path.join(here, "..", "tests", "data")
tiny.save(os.path.join(data_dir, "tiny_bpe_tokenizer.json"))
j = json.loads(tiny.to_str())
j["model"]["ignore_merges"] = True
tiny_im = Tokenizer.from_str(json.dumps(j))
tiny_im.save(os.path.join(data_dir, "tiny_bpe_tokenizer_ignore_merges.json"))
for key, tk in [("tiny", tiny), ("tiny_ignore_merges", tiny_im)]:
    out[key] = [{"text": s,
                 "ids": tk.encode(s, add_special_tokens=False).ids,
                 "ids_add_special": tk.encode(s, add_special_tokens=True).ids} for s in tiny_texts]

# ---- a tiny tokenizer with Llama-3's pre-tokenizer (Split with its regex,
# then ByteLevel without regex; ignore_merges), as tokenizer.json and as a
# vocab-only GGUF with tokenizer.ggml.pre = "llama-bpe"; checked on
# llama.cpp's 46 test strings
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+")
with open(os.path.join(shared, "models", "llama.cpp-vocab", "ggml-vocab-gpt-2.gguf.inp"), encoding="utf-8") as f:
    vocab_tests = f.read().split("\n__ggml_vocab_test__\n")[:-1]
l3 = Tokenizer(models.BPE(ignore_merges=True))
l3.pre_tokenizer = pre_tokenizers.Sequence([
    pre_tokenizers.Split(tokenizers.Regex(LLAMA3_RE), behavior="isolated", invert=False),
    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
l3.decoder = decoders.ByteLevel()
l3.train_from_iterator(["Hello world! I'm sure they'll be there, aren't they? 1234567 + 89 = ?\n\n  x\n" * 10,
                        "Once upon a time, there was a little girl named Lily. She loved to play outside. " * 20]
                       + vocab_tests,
                       trainers.BpeTrainer(vocab_size=700, special_tokens=["<|begin_of_text|>", "<|end_of_text|>"],
                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
l3.save(os.path.join(data_dir, "tiny_llama3_tokenizer.json"))
try:
    import gguf
    l3j = json.loads(l3.to_str())
    toks = [None] * l3.get_vocab_size()
    for t_, i_ in l3.get_vocab().items():
        toks[i_] = t_
    w = gguf.GGUFWriter(os.path.join(data_dir, "tiny_llama3.gguf"), "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(toks)
    w.add_token_types([3 if t_ in ("<|begin_of_text|>", "<|end_of_text|>") else 1 for t_ in toks])
    w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in l3j["model"]["merges"]])
    w.add_bos_token_id(l3.token_to_id("<|begin_of_text|>"))
    w.add_eos_token_id(l3.token_to_id("<|end_of_text|>"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
except ImportError:
    print("gguf not installed: tests/data/tiny_llama3.gguf not rewritten")
out["tiny_llama3"] = [{"text": s, "ids": l3.encode(s, add_special_tokens=False).ids,
                       "ids_add_special": l3.encode(s, add_special_tokens=True).ids}
                      for s in vocab_tests + texts]

dst = os.path.join(os.path.dirname(__file__), "..", "tests", "golden", "hf_tokenizers_extra.json")
with open(dst, "w", encoding="utf-8") as f:
    json.dump(out, f, ensure_ascii=True, indent=0)
print("wrote", dst)
