#!/usr/bin/env python3
"""make_tiny_hf.py -- build keel's tiny random Llama test models and their golden logits.

Writes two HF-format model directories (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json, generation_config.json) under tests/data/:
  tiny-llama-hf/       fp32 weights, untied lm_head
  tiny-llama-hf-bf16/  the same weights in bf16, lm_head tied to embed_tokens (no lm_head tensor)
and tests/golden/tiny_hf_logits.json with, for each model, the input ids of a fixed text, the
full logits of every position (fp32 forward on the stored weights) and a greedy 16-token
continuation. The tokenizer is a ~320-entry byte-level BPE trained here with `tokenizers` on the
first BoolQ passages. Weights are seeded random, scaled up from HF's default init so that logits
are far from uniform and norms are not all-ones. See tests/golden/README.md.
Usage: make_tiny_hf.py [--repo DIR] [--boolq PATH]
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import tokenizers
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SEED = 1234
VOCAB = 320
TEXT = "In 2024, the state's 3 rivers ran dry."
NEW_TOKENS = 16


def train_tokenizer(boolq_path, n_passages=30):
    texts = []
    with open(boolq_path, encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["passage"])
            if len(texts) == n_passages:
                break
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, min_frequency=2, show_progress=False,
                                  special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def make_config(vocab, tied):
    return LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                       rms_norm_eps=1e-5, rope_theta=10000.0, hidden_act="silu",
                       tie_word_embeddings=tied, bos_token_id=0, eos_token_id=0, pad_token_id=0,
                       attention_bias=False, mlp_bias=False)


def randomize(model, gen, emb_scale=1.0):
    """Seeded weights: matrices ~ N(0, 1/fan_in)*1.5 (logits of a few units), embeddings
    ~ N(0, emb_scale^2), RMSNorm weights ~ 1 + 0.2*N(0, 1)."""
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name:
                p.copy_(emb_scale * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * (1.5 / p.shape[1] ** 0.5))


def patch_for_old_readers(d):
    """transformers 5 writes rope_parameters/dtype and tokenizer_class TokenizersBackend; real
    checkpoints (and older transformers) use top-level rope_theta/torch_dtype and
    PreTrainedTokenizerFast. Write both spellings so the files look like real-world ones."""
    cp = os.path.join(d, "config.json")
    cfg = json.load(open(cp))
    cfg["rope_theta"] = cfg.get("rope_parameters", {}).get("rope_theta", 10000.0)
    cfg["torch_dtype"] = cfg.get("dtype", "float32")
    json.dump(cfg, open(cp, "w"), indent=2, sort_keys=True)
    tp = os.path.join(d, "tokenizer_config.json")
    tc = json.load(open(tp))
    tc["tokenizer_class"] = "PreTrainedTokenizerFast"
    tc["add_bos_token"] = False
    tc["add_eos_token"] = False
    json.dump(tc, open(tp, "w"), indent=2, sort_keys=True)


def f8(x):
    return float(f"{float(x):.8g}")


def golden(model, ids):
    model = model.float().eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]            # [T, vocab]
        gen = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             do_sample=False, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                             pad_token_id=0, output_scores=True, return_dict_in_generate=True)
    new = gen.sequences[0, len(ids):].tolist()
    gaps = [f8(s[0].topk(2).values[0] - s[0].topk(2).values[1]) for s in gen.scores]
    return {
        "logits": [[f8(v) for v in row] for row in logits.tolist()],
        "greedy_ids": new,
        "greedy_top1_top2_gap": gaps,
    }


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default=os.path.join(here, ".."))
    ap.add_argument("--boolq", default="/work/shared/datasets/boolq_validation.jsonl")
    args = ap.parse_args()
    data = os.path.join(args.repo, "tests", "data")
    torch.manual_seed(SEED)

    tok = train_tokenizer(args.boolq)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                     eos_token="<|endoftext|>", unk_token=None,
                                     pad_token="<|endoftext|>", model_max_length=256)
    vocab = tok.get_vocab_size()
    ids = tok.encode(TEXT).ids

    gen = torch.Generator().manual_seed(SEED)
    base = LlamaForCausalLM(make_config(vocab, tied=False))
    randomize(base, gen)

    out = {
        "text": TEXT,
        "ids": ids,
        "tokens": tok.encode(TEXT).tokens,
        "vocab_size": vocab,
        "add_bos": False,
        "seed": SEED,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__, "numpy": np.__version__,
                     "python": sys.version.split()[0]},
        "models": {},
    }

    # 1) fp32, untied.
    d1 = os.path.join(data, "tiny-llama-hf")
    base.save_pretrained(d1, safe_serialization=True)
    hf_tok.save_pretrained(d1)
    patch_for_old_readers(d1)
    out["models"]["tiny-llama-hf"] = dict(dtype="float32", tie_word_embeddings=False, **golden(base, ids))

    # 2) bf16, tied: its own seeded weights (smaller embeddings, else a tied head just echoes the
    #    input token), rounded to bf16. The reference forward runs in fp32 on the bf16-rounded
    #    values (what a loader that upcasts computes).
    tied = LlamaForCausalLM(make_config(vocab, tied=True))
    randomize(tied, torch.Generator().manual_seed(SEED + 1), emb_scale=0.5)
    tied = tied.to(torch.bfloat16)
    d2 = os.path.join(data, "tiny-llama-hf-bf16")
    tied.save_pretrained(d2, safe_serialization=True)
    hf_tok.save_pretrained(d2)
    patch_for_old_readers(d2)
    reloaded = LlamaForCausalLM.from_pretrained(d2, dtype=torch.float32)
    assert reloaded.lm_head.weight.data_ptr() == reloaded.model.embed_tokens.weight.data_ptr()
    out["models"]["tiny-llama-hf-bf16"] = dict(dtype="bfloat16", tie_word_embeddings=True,
                                               **golden(reloaded, ids))

    # The patched files must still load and give the same logits.
    from transformers import AutoTokenizer
    for name in out["models"]:
        d = os.path.join(data, name)
        assert AutoTokenizer.from_pretrained(d)(TEXT, add_special_tokens=False).input_ids == ids
        m = LlamaForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
        with torch.no_grad():
            lg = m(torch.tensor([ids])).logits[0]
        ref = torch.tensor(out["models"][name]["logits"])
        assert torch.allclose(lg, ref, rtol=1e-5, atol=1e-5), name
    for name in out["models"]:
        st = os.path.join(data, name, "model.safetensors")
        out["models"][name]["safetensors_sha256"] = hashlib.sha256(open(st, "rb").read()).hexdigest()

    path = os.path.join(args.repo, "tests", "golden", "tiny_hf_logits.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n")
        keys = list(out)
        for i, k in enumerate(keys):
            sep = "," if i + 1 < len(keys) else ""
            if k != "models":
                f.write(f' {json.dumps(k)}: {json.dumps(out[k], ensure_ascii=False)}{sep}\n')
                continue
            f.write(' "models": {\n')
            for j, (mn, m) in enumerate(out["models"].items()):
                f.write(f'  {json.dumps(mn)}: {{\n')
                items = list(m.items())
                for t, (mk, mv) in enumerate(items):
                    s2 = "," if t + 1 < len(items) else ""
                    if mk == "logits":
                        rows = ",\n".join("    " + json.dumps(r) for r in mv)
                        f.write(f'   "logits": [\n{rows}\n   ]{s2}\n')
                    else:
                        f.write(f'   {json.dumps(mk)}: {json.dumps(mv)}{s2}\n')
                f.write("  }" + ("," if j + 1 < len(out["models"]) else "") + "\n")
            f.write(" }" + sep + "\n")
        f.write("}\n")
    print("vocab", vocab, "ids", ids)
    for mn, m in out["models"].items():
        print(mn, "greedy", m["greedy_ids"], "min gap", min(m["greedy_top1_top2_gap"]))


if __name__ == "__main__":
    main()
