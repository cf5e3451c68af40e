#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench_pytorch_train.py — the PyTorch peer of bench/bench_train.c: the same
Llama model (SmolLM2-135M-Instruct, weights read from the same GGUF and
dequantized to fp32 with the `gguf` package) and the same training step
(forward + backward + AdamW on a (B, T) batch of fixed pseudo-random tokens),
written in plain PyTorch: no transformers, no PEFT; LoRA is a plain low-rank
branch y += s * (x A^T) B^T beside each frozen fp32 projection. Prints one line
of key=value pairs in bench_train's format (median step time, tokens/s, peak
RSS from ru_maxrss). bench/run_train.sh runs it next to keel in the same run.

    python tools/bench_pytorch_train.py MODEL.gguf lora|full [threads=2] [B=4] [T=256] [steps=3] [warmup=1]

PyTorch's best settings on this machine (/work/shared/PERF-NOTES.md), which
run_train.sh applies:
  * torch.set_num_threads(threads) (2 on the 2-core machines);
  * OMP_WAIT_POLICY=PASSIVE in the environment (idle OpenMP workers sleep
    instead of spinning against the other busy thread);
  * tcmalloc: `apt-get install libgoogle-perftools4`, then
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4 (run_train.sh uses it
    when present);
  * PyTorch from PyPI uses MKL / oneDNN for its matmuls, so the
    OPENBLAS_CORETYPE=Haswell caveat of PERF-NOTES does not apply to it.
"""
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def load_gguf(path):
    import gguf
    r = gguf.GGUFReader(path)

    def field(k):
        v = r.fields[k]
        return v.parts[v.data[0]][0]

    cfg = dict(
        n_layer=int(field("llama.block_count")), C=int(field("llama.embedding_length")),
        F=int(field("llama.feed_forward_length")), NH=int(field("llama.attention.head_count")),
        NKV=int(field("llama.attention.head_count_kv")), theta=float(field("llama.rope.freq_base")),
        eps=float(field("llama.attention.layer_norm_rms_epsilon")))
    w = {}
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type)
        shape = [int(x) for x in reversed(t.shape)]
        w[t.name] = torch.from_numpy(np.array(a, dtype=np.float32).reshape(shape))
    cfg["V"] = w["token_embd.weight"].shape[0]
    hd = cfg["C"] // cfg["NH"]
    cfg["hd"] = hd

    # GGUF stores q/k rows in Meta's interleaved-pair order: back to HF's
    # half-split order, so the rotate-half RoPE below is the model's.
    def unpermute(x, nh):
        return x.reshape(nh, hd // 2, 2, -1).transpose(1, 2).reshape(nh * hd, -1).contiguous()

    for l in range(cfg["n_layer"]):
        w[f"blk.{l}.attn_q.weight"] = unpermute(w[f"blk.{l}.attn_q.weight"], cfg["NH"])
        w[f"blk.{l}.attn_k.weight"] = unpermute(w[f"blk.{l}.attn_k.weight"], cfg["NKV"])
    return cfg, w


class Linear(torch.nn.Module):
    """y = x W^T, W trainable (full) or frozen with a LoRA branch."""

    def __init__(self, W, lora_r=0, alpha=32.0):
        super().__init__()
        self.lora = lora_r > 0
        self.weight = torch.nn.Parameter(W.clone(), requires_grad=not self.lora)
        if self.lora:
            n_out, n_in = W.shape
            self.A = torch.nn.Parameter(torch.empty(lora_r, n_in).uniform_(-n_in ** -0.5, n_in ** -0.5))
            self.B = torch.nn.Parameter(torch.zeros(n_out, lora_r))
            self.s = alpha / lora_r

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.lora:
            y = y + self.s * F.linear(F.linear(x, self.A), self.B)
        return y


class Llama(torch.nn.Module):
    def __init__(self, cfg, w, lora_r):
        super().__init__()
        self.cfg = cfg
        full = lora_r == 0
        self.embed = torch.nn.Parameter(w["token_embd.weight"].clone(), requires_grad=full)  # tied head
        self.layers = torch.nn.ModuleList()
        for l in range(cfg["n_layer"]):
            p = f"blk.{l}."
            L = torch.nn.Module()
            L.n1 = torch.nn.Parameter(w[p + "attn_norm.weight"].clone(), requires_grad=full)
            L.n2 = torch.nn.Parameter(w[p + "ffn_norm.weight"].clone(), requires_grad=full)
            for name, key in (("q", "attn_q"), ("k", "attn_k"), ("v", "attn_v"), ("o", "attn_output"),
                              ("gate", "ffn_gate"), ("up", "ffn_up"), ("down", "ffn_down")):
                setattr(L, name, Linear(w[p + key + ".weight"], lora_r))
            self.layers.append(L)
        self.norm = torch.nn.Parameter(w["output_norm.weight"].clone(), requires_grad=full)
        hd = cfg["hd"]
        inv = 1.0 / (cfg["theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        self.inv_freq = inv

    def rms(self, x, g):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.cfg["eps"]) * g

    def forward(self, tok, tgt):
        c = self.cfg
        B, T = tok.shape
        NH, NKV, hd = c["NH"], c["NKV"], c["hd"]
        ang = torch.outer(torch.arange(T, dtype=torch.float32), self.inv_freq)
        cos = torch.cat([ang.cos(), ang.cos()], -1)
        sin = torch.cat([ang.sin(), ang.sin()], -1)

        def rope(x):  # (B, H, T, hd), HF rotate-half
            x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
            return x * cos + torch.cat([-x2, x1], -1) * sin

        x = F.embedding(tok, self.embed)
        for L in self.layers:
            h = self.rms(x, L.n1)
            q = rope(L.q(h).view(B, T, NH, hd).transpose(1, 2))
            k = rope(L.k(h).view(B, T, NKV, hd).transpose(1, 2))
            v = L.v(h).view(B, T, NKV, hd).transpose(1, 2)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            x = x + L.o(a.transpose(1, 2).reshape(B, T, NH * hd))
            h = self.rms(x, L.n2)
            x = x + L.down(F.silu(L.gate(h)) * L.up(h))
        logits = F.linear(self.rms(x, self.norm), self.embed)
        return F.cross_entropy(logits.view(B * T, -1), tgt.view(-1))


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, mode = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    B = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    T = int(sys.argv[5]) if len(sys.argv) > 5 else 256
    steps = int(sys.argv[6]) if len(sys.argv) > 6 else 3
    warmup = int(sys.argv[7]) if len(sys.argv) > 7 else 1
    if mode not in ("lora", "full"):
        print("mode: lora or full", file=sys.stderr)
        return 2
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg, w = load_gguf(path)
    model = Llama(cfg, w, 16 if mode == "lora" else 0)
    del w
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() > 1]
    no_decay = [p for p in params if p.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-5 if mode == "full" else 1e-4)
    # the same fixed pseudo-random stream as bench_train.c
    N = B * T
    st, ids = 0x9E3779B97F4A7C15, []
    for _ in range(N + 1):
        st = (st * 6364136223846793005 + 1442695040888963407) & (2 ** 64 - 1)
        ids.append((st >> 33) % cfg["V"])
    ids = torch.tensor(ids, dtype=torch.long)
    tok, tgt = ids[:N].view(B, T), ids[1:].view(B, T)
    dts, fwd, bwd, ost = [], 0.0, 0.0, 0.0
    cpu0 = wall0 = 0.0
    for s in range(warmup + steps):
        if s == warmup:
            cpu0, wall0 = time.process_time(), time.perf_counter()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss = model(tok, tgt)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if s >= warmup:
            dts.append(t3 - t0)
            fwd, bwd, ost = fwd + t1 - t0, bwd + t2 - t1, ost + t3 - t2
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    med = statistics.median(dts)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    n_train = sum(p.numel() for p in params)
    print(f"system=pytorch mode={mode} threads={threads} B={B} T={T} steps={steps} tok_s={N / med:.1f} "
          f"step_s={med:.3f} fwd_s={fwd / steps:.3f} bwd_s={bwd / steps:.3f} opt_s={ost / steps:.3f} "
          f"cpu_per_wall={cpu / wall:.2f} peak_rss_mib={rss:.0f} trainable={n_train} loss={loss.item():.4f} "
          f"torch={torch.__version__} tcmalloc={'tcmalloc' in os.environ.get('LD_PRELOAD', '')} "
          f"omp_wait={os.environ.get('OMP_WAIT_POLICY', '-')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
