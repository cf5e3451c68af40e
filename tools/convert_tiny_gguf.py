#!/usr/bin/env python3
"""convert_tiny_gguf.py -- export tests/data/tiny-llama-hf to GGUF with llama.cpp's own converter.

Runs the vendored convert_hf_to_gguf.py (from the llama-cpp-python sdist unpacked by
tools/build_llama_cpp.sh) with its vendored gguf-py. The only change: our tiny trained BPE
tokenizer is unknown to the converter's pre-tokenizer fingerprint table, so we declare it
"gpt-2" (it is exactly the GPT-2 ByteLevel regex). The converter permutes Q/K rows for
llama.cpp's RoPE layout, so this file checks a loader's GGUF un-permute against the HF model.
Usage: convert_tiny_gguf.py [--llama-cpp DIR] [--model DIR] [--out FILE] [--outtype f32|f16|bf16]
"""
import argparse
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--llama-cpp", default=os.path.join(os.environ.get("KEEL_CACHE", "/root/.cache/keel"),
                                                      "src/llama_cpp_python-0.3.36/vendor/llama.cpp"))
ap.add_argument("--model", default=os.path.join(here, "..", "tests", "data", "tiny-llama-hf"))
ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "tiny-llama.gguf"))
ap.add_argument("--outtype", default="f32")
args = ap.parse_args()

sys.path.insert(0, args.llama_cpp)
sys.path.insert(1, os.path.join(args.llama_cpp, "gguf-py"))
import conversion.base  # noqa: E402
import convert_hf_to_gguf  # noqa: E402

conversion.base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
sys.argv = ["convert_hf_to_gguf.py", args.model, "--outfile", args.out, "--outtype", args.outtype]
convert_hf_to_gguf.main()
