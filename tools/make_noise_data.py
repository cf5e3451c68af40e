#!/usr/bin/env python3
"""Write examples/data/noise-train.jsonl: the words of examples/data/stories-train.jsonl
shuffled within each story (seeded). Training stories260K on it is a task that
conflicts with telling stories: the capability ledger tests and examples use it
to break a perplexity bound on purpose.

    python3 tools/make_noise_data.py
"""
import json
import random

rng = random.Random(1234)
out = []
with open("examples/data/stories-train.jsonl", encoding="utf-8") as f:
    for line in f:
        words = json.loads(line)["text"].split()
        rng.shuffle(words)
        out.append(json.dumps({"text": " ".join(words)}, ensure_ascii=False))
with open("examples/data/noise-train.jsonl", "w", encoding="utf-8") as f:
    f.write("\n".join(out) + "\n")
print(f"wrote {len(out)} lines")
