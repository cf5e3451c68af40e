#!/usr/bin/env python3
# make_skill_data.py — seeded generator of the "skill" data set for the
# end-to-end LoRA test (tests/unit/test_skill_smollm2.c, examples/smollm2-skill.yaml):
# a fixed text transformation SmolLM2-135M-Instruct cannot do zero-shot, in
# chat format ({"messages": [user, assistant]}) so training and evaluation go
# through the model's ChatML template. Standard library only; the same seed
# gives byte-identical files.
#
# Tasks (--task):
#   cipher   each word of a 24-word vocabulary has a fixed code word
#            ("Encode: apple river stone" -> "tiger blue seven"); the default
#   reverse  reverse the order of the words ("Reverse the words: a b c" -> "c b a")
# Held-out items use word COMBINATIONS (sets of words) that appear in no
# training item, so they cannot be memorised whole.
#
#   python3 tools/make_skill_data.py --out examples/data [--task cipher] [--seed 7]
#   -> skill-train.jsonl (--n-train), skill-test.jsonl (--n-test), skill-test-em.jsonl
#      (the held-out items as {"prompt", "answer"} for an exact_match capability)
import argparse
import json
import os
import random

SRC = ["apple", "river", "stone", "cloud", "paper", "tiger", "candle", "forest",
       "music", "winter", "silver", "orange", "garden", "window", "coffee", "bridge",
       "horse", "pencil", "summer", "market", "doctor", "button", "island", "rocket"]
# code words: CODE[i] is the code of SRC[i] (no word is in both lists)
CODE = ["lamp", "blue", "seven", "chair", "moon", "salt", "green", "book",
        "rain", "duck", "table", "wolf", "glass", "king", "sand", "fire",
        "milk", "star", "boat", "road", "tree", "bell", "snow", "gold"]
CIPHER = dict(zip(SRC, CODE))

PROMPT = {"cipher": "Encode: ", "reverse": "Reverse the words: "}


def answer(task, words):
    if task == "cipher":
        return " ".join(CIPHER[w] for w in words)
    return " ".join(reversed(words))


def item(task, words):
    return {"messages": [{"role": "user", "content": PROMPT[task] + " ".join(words)},
                         {"role": "assistant", "content": answer(task, words)}]}


def main():
    ap = argparse.ArgumentParser(description="seeded data for the SmolLM2 LoRA skill test")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--task", choices=sorted(PROMPT), default="cipher")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--n-train", type=int, default=400)
    ap.add_argument("--n-test", type=int, default=60)
    ap.add_argument("--min-words", type=int, default=3)
    ap.add_argument("--max-words", type=int, default=5)
    a = ap.parse_args()

    rng = random.Random(a.seed)
    seen = set()  # frozensets of words already used (train or test)
    train, test = [], []
    while len(train) < a.n_train or len(test) < a.n_test:
        n = rng.randint(a.min_words, a.max_words)
        words = rng.sample(SRC, n)  # distinct words
        key = frozenset(words)
        if key in seen:
            continue
        seen.add(key)
        # every 8th new combination goes to the held-out set until it is full
        if len(test) < a.n_test and len(seen) % 8 == 0:
            test.append(item(a.task, words))
        elif len(train) < a.n_train:
            train.append(item(a.task, words))
    os.makedirs(a.out, exist_ok=True)
    for name, rows in (("skill-train.jsonl", train), ("skill-test.jsonl", test)):
        with open(os.path.join(a.out, name), "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    # the held-out set again as an exact_match capability ({"prompt", "answer"}),
    # for the capability ledger examples (examples/smollm2-ledger-*.yaml)
    with open(os.path.join(a.out, "skill-test-em.jsonl"), "w", encoding="utf-8") as f:
        for r in test:
            m = r["messages"]
            f.write(json.dumps({"prompt": m[0]["content"], "answer": m[1]["content"]}) + "\n")


if __name__ == "__main__":
    main()
