#!/usr/bin/env python3
"""make_ppl_text.py -- write the perplexity text used by tests/golden/smollm2_ppl.json.

The text is the "passage" fields of the first N (default 40) lines of
shared/datasets/boolq_validation.jsonl, in file order, joined with "\n\n", with no trailing
newline, UTF-8. keel's C test rebuilds the same bytes from the jsonl (cJSON), so the text itself
is not committed. Usage: make_ppl_text.py OUT.txt [--jsonl PATH] [--n 40]
"""
import argparse
import hashlib
import json

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--jsonl", default="/work/shared/datasets/boolq_validation.jsonl")
ap.add_argument("--n", type=int, default=40)
args = ap.parse_args()

passages = []
with open(args.jsonl, encoding="utf-8") as f:
    for line in f:
        if len(passages) == args.n:
            break
        passages.append(json.loads(line)["passage"])
data = "\n\n".join(passages).encode("utf-8")
with open(args.out, "wb") as f:
    f.write(data)
print(f"{args.out}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
