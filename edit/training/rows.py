"""Training rows: a question and a response as token ids with labels (and KRSL weights), for SFT on
CoT records, KRSL on dual pairs with their key-token marks, and DPO on dual pairs (text rows).

A row is ``prompt ids + response ids + EOS`` with labels -100 on the prompt; a row longer than the
student's ``max_length`` is skipped and counted, never cut (a cut row could lose its answer).
"""
from __future__ import annotations

from collections import Counter

from edit.align import krsl_weights
from edit.formats import get_format, student_prompt
from edit.io import DataError
from edit.keysteps import response_ids
from edit.methods import control_key_indices
from edit.student import tokenizer_fingerprint

IGNORE = -100


def encode(tokenizer, question: str, ids: list[int], max_length: int, weights: list[float] | None = None,
           prompt_text: str | None = None):
    """One training row from a question and response ids; None when it exceeds ``max_length``
    (a truncated row could lose its final answer, so it is skipped and counted, never cut).
    ``prompt_text`` (a method template's prompt) replaces the plain CoT prompt of ``question``."""
    prompt_text = student_prompt(question) if prompt_text is None else prompt_text
    prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    input_ids = prompt + list(ids) + [tokenizer.eos_token_id]
    if len(input_ids) > max_length:
        return None
    row = {"input_ids": input_ids, "labels": [IGNORE] * len(prompt) + list(ids) + [tokenizer.eos_token_id]}
    if weights is not None:
        row["weights"] = [0.0] * len(prompt) + list(weights) + [0.0]
    return row


def sft_dataset(records: list[dict], tokenizer, max_length: int, fmt: str = "cot") -> tuple[list[dict], dict]:
    """Rows for SFT on ``{question, gold, response, source}`` records laid out by the format
    ``fmt`` (:data:`edit.formats.FORMATS`: each record gives one or more (prompt, response)
    rows), and a summary of what was skipped."""
    layout = get_format(fmt)
    rows, skipped = [], Counter()
    for rec in records:
        if not rec["response"].strip():
            raise DataError(f"record {rec['id']} ({rec.get('source')}): empty response")
        for prompt_text, response in layout.examples(rec):
            if not response.strip():
                raise DataError(f"record {rec['id']} ({rec.get('source')}): empty response under format {fmt!r}")
            row = encode(tokenizer, rec["question"], response_ids(tokenizer, response), max_length,
                         prompt_text=prompt_text)
            if row is None:
                skipped["too_long"] += 1
                continue
            rows.append(row)
    return rows, {"rows": len(rows), "skipped": dict(skipped)}


def krsl_dataset(
    marked: list[dict], pairs_by_id: dict, tokenizer, max_length: int, alpha: float, beta: float,
    fmt: str = "cot", key_tokens: str = "edit_distance", seed: int = 0,
) -> tuple[list[dict], dict]:
    """Rows for KRSL: one ``{"chosen": row, "rejected": row}`` per pair. ``marked`` are the key-step
    records (:func:`edit.keysteps.mark_pairs`); their ids must equal this tokenizer's ids of the
    pair's texts, or the marks would describe other tokens: a mismatch is an error. Both CoTs are
    prompted with the pair template of format ``fmt``; ``key_tokens`` picks the weighted tokens
    (:func:`edit.methods.control_key_indices`: the marks, or the random / all-token controls,
    seeded by ``seed`` and the pair)."""
    pair_template = get_format(fmt).pair
    if pair_template is None:
        raise ValueError(f"format {fmt!r} has no template for dual pairs")
    fp = tokenizer_fingerprint(tokenizer)
    rows, skipped = [], Counter()
    for m in marked:
        key = (m["id"], m["pair_type"])
        if m["tokenizer"] != fp:
            raise DataError(f"pair {key}: key tokens were marked with tokenizer {m['tokenizer']}, training uses {fp}")
        pair = pairs_by_id.get(key)
        if pair is None:
            raise DataError(f"key-step record {key}: no dual pair has this id and pair type")
        if response_ids(tokenizer, pair["chosen"]) != m["chosen_ids"] or response_ids(tokenizer, pair["rejected"]) != m["rejected_ids"]:
            raise DataError(f"pair {key}: stored token ids differ from the training tokenizer's ids of the texts")
        c_mask = [False] * len(m["chosen_ids"])
        r_mask = [False] * len(m["rejected_ids"])
        c_key, r_key = control_key_indices(key_tokens, m, seed)
        for i in c_key:
            c_mask[i] = True
        for i in r_key:
            r_mask[i] = True
        c_w, r_w = krsl_weights(c_mask, r_mask, alpha=alpha, beta=beta)
        prompt_text = pair_template.prompt(pair["question"])
        chosen = encode(tokenizer, pair["question"], m["chosen_ids"], max_length, c_w, prompt_text=prompt_text)
        rejected = encode(tokenizer, pair["question"], m["rejected_ids"], max_length, r_w, prompt_text=prompt_text)
        if chosen is None or rejected is None:
            skipped["too_long"] += 1
            continue
        rows.append({"chosen": chosen, "rejected": rejected})
    return rows, {"rows": len(rows), "skipped": dict(skipped)}


def dpo_dataset(pairs: list[dict], tokenizer, max_length: int, fmt: str = "cot") -> tuple[list[dict], dict]:
    """Text rows ``{prompt, chosen, rejected}`` for DPO: both CoTs of each dual pair under the pair
    template of format ``fmt``. A pair whose longer side (prompt + response + EOS) exceeds
    ``max_length`` is skipped and counted, never truncated."""
    template = get_format(fmt).pair
    if template is None:
        raise ValueError(f"format {fmt!r} has no template for dual pairs")
    rows, skipped = [], Counter()
    for p in pairs:
        prompt_text = template.prompt(p["question"])
        if not p["chosen"].strip() or not p["rejected"].strip():
            raise DataError(f"pair {(p['id'], p['pair_type'])}: empty chosen or rejected CoT")
        if any(encode(tokenizer, p["question"], response_ids(tokenizer, p[side]), max_length, prompt_text=prompt_text) is None
               for side in ("chosen", "rejected")):
            skipped["too_long"] += 1
            continue
        rows.append({"prompt": prompt_text, "chosen": p["chosen"], "rejected": p["rejected"]})
    return rows, {"rows": len(rows), "skipped": dict(skipped)}
