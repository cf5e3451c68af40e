#!/usr/bin/env python3
# make_tokenizer_fuzz_seeds.py — writes the small seed files of
# tests/fuzz/corpus/tokenizer_gguf/ (vocab-only GGUFs: SentencePiece with byte
# pieces and a Llama-2 template; byte-level BPE with merges, control tokens
# and a ChatML template; an unknown pre-tokenizer) and
# tests/fuzz/corpus/tokenizer_json/ (tokenizer.json variants, some broken).
# Needs: pip install gguf.  Usage: python3 tools/make_tokenizer_fuzz_seeds.py
import json
import os

import gguf

here = os.path.dirname(os.path.abspath(__file__))
cg = os.path.join(here, "..", "tests", "fuzz", "corpus", "tokenizer_gguf")
cj = os.path.join(here, "..", "tests", "fuzz", "corpus", "tokenizer_json")


def byte_unicode():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def write_gguf(name, model, tokens, types, scores=None, merges=None, pre=None, template=None, extra=None):
    w = gguf.GGUFWriter(os.path.join(cg, name), "llama")
    w.add_tokenizer_model(model)
    if pre:
        w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    if scores is not None:
        w.add_token_scores(scores)
    if merges is not None:
        w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    if template:
        w.add_chat_template(template)
    for k, v in (extra or {}).items():
        w.add_uint32(k, v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    os.makedirs(cg, exist_ok=True)
    os.makedirs(cj, exist_ok=True)
    # SentencePiece
    pieces = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    words = ["\u2581", "\u2581H", "el", "lo", "\u2581Hello", "\u2581w", "or", "ld", "\u2581world", "e", "l", "o", "H",
             "w", "r", "d", "\u2581x", "!"]
    pieces += words
    types += [1] * len(words)
    scores = [0.0] * 259 + [-float(i) for i in range(len(words))]
    tpl2 = "{% for m in messages %}{{ bos_token + '[INST] ' + m['content'] + ' [/INST]' }}{% endfor %}"
    write_gguf("tiny_spm.gguf", "llama", pieces, types, scores, template=tpl2,
               extra={"tokenizer.ggml.seperator_token_id": 0xFFFFFFFF})
    # byte-level BPE
    bu = byte_unicode()
    toks = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [bu[b] for b in range(256)]
    types = [3, 3, 3] + [1] * 256
    merges = ["H e", "l l", "He ll", "Hell o", "\u0120 w", "o r", "\u0120w or", "l d", "\u0120wor ld"]
    toks += ["He", "ll", "Hell", "Hello", "\u0120w", "or", "\u0120wor", "ld", "\u0120world"]
    types += [1] * 9
    tplc = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
            "{{ '<|im_start|>system\nYou are a fuzzer<|im_end|>\n' }}{% endif %}"
            "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    write_gguf("tiny_bpe_smollm.gguf", "gpt2", toks, types, merges=merges, pre="smollm", template=tplc)
    write_gguf("tiny_bpe_deepseek_llm.gguf", "gpt2", toks, types, merges=merges, pre="deepseek-llm")
    write_gguf("tiny_bpe_bad_pre.gguf", "gpt2", toks, types, merges=merges, pre="no-such-pre")
    write_gguf("tiny_bpe_bad_merge.gguf", "gpt2", toks, types, merges=merges + ["nospace"], pre="gpt-2")

    # tokenizer.json variants
    vocab = {t: i for i, t in enumerate(toks)}
    base = {"version": "1.0", "added_tokens": [
        {"id": 0, "content": "<|endoftext|>", "special": True, "lstrip": False, "rstrip": False},
        {"id": 1, "content": "<|im_start|>", "special": True, "lstrip": True, "rstrip": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "Split", "pattern": {"String": "-"}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
        "post_processor": {"type": "TemplateProcessing", "single": [
            {"SpecialToken": {"id": "<|im_start|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": "<|im_end|>", "type_id": 0}}], "special_tokens": {}},
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": vocab, "merges": [m.split(" ") for m in merges],
                  "byte_fallback": False, "ignore_merges": False}}
    with open(os.path.join(cj, "bytelevel.json"), "w") as f:
        json.dump(base, f)
    spm = {"added_tokens": [{"id": 0, "content": "<unk>", "special": True}, {"id": 1, "content": "<s>", "special": True},
                            {"id": 2, "content": "</s>", "special": True}],
           "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                              {"type": "Replace", "pattern": {"String": " "},
                                                               "content": "\u2581"}]},
           "pre_tokenizer": None,
           "post_processor": {"type": "TemplateProcessing", "single": [
               {"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
               "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
           "model": {"type": "BPE", "vocab": {p: i for i, p in enumerate(pieces)},
                     "merges": ["\u2581 H", "e l", "l o", "\u2581H el", "\u2581Hel lo"], "byte_fallback": True,
                     "fuse_unk": True, "unk_token": "<unk>"}}
    with open(os.path.join(cj, "spm_as_bpe.json"), "w") as f:
        json.dump(spm, f)
    bad = dict(base, model=dict(base["model"], type="WordPiece"))
    with open(os.path.join(cj, "bad_model_type.json"), "w") as f:
        json.dump(bad, f)
    bad = dict(base, model=dict(base["model"], vocab={"a": 99999999}))
    with open(os.path.join(cj, "bad_id.json"), "w") as f:
        json.dump(bad, f)
    with open(os.path.join(cj, "truncated.json"), "w") as f:
        f.write(json.dumps(base)[:700])
    with open(os.path.join(cj, "not_json.json"), "w") as f:
        f.write("\x00\xff{]")


if __name__ == "__main__":
    main()
