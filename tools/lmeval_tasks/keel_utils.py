"""keel_utils.py -- helper functions for the local lm-eval task configs in tools/lmeval_tasks.

These configs reproduce lm-eval's builtin tasks on the staged local copies in /work/shared/datasets
(see its README.md, sections 4-6). Only two tasks need code: winogrande, whose staged file is already
in lm-eval's request form (context_options / continuation / label), and hellaswag, whose staged file
is klosax's text dump (one `text` field instead of activity_label/ctx_a/ctx_b), so it is only close to
lm-eval's hellaswag, not identical. Used by tools/lmeval_parity.py.
"""
import re


def wg_doc_to_text(doc):
    # Multiple-input task: lm-eval's winogrande returns the gold index (an int) from doc_to_text.
    return int(doc["label"])


def wg_doc_to_target(doc):
    # The text after the blank, already stripped in the staged file (lm-eval strips it too).
    return doc["continuation"]


def wg_doc_to_choice(doc):
    # sentence[:blank] + option k, as lm-eval's preprocess_winogrande.doc_to_choice builds them.
    return list(doc["context_options"])


def _hs_preprocess(text):
    # The same four steps as lm-eval's hellaswag utils.preprocess (strip, " [title]" -> ". ",
    # delete [..] spans, one pass of double space -> space).
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def hs_process_docs(dataset):
    # klosax's `text` is activity_label + ": " + ctx with ctx_b not capitalised (see the datasets
    # README, section 4); lm-eval's cleaning is applied on top, as lm-eval would to raw fields.
    def _one(doc):
        return {"query": _hs_preprocess(doc["text"]),
                "choices": [_hs_preprocess(e) for e in doc["endings"]],
                "gold": int(doc["label"])}
    return dataset.map(_one)
