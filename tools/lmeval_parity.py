#!/usr/bin/env python3
"""lmeval_parity.py -- EleutherAI lm-evaluation-harness reference numbers for keel's `keel eval`.

Runs lm-eval (PyPI `lm_eval`, model type `hf`) 0-shot, no chat template, default task settings, on
SmolLM2-135M-Instruct: the same weights keel uses (the Q4_1 GGUF, dequantized to fp32 by transformers
and saved as a plain HF directory so lm-eval can load it offline). Datasets come from the staged
local files in /work/shared/datasets (the Hub is not reachable); tools/lmeval_tasks/*.yaml are local
task configs with the same prompts/choices/targets/metrics as lm-eval's builtin tasks (checked by
`check-prompts` against the builtin tasks' own doc_to_text/doc_to_choice/doc_to_target).
Writes tests/golden/lmeval_smollm2.json (aggregates + per-item log-likelihoods of the first 40 items)
and tests/golden/lmeval_requests_smollm2.json (lm-eval's contexts/continuations/token ids, 5 items
per task). See tests/golden/README.md, section "lm-eval parity".

Needs: the oracle venv (/root/.cache/keel/venv-oracle) with `pip install lm_eval`.
Usage (each step can be run alone; `all` runs them in order):
  PY=/root/.cache/keel/venv-oracle/bin/python
  $PY tools/lmeval_parity.py setup-hf       # GGUF -> ~/.cache/keel/smollm2-135m-instruct-hf (fp32), logit check
  $PY tools/lmeval_parity.py check-prompts  # local task configs == builtin lm-eval tasks on the staged docs
  $PY tools/lmeval_parity.py run [--tasks keel_arc_easy,keel_piqa] [--limit N] [--docs A-B] [--threads 1]
        # python -m lm_eval ... (slow on 2 busy cores: piqa 37 min, arc_easy 2 x 27 min as --docs 0-1188 and
        # --docs 1188-2376, winogrande 10 min); output in ~/.cache/keel/lmeval-out/
  $PY tools/lmeval_parity.py extract        # lm-eval output -> tests/golden/lmeval_smollm2.json
  $PY tools/lmeval_parity.py requests       # -> tests/golden/lmeval_requests_smollm2.json
"""
import argparse
import glob
import hashlib
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GGUF = "/root/.cache/keel/SmolLM2-135M-Instruct.Q4_1.gguf"
HF_DIR = os.path.expanduser("~/.cache/keel/smollm2-135m-instruct-hf")
DATA = "/work/shared/datasets"
TASK_DIR = os.path.join(HERE, "lmeval_tasks")
OUT_DIR = os.path.expanduser("~/.cache/keel/lmeval-out")
GOLDEN = os.path.join(ROOT, "tests", "golden", "lmeval_smollm2.json")
GOLDEN_REQ = os.path.join(ROOT, "tests", "golden", "lmeval_requests_smollm2.json")
# Local task name (tools/lmeval_tasks) -> (builtin lm-eval task name, staged data file).
TASKS = {
    "keel_arc_easy": ("arc_easy", "arc_easy_test.jsonl"),
    "keel_arc_challenge": ("arc_challenge", "arc_challenge_test.jsonl"),
    "keel_piqa": ("piqa", "piqa_validation.jsonl"),
    "keel_boolq": ("boolq", "boolq_validation.jsonl"),
    "keel_winogrande": ("winogrande", "winogrande_validation_lmeval_form.jsonl"),
    "keel_hellaswag_klosax": ("hellaswag", "hellaswag_validation_klosax_preprocessed.jsonl"),
}
N_ITEMS = 40     # per-item goldens kept per task
N_REQ = 5        # request goldens kept per task
ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
           TOKENIZERS_PARALLELISM="false")


def versions():
    import importlib.metadata as md
    v = {"python": sys.version.split()[0]}
    for p in ("lm_eval", "torch", "transformers", "tokenizers", "datasets", "gguf", "numpy"):
        try:
            v[p] = md.version(p)
        except md.PackageNotFoundError:
            pass
    return v


def fix_pre_tokenizer(tok):
    """Digits split one by one, as in the real SmolLM2 tokenizer.json / llama.cpp 'smollm'
    pre-tokenizer (transformers' GGUF converter installs only the plain GPT-2 ByteLevel regex);
    same fix as tools/golden_smollm2.py."""
    from tokenizers import pre_tokenizers
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])


def cmd_setup_hf(args):
    """Dequantize the GGUF with transformers, save an fp32 safetensors HF dir, and check that the
    saved dir gives the same tokens and bit-identical logits as the GGUF-loaded model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(2)
    d, f = os.path.split(GGUF)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    fix_pre_tokenizer(tok)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    os.makedirs(HF_DIR, exist_ok=True)
    # save_pretrained refuses a model loaded through the GGUF "quantizer" (even though its weights
    # are already plain fp32), so write the fp32 state dict and a config without the
    # quantization_config by hand. The output head is tied to embed_tokens: not stored twice.
    from safetensors.torch import save_file
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    assert all(v.dtype == torch.float32 for v in sd.values())
    save_file(sd, os.path.join(HF_DIR, "model.safetensors"), metadata={"format": "pt"})
    cfg = model.config
    if hasattr(cfg, "quantization_config"):
        delattr(cfg, "quantization_config")
    cfg.save_pretrained(HF_DIR)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(HF_DIR)
    tok.save_pretrained(HF_DIR)
    tok2 = AutoTokenizer.from_pretrained(HF_DIR)
    model2 = AutoModelForCausalLM.from_pretrained(HF_DIR, dtype=torch.float32).eval()
    texts = ["The capital of France is",
             "Question: In 1889, Gustave Eiffel's tower (324 m) opened; the Musée d'Orsay?\nAnswer: 42 "]
    for t in texts:
        a = tok(t).input_ids
        b = tok2(t).input_ids
        assert a == b, (t, a, b)
        with torch.no_grad():
            la = model(torch.tensor([a])).logits
            lb = model2(torch.tensor([b])).logits
        diff = (la - lb).abs().max().item()
        print(f"setup-hf: {len(a)} tokens, first ids {a[:6]}, max |logit diff| GGUF vs HF dir = {diff}")
        assert diff == 0.0, diff
    print("setup-hf: tokenizer add_bos:", tok2("x").input_ids, "bos", tok2.bos_token, "eos", tok2.eos_token)
    print("setup-hf: saved", HF_DIR, sorted(os.listdir(HF_DIR)))


def _read_jsonl(path):
    with open(path, encoding="utf-8") as fp:
        return [json.loads(line) for line in fp if line.strip()]


def _hf_schema_docs(builtin):
    """The staged file of a builtin task reshaped into the HF dataset schema that lm-eval's builtin
    task config expects (so its own doc_to_text/doc_to_choice/doc_to_target can be applied)."""
    local = [k for k, v in TASKS.items() if v[0] == builtin][0]
    rows = _read_jsonl(os.path.join(DATA, TASKS[local][1]))
    if builtin.startswith("arc_"):
        return [{"id": r["id"], "question": r["question"], "answerKey": r["answerKey"],
                 "choices": {"text": r["choices"], "label": r["labels"]}} for r in rows]
    if builtin == "winogrande":
        # The raw sentence is not staged (datasets README, section 5). Rebuild one that lm-eval's
        # preprocess_winogrande maps back to the same two contexts and continuation: the common
        # prefix of the two contexts, "_", then the continuation.
        out = []
        for r in rows:
            a, b = r["context_options"]
            n = len(os.path.commonprefix([a, b]))
            out.append({"sentence": a[:n] + "_ " + r["continuation"], "option1": a[n:],
                        "option2": b[n:], "answer": r["answer"]})
        return out
    return rows   # piqa, boolq: the staged fields are the HF ones


def cmd_check_prompts(args):
    """Build every request of the local task configs and of lm-eval's builtin tasks (fed the same
    staged docs in HF schema through a patched datasets.load_dataset) and require that contexts,
    continuations and gold indices are identical for all items."""
    import datasets
    from lm_eval.tasks import TaskManager
    orig = datasets.load_dataset
    hf_paths = {"allenai/ai2_arc": None, "baber/piqa": "piqa", "aps/super_glue": "boolq",
                "allenai/winogrande": "winogrande"}

    def fake_load(path=None, name=None, **kw):
        if path in hf_paths:
            builtin = hf_paths[path] or {"ARC-Easy": "arc_easy", "ARC-Challenge": "arc_challenge"}[name]
            # The staged split under every split name the builtin config names (train is only read
            # for few-shot examples, which 0-shot does not use).
            ds = datasets.Dataset.from_list(_hf_schema_docs(builtin))
            return datasets.DatasetDict({s: ds for s in ("train", "validation", "test")})
        return orig(path=path, name=name, **kw)
    datasets.load_dataset = fake_load
    tm = TaskManager(include_path=TASK_DIR)
    pairs = [(k, v[0]) for k, v in TASKS.items() if v[0] != "hellaswag"]
    loaded = tm.load([n for p in pairs for n in p])["tasks"]
    bad = 0
    for local, builtin in pairs:
        reqs = {}
        for name in (local, builtin):
            t = loaded[name]
            t.build_all_requests(rank=0, world_size=1)
            golds = [t.doc_to_text(d) if t.multiple_input else t.doc_to_target(d)
                     for d in t.eval_docs]
            reqs[name] = ([(i.doc_id, i.idx, i.arguments) for i in t.instances], golds)
        (ra, ga), (rb, gb) = reqs[local], reqs[builtin]
        ok = ra == rb and ga == gb
        bad += not ok
        print(f"check-prompts: {local} vs builtin {builtin}: {len(ga)} docs, {len(ra)} requests, "
              f"{'identical' if ok else 'DIFFERENT'}")
        if not ok:
            for x, y in zip(ra, rb):
                if x != y:
                    print("  first difference:", x, y)
                    break
    if bad:
        sys.exit("check-prompts: FAILED")


def cmd_run(args):
    """python -m lm_eval on the local task configs; output under OUT_DIR/<tasks>/, wall time and
    versions recorded next to it in run_info.json (read by `extract`)."""
    tasks = args.tasks
    out = os.path.join(OUT_DIR, tasks.replace(",", "+") + (f"+limit{args.limit}" if args.limit else "")
                       + (f"+docs{args.docs}" if args.docs else ""))
    os.makedirs(out, exist_ok=True)
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf",
           "--model_args", f"pretrained={HF_DIR},dtype=float32", "--device", "cpu",
           "--include_path", TASK_DIR, "--tasks", tasks, "--batch_size", str(args.batch_size),
           "--log_samples", "--output_path", out]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    if args.docs:
        # A slice of the docs (lm-eval --samples), so one task can run as several processes;
        # `extract` merges slices that together cover every doc.
        a, b = (int(x) for x in args.docs.split("-"))
        cmd += ["--samples", json.dumps({t: list(range(a, b)) for t in tasks.split(",")})]
    # One torch thread: on this shared 2-core machine, 2 OpenMP threads ran 3x slower than 1
    # (189 vs 63 tokens/s for a [16, 60] batch at load ~7) because each barrier waits for a
    # descheduled thread. Run several tasks as separate processes instead.
    env = dict(ENV, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    print("run:", " ".join(cmd), flush=True)
    t0 = time.time()
    subprocess.run(cmd, env=env, check=True)
    ru = __import__("resource").getrusage(__import__("resource").RUSAGE_CHILDREN)
    info = {"command": " ".join(cmd), "wall_s": round(time.time() - t0, 1), "versions": versions(),
            "cpu_s": round(ru.ru_utime + ru.ru_stime, 1),
            "threads": args.threads, "nproc": os.cpu_count(),
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(os.path.join(out, "run_info.json"), "w") as fp:
        json.dump(info, fp, indent=1)
    print("run: wall", info["wall_s"], "s ->", out)


def _latest(pattern):
    files = sorted(glob.glob(pattern))
    if not files:
        sys.exit(f"extract: nothing matches {pattern} (run the `run` step first)")
    return files[-1]


def _num(x):
    return float(x)


def _stderr(xs):
    """lm-eval's stderr of a mean: sample standard deviation (n-1) / sqrt(n)."""
    n = len(xs)
    m = sum(xs) / n
    return (sum((x - m) ** 2 for x in xs) / (n - 1)) ** 0.5 / n ** 0.5


def _short_cmd(cmd):
    i = cmd.find(" --samples ")
    return cmd if i < 0 else cmd[:i] + " --samples <doc slice>"


def _task_runs(local):
    """(samples, infos, results, kind) for a task from OUT_DIR: a full run if there is one, else
    --docs slices that together cover every doc, else a --limit run (kind 'partial')."""
    def load(path):
        mdir = os.path.dirname(path)
        info = json.load(open(os.path.join(os.path.dirname(mdir), "run_info.json")))
        results = json.load(open(_latest(os.path.join(mdir, "results_*.json"))))
        return _read_jsonl(path), info, results
    runs = {}
    for path in sorted(glob.glob(os.path.join(OUT_DIR, "*", "*", f"samples_{local}_*.jsonl"))):
        if os.path.exists(os.path.join(os.path.dirname(os.path.dirname(path)), "run_info.json")):
            runs[os.path.dirname(os.path.dirname(path))] = path   # the latest per output dir
    full = [p for d, p in runs.items() if "+limit" not in d and "+docs" not in d]
    if full:
        smp, info, res = load(full[-1])
        return smp, [info], res, "full"
    n_docs = sum(1 for _ in open(os.path.join(DATA, TASKS[local][1]), encoding="utf-8"))
    slices = [load(p) for d, p in runs.items() if "+docs" in d]
    by_id = {r["doc_id"]: r for smp, _, _ in slices for r in smp}
    if slices and sorted(by_id) == list(range(n_docs)):
        return [by_id[i] for i in range(n_docs)], [x[1] for x in slices], None, "slices"
    lim = [p for d, p in runs.items() if "+limit" in d]
    if lim:
        smp, info, res = load(lim[-1])
        return smp, [info], res, "partial"
    return None, None, None, None


def cmd_extract(args):
    """lm-eval's results + samples files -> tests/golden/lmeval_smollm2.json."""
    gold = {
        "about": "lm-evaluation-harness (hf model, 0-shot, no chat template, default task settings) on "
                 "SmolLM2-135M-Instruct Q4_1 dequantized to fp32; written by tools/lmeval_parity.py",
        "model_file": GGUF,
        "model_sha256": hashlib.sha256(open(GGUF, "rb").read()).hexdigest(),
        "hf_dir": HF_DIR,
        "settings": {"num_fewshot": 0, "apply_chat_template": False, "add_bos": False,
                     "target_delimiter": " ", "batch_size": int(args.batch_size), "dtype": "float32",
                     "device": "cpu"},
        "per_item_note": "items: the first N docs in file order; ll[i] is lm-eval's summed log-likelihood "
                         "of choice i (filtered_resps, float32 value); choice_chars[i]: len of choice i in "
                         "code points (acc_norm's divisor); pred/pred_norm: one digit per doc for all docs "
                         "(argmax of ll, of ll/choice_chars, first maximum on ties); acc/acc_norm per doc",
        "tasks": {},
    }
    for local, (builtin, data) in TASKS.items():
        samples, infos, results, kind = _task_runs(local)
        if samples is None:
            continue
        samples = sorted(samples, key=lambda r: r["doc_id"])
        n = len(samples)
        t = {"lm_eval_task": builtin, "local_task": local, "data": os.path.join(DATA, data), "n": n,
             "lm_eval_version": infos[0]["versions"].get("lm_eval"),
             "wall_s": round(sum(i["wall_s"] for i in infos), 1), "processes": len(infos),
             **({"cpu_s": round(sum(i["cpu_s"] for i in infos), 1)} if all("cpu_s" in i for i in infos) else {}),
             "threads": infos[0]["threads"], "finished_utc": max(i["finished_utc"] for i in infos)}
        if kind == "slices":
            t["note"] = (f"run as {len(infos)} lm-eval processes on doc slices (--samples); acc/acc_norm and "
                         "stderr are the mean / lm-eval's stderr formula over lm-eval's per-doc scores; "
                         "wall_s is the sum of the processes' wall times")
        if kind == "partial":
            t["partial"] = f"only the first {n} docs were run (--limit); no aggregates yet"
        if builtin == "hellaswag":
            t["note_hellaswag"] = "klosax text dump, NOT identical to lm-eval hellaswag (datasets README section 4)"
        for m in ("acc", "acc_norm"):
            if m not in samples[0] or kind == "partial":
                continue
            xs = [float(r[m]) for r in samples]
            mean, se = sum(xs) / n, _stderr(xs)
            if kind == "full":   # lm-eval's own aggregate; the recomputation must agree
                res = results["results"][local]
                assert abs(res[f"{m},none"] - mean) < 1e-12 and abs(res[f"{m}_stderr,none"] - se) < 1e-9
                mean, se = res[f"{m},none"], res[f"{m}_stderr,none"]
            t[m], t[m + "_stderr"] = mean, se
        preds, preds_norm, items = [], [], []
        for r in samples:
            ll = [float(x[0]) for x in r["filtered_resps"]]
            args_ = [r["arguments"][k] for k in sorted(r["arguments"], key=lambda k: int(k.split("_")[-1]))]
            conts = [a["arg_1"] for a in args_]
            # lm-eval's acc_norm divisor: len(choice) without the delimiter space
            chars = [len(c) - 1 if c.startswith(" ") else len(c) for c in conts]
            p = max(range(len(ll)), key=lambda i: (ll[i], -i))
            pn = max(range(len(ll)), key=lambda i: (ll[i] / chars[i], -i))
            preds.append(str(p))
            preds_norm.append(str(pn))
            gold_i = int(r["target"]) if str(r["target"]).isdigit() else r["target"]
            if builtin != "winogrande":   # winogrande's target is the continuation, gold is in doc
                assert (int(r["acc"]) == 1) == (p == gold_i), r["doc_id"]
                assert (int(r["acc_norm"]) == 1) == (pn == gold_i), r["doc_id"]
            else:
                gold_i = int(r["doc"]["label"])
                assert (int(r["acc"]) == 1) == (p == gold_i), r["doc_id"]
            if len(items) < N_ITEMS:
                it = {"doc_id": r["doc_id"], "gold": gold_i, "ll": ll, "choice_chars": chars,
                      "acc": int(r["acc"])}
                if "acc_norm" in r:
                    it["acc_norm"] = int(r["acc_norm"])
                items.append(it)
        if kind != "partial":
            t["pred"] = "".join(preds)
            if builtin != "winogrande":
                t["pred_norm"] = "".join(preds_norm)
        t["items"] = items
        gold["tasks"][builtin] = t
        gold.setdefault("versions", infos[0]["versions"])
        gold.setdefault("commands", []).extend(sorted({_short_cmd(i["command"]) for i in infos}))
        print(f"extract: {builtin}: n={n} " + " ".join(
            f"{m}={t[m]:.4f}±{t[m + '_stderr']:.4f}" for m in ("acc", "acc_norm") if m in t) +
            f" ({kind}) wall={t['wall_s']}s")
    _dump(gold, GOLDEN)
    print("extract: wrote", GOLDEN, os.path.getsize(GOLDEN), "bytes")


def _dump(obj, path):
    """JSON with lists of scalars on one line (small, diff-friendly)."""
    def enc(o, ind):
        pad = " " * ind
        if isinstance(o, dict):
            return "{\n" + ",\n".join(f"{pad} {json.dumps(k)}: {enc(v, ind + 1)}" for k, v in o.items()) \
                + "\n" + pad + "}"
        if isinstance(o, list) and o and isinstance(o[0], (dict, list)):
            return "[\n" + ",\n".join(pad + " " + enc(x, ind + 1) for x in o) + "\n" + pad + "]"
        return json.dumps(o, ensure_ascii=False)
    with open(path, "w", encoding="utf-8") as fp:
        fp.write(enc(obj, 0) + "\n")


def cmd_requests(args):
    """lm-eval's own requests (context, continuation) for the first N_REQ docs of each local task
    and the token ids HFLM._encode_pair gives them on the SmolLM2 tokenizer."""
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    torch.set_num_threads(1)
    lm = HFLM(pretrained=HF_DIR, dtype="float32", device="cpu", batch_size=1)
    tm = TaskManager(include_path=TASK_DIR)
    loaded = tm.load(list(TASKS))["tasks"]
    out = {"about": "lm-eval requests for the first docs of each task and HFLM._encode_pair's token "
                    "ids (SmolLM2 tokenizer, no BOS); written by tools/lmeval_parity.py requests",
           "versions": versions(), "add_bos": False,
           "encode_rule": "trailing whitespace of the context moves to the front of the continuation; "
                          "cont_ids = tok(context + continuation)[len(tok(context)):]",
           "tasks": {}}
    for local, (builtin, data) in TASKS.items():
        t = loaded[local]
        t.build_all_requests(rank=0, world_size=1, limit=N_REQ)
        docs = {}
        for inst in sorted(t.instances, key=lambda i: (i.doc_id, i.idx)):
            ctx, cont = inst.arguments
            ctx_ids, cont_ids = lm._encode_pair(ctx, cont)
            d = docs.setdefault(inst.doc_id, {"doc_id": inst.doc_id, "requests": []})
            d["requests"].append({"context": ctx, "continuation": cont,
                                  "ctx_ids": ctx_ids, "cont_ids": cont_ids})
        for doc_id, doc in zip(sorted(docs), t.eval_docs):
            docs[doc_id]["gold"] = t.doc_to_text(doc) if t.multiple_input else t.doc_to_target(doc)
        entry = {"local_task": local, "data": os.path.join(DATA, data),
                 "multiple_input": bool(t.multiple_input), "docs": [docs[k] for k in sorted(docs)]}
        if builtin == "hellaswag":
            entry["note"] = ("klosax text dump treated as lm-eval's hellaswag would (preprocess on text "
                             "and endings); NOT identical to lm-eval's hellaswag on the raw split")
        out["tasks"][builtin] = entry
    _dump(out, GOLDEN_REQ)
    print("requests: wrote", GOLDEN_REQ, os.path.getsize(GOLDEN_REQ), "bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["setup-hf", "check-prompts", "run", "extract", "requests", "all"])
    ap.add_argument("--tasks", default="keel_arc_easy,keel_piqa")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--batch-size", default="16")
    ap.add_argument("--docs", default=None, help="A-B: only docs A..B-1 (lm-eval --samples)")
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS for lm-eval (default 1)")
    args = ap.parse_args()
    steps = ["setup-hf", "check-prompts", "run", "extract", "requests"] if args.step == "all" else [args.step]
    for s in steps:
        globals()["cmd_" + s.replace("-", "_")](args)


if __name__ == "__main__":
    main()
