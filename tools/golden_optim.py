#!/usr/bin/env python3
# golden_optim.py — references for tests/unit/test_optim.c and test_writers.c,
# made by the real libraries:
#   tests/golden/optim.json          torch.optim.AdamW + clip_grad_norm_ + HF schedules
#                                    (10 steps, three hyper-parameter sets) and HF LR tables
#   tests/golden/st_write.safetensors safetensors.torch.save_file of fixed tensors (the C test
#                                    writes the same tensors and compares bytes)
#   tests/golden/peft.json           peft.LoraConfig(...).save_pretrained's adapter_config.json
#                                    and the tensor keys of a saved LoRA adapter on a tiny Llama
# Usage: PY=/root/.cache/keel/venv-oracle/bin/python; $PY tools/golden_optim.py
#        $PY tools/golden_optim.py --check-keel DIR   (checks files written by test_writers
#        with KEEL_WRITERS_KEEP=DIR: safe_open, LoraConfig/PeftModel.from_pretrained)
import json
import os
import struct
import sys
import tempfile
from importlib.metadata import version

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import optimization as hfo

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
GOLD = os.path.join(ROOT, "tests", "golden")


def f32list(t):
    # float32 -> Python float is exact; repr round-trips, so C's strtod gets the same float.
    return [float(x) for x in t.detach().reshape(-1).tolist()]


# ---- optimizer ------------------------------------------------------------------------
def optim_golden():
    g = torch.Generator().manual_seed(1234)
    # keel's buffer is these tensors back to back, in this order.
    layout = [("w1", (6, 10), True), ("norm", (10,), False), ("w2", (10, 7), True),
              ("bias", (7,), False)]
    init = {n: torch.randn(s, generator=g) * 0.5 + (1.0 if n == "norm" else 0.0)
            for n, s, _ in layout}
    n_steps = 10
    grads = []
    for k in range(n_steps):
        scale = [3.0, 0.5, 1e-4, 2.0, 1.0, 0.05, 4.0, 0.8, 1e-3, 1.5][k]
        grads.append({n: torch.randn(s, generator=g) * scale for n, s, _ in layout})
    runs = [
        dict(name="cosine_clip", lr=1e-2, betas=(0.9, 0.999), eps=1e-8, wd=0.1,
             sched="cosine", warmup=3, total=10, lr_min=0.0, max_norm=1.0),
        dict(name="linear_noclip", lr=5e-3, betas=(0.8, 0.99), eps=1e-6, wd=0.05,
             sched="linear", warmup=2, total=10, lr_min=0.0, max_norm=100.0),
        dict(name="constant_nowd", lr=1e-3, betas=(0.95, 0.98), eps=1e-7, wd=0.0,
             sched="constant", warmup=4, total=10, lr_min=0.0, max_norm=0.0),
        dict(name="cosine_minlr", lr=2e-2, betas=(0.9, 0.95), eps=1e-8, wd=0.2,
             sched="cosine", warmup=0, total=8, lr_min=2e-3, max_norm=2.5),
    ]
    out_runs = []
    for r in runs:
        params = {n: init[n].clone().requires_grad_(True) for n, _, _ in layout}
        decay = [params[n] for n, _, d in layout if d]
        nodecay = [params[n] for n, _, d in layout if not d]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": r["wd"]},
                                 {"params": nodecay, "weight_decay": 0.0}],
                                lr=r["lr"], betas=r["betas"], eps=r["eps"])
        if r["sched"] == "cosine" and r["lr_min"] > 0:
            sch = hfo.get_cosine_with_min_lr_schedule_with_warmup(
                opt, r["warmup"], r["total"], min_lr=r["lr_min"])
        elif r["sched"] == "cosine":
            sch = hfo.get_cosine_schedule_with_warmup(opt, r["warmup"], r["total"])
        elif r["sched"] == "linear":
            sch = hfo.get_linear_schedule_with_warmup(opt, r["warmup"], r["total"])
        else:
            sch = hfo.get_constant_schedule_with_warmup(opt, r["warmup"])
        lrs, norms, after = [], [], []
        for k in range(n_steps):
            for n, _, _ in layout:
                params[n].grad = grads[k][n].clone()
            if r["max_norm"] > 0:
                nrm = torch.nn.utils.clip_grad_norm_(list(params.values()), r["max_norm"])
                norms.append(float(nrm))
            else:
                norms.append(None)
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sch.step()
            after.append(sum((f32list(params[n]) for n, _, _ in layout), []))
        rr = dict(r)
        rr["betas"] = list(r["betas"])
        rr.update(lrs=lrs, norms=norms, params_after=after)
        out_runs.append(rr)

    # LR tables straight from HF's lambdas, including steps past total.
    tables = []
    dummy = [torch.nn.Parameter(torch.zeros(1))]
    for kind, w, t, lr, lr_min in (("constant", 5, 20, 3e-4, 0.0), ("linear", 5, 20, 3e-4, 0.0),
                                    ("cosine", 5, 20, 3e-4, 0.0), ("cosine", 7, 30, 1e-3, 1e-4),
                                    ("linear", 0, 12, 1.0, 0.0), ("cosine", 0, 1, 1.0, 0.0),
                                    ("linear", 3, 3, 1e-2, 0.0)):
        opt = torch.optim.SGD(dummy, lr=lr)
        if kind == "constant":
            sch = hfo.get_constant_schedule_with_warmup(opt, w)
        elif kind == "linear":
            sch = hfo.get_linear_schedule_with_warmup(opt, w, t)
        elif lr_min > 0:
            sch = hfo.get_cosine_with_min_lr_schedule_with_warmup(opt, w, t, min_lr=lr_min)
        else:
            sch = hfo.get_cosine_schedule_with_warmup(opt, w, t)
        lrs = []
        for _ in range(t + 4):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sch.step()
        tables.append(dict(kind=kind, warmup=w, total=t, lr=lr, lr_min=lr_min, lrs=lrs))

    return {
        "_about": "torch %s AdamW (single-tensor CPU path) with clip_grad_norm_ and transformers %s "
                  "schedules; layout = keel buffer order; grads[k] is the flat gradient before "
                  "clipping at step k; params_after[k] the flat parameters after step k; lrs[k] "
                  "the lr used by step k; norms[k] the pre-clip norm (null: no clipping)"
                  % (torch.__version__, version("transformers")),
        "layout": [{"name": n, "shape": list(s), "decay": d} for n, s, d in layout],
        "init": sum((f32list(init[n]) for n, _, _ in layout), []),
        "grads": [sum((f32list(gk[n]) for n, _, _ in layout), []) for gk in grads],
        "runs": out_runs,
        "tables": tables,
    }


# ---- safetensors --------------------------------------------------------------------
# The same tensors are built in test_writers.c: element i of tensor number k is
# ((i*37 + k*11) % 101 - 50) / 8, exact in F32, F16 and BF16.
ST_TENSORS = [
    ("b.weight", torch.float32, (2, 3, 4)),
    ("a", torch.float16, (5,)),
    ("Z_bf16", torch.bfloat16, (3, 2)),
    ("model.layers.0.self_attn.q_proj.lora_A.weight", torch.float32, (4, 6)),
    ("scalar", torch.float32, ()),
    ("\u00e9t\u00e9", torch.float32, (3,)),
    ("a.bias", torch.bfloat16, (7,)),
    ("z.half", torch.float16, (1, 1, 3)),
]


def st_value_tensor(k, dtype, shape):
    n = 1
    for d in shape:
        n *= d
    vals = [((i * 37 + k * 11) % 101 - 50) / 8.0 for i in range(n)]
    return torch.tensor(vals, dtype=torch.float32).reshape(shape).to(dtype)


def st_golden():
    tensors = {name: st_value_tensor(k, dt, sh) for k, (name, dt, sh) in enumerate(ST_TENSORS)}
    path = os.path.join(GOLD, "st_write.safetensors")
    save_file(tensors, path, metadata={"format": "pt"})
    with safe_open(path, "pt") as f:
        assert f.metadata() == {"format": "pt"}
        for name in tensors:
            assert torch.equal(f.get_tensor(name), tensors[name])
    return path


# ---- PEFT ---------------------------------------------------------------------------
def peft_golden():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                     "up_proj", "down_proj"],
                     task_type="CAUSAL_LM", use_rslora=True,
                     base_model_name_or_path="HuggingFaceTB/SmolLM2-135M-Instruct")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=2, num_attention_heads=2,
                                         num_key_value_heads=1))
    model.name_or_path = cfg.base_model_name_or_path  # else PEFT writes null
    pm = get_peft_model(model, cfg)
    with tempfile.TemporaryDirectory() as d:
        pm.save_pretrained(d)
        with open(os.path.join(d, "adapter_config.json")) as f:
            config = json.load(f)
        with safe_open(os.path.join(d, "adapter_model.safetensors"), "pt") as f:
            keys = sorted(f.keys())
    # target_modules is a set inside PEFT: the saved order is arbitrary.
    config["target_modules"] = sorted(config["target_modules"])
    return {"_about": "peft %s: adapter_config.json saved by PeftModel.save_pretrained and the "
                      "keys of adapter_model.safetensors (tiny 2-layer Llama, all 7 projections)"
                      % version("peft"),
            "adapter_config": config, "adapter_keys": keys}


# ---- check files that keel wrote ------------------------------------------------------
def check_keel(d):
    from peft import LoraConfig
    st = os.path.join(d, "st_write.safetensors")
    gold = os.path.join(GOLD, "st_write.safetensors")
    with safe_open(st, "pt") as f, safe_open(gold, "pt") as g:
        assert sorted(f.keys()) == sorted(g.keys()), "tensor names differ"
        for k in f.keys():
            assert torch.equal(f.get_tensor(k), g.get_tensor(k)), k
        assert f.metadata() == {"format": "pt"}
        n = len(g.keys())
    print("safe_open reads %s: %d tensors equal to the golden" % (st, n))
    cfg = LoraConfig.from_pretrained(os.path.join(d, "peft"))
    print("LoraConfig.from_pretrained: r=%d alpha=%s dropout=%s targets=%s rslora=%s base=%s"
          % (cfg.r, cfg.lora_alpha, cfg.lora_dropout, sorted(cfg.target_modules), cfg.use_rslora,
             cfg.base_model_name_or_path))
    with safe_open(os.path.join(d, "peft", "adapter_model.safetensors"), "pt") as f:
        keys = sorted(f.keys())
    want = json.load(open(os.path.join(GOLD, "peft.json")))["adapter_keys"]
    assert keys == want, "adapter keys differ from PEFT's"
    print("adapter_model.safetensors keys match PEFT's (%d)" % len(keys))
    # Load the adapter onto the same tiny model PEFT saved from.
    from peft import PeftModel
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=2, num_attention_heads=2,
                                         num_key_value_heads=1))
    pm = PeftModel.from_pretrained(model, os.path.join(d, "peft"))
    sd = pm.state_dict()
    with safe_open(os.path.join(d, "peft", "adapter_model.safetensors"), "pt") as f:
        for k in f.keys():
            live = k.replace(".lora_A.weight", ".lora_A.default.weight").replace(
                ".lora_B.weight", ".lora_B.default.weight")
            assert torch.equal(sd[live], f.get_tensor(k)), k
    print("PeftModel.from_pretrained loaded keel's adapter; every LoRA weight equal")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check-keel":
        check_keel(sys.argv[2])
        return
    with open(os.path.join(GOLD, "optim.json"), "w") as f:
        json.dump(optim_golden(), f, separators=(",", ":"))
        f.write("\n")
    p = st_golden()
    with open(os.path.join(GOLD, "peft.json"), "w") as f:
        json.dump(peft_golden(), f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote optim.json, %s (%d bytes), peft.json" % (os.path.basename(p), os.path.getsize(p)))


if __name__ == "__main__":
    main()
